"""The mine page's charts: which points, their history, their SVG."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fnmatch import fnmatchcase

from supervision.config import HistorySection
from supervision.history import NS, HistoryError, PointRef, make_backend, step_for
from supervision.ingest.models import LatestValue
from supervision.registry.overview import GatewayRow
from supervision.web.chart_svg import chart_svg

log = logging.getLogger("minegate.platform.history")


@dataclass(frozen=True)
class Chart:
    device: str
    point: str
    unit: str
    svg: str


@dataclass(frozen=True)
class Charts:
    charts: list[Chart]
    window_h: float
    error: str | None = None  # the history server could not answer


def pick_points(config: HistorySection, values: list[LatestValue]) -> list[LatestValue]:
    """Numeric points matching ``charts``, in its order, at most ``max_charts``."""
    chosen: list[LatestValue] = []
    ordered = sorted(values, key=lambda v: (v.device, v.point))
    for pattern in config.charts:
        for v in ordered:
            numeric = v.number is not None and not isinstance(v.value, bool)
            if numeric and fnmatchcase(v.point, pattern) and v not in chosen:
                chosen.append(v)
    return chosen[: config.max_charts]


def mine_charts(
    config: HistorySection, gateways: list[GatewayRow], values: list[LatestValue], now_ns: int
) -> Charts:
    """The charts of a mine's points over the last ``window_h``; the first
    failed query stops the others (a server down would time out on each)
    and is shown instead."""
    by_id = {g.id: g for g in gateways}
    window_s = config.window_h * 3600
    step = step_for(window_s, config.buckets)
    end = now_ns // (step * NS) * (step * NS) + step * NS  # the current bucket included
    start = end - int(window_s) * NS
    backend = make_backend(config)
    charts: list[Chart] = []
    for v in pick_points(config, values):
        gw = by_id.get(v.gateway_id)
        if gw is None:
            continue
        ref = PointRef(gw.site, gw.name, v.device, v.point)
        try:
            series = backend.series(ref, start, end, step)
        except HistoryError as exc:
            log.warning("charts of %s/%s: %s", gw.site, gw.name, exc)
            return Charts(charts, config.window_h, str(exc))
        charts.append(
            Chart(v.device, v.point, v.unit, chart_svg(series, f"{v.device} {v.point}", v.unit))
        )
    return Charts(charts, config.window_h)

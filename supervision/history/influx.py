"""InfluxDB 1.x: InfluxQL on ``/query``.

``SELECT mean("<point>") FROM "<rp>"."snapshot" WHERE site, gateway and
device match AND time in the window GROUP BY time(<step>) fill(none)``;
identifiers and strings are quoted, so names with quotes, spaces or
backslashes are safe."""

from __future__ import annotations

import math

from supervision.config import HistorySection
from supervision.history import NS, HistoryError, PointRef, Series
from supervision.history.http import get_json


def ident(name: str) -> str:
    """An InfluxQL double-quoted identifier."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def literal(text: str) -> str:
    """An InfluxQL single-quoted string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


class InfluxV1History:
    def __init__(self, config: HistorySection) -> None:
        self.config = config

    def query_text(self, ref: PointRef, start_ns: int, end_ns: int, step_s: int) -> str:
        rp = self.config.retention_policy
        source = f"{ident(rp)}.{ident('snapshot')}" if rp else ident("snapshot")
        return (
            f"SELECT mean({ident(ref.point)}) FROM {source} "
            f"WHERE {ident('site')} = {literal(ref.site)} "
            f"AND {ident('gateway')} = {literal(ref.gateway)} "
            f"AND {ident('device')} = {literal(ref.device)} "
            f"AND time >= {int(start_ns)} AND time < {int(end_ns)} "
            f"GROUP BY time({int(step_s)}s) fill(none)"
        )

    def series(self, ref: PointRef, start_ns: int, end_ns: int, step_s: int) -> Series:
        q = self.query_text(ref, start_ns, end_ns, step_s)
        body = get_json(self.config, "/query", {"db": self.config.database, "q": q, "epoch": "ns"})
        try:
            result = body["results"][0]
        except (KeyError, IndexError, TypeError):
            raise HistoryError(f"influxdb_v1 at {self.config.url}: unexpected answer") from None
        if "error" in result:
            raise HistoryError(f"influxdb_v1 at {self.config.url}: {result['error']}")
        half = step_s * NS // 2
        points: list[tuple[int, float]] = []
        for s in result.get("series") or []:
            for ts, value in s.get("values") or []:
                if isinstance(value, int | float) and math.isfinite(value):
                    points.append((int(ts) + half, float(value)))
        points.sort()
        return Series(ref, start_ns, end_ns, step_s, tuple(points))

"""VictoriaMetrics: PromQL on ``/api/v1/query_range``.

The gateways write line protocol to VictoriaMetrics, which keeps each
numeric field as ``<measurement>_<field>`` with the tags as labels
(docs/schema.md): the query is ``avg(avg_over_time({__name__="snapshot_<point>",
site=..., gateway=..., device=...}[<step>s]))``, the name given as a label so
any point name is safe, every label value quoted."""

from __future__ import annotations

import math

from supervision.config import HistorySection
from supervision.history import NS, HistoryError, PointRef, Series
from supervision.history.http import get_json

EDGE_NS = 1_000_000  # 1 ms, VictoriaMetrics' resolution


def label_value(text: str) -> str:
    """A PromQL double-quoted label value."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class VictoriaHistory:
    def __init__(self, config: HistorySection) -> None:
        self.config = config

    def query_text(self, ref: PointRef, step_s: int) -> str:
        labels = ", ".join(
            f"{k}={label_value(v)}"
            for k, v in (
                ("__name__", f"snapshot_{ref.point}"),
                ("site", ref.site),
                ("gateway", ref.gateway),
                ("device", ref.device),
            )
        )
        return f"avg(avg_over_time({{{labels}}}[{int(step_s)}s]))"

    def series(self, ref: PointRef, start_ns: int, end_ns: int, step_s: int) -> Series:
        # PromQL evaluates at the end of a bucket and looks back over
        # (end - step, end]; 1 ms before the end makes that [start, end) as in
        # InfluxQL, so a snapshot stamped on a boundary (they are) counts in
        # the bucket it starts. nocache: VictoriaMetrics would otherwise
        # align the times to the step and undo that.
        first = start_ns + step_s * NS - EDGE_NS
        params = {
            "query": self.query_text(ref, step_s),
            "start": f"{first / NS:.3f}",
            "end": f"{(end_ns - EDGE_NS) / NS:.3f}",
            "step": f"{int(step_s)}s",
            "nocache": "1",
        }
        body = get_json(self.config, "/api/v1/query_range", params)
        if not isinstance(body, dict) or body.get("status") != "success":
            error = body.get("error") if isinstance(body, dict) else None
            raise HistoryError(
                f"victoriametrics at {self.config.url}: {error or 'unexpected answer'}"
            )
        half = step_s * NS // 2
        points: list[tuple[int, float]] = []
        for s in body.get("data", {}).get("result") or []:
            for ts, text in s.get("values") or []:
                try:
                    value = float(text)
                except (TypeError, ValueError):
                    continue
                if math.isfinite(value):
                    points.append((round(float(ts) * 1000) * 1_000_000 + EDGE_NS - half, value))
        points.sort()
        return Series(ref, start_ns, end_ns, step_s, tuple(points))

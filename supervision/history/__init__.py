"""The site's telemetry history, queried for the mine page's charts.

The platform keeps only latest values; the history stays where the gateways
write it (docs/sinks.md): InfluxDB 1.x, queried with InfluxQL on ``/query``
(:mod:`supervision.history.influx`), or VictoriaMetrics, queried with PromQL
on ``/api/v1/query_range`` (:mod:`supervision.history.victoria`). Both read
the ``snapshot`` measurement (every point of every device each 20 s, a
device that does not answer without a value, docs/schema.md) and answer the
mean of each bucket, a bucket without a value left out (a gap, never an
invented number).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from supervision.config import HistorySection

NS = 1_000_000_000


class HistoryError(Exception):
    """The history server could not answer; the message names it and why."""


@dataclass(frozen=True)
class PointRef:
    """One point of one device behind one gateway."""

    site: str
    gateway: str
    device: str
    point: str


@dataclass(frozen=True)
class Series:
    """The mean of ``ref`` per bucket of ``step_s`` from ``start_ns`` to
    ``end_ns``: ``points`` are (bucket middle in ns, mean), in time order,
    buckets without a value left out."""

    ref: PointRef
    start_ns: int
    end_ns: int
    step_s: int
    points: tuple[tuple[int, float], ...]


class HistoryBackend(Protocol):
    def series(self, ref: PointRef, start_ns: int, end_ns: int, step_s: int) -> Series: ...


def make_backend(config: HistorySection) -> HistoryBackend:
    if config.backend == "influxdb_v1":
        from supervision.history.influx import InfluxV1History

        return InfluxV1History(config)
    from supervision.history.victoria import VictoriaHistory

    return VictoriaHistory(config)


def step_for(window_s: float, buckets: int) -> int:
    """Whole seconds per bucket, at least the gateways' 20 s snapshots."""
    return max(20, int(window_s // buckets))

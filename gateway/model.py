"""What flows through the gateway: samples, grouped into records.

A **record** is the unit the store keeps and the sinks send: the values of
some points of one device (or one series source) taken at one instant. One
Modbus read of 100 registers becomes one record of up to 100 values, so the
store and the uplinks pay per read, not per value. This is what lets the
gateway keep every value durably at the rates of the benchmark.

Timestamps are integer nanoseconds since the Unix epoch (UTC), the time the
request was sent to the device (the "timestamp of the read").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from drivers.types import Value


class Quality(StrEnum):
    GOOD = "good"
    BAD = "bad"  # the device answered but the value is unusable (exception, decode error)
    STALE = "stale"  # the device answers but the value has not changed for too long (frozen)
    COMM_LOSS = "comm_loss"  # the device stopped answering; value is None


class RecordKind(StrEnum):
    """Kinds of record in the outbox. The overflow policy drops SAMPLE
    records first and never drops ALARM or STAT records."""

    SAMPLE = "sample"  # raw polled values (after report-by-exception)
    SNAPSHOT = "snapshot"  # real-time snapshot of every point at a fixed interval
    STAT = "stat"  # 5-minute statistics (max, min, mean, count)
    ALARM = "alarm"  # safety alarm raised / cleared
    METRIC = "metric"  # the gateway's own self-metrics
    EVENT = "event"  # device comm-loss / recovery, gateway start / stop
    FINDING = "finding"  # survey check results

    @property
    def droppable(self) -> bool:
        return self in (RecordKind.SAMPLE, RecordKind.SNAPSHOT, RecordKind.METRIC)


#: ``Record.fields`` key of a SAMPLE or SNAPSHOT record: the points of the
#: record whose alarms are out of service (calibration, maintenance), so the
#: data say which values were taken then (docs/alarms.md "Markers")
OUT_OF_SERVICE = "out_of_service"


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of one point at one instant (the view a user sees)."""

    device: str
    point: str
    value: Value | None
    unit: str
    quality: Quality
    ts_ns: int


@dataclass(slots=True)
class Record:
    """Values of several points of one source, sharing one timestamp.

    ``points``, ``values``, ``units`` and ``qualities`` are parallel lists.
    ``device`` is the device name for samples, or the source name for other
    kinds (e.g. ``"gateway"`` for metrics, a check id for survey findings).
    ``seq`` is assigned by the store when the record is appended (0 before).
    ``fields`` carries extra structured data for kinds that need it (STAT:
    per point ``{"max":..,"min":..,"mean":..,"count":..}``; ALARM/EVENT/FINDING:
    free-form JSON-able dict).
    """

    kind: RecordKind
    device: str
    ts_ns: int
    points: list[str]
    values: list[Value | None]
    units: list[str]
    qualities: list[Quality]
    fields: dict[str, object] = field(default_factory=dict)
    seq: int = 0

    def __len__(self) -> int:
        return len(self.points)

    def samples(self) -> list[Sample]:
        return [
            Sample(self.device, p, v, u, q, self.ts_ns)
            for p, v, u, q in zip(self.points, self.values, self.units, self.qualities, strict=True)
        ]

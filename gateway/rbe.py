"""Report by exception: record a point only when it says something new.

A value is recorded when

* it is the first value of the point, or
* its quality differs from the last recorded quality, or
* numeric: ``|value - last_recorded| > deadband`` (compared with the last
  *recorded* value, not the last polled one, so a slow creep is recorded once
  it adds up to more than the deadband), or
* strings and booleans: it differs at all, or
* ``max_interval`` seconds have passed since the point was last recorded
  (a heartbeat, so consumers can tell "unchanged" from "gone").

A deadband of 0 and no max_interval means every change is recorded and an
unchanged value never is.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.types import Value
from gateway.model import Quality


@dataclass(frozen=True, slots=True)
class RbePolicy:
    deadband: float = 0.0
    max_interval_ns: int | None = None


@dataclass(slots=True)
class _Last:
    value: Value | None
    quality: Quality
    ts_ns: int


def _changed(old: Value | None, new: Value | None, deadband: float) -> bool:
    if old is None or new is None:
        return old is not new
    if (
        isinstance(old, bool)
        or isinstance(new, bool)
        or isinstance(old, str)
        or isinstance(new, str)
    ):
        return old != new or type(old) is not type(new)
    return abs(float(new) - float(old)) > deadband


class ReportByException:
    """Per-point RBE filter for one device."""

    def __init__(self, policies: dict[str, RbePolicy]) -> None:
        self._policies = policies
        self._last: dict[str, _Last] = {}

    def should_record(self, point: str, value: Value | None, quality: Quality, ts_ns: int) -> bool:
        """Decide, and if yes remember ``value`` as the point's last record."""
        policy = self._policies.get(point, RbePolicy())
        last = self._last.get(point)
        record = (
            last is None
            or quality != last.quality
            or _changed(last.value, value, policy.deadband)
            or (policy.max_interval_ns is not None and ts_ns - last.ts_ns >= policy.max_interval_ns)
        )
        if record:
            self._last[point] = _Last(value, quality, ts_ns)
        return record

    def forget(self) -> None:
        """Start afresh (after comm loss the first good values are always recorded)."""
        self._last.clear()

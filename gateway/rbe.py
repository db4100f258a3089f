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

The state is kept in flat lists indexed by a *slot* per point (assigned in
the order points are first seen, so the points of one poll request get
consecutive slots): :meth:`ReportByException.record_plain_numbers` decides a
whole request of good finite numbers with a few list operations instead of
one call per value. It gives exactly the answers of
:meth:`ReportByException.should_record` (``tests/gateway/test_quality_fast.py``
checks it against a reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import compress
from operator import eq, ne

from drivers.types import Value
from gateway.model import Quality

_GOOD = Quality.GOOD


@dataclass(frozen=True, slots=True)
class RbePolicy:
    deadband: float = 0.0
    max_interval_ns: int | None = None


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
        self._slot: dict[str, int] = {}
        self._deadband: list[float] = []
        self._max_ns: list[int | None] = []
        # Last recorded value, quality (None: nothing recorded) and time.
        self._value: list[Value | None] = []
        self._quality: list[Quality | None] = []
        self._ts: list[int] = []
        # float(last recorded value) if it was a GOOD finite number (not a
        # bool), else None: a plain point's GOOD finite number is new
        # exactly when its float differs from this (None differs from all).
        self._number: list[float | None] = []
        # Slots whose last record is GOOD but has no finite float (a NaN,
        # an overflowing int, an odd type: only possible through
        # should_record): they are decided one by one, by _changed.
        self._odd: set[int] = set()

    def slots(self, points: list[str] | tuple[str, ...]) -> list[int]:
        """The state slot of each point (new points get the next slots)."""
        out = []
        for name in points:
            i = self._slot.get(name)
            if i is None:
                i = self._slot[name] = len(self._quality)
                policy = self._policies.get(name) or RbePolicy()
                self._deadband.append(policy.deadband)
                self._max_ns.append(policy.max_interval_ns)
                self._value.append(None)
                self._quality.append(None)
                self._ts.append(0)
                self._number.append(None)
            out.append(i)
        return out

    def is_plain(self, slot: int) -> bool:
        """Deadband 0 and no heartbeat: every change and only a change counts."""
        return self._deadband[slot] == 0 and self._max_ns[slot] is None

    def should_record(self, point: str, value: Value | None, quality: Quality, ts_ns: int) -> bool:
        """Decide, and if yes remember ``value`` as the point's last record."""
        i = self._slot.get(point)
        if i is None:
            (i,) = self.slots((point,))
        return self.decide(i, value, quality, ts_ns)

    def decide(self, slot: int, value: Value | None, quality: Quality, ts_ns: int) -> bool:
        """:meth:`should_record` for a point's slot."""
        last_quality = self._quality[slot]
        max_ns = self._max_ns[slot]
        record = (
            last_quality is None
            or quality != last_quality
            or _changed(self._value[slot], value, self._deadband[slot])
            or (max_ns is not None and ts_ns - self._ts[slot] >= max_ns)
        )
        if record:
            self._remember(slot, value, quality, ts_ns)
        return record

    def _remember(self, slot: int, value: Value | None, quality: Quality, ts_ns: int) -> None:
        self._value[slot] = value
        self._quality[slot] = quality
        self._ts[slot] = ts_ns
        number: float | None = None
        self._odd.discard(slot)
        if quality == _GOOD and value is not None and not isinstance(value, bool | str):
            # _changed compares such values as floats
            try:
                number = float(value)
            except (TypeError, ValueError, OverflowError):
                number = None
            if number is None or not math.isfinite(number):
                number = None
                self._odd.add(slot)
        self._number[slot] = number

    def record_plain_numbers(
        self, start: int, values: list[Value], floats: list[float], ts_ns: int
    ) -> list[int] | None:
        """Decide GOOD values of consecutive plain slots ``start ..
        start + len(values) - 1`` (see :meth:`is_plain`) at once.

        ``values`` are finite ints and floats (no bools); ``floats`` is
        ``[float(v) for v in values]``. Returns None if every value is
        recorded, else the positions (into ``values``) that are.
        """
        n = len(floats)
        stop = start + n
        numbers = self._number
        if self._odd:
            keep = [j for j in range(n) if self.decide(start + j, values[j], _GOOD, ts_ns)]
            return None if len(keep) == n else keep
        old = numbers[start:stop]
        if not any(map(eq, floats, old)):
            numbers[start:stop] = floats
            self._value[start:stop] = values
            self._quality[start:stop] = [_GOOD] * n
            self._ts[start:stop] = [ts_ns] * n
            return None
        keep = list(compress(range(n), map(ne, floats, old)))
        value, quality, ts = self._value, self._quality, self._ts
        for j in keep:
            i = start + j
            numbers[i] = floats[j]
            value[i] = values[j]
            quality[i] = _GOOD
            ts[i] = ts_ns
        return keep

    def forget(self) -> None:
        """Start afresh (after comm loss the first good values are always recorded)."""
        n = len(self._quality)
        self._quality[:] = [None] * n
        self._value[:] = [None] * n
        self._number[:] = [None] * n
        self._ts[:] = [0] * n
        self._odd.clear()

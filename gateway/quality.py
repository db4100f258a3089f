"""From decoded values to records: quality, staleness, report by exception and
communication state of one device. Shared by the Modbus and ASCII pollers so
both judge values the same way.

Rules (see ``docs/configuration.md``):

* a NaN or infinite float, or a value that failed to decode, is BAD with no
  value (a NaN cannot travel to most uplinks and means "no reading");
* a value that has not changed at all for longer than the point's
  ``stale_after_s`` is STALE (a frozen transmitter still answers);
* after ``comm_loss_after`` consecutive failed cycles the device is in
  COMM_LOSS: one record with value None for all points and one EVENT record;
  the last good values are never repeated with fresh timestamps;
* the first answered cycle after that emits a recovery EVENT and fresh values.

Speed: a poll request's readings arrive as a dict with the same keys every
cycle, so what depends only on the keys (units, RBE slots, whether the
points are "plain": deadband 0, no heartbeat, no staleness) is worked out
once per key order (:meth:`DeviceRecorder.prepare`). Readings of plain
points that are all finite ints and floats take a path with a few list
operations per request; everything else goes value by value. Both give the
same records (``tests/gateway/test_quality_fast.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from drivers.errors import DriverError
from drivers.types import PointSpec, Value
from gateway.metrics import DeviceMetrics
from gateway.model import Quality, Record, RecordKind
from gateway.rbe import RbePolicy, ReportByException

NS = 1_000_000_000
_GOOD = Quality.GOOD
_SAMPLE = RecordKind.SAMPLE
_NUMBER_TYPES = frozenset((int, float))
_MAX_LAYOUTS = 256  # key orders remembered per device (ASCII lines may vary)


def judge(value: Value | Exception | None) -> tuple[Value | None, Quality]:
    """Quality of one decoded value, before staleness."""
    if isinstance(value, Exception) or value is None:
        return None, Quality.BAD
    if isinstance(value, float) and not math.isfinite(value):
        return None, Quality.BAD
    return value, Quality.GOOD


@dataclass(slots=True)
class _Frozen:
    value: Value | None
    since_ns: int


@dataclass(frozen=True, slots=True)
class _Layout:
    """What depends only on the keys of a readings dict, in their order."""

    names: list[str]
    units: list[str]
    # first RBE slot if every key is a plain point and the slots are
    # consecutive (the fast path applies), else -1
    plain_start: int


def finite_floats(values: list[Value | Exception | None]) -> list[float] | None:
    """``[float(v) for v in values]`` if every value is a finite int or
    float (not a bool), else None."""
    kinds = set(map(type, values))
    if not kinds <= _NUMBER_TYPES:
        return None
    try:
        floats = list(map(float, values))  # type: ignore[arg-type]
    except OverflowError:  # an int beyond float range
        return None
    # NaN and inf make the sum non-finite (so may an overflow: then the
    # values are judged one by one, which is only slower)
    if float in kinds and not math.isfinite(sum(floats)):
        return None
    return floats


class DeviceRecorder:
    """Turns one device's readings into the records worth storing."""

    def __init__(
        self,
        device: str,
        points: tuple[PointSpec, ...],
        stale_after_s: Mapping[str, float],
        comm_loss_after: int,
        stats: DeviceMetrics,
        observe: Callable[[Record], None] | None = None,
    ) -> None:
        self.device = device
        # Sees every reading before report by exception (statistics need
        # every value, not only the changes).
        self.observe = observe
        self.points = {p.name: p for p in points}
        self.stale_after_ns = {k: int(v * NS) for k, v in stale_after_s.items() if v > 0}
        self.comm_loss_after = comm_loss_after
        self.stats = stats
        self.rbe = ReportByException(
            {
                p.name: RbePolicy(
                    deadband=p.deadband,
                    max_interval_ns=int(p.max_interval * NS) if p.max_interval else None,
                )
                for p in points
            }
        )
        self._frozen: dict[str, _Frozen] = {}
        self._layouts: dict[tuple[str, ...], _Layout] = {}
        self.failed_cycles = 0
        self.in_comm_loss = False
        self._loss_since_ns = 0
        self.last_error = ""

    def prepare(self, keys: Sequence[str]) -> None:
        """Work out once what readings with these keys, in this order, need
        (call it with each poll request's point names before polling, so
        each request's points get consecutive RBE slots)."""
        self._layout(tuple(keys))

    def _layout(self, keys: tuple[str, ...]) -> _Layout:
        layout = self._layouts.get(keys)
        if layout is not None:
            return layout
        points = self.points
        names = [k for k in keys if k in points]
        slots = self.rbe.slots(names)
        plain = (
            bool(names)
            and len(names) == len(keys)
            and slots == list(range(slots[0], slots[0] + len(slots)))
            and all(self.rbe.is_plain(i) for i in slots)
            and not any(n in self.stale_after_ns for n in names)
        )
        layout = _Layout(names, [points[n].unit for n in names], slots[0] if plain else -1)
        if len(self._layouts) >= _MAX_LAYOUTS:
            self._layouts.clear()
        self._layouts[keys] = layout
        return layout

    def values_record(
        self, ts_ns: int, readings: Mapping[str, Value | Exception | None]
    ) -> Record | None:
        """One SAMPLE record of the readings that pass report by exception,
        or None if nothing is worth storing."""
        keys = tuple(readings)
        layout = self._layouts.get(keys) or self._layout(keys)
        if layout.plain_start >= 0:
            values = list(readings.values())
            floats = finite_floats(values)
            if floats is not None:
                return self._plain_numbers(layout, ts_ns, values, floats)  # type: ignore[arg-type]
        return self._one_by_one(ts_ns, readings)

    def _plain_numbers(
        self, layout: _Layout, ts_ns: int, values: list[Value | None], floats: list[float]
    ) -> Record | None:
        # all GOOD: finite numbers, and no point of the layout can be stale
        n = len(values)
        self.stats.readings += n
        full = Record(
            _SAMPLE,
            self.device,
            ts_ns,
            layout.names.copy(),
            values,
            layout.units.copy(),
            [_GOOD] * n,
        )
        if self.observe is not None:
            self.observe(full)
        keep = self.rbe.record_plain_numbers(layout.plain_start, values, floats, ts_ns)  # type: ignore[arg-type]
        if keep is None:
            return full
        if not keep:
            return None
        return self._subset(full, keep)

    def _one_by_one(
        self, ts_ns: int, readings: Mapping[str, Value | Exception | None]
    ) -> Record | None:
        full = Record(_SAMPLE, self.device, ts_ns, [], [], [], [])
        for name, raw in readings.items():
            spec = self.points.get(name)
            if spec is None:
                continue
            value, quality = judge(raw)
            if quality is Quality.GOOD and self._is_stale(name, value, ts_ns):
                quality = Quality.STALE
            full.points.append(name)
            full.values.append(value)
            full.units.append(spec.unit)
            full.qualities.append(quality)
        self.stats.readings += len(full.points)
        if self.observe is not None and full.points:
            self.observe(full)
        keep = [
            i
            for i, name in enumerate(full.points)
            if self.rbe.should_record(name, full.values[i], full.qualities[i], ts_ns)
        ]
        if not keep:
            return None
        if len(keep) == len(full.points):
            return full
        return self._subset(full, keep)

    def _subset(self, full: Record, keep: list[int]) -> Record:
        return Record(
            _SAMPLE,
            self.device,
            full.ts_ns,
            [full.points[i] for i in keep],
            [full.values[i] for i in keep],
            [full.units[i] for i in keep],
            [full.qualities[i] for i in keep],
        )

    def _is_stale(self, name: str, value: Value | None, ts_ns: int) -> bool:
        limit = self.stale_after_ns.get(name)
        if limit is None:
            return False
        frozen = self._frozen.get(name)
        if frozen is None or frozen.value != value:
            self._frozen[name] = _Frozen(value, ts_ns)
            return False
        return ts_ns - frozen.since_ns > limit

    def cycle_ok(self, ts_ns: int) -> list[Record]:
        """The device answered this cycle; returns a recovery EVENT if it was lost."""
        self.failed_cycles = 0
        self.stats.state = "online"
        self.stats.last_ok_ns = ts_ns
        if not self.in_comm_loss:
            return []
        self.in_comm_loss = False
        down_s = (ts_ns - self._loss_since_ns) / NS
        return [self._event(ts_ns, "comm_restored", {"down_s": round(down_s, 3)})]

    def cycle_failed(self, ts_ns: int, error: DriverError | None) -> list[Record]:
        """No answer this cycle; returns the comm-loss records when the
        threshold is reached (once per outage)."""
        self.stats.failed_polls += 1
        if error is not None:
            self.last_error = f"{error.kind.value}: {error}"
        self.failed_cycles += 1
        if self.failed_cycles == 1:
            self._loss_since_ns = ts_ns
        if self.in_comm_loss or self.failed_cycles < self.comm_loss_after:
            return []
        self.in_comm_loss = True
        self.stats.state = "comm_loss"
        self.stats.comm_losses += 1
        # Values frozen before the outage must not count as stale after it.
        self._frozen.clear()
        names = list(self.points)
        for name in names:
            self.rbe.should_record(name, None, Quality.COMM_LOSS, ts_ns)
        loss = Record(
            RecordKind.SAMPLE,
            self.device,
            ts_ns,
            names,
            [None] * len(names),
            [self.points[n].unit for n in names],
            [Quality.COMM_LOSS] * len(names),
        )
        if self.observe is not None:
            self.observe(loss)
        event = self._event(
            ts_ns,
            "comm_loss",
            {"failed_cycles": self.failed_cycles, "error": self.last_error},
        )
        return [loss, event]

    def _event(self, ts_ns: int, name: str, extra: dict[str, object]) -> Record:
        return Record(
            RecordKind.EVENT,
            self.device,
            ts_ns,
            ["event"],
            [name],
            [""],
            [Quality.GOOD],
            fields={"event": name, "device": self.device, **extra},
        )

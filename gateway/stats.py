"""Regulatory statistics: 5-minute statistics per point and the periodic
real-time snapshot (the 2024 data-access rule for non-coal underground mines
asks for real-time values every 20 s and 5-minute max/min/mean).

Both classes are pure: the runtime feeds them every polled SAMPLE record
(before report-by-exception, so counts and means see every reading) and asks
for output with the current time; nothing here sleeps or reads a clock
unless the caller leaves ``now_ns`` out (then the injected ``clock``).

* :class:`StatsAggregator`: per point, over wall-clock-aligned windows
  (``[k*window, (k+1)*window)`` in UTC ns), the max, min, mean and count of
  the **good-quality, finite, numeric** values (bools are not numeric). A
  window is emitted once ``now >= window end + grace`` (samples are stamped
  with the time of the read, so a read started just before the boundary may
  arrive a little after it). One STAT record per device and window; its
  ``ts_ns`` is the window start; ``fields[point]`` is
  ``{"max", "min", "mean", "count", "window_s"}`` (a point seen in the window
  with no good value gets ``{"count": 0, "window_s": ...}``). Samples for a
  window already emitted are counted in ``late`` and otherwise ignored.
  A window cut short, at a stop (:meth:`StatsAggregator.flush_all`) or
  because it began before this aggregator was created (a restart), is
  *partial*: its statistics carry ``"partial": True`` and its ``ts_ns`` is
  the device's own first reading in it (not the window start, nor another
  device's), so the parts before and after a restart stay apart (a
  consumer combines them: max of maxima, min of minima, count-weighted
  mean).
* :class:`Snapshotter`: the latest value, unit and quality of every point,
  as one SNAPSHOT record per device, at every multiple of ``interval_s``
  (``ts_ns`` = that boundary). A device that stopped answering shows the
  quality its poller reported (``comm_loss``, value ``None``), never an old
  value with a fresh timestamp.

Speed (both see every polled value): the aggregator buffers the readings of
a request whose values are all good finite numbers as one row of floats and
folds up to ``FOLD_ROWS`` rows at once, column by column (``sum``, ``min``,
``max`` in C), adding in the same order as value by value, so the results
are the same to the last bit; anything else is accounted value by value,
after the buffered rows. The snapshotter keeps the latest record of each
set of points and spreads it over the points only when it emits.
``tests/sinks/test_stats_fast.py`` checks both against the value-by-value
reference.
"""

from __future__ import annotations

import functools
import math
import operator
import sys
import time
from collections.abc import Callable, Iterable
from itertools import repeat

from gateway.model import Quality, Record, RecordKind
from gateway.quality import finite_floats

NS = 1_000_000_000
_GOOD = Quality.GOOD
_SAMPLE = RecordKind.SAMPLE
FOLD_ROWS = 64  # buffered rows per set of points before they are folded in
_MAX_LAYOUTS = 256  # sets of points remembered per device

if sys.version_info < (3, 12):
    # float sum() adds left to right, exactly like `+=` in a loop
    _add_in_order: Callable[[tuple[float, ...], float], float] = sum
else:  # sum() of floats is compensated from 3.12 on

    def _add_in_order(col: tuple[float, ...], start: float) -> float:
        return functools.reduce(operator.add, col, start)


def _check_lengths(record: Record) -> None:
    n = len(record.points)
    if not (len(record.values) == len(record.units) == len(record.qualities) == n):
        raise ValueError(
            f"record of {record.device!r}: points, values, units, qualities differ in length"
        )


def _all_good(record: Record) -> list[float] | None:
    """The values as floats if every quality is GOOD and every value a
    finite int or float (not a bool), else None."""
    if any(map(operator.is_not, record.qualities, repeat(_GOOD))):
        return None
    return finite_floats(record.values)  # type: ignore[arg-type]


class _Group:
    """Accumulators of one set of points of one device in one window, in
    record order, and the rows not yet folded into them."""

    __slots__ = ("accs", "names", "others", "rows")

    def __init__(self, names: frozenset[str], accs: list[list[float]]) -> None:
        self.names = names
        self.accs = accs
        self.rows: list[list[float]] = []
        # groups sharing a point: their rows are folded before ours grow, so
        # a point's sum sees its values in arrival order
        self.others: list[_Group] = []

    def fold(self) -> None:
        rows = self.rows
        if not rows:
            return
        k = len(rows)
        for acc, col in zip(self.accs, zip(*rows, strict=True), strict=True):
            acc[0] += k
            acc[1] = _add_in_order(col, acc[1])
            lo = min(col)
            if lo < acc[2]:
                acc[2] = lo
            hi = max(col)
            if hi > acc[3]:
                acc[3] = hi
        self.rows = []


class _DeviceWindow:
    __slots__ = ("accs", "first", "groups")

    def __init__(self, first: int) -> None:
        self.first = first  # this device's earliest reading in the window
        # point -> [count, sum, min, max], in the order points were first seen
        self.accs: dict[str, list[float]] = {}
        self.groups: dict[tuple[str, ...], _Group | None] = {}

    def fold(self) -> None:
        for group in self.groups.values():
            if group is not None:
                group.fold()


class StatsAggregator:
    def __init__(
        self,
        window_s: int = 300,
        *,
        grace_s: float = 5.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if window_s <= 0 or grace_s < 0:
            raise ValueError("window_s must be > 0 and grace_s >= 0")
        self.window_s = window_s
        self.window_ns = int(window_s * NS)
        self.grace_ns = int(grace_s * NS)
        self._clock = clock
        # window start -> device -> accumulators; units apart
        self._windows: dict[int, dict[str, _DeviceWindow]] = {}
        self._units: dict[tuple[str, str], str] = {}
        self._emitted_before = -(2**62)  # windows starting before this are closed
        self._since_ns = clock()  # windows that began before us are partial
        self.late = 0

    def add(self, record: Record) -> None:
        """Account one SAMPLE record (other kinds are ignored)."""
        if record.kind is not _SAMPLE:
            return
        ts = record.ts_ns
        start = ts - ts % self.window_ns
        if start < self._emitted_before:
            self.late += len(record.points)
            return
        window = self._windows.get(start)
        if window is None:
            window = self._windows[start] = {}
        dev = window.get(record.device)
        if dev is None:
            dev = window[record.device] = _DeviceWindow(ts)
        elif ts < dev.first:
            dev.first = ts
        _check_lengths(record)
        key = tuple(record.points)
        if key in dev.groups:
            group = dev.groups[key]
        else:
            group = self._group(dev, record, key)
        if group is not None:
            floats = _all_good(record)
            if floats is not None:
                for other in group.others:
                    other.fold()
                group.rows.append(floats)
                if len(group.rows) >= FOLD_ROWS:
                    group.fold()
                return
        self._one_by_one(dev, record)

    def _group(self, dev: _DeviceWindow, record: Record, key: tuple[str, ...]) -> _Group | None:
        """Accumulators for a new set of points (None: not bufferable)."""
        if len(dev.groups) >= _MAX_LAYOUTS:
            return None
        names = frozenset(key)
        if len(names) != len(key):
            dev.groups[key] = None  # a point twice: value by value keeps its order
            return None
        accs = []
        for p, u in zip(key, record.units, strict=True):
            acc = dev.accs.get(p)
            if acc is None:
                acc = dev.accs[p] = [0, 0.0, math.inf, -math.inf]
                self._units[(record.device, p)] = u
            accs.append(acc)
        group = _Group(names, accs)
        for other in dev.groups.values():
            if other is not None and not names.isdisjoint(other.names):
                other.others.append(group)
                group.others.append(other)
        dev.groups[key] = group
        return group

    def _one_by_one(self, dev: _DeviceWindow, record: Record) -> None:
        dev.fold()
        accs = dev.accs
        units = self._units
        device = record.device
        for p, v, u, q in zip(
            record.points, record.values, record.units, record.qualities, strict=True
        ):
            acc = accs.get(p)
            if acc is None:
                acc = accs[p] = [0, 0.0, math.inf, -math.inf]
                units[(device, p)] = u
            t = type(v)
            if q is not _GOOD or not (t is float or t is int):
                continue
            f = float(v)  # type: ignore[arg-type]
            if f != f or f in (math.inf, -math.inf):
                continue
            acc[0] += 1
            acc[1] += f
            if f < acc[2]:
                acc[2] = f
            if f > acc[3]:
                acc[3] = f

    def flush(self, now_ns: int | None = None) -> list[Record]:
        """STAT records of every window that closed (end + grace <= now)."""
        now = self._clock() if now_ns is None else now_ns
        done = [s for s in self._windows if s + self.window_ns + self.grace_ns <= now]
        return self._emit(sorted(done), partial=False)

    def flush_all(self) -> list[Record]:
        """Every window, the open one included (at shutdown). See the
        module docstring for partial windows."""
        now = self._clock()
        starts = sorted(self._windows)
        closed = [s for s in starts if s + self.window_ns <= now]
        return self._emit(closed, partial=False) + self._emit(
            [s for s in starts if s not in closed], partial=True
        )

    def _emit(self, starts: Iterable[int], *, partial: bool) -> list[Record]:
        out: list[Record] = []
        for start in starts:
            window = self._windows.pop(start)
            self._emitted_before = max(self._emitted_before, start + self.window_ns)
            cut = partial or start < self._since_ns
            for device, dev in window.items():
                dev.fold()
                # a partial window is stamped with the device's first reading
                # in it, so the part before a restart and the part after it
                # never overwrite each other
                out.append(self._record(dev.first if cut else start, device, dev.accs, cut))
        return out

    def _record(
        self, ts_ns: int, device: str, points: dict[str, list[float]], partial: bool
    ) -> Record:
        names = list(points)
        fields: dict[str, object] = {}
        values: list[float | None] = []
        qualities: list[Quality] = []
        for p in names:
            n, total, lo, hi = points[p]
            st: dict[str, object]
            if n:
                mean = total / n
                st = {"max": hi, "min": lo, "mean": mean, "count": int(n)}
                values.append(mean)
                qualities.append(Quality.GOOD)
            else:
                st = {"count": 0}
                values.append(None)
                qualities.append(Quality.BAD)
            st["window_s"] = self.window_s
            if partial:
                st["partial"] = True
            fields[p] = st
        return Record(
            kind=RecordKind.STAT,
            device=device,
            ts_ns=ts_ns,
            points=names,
            values=values,  # type: ignore[arg-type]
            units=[self._units.get((device, p), "") for p in names],
            qualities=qualities,
            fields=fields,
        )


class _DeviceLatest:
    __slots__ = ("arrivals", "base", "order", "records")

    def __init__(self) -> None:
        self.order: dict[str, None] = {}  # points in the order first seen
        # the latest record of each set of points, with its arrival number
        self.records: dict[tuple[str, ...], tuple[Record, int]] = {}
        # point -> (value, unit, quality, ts_ns) of records folded in earlier
        self.base: dict[str, tuple[object, str, Quality, int]] = {}
        self.arrivals = 0

    def latest(self) -> dict[str, tuple[object, str, Quality, int]]:
        """Per point the value of the newest record (ties: the later one)."""
        out = dict(self.base)
        for record, _ in sorted(self.records.values(), key=lambda r: (r[0].ts_ns, r[1])):
            ts = record.ts_ns
            for p, v, u, q in zip(
                record.points, record.values, record.units, record.qualities, strict=True
            ):
                old = out.get(p)
                if old is None or old[3] <= ts:
                    out[p] = (v, u, q, ts)
        return out


class Snapshotter:
    def __init__(
        self, interval_s: float = 20.0, *, clock: Callable[[], int] = time.time_ns
    ) -> None:
        if interval_s <= 0:
            raise ValueError("interval_s must be > 0")
        self.interval_ns = int(interval_s * NS)
        self._clock = clock
        self._latest: dict[str, _DeviceLatest] = {}
        self._next_ns: int | None = None

    def add(self, record: Record) -> None:
        """Remember the latest value of each point of a SAMPLE record."""
        if record.kind is not _SAMPLE:
            return
        dev = self._latest.get(record.device)
        if dev is None:
            dev = self._latest[record.device] = _DeviceLatest()
        _check_lengths(record)
        key = tuple(record.points)
        dev.arrivals += 1
        held = dev.records.get(key)
        if held is None:
            if len(dev.records) >= _MAX_LAYOUTS:
                dev.base = dev.latest()
                dev.records.clear()
            for p in key:
                dev.order.setdefault(p)
            dev.records[key] = (record, dev.arrivals)
        elif held[0].ts_ns <= record.ts_ns:
            dev.records[key] = (record, dev.arrivals)

    def next_due_ns(self, now_ns: int | None = None) -> int:
        """When the next snapshot is due (the next interval boundary)."""
        now = self._clock() if now_ns is None else now_ns
        if self._next_ns is None:
            self._next_ns = now - now % self.interval_ns + self.interval_ns
        return self._next_ns

    def flush(self, now_ns: int | None = None) -> list[Record]:
        """SNAPSHOT records if a boundary was crossed since the last call
        (one snapshot however many boundaries were missed), else ``[]``."""
        now = self._clock() if now_ns is None else now_ns
        due = self.next_due_ns(now)
        if now < due:
            return []
        boundary = now - now % self.interval_ns
        self._next_ns = boundary + self.interval_ns
        out: list[Record] = []
        for device, dev in self._latest.items():
            points = dev.latest()
            names = list(dev.order)
            vals = [points[p] for p in names]
            out.append(
                Record(
                    kind=RecordKind.SNAPSHOT,
                    device=device,
                    ts_ns=boundary,
                    points=names,
                    values=[v[0] for v in vals],  # type: ignore[misc]
                    units=[v[1] for v in vals],
                    qualities=[v[2] for v in vals],
                )
            )
        return out

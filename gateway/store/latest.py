"""In-memory view of the last value of every (device, point).

The store serves ``latest()`` from here and writes the changed entries to
the ``latest`` table at most once per flush interval: upserting 200,000
values/s row by row would cost about 40 % of a core, while merging a
record into per-device dicts costs a bulk ``dict.update``. What is not yet
flushed is rebuilt from the records table on reopen, so nothing is lost.

Rule (the same as the SQL upsert): a value replaces the current one only
if its timestamp is not older.

Records that arrive in time order (the usual case) are only queued per
device and folded into the dicts when someone looks (``samples``,
``take_dirty``), when an older record needs the per-point comparison, or
every ``FOLD_EVERY`` records; a fold skips a queued record when a later
one of the same device carries the same points (the next read of the same
request), so at the benchmark's load a device costs one per-point update
per ``FOLD_EVERY`` reads instead of one per read.
"""

from __future__ import annotations

from itertools import repeat
from typing import Any

from drivers.types import Value
from gateway.model import Quality, Record, Sample

# (value, unit, quality, ts_ns) of one point
Entry = tuple[Value | None, str, Quality, int]


class LatestValues:
    """Not thread-safe by itself: the store guards it with its state lock."""

    FOLD_EVERY = 16  # queued in-order records per device before a fold

    def __init__(self) -> None:
        self._by_device: dict[str, dict[str, Entry]] = {}
        self._max_ts: dict[str, int] = {}  # newest ts merged per device
        self._dirty: dict[str, dict[str, Entry]] = {}  # changed since the last flush
        self._queued: dict[str, list[Record]] = {}  # in-order records not yet folded

    def load(self, sample: Sample) -> None:
        """Insert a persisted value (not marked dirty)."""
        self._by_device.setdefault(sample.device, {})[sample.point] = (
            sample.value,
            sample.unit,
            sample.quality,
            sample.ts_ns,
        )
        if sample.ts_ns > self._max_ts.get(sample.device, sample.ts_ns - 1):
            self._max_ts[sample.device] = sample.ts_ns

    def merge(self, rec: Record) -> None:
        """Merge one SAMPLE record, keeping the newest value of each point."""
        device, ts = rec.device, rec.ts_ns
        if ts >= self._max_ts.get(device, ts):
            # Newer than anything seen for this device: every point wins, so
            # no per-point comparison is needed (the common, in-order case).
            self._max_ts[device] = ts
            queued = self._queued.get(device)
            if queued is None:
                queued = self._queued[device] = []
            queued.append(rec)
            if len(queued) >= self.FOLD_EVERY:
                self._fold(device)
            return
        self._fold(device)
        current, dirty = self._dicts(device)
        items = [
            (p, (v, u, q, ts))
            for p, v, u, q in zip(rec.points, rec.values, rec.units, rec.qualities, strict=True)
            if (cur := current.get(p)) is None or ts >= cur[3]
        ]
        current.update(items)
        dirty.update(items)

    def _dicts(self, device: str) -> tuple[dict[str, Entry], dict[str, Entry]]:
        current = self._by_device.get(device)
        if current is None:
            current = self._by_device[device] = {}
        dirty = self._dirty.get(device)
        if dirty is None:
            dirty = self._dirty[device] = {}
        return current, dirty

    def _fold(self, device: str) -> None:
        """Apply the device's queued records (in time order, each newer than
        everything before it), skipping those a later one overwrites whole."""
        queued = self._queued.pop(device, None)
        if not queued:
            return
        current, dirty = self._dicts(device)
        keep: list[Record] = []
        covered: set[tuple[str, ...]] = set()
        for rec in reversed(queued):
            layout = tuple(rec.points)
            if layout not in covered:  # else a later record sets every one of its points
                covered.add(layout)
                keep.append(rec)
        for rec in reversed(keep):  # in time order, as merged one by one
            entries = zip(rec.values, rec.units, rec.qualities, repeat(rec.ts_ns), strict=False)
            items = dict(zip(rec.points, entries, strict=True))
            current.update(items)
            dirty.update(items)

    def _fold_all(self) -> None:
        for device in list(self._queued):
            self._fold(device)

    def samples(self) -> list[Sample]:
        """Every value, sorted by (device, point)."""
        self._fold_all()
        return [
            Sample(device, point, v, u, q, ts)
            for device in sorted(self._by_device)
            for point, (v, u, q, ts) in sorted(self._by_device[device].items())
        ]

    def take_dirty(self) -> dict[str, dict[str, Entry]]:
        """Entries changed since the last call; the caller writes them and
        calls :meth:`restore_dirty` if that fails."""
        self._fold_all()
        dirty, self._dirty = self._dirty, {}
        return dirty

    def restore_dirty(self, dirty: dict[str, dict[str, Entry]]) -> None:
        for device, entries in dirty.items():
            newer = self._dirty.get(device, {})
            self._dirty[device] = {**entries, **newer}

    @staticmethod
    def rows(dirty: dict[str, dict[str, Entry]]) -> list[tuple[Any, ...]]:
        """Parameters of the ``latest`` upsert for ``dirty`` entries."""
        return [
            (device, point, v, isinstance(v, bool), u, Quality(q).value, ts)
            for device, entries in dirty.items()
            for point, (v, u, q, ts) in entries.items()
        ]

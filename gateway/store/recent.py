"""The records this process appended last, kept in memory for the outbox.

A sink runner takes what the writer appended a moment ago; reading those
rows back from SQLite and decoding their payloads cost about a tenth of
the gateway's CPU at the benchmark's load. :class:`RecentRecords` keeps the
committed records of the last appends (bounded by a number of values), so
``Store.take`` serves them from memory when it can answer exactly, and
reads the table otherwise.

What it holds is what the table holds: only committed records (added from
the append's post-COMMIT callback, ``seq`` assigned), a contiguous run of
seqs ``first..last``; records that round-trip through the payload codec
unchanged are kept as the very objects appended, the others (``fields``,
odd value types) as decoded from their row. It answers ``None`` (ask the
table) when the range wanted starts before what it holds, when another
process appended after it (the caller compares ``last`` with the table's
last seq), or when it was cleared (records deleted by the limits).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Collection, Container, Iterator

from gateway.model import Quality, Record, RecordKind

#: value types the codec gives back as the same type and value
PLAIN_VALUES = frozenset({float, int, bool, str, type(None)})
_QUALITIES = frozenset({Quality})


def round_trips(rec: Record) -> bool:
    """Whether ``rec`` reads back from the table equal to itself, types
    included (the payload codec's guarantee for plain values): no
    ``fields`` (JSON turns tuples into lists...), plain value types, real
    Quality and RecordKind members."""
    return (
        not rec.fields
        and type(rec.kind) is RecordKind
        and set(map(type, rec.values)) <= PLAIN_VALUES
        and set(map(type, rec.qualities)) <= _QUALITIES
    )


class RecentRecords:
    """Committed records ``first..last`` (contiguous seqs), at most about
    ``max_values`` values and ``max_records`` records (always the newest
    record). Thread-safe. The record bound keeps many small records (500
    devices of 10 points) from holding half a minute of Python objects: a
    sink takes within a second or two, older ones come from the table."""

    def __init__(self, max_values: int = 300_000, max_records: int = 4096) -> None:
        self.max_values = max_values
        self.max_records = max_records
        self._lock = threading.Lock()
        self._recs: list[Record] = []
        self._head = 0  # index of the record with seq == first
        self._values = 0
        self.first = 0
        self.last = 0
        self._suspended = 0

    @contextlib.contextmanager
    def suspended(self) -> Iterator[None]:
        """While records are being deleted from the table: every take reads
        the table, and afterwards what was kept is forgotten."""
        with self._lock:
            self._suspended += 1
        try:
            yield
        finally:
            with self._lock:
                self._suspended -= 1
                self._clear()

    def add(self, records: list[Record]) -> None:
        """Committed records, in seq order, seqs assigned and contiguous."""
        if not records:
            return
        with self._lock:
            if self._head == len(self._recs) or records[0].seq != self.last + 1:
                self._clear()  # a gap (another process appended): start again here
                self.first = records[0].seq
            self._recs.extend(records)
            self.last = records[-1].seq
            self._values += sum(len(r) for r in records)
            while (
                self._values > self.max_values or len(self._recs) - self._head > self.max_records
            ) and len(self._recs) - self._head > 1:
                self._values -= len(self._recs[self._head])
                self._head += 1
                self.first += 1
            if self._head > 4096 and self._head * 2 > len(self._recs):
                del self._recs[: self._head]
                self._head = 0

    def clear(self) -> None:
        """Forget everything (records were deleted from the table)."""
        with self._lock:
            self._clear()

    def _clear(self) -> None:
        self._recs, self._head, self._values = [], 0, 0
        self.first = self.last = 0

    def take(
        self,
        after: int,
        table_last: int,
        max_records: int,
        max_values: int | None,
        kinds: Collection[RecordKind] | None,
        skip: Container[int],
    ) -> list[Record] | None:
        """The records with seq > ``after``, in seq order, not in ``skip``
        and of ``kinds`` (None: all), cut like ``Store.take``; None when
        this cache cannot say (ask the table). ``table_last`` is the last
        seq the table assigned: beyond ours, someone else appended."""
        with self._lock:
            if (
                self._suspended
                or self._head == len(self._recs)
                or after + 1 < self.first
                or table_last != self.last
            ):
                return None
            out: list[Record] = []
            total = 0
            recs = self._recs
            for i in range(self._head + max(0, after + 1 - self.first), len(recs)):
                rec = recs[i]
                if rec.seq in skip or (kinds is not None and rec.kind not in kinds):
                    continue
                n = len(rec)
                if max_values is not None and out and total + n > max_values:
                    break
                out.append(rec)
                total += n
                if len(out) >= max_records:
                    break
            return out

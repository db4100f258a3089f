"""The outbox half of :class:`gateway.store.Store`: sink cursors, take,
ack, set aside, backlog (the SQL is in :mod:`gateway.store.outbox`). A
mixin: the store provides the connection, the write transaction, the row
codec, the records kept in memory and the clock."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Literal

from gateway.model import Record, RecordKind
from gateway.store import outbox
from gateway.store.codec import encode_fields
from gateway.store.errors import UnknownSinkError
from gateway.store.limits import OnCommit
from gateway.store.reads import reads
from gateway.store.recent import RecentRecords
from gateway.store.rows import RECORD_COLUMNS, Name, RowCodec
from gateway.store.schema import add_counters


class OutboxMethods:
    """Mixed into Store; see :class:`gateway.store.Store`."""

    path: Path
    _rows: RowCodec
    _recent: RecentRecords
    _clock: Callable[[], int]

    def _conn(self) -> sqlite3.Connection:
        raise NotImplementedError  # the store's

    def _write(self) -> AbstractContextManager[tuple[sqlite3.Connection, OnCommit]]:
        raise NotImplementedError  # the store's

    def register_sink(self, name: str, *, start_at: Literal["end", "start"] = "end") -> None:
        """Give a sink a cursor. A new sink starts at the current end (it
        receives only records appended from now on) or, with
        ``start_at="start"``, at the oldest record still stored. Registering
        an existing sink changes nothing: its cursor survives restarts."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"sink name must be a non-empty string, not {name!r}")
        if start_at not in ("end", "start"):
            raise ValueError(f"start_at must be 'end' or 'start', not {start_at!r}")
        with self._write() as (conn, _):
            outbox.register(conn, name, start_at, self._clock())

    def unregister_sink(self, name: str) -> None:
        """Forget a sink (removed from the configuration): its cursor and its
        set-aside records. Unknown names are ignored."""
        with self._write() as (conn, _):
            conn.execute("DELETE FROM sinks WHERE name = ?", (name,))
            conn.execute("DELETE FROM rejected WHERE sink = ?", (name,))

    @reads
    def take(
        self,
        sink: str,
        max_records: int,
        *,
        max_values: int | None = None,
        kinds: Collection[RecordKind] | None = None,
        after_seq: int = 0,
    ) -> list[Record]:
        """The next records after the sink's cursor, in seq order, without
        moving the cursor: at most ``max_records`` records and, if given, at
        most ``max_values`` values (but always at least one record when any
        is waiting, so one huge record cannot stall the sink).

        Never returns a record this sink acked or set aside. ``kinds``
        narrows what is returned; records of other kinds stay pending until
        the sink acks past them; ``after_seq`` skips what the caller already
        sent ahead (the runners' alarm lane)."""
        if max_records <= 0:
            return []
        conn = self._conn()
        recent = outbox.take_recent(
            conn, self._recent, sink, max_records, max_values, kinds, after_seq
        )
        if recent is not None:
            return recent
        rows = outbox.take_rows(conn, sink, max_records, max_values, kinds, after_seq)
        return self._rows.decode_rows(conn, rows)

    def ack(self, sink: str, upto_seq: int) -> None:
        """The sink's server accepted every record with seq <= upto_seq: move
        the cursor there. Acking at or below the cursor is a no-op (a
        re-sent batch); acking beyond the last appended seq is a ValueError."""
        with self._write() as (conn, _):
            outbox.ack(conn, sink, upto_seq)

    def set_aside(self, sink: str, record: Record, reason: str) -> None:
        """The sink's server rejected ``record`` as malformed: keep a copy in
        the ``rejected`` table with the reason, count it
        (``rejected_<sink>``) and never offer it to this sink again. Other
        sinks are unaffected. Setting aside the same record twice counts once."""
        if record.seq <= 0:
            raise ValueError("set_aside needs a record returned by take() (seq > 0)")
        with self._write() as (conn, on_commit):
            new: dict[Name, int] = {}
            fallback = (
                record.kind.value,
                record.device,
                record.ts_ns,
                len(record),
                self._rows.encode(conn, record, new),
                encode_fields(record.fields),
            )
            if outbox.set_aside(conn, sink, record.seq, fallback, reason, self._clock()):
                add_counters(conn, {f"rejected_{sink}": 1})
            on_commit.append(lambda: self._rows.learn(new))

    @reads
    def rejected(self, sink: str) -> list[tuple[Record, str]]:
        """Records set aside for a sink, with the reason, in seq order."""
        conn = self._conn()
        rows = conn.execute(
            f"SELECT {RECORD_COLUMNS}, reason FROM rejected WHERE sink = ? ORDER BY seq", (sink,)
        ).fetchall()
        recs = self._rows.decode_rows(conn, rows)
        return [(rec, row[-1]) for rec, row in zip(recs, rows, strict=True)]

    @reads
    def backlog(self, sink: str) -> tuple[int, int]:
        """(records, values) this sink has not acked (nor set aside). O(1)."""
        row = (
            self._conn()
            .execute("SELECT pending_records, pending_values FROM sinks WHERE name = ?", (sink,))
            .fetchone()
        )
        if row is None:
            raise UnknownSinkError(f"sink {sink!r} is not registered (call register_sink first)")
        return int(row[0]), int(row[1])

    @reads
    def sinks(self) -> dict[str, int]:
        """Every registered sink and its cursor (the highest seq it acked)."""
        rows = self._conn().execute("SELECT name, cursor FROM sinks ORDER BY name")
        return {name: cursor for name, cursor in rows}

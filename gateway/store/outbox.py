"""Per-sink cursors over the records table: the outbox half of the store.

Each function runs inside the caller's transaction (or, for ``take_rows``,
as one read statement, hence on one consistent snapshot). Bookkeeping:

* ``sinks.cursor``: every record with ``seq <= cursor`` was accepted by
  the sink (acked). Only ``ack`` moves it, and only forward.
* ``rejected``: (sink, seq) pairs set aside; ``take`` skips them.
* ``sinks.pending_records`` / ``pending_values``: records (values) after
  the cursor, not set aside, still stored. Every path that changes one of
  those three conditions adjusts them (append, ack, set_aside, drops), so
  ``backlog`` never scans the table.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection
from typing import Any

from gateway.model import Record, RecordKind
from gateway.store.errors import UnknownSinkError
from gateway.store.recent import RecentRecords
from gateway.store.rows import RECORD_COLUMNS


def last_seq(conn: sqlite3.Connection) -> int:
    """The highest seq ever assigned (0 for an empty store), even if that
    record has since been deleted."""
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
    return int(row[0]) if row else 0


def cursor_of(conn: sqlite3.Connection, sink: str) -> int:
    row = conn.execute("SELECT cursor FROM sinks WHERE name = ?", (sink,)).fetchone()
    if row is None:
        raise UnknownSinkError(f"sink {sink!r} is not registered (call register_sink first)")
    return int(row[0])


def register(conn: sqlite3.Connection, name: str, start_at: str, now_ns: int) -> None:
    if conn.execute("SELECT 1 FROM sinks WHERE name = ?", (name,)).fetchone():
        return
    if start_at == "end":
        cursor, n, v = last_seq(conn), 0, 0
    else:
        # One full scan, once per new sink: acceptable for a rare event.
        n, v = conn.execute("SELECT count(*), total(n_values) FROM records").fetchone()
        cursor = 0
    conn.execute(
        "INSERT INTO sinks (name, cursor, pending_records, pending_values, created_ns) "
        "VALUES (?, ?, ?, ?, ?)",
        (name, cursor, n, int(v), now_ns),
    )


def add_pending(conn: sqlite3.Connection, records: int, values: int) -> None:
    """Newly appended records are pending for every sink."""
    conn.execute(
        "UPDATE sinks SET pending_records = pending_records + ?, pending_values = pending_values + ?",
        (records, values),
    )


def take_rows(
    conn: sqlite3.Connection,
    sink: str,
    max_records: int,
    max_values: int | None,
    kinds: Collection[RecordKind] | None,
    after_seq: int = 0,
) -> list[Any]:
    """Rows (RECORD_COLUMNS) after the sink's cursor (and after
    ``after_seq``), not set aside, in seq order; cut at ``max_values`` but
    never empty when something waits."""
    sql = (
        f"SELECT {RECORD_COLUMNS} FROM records "
        "WHERE seq > (SELECT cursor FROM sinks WHERE name = :sink) "
        "AND seq NOT IN (SELECT seq FROM rejected WHERE sink = :sink "
        "AND seq > (SELECT cursor FROM sinks WHERE name = :sink))"
    )
    params: dict[str, object] = {"sink": sink, "limit": max_records}
    if after_seq:
        sql += " AND seq > :after"
        params["after"] = after_seq
    if kinds is not None:
        names = [RecordKind(k).value for k in kinds]
        if names == [RecordKind.ALARM.value]:
            # a literal, so SQLite may use the partial index records_alarms
            sql += " AND kind = 'alarm'"
        else:
            sql += " AND kind IN (" + ",".join(f":k{i}" for i in range(len(names))) + ")"
            params.update({f"k{i}": k for i, k in enumerate(names)})
    rows = conn.execute(sql + " ORDER BY seq LIMIT :limit", params).fetchall()
    if not rows:
        cursor_of(conn, sink)  # raises for an unknown sink
        return []
    if max_values is None:
        return rows
    kept: list[Any] = []
    total = 0
    for row in rows:
        if kept and total + row[6] > max_values:
            break
        total += row[6]
        kept.append(row)
    return kept


def ack(conn: sqlite3.Connection, sink: str, upto_seq: int) -> None:
    cursor = cursor_of(conn, sink)
    if upto_seq <= cursor:
        return  # a batch acked twice (re-sent after a crash): nothing to do
    last = last_seq(conn)
    if upto_seq > last:
        raise ValueError(f"sink {sink!r}: ack up to {upto_seq} beyond the last seq {last}")
    # Set-aside records left the backlog when they were set aside.
    n, v = conn.execute(
        "SELECT count(*), total(n_values) FROM records WHERE seq > :lo AND seq <= :hi "
        "AND seq NOT IN (SELECT seq FROM rejected WHERE sink = :sink AND seq > :lo AND seq <= :hi)",
        {"lo": cursor, "hi": upto_seq, "sink": sink},
    ).fetchone()
    conn.execute(
        "UPDATE sinks SET cursor = ?, pending_records = pending_records - ?, "
        "pending_values = pending_values - ? WHERE name = ?",
        (upto_seq, n, int(v), sink),
    )


def set_aside(
    conn: sqlite3.Connection,
    sink: str,
    seq: int,
    fallback_row: tuple[Any, ...],
    reason: str,
    now_ns: int,
) -> bool:
    """Copy record ``seq`` into ``rejected`` for ``sink``; False if it was
    already there. ``fallback_row`` (kind, device, ts_ns, n_values, payload,
    fields) is used when the record is no longer stored."""
    cursor = cursor_of(conn, sink)
    if conn.execute("SELECT 1 FROM rejected WHERE sink = ? AND seq = ?", (sink, seq)).fetchone():
        return False
    row = conn.execute(
        "SELECT kind, device, ts_ns, n_values, payload, fields FROM records WHERE seq = ?", (seq,)
    ).fetchone()
    if row is None:  # dropped meanwhile: it already left the backlog
        row = fallback_row
    elif seq > cursor:
        conn.execute(
            "UPDATE sinks SET pending_records = pending_records - 1, "
            "pending_values = pending_values - ? WHERE name = ?",
            (row[3], sink),
        )
    conn.execute(
        "INSERT INTO rejected (sink, seq, kind, device, ts_ns, n_values, payload, fields, "
        "reason, at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (sink, seq, *row, reason, now_ns),
    )
    return True


def take_recent(
    conn: sqlite3.Connection,
    recent: RecentRecords,
    sink: str,
    max_records: int,
    max_values: int | None,
    kinds: Collection[RecordKind] | None,
    after_seq: int = 0,
) -> list[Record] | None:
    """What :func:`take_rows` would select, from the records kept in memory
    (``recent``), or None when they cannot say exactly (the caller reads
    the table). Reads only the sink's cursor, the last seq and the records
    set aside after the cursor."""
    row = conn.execute(
        "SELECT (SELECT cursor FROM sinks WHERE name = ?), "
        "(SELECT seq FROM sqlite_sequence WHERE name = 'records')",
        (sink,),
    ).fetchone()
    if row[0] is None:
        raise UnknownSinkError(f"sink {sink!r} is not registered (call register_sink first)")
    cursor, last = int(row[0]), int(row[1] or 0)
    after = max(cursor, after_seq)
    if after + 1 < recent.first or last != recent.last:
        return None
    skip = {
        r[0]
        for r in conn.execute("SELECT seq FROM rejected WHERE sink = ? AND seq > ?", (sink, cursor))
    }
    kind_set = None if kinds is None else frozenset(RecordKind(k) for k in kinds)
    return recent.take(after, last, max_records, max_values, kind_set, skip)

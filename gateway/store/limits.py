"""Retention and size bound of the store (the "full policy", docs/store.md).

* Retention: every record with ``ts_ns`` older than the cutoff is deleted,
  whatever its kind and whether or not every sink acked it (counted
  ``expired_<kind>``, and ``dropped_unsent_<sink>`` for a sink that had
  not acked it). The ``latest`` table is never touched.
* Size bound: when the file (pages + WAL) exceeds ``max_bytes``, the oldest
  records of droppable kinds (SAMPLE, SNAPSHOT, METRIC) are deleted in
  chunks until the used pages fit under ``low_water * max_bytes``; ALARM,
  STAT, EVENT and FINDING records are never deleted for space. If only
  undroppable records are left and the bound is still exceeded, an ERROR is
  logged, ``size_limit_exceeded`` is counted and everything is kept: losing
  a safety alarm is worse than outgrowing a disk budget. Freed pages go back
  to the file system (incremental vacuum, WAL checkpoint).

Every step is a short transaction of its own, so appends interleave.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from gateway.model import RecordKind
from gateway.store.schema import add_counters, note_appended

log = logging.getLogger(__name__)

OnCommit = list[Callable[[], None]]  # callbacks run after a write transaction commits


@dataclass(frozen=True)
class StoreAccess:
    """What the limits may do to a store's file, handed over by
    ``Store.enforce_limits`` (this module never imports the store).

    ``read()``: this thread's connection, for reads outside a transaction.
    ``write()``: one write transaction, yielding the connection and a list
    of callbacks to run after COMMIT. ``exclusive``: held, no write
    transaction runs (for maintenance that must not interleave).
    ``size_bytes()``: pages plus WAL, as ``Store.size_bytes``."""

    path: Path
    read: Callable[[], sqlite3.Connection]
    write: Callable[[], AbstractContextManager[tuple[sqlite3.Connection, OnCommit]]]
    exclusive: threading.RLock
    size_bytes: Callable[[], int]


RETENTION_CHUNK = 2000  # records per retention transaction
SIZE_CHUNK = 5000  # at most this many records per size-bound transaction
ROW_OVERHEAD = 64  # bytes per row besides payload (row header, index entry): an estimate
DROPPABLE = tuple(k.value for k in RecordKind if k.droppable)


def drop_records(
    conn: sqlite3.Connection,
    rows: Sequence[tuple[int, str, int]],
    prefix: str,
) -> Counter[str]:
    """Delete ``rows`` (seq, kind, n_values) inside the caller's transaction;
    count them per kind as ``<prefix>_<kind>`` and, for each sink that had
    not acked (nor set aside) a record, as ``dropped_unsent_<sink>``, and
    take them out of that sink's backlog. Returns the counter deltas."""
    deltas: Counter[str] = Counter()
    if not rows:
        return deltas
    for _, kind, _ in rows:
        deltas[f"{prefix}_{kind}"] += 1
    lo = min(r[0] for r in rows)
    hi = max(r[0] for r in rows)
    for name, cursor in conn.execute("SELECT name, cursor FROM sinks").fetchall():
        if hi <= cursor:
            continue
        set_aside = {
            r[0]
            for r in conn.execute(
                "SELECT seq FROM rejected WHERE sink = ? AND seq BETWEEN ? AND ?", (name, lo, hi)
            )
        }
        unsent = [n for seq, _, n in rows if seq > cursor and seq not in set_aside]
        if unsent:
            conn.execute(
                "UPDATE sinks SET pending_records = pending_records - ?, "
                "pending_values = pending_values - ? WHERE name = ?",
                (len(unsent), sum(unsent), name),
            )
            deltas[f"dropped_unsent_{name}"] += len(unsent)
    conn.executemany("DELETE FROM records WHERE seq = ?", [(r[0],) for r in rows])
    note_appended(conn, -len(rows))
    add_counters(conn, dict(deltas))
    return deltas


def enforce_retention(
    store: StoreAccess, cutoff_ns: int, sources: Sequence[str], removed: dict[str, int]
) -> None:
    """Delete records (and set-aside copies) with ``ts_ns < cutoff_ns``."""
    probe = "SELECT 1 FROM records WHERE device = ? AND ts_ns < ? LIMIT 1"
    for device in sources:
        # A read first: most sources have nothing to expire, and a write
        # transaction per source would cost a WAL sync each.
        if store.read().execute(probe, (device, cutoff_ns)).fetchone() is None:
            continue
        while True:
            with store.write() as (conn, on_commit):
                rows = conn.execute(
                    "SELECT seq, kind, n_values FROM records WHERE device = ? AND ts_ns < ? LIMIT ?",
                    (device, cutoff_ns, RETENTION_CHUNK),
                ).fetchall()
                deltas = drop_records(conn, rows, "expired")
                on_commit.append(lambda d=deltas: _merge(removed, d))  # type: ignore[misc]
            if len(rows) < RETENTION_CHUNK:
                break
    if (
        store.read()
        .execute("SELECT 1 FROM rejected WHERE ts_ns < ? LIMIT 1", (cutoff_ns,))
        .fetchone()
    ):
        with store.write() as (conn, _):
            conn.execute("DELETE FROM rejected WHERE ts_ns < ?", (cutoff_ns,))


def _merge(into: dict[str, int], deltas: Counter[str]) -> None:
    for k, n in deltas.items():
        into[k] = into.get(k, 0) + n


def _used_bytes(conn: sqlite3.Connection) -> int:
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    return int((pages - free) * page_size)


def reclaim(store: StoreAccess) -> None:
    """Give free pages back to the file system and cut the WAL back."""
    with store.exclusive:
        conn = store.read()
        # executescript steps the pragma to completion; execute() would stop
        # after the first freed page (the pragma returns no rows).
        conn.executescript("PRAGMA incremental_vacuum;")
        # TRUNCATE waits for readers via the busy handler; if one still holds
        # an old snapshot the WAL stays and the next call truncates it.
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def enforce_size(
    store: StoreAccess, max_bytes: int, low_water: float, removed: dict[str, int]
) -> None:
    """Apply the size bound (see the module docstring): over ``max_bytes``,
    delete down to ``low_water * max_bytes``."""
    if store.size_bytes() <= max_bytes:
        return
    target = int(max_bytes * low_water)
    after_seq = 0  # undroppable records before this point are skipped once, not rescanned
    while True:
        with store.write() as (conn, on_commit):
            excess = _used_bytes(conn) - target
            if excess <= 0:
                break
            candidates = conn.execute(
                "SELECT seq, kind, n_values, length(payload) + ifnull(length(fields), 0) "
                f"FROM records WHERE seq > ? AND kind IN ({','.join('?' * len(DROPPABLE))}) "
                "ORDER BY seq LIMIT ?",
                (after_seq, *DROPPABLE, SIZE_CHUNK),
            ).fetchall()
            if not candidates:
                add_counters(conn, {"size_limit_exceeded": 1})
                log.error(
                    "store %s: %d bytes used, over the %d-byte bound, but only alarms, "
                    "statistics, events and findings are left: keeping them (they are never "
                    "dropped for space); give the store more room or shorten retention",
                    store.path,
                    excess + target,
                    max_bytes,
                )
                break
            rows, freed = [], 0
            for seq, kind, n_values, nbytes in candidates:
                rows.append((seq, kind, n_values))
                freed += nbytes + ROW_OVERHEAD
                if freed >= excess:
                    break
            after_seq = rows[-1][0]
            deltas = drop_records(conn, rows, "dropped")
            on_commit.append(lambda d=deltas: _merge(removed, d))  # type: ignore[misc]
    reclaim(store)

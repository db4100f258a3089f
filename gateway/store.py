"""The embedded SQLite store: the gateway's local history and the sinks' outbox.

Guarantees (details and measurements in docs/store.md):

* **Durability.** ``append`` is one transaction; with ``synchronous="FULL"``
  (the default) a record is on disk when ``append`` returns. A process
  killed at any instant loses nothing committed and leaves a file that
  reopens cleanly (SQLite WAL).
* **Outbox, at-least-once.** Every sink has its own cursor: ``take`` returns
  the records after it in seq order without moving it, ``ack`` moves it.
  A crash between the two re-delivers, never loses. A slow or dead sink
  never holds back another; only the retention and size limits ever remove
  a record a sink has not acked, and that is counted
  (``dropped_unsent_<sink>``).
* **Bounded.** ``enforce_limits`` applies retention (age) and the size
  bound; the size bound only ever drops droppable kinds (SAMPLE, SNAPSHOT,
  METRIC), oldest first, and counts every drop.
* **Thread-safe.** One SQLite connection per thread (``threading.local``);
  writes are serialised by one in-process lock, reads run concurrently with
  writes thanks to WAL. One process writes a store file at a time.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from gateway.model import Quality, Record, RecordKind, Sample
from gateway.store_codec import (
    decode_fields,
    decode_one,
    decode_payload,
    encode_fields,
    encode_payload,
)
from gateway.store_latest import LatestValues
from gateway.store_limits import enforce_retention, enforce_size
from gateway.store_schema import (
    SYNCHRONOUS_MODES,
    StoreClosedError,
    StoreError,
    StoreFileError,
    UnknownSinkError,
    add_counters,
    connect,
    initialise,
)

__all__ = [
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreFileError",
    "UnknownSinkError",
]

log = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
_UPSERT_LATEST = (
    "INSERT INTO latest (device, point, value, is_bool, unit, quality, ts_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (device, point) DO UPDATE SET value = excluded.value, "
    "is_bool = excluded.is_bool, unit = excluded.unit, quality = excluded.quality, "
    "ts_ns = excluded.ts_ns WHERE excluded.ts_ns >= latest.ts_ns"
)
_SELECT_RECORD = "SELECT seq, kind, device, ts_ns, payload, fields, n_values FROM records"

OnCommit = list[Callable[[], None]]


class Store:
    """Local history and outbox of the gateway, in one SQLite file (WAL).

    ``clock`` returns the current time in ns since the epoch; retention and
    bookkeeping timestamps use it, so tests run on virtual time.
    ``latest_flush_s`` bounds how often the ``latest`` table is rewritten:
    ``latest()`` is served from memory and the table is rebuilt from the
    records on reopen, so a crash never loses a latest value.
    """

    def __init__(
        self,
        path: Path,
        *,
        retention_s: float = 90 * 86400,
        max_bytes: int = 2 * 2**30,
        clock: Callable[[], int] = time.time_ns,
        synchronous: str = "FULL",
        low_water: float = 0.9,
        latest_flush_s: float = 1.0,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if retention_s <= 0 or max_bytes <= 0 or not 0 < low_water < 1:
            raise ValueError("retention_s and max_bytes must be > 0, low_water in (0, 1)")
        self.path = Path(path)
        self.retention_s = retention_s
        self.max_bytes = max_bytes
        self.low_water = low_water
        self._clock = clock
        self._synchronous = synchronous.upper()
        self._latest_flush_s = latest_flush_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()  # serialises every write transaction
        self._state_lock = threading.Lock()  # guards the in-memory caches below
        self._counters_lock = threading.Lock()
        self._closed = False
        self._name_id: dict[tuple[str, str], int] = {}
        self._names: dict[int, tuple[str, str]] = {}
        self._sources: set[str] = set()
        self._latest = LatestValues()
        self._latest_flushed_at = time.monotonic()
        self._pending_counters: dict[str, int] = {}
        self._ready = False  # close() must not write to a file we refused

        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        try:
            initialise(conn, self.path)
            self._load()
            self._ready = True
        except (StoreFileError, sqlite3.DatabaseError) as exc:
            self.close()
            if isinstance(exc, StoreFileError):
                raise
            raise StoreFileError(
                f"{self.path}: damaged store ({exc}); move it aside "
                f"(mv {self.path} {self.path}.bad) and restart"
            ) from exc

    # ----------------------------------------------------------- plumbing

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosedError(f"store {self.path} is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect(self.path, self._synchronous)
            with self._conns_lock:
                self._conns.append(conn)
            self._local.conn = conn
        return conn

    @contextmanager
    def _write(self) -> Iterator[tuple[sqlite3.Connection, OnCommit]]:
        """One write transaction. Callbacks in the yielded list run after
        COMMIT, so in-memory caches never hold uncommitted state; pending
        counter bumps ride along and are restored if the transaction fails."""
        with self._write_lock:
            conn = self._conn()
            on_commit: OnCommit = []
            conn.execute("BEGIN IMMEDIATE")
            with self._counters_lock:
                bumps, self._pending_counters = self._pending_counters, {}
            try:
                yield conn, on_commit
                add_counters(conn, bumps)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._counters_lock:
                    for k, n in bumps.items():
                        self._pending_counters[k] = self._pending_counters.get(k, 0) + n
                raise
            for callback in on_commit:
                callback()

    def _load(self) -> None:
        conn = self._conn()
        for name_id, point, unit in conn.execute("SELECT id, point, unit FROM names"):
            self._names[name_id] = (point, unit)
            self._name_id[(point, unit)] = name_id
        self._sources = {r[0] for r in conn.execute("SELECT device FROM sources")}
        for device, point, value, is_bool, unit, quality, ts in conn.execute(
            "SELECT device, point, value, is_bool, unit, quality, ts_ns FROM latest"
        ):
            v = bool(value) if is_bool else value
            self._latest.load(Sample(device, point, v, unit, Quality(quality), ts))
        # Samples appended after the last flush of `latest` (a crash): replay.
        row = conn.execute("SELECT value FROM meta WHERE key = 'latest_seq'").fetchone()
        replay = conn.execute(
            _SELECT_RECORD + " WHERE seq > ? AND kind = ? ORDER BY seq",
            (row[0] if row else 0, RecordKind.SAMPLE.value),
        ).fetchall()
        for rec in self._decode_rows(conn, replay):
            self._latest.merge(rec)

    def _names_of(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[tuple[str, str]]:
        names = self._names
        try:
            return [names[i] for i in ids]
        except KeyError:
            # Committed by the writer but not yet in our cache (or another process).
            rows = conn.execute("SELECT id, point, unit FROM names").fetchall()
            with self._state_lock:
                for name_id, point, unit in rows:
                    names[name_id] = (point, unit)
            return [names[i] for i in ids]

    def _decode_rows(self, conn: sqlite3.Connection, rows: Sequence[Any]) -> list[Record]:
        out = []
        for seq, kind, device, ts_ns, payload, fields, _n in rows:
            ids, values, qualities = decode_payload(payload)
            names = self._names_of(conn, ids)
            out.append(
                Record(
                    kind=RecordKind(kind),
                    device=device,
                    ts_ns=ts_ns,
                    points=[p for p, _ in names],
                    values=values,
                    units=[u for _, u in names],
                    qualities=qualities,
                    fields=decode_fields(fields),
                    seq=seq,
                )
            )
        return out

    def _encode(
        self, conn: sqlite3.Connection, rec: Record, new_names: dict[tuple[str, str], int]
    ) -> bytes:
        n = len(rec.points)
        if len(rec.values) != n or len(rec.units) != n or len(rec.qualities) != n:
            raise ValueError(
                f"record of {rec.device!r} at {rec.ts_ns}: points, values, units and "
                f"qualities must have the same length ({n}, {len(rec.values)}, "
                f"{len(rec.units)}, {len(rec.qualities)})"
            )
        get = self._name_id.get
        keys = list(zip(rec.points, rec.units, strict=True))
        ids = [get(k) for k in keys]
        if None in ids:
            for i, k in enumerate(keys):
                if ids[i] is None:
                    name_id = new_names.get(k)
                    if name_id is None:
                        cur = conn.execute("INSERT INTO names (point, unit) VALUES (?, ?)", k)
                        name_id = new_names[k] = int(cur.lastrowid or 0)
                    ids[i] = name_id
        return encode_payload(ids, rec.values, rec.qualities)  # type: ignore[arg-type]

    # ----------------------------------------------------------- history

    def append(self, records: Sequence[Record]) -> None:
        """Store records in one transaction; on return they are durable
        (per ``synchronous``) and each ``rec.seq`` holds its new sequence
        number. On error nothing is stored and no ``seq`` is changed."""
        if not records:
            return
        for rec in records:
            if not isinstance(rec.kind, RecordKind):
                raise TypeError(f"record of {rec.device!r}: kind {rec.kind!r} is not a RecordKind")
        with self._write() as (conn, on_commit):
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            first = (row[0] if row else 0) + 1
            new_names: dict[tuple[str, str], int] = {}
            rows = []
            n_values = 0
            for i, rec in enumerate(records):
                payload = self._encode(conn, rec, new_names)
                n_values += len(rec.points)
                rows.append(
                    (
                        first + i,
                        rec.kind.value,
                        rec.device,
                        rec.ts_ns,
                        len(rec.points),
                        payload,
                        encode_fields(rec.fields),
                    )
                )
            conn.executemany(
                "INSERT INTO records (seq, kind, device, ts_ns, n_values, payload, fields) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
            conn.execute(
                "UPDATE sinks SET pending_records = pending_records + ?, "
                "pending_values = pending_values + ?",
                (len(records), n_values),
            )
            new_sources = {rec.device for rec in records} - self._sources
            if new_sources:
                conn.executemany(
                    "INSERT OR IGNORE INTO sources (device) VALUES (?)",
                    [(d,) for d in new_sources],
                )

            def committed() -> None:
                with self._state_lock:
                    for k, name_id in new_names.items():
                        self._name_id[k] = name_id
                        self._names[name_id] = k
                    self._sources |= new_sources
                    for rec in records:
                        if rec.kind is RecordKind.SAMPLE:
                            self._latest.merge(rec)
                for j, rec in enumerate(records):
                    rec.seq = first + j

            on_commit.append(committed)
        if time.monotonic() - self._latest_flushed_at >= self._latest_flush_s:
            self.flush()

    def flush(self) -> None:
        """Persist the buffered ``latest`` values and counter bumps now.

        ``latest`` is written in its own transaction, after the records it
        comes from: if the process dies in between, reopening replays the
        records after ``meta.latest_seq``."""
        with self._write_lock:
            with self._state_lock:
                dirty = self._latest.take_dirty()
            try:
                with self._write() as (conn, _):
                    row = conn.execute(
                        "SELECT seq FROM sqlite_sequence WHERE name = 'records'"
                    ).fetchone()
                    conn.executemany(_UPSERT_LATEST, LatestValues.rows(dirty))
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('latest_seq', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (row[0] if row else 0,),
                    )
            except BaseException:
                with self._state_lock:
                    self._latest.restore_dirty(dirty)
                raise
            self._latest_flushed_at = time.monotonic()

    def latest(self) -> list[Sample]:
        """Last value of every (device, point) seen in SAMPLE records, sorted
        by (device, point). Never removed by retention or the size bound."""
        with self._state_lock:
            return self._latest.samples()

    def history(
        self,
        device: str,
        point: str,
        since_ns: int = 0,
        until_ns: int | None = None,
        *,
        kinds: Collection[RecordKind] = (RecordKind.SAMPLE,),
    ) -> list[Sample]:
        """Values of one point with ``since_ns <= ts_ns < until_ns``, in time
        order, from the records of the given kinds still in the store."""
        conn = self._conn()
        with self._state_lock:
            wanted = frozenset(i for (p, _u), i in self._name_id.items() if p == point)
        if not wanted:
            conn_ids = conn.execute("SELECT id FROM names WHERE point = ?", (point,)).fetchall()
            wanted = frozenset(r[0] for r in conn_ids)
            if not wanted:
                return []
        kind_list = [RecordKind(k).value for k in kinds]
        rows = conn.execute(
            "SELECT ts_ns, payload FROM records WHERE device = ? AND ts_ns >= ? AND ts_ns < ? "
            f"AND kind IN ({','.join('?' * len(kind_list))}) ORDER BY ts_ns, seq",
            (device, since_ns, until_ns if until_ns is not None else 2**63 - 1, *kind_list),
        ).fetchall()
        out = []
        for ts_ns, payload in rows:
            found = decode_one(payload, wanted)
            if found is not None:
                value, quality = found
                out.append(
                    Sample(
                        device, point, value, self._unit_in(conn, payload, wanted), quality, ts_ns
                    )
                )
        return out

    def _unit_in(self, conn: sqlite3.Connection, payload: bytes, wanted: frozenset[int]) -> str:
        if len(wanted) == 1:
            return self._names_of(conn, list(wanted))[0][1]
        ids, _, _ = decode_payload(payload)
        name_id = next(i for i in ids if i in wanted)
        return self._names_of(conn, [name_id])[0][1]

    # ----------------------------------------------------------- outbox

    def register_sink(self, name: str, *, start_at: Literal["end", "start"] = "end") -> None:
        """Give a sink a cursor. A new sink starts at the current end (it
        receives only records appended from now on) or, with
        ``start_at="start"``, at the oldest record still stored. Registering
        an existing sink changes nothing: its cursor survives restarts."""
        if not name or not isinstance(name, str):
            raise ValueError(f"sink name must be a non-empty string, not {name!r}")
        if start_at not in ("end", "start"):
            raise ValueError(f"start_at must be 'end' or 'start', not {start_at!r}")
        with self._write() as (conn, _):
            if conn.execute("SELECT 1 FROM sinks WHERE name = ?", (name,)).fetchone():
                return
            if start_at == "end":
                row = conn.execute(
                    "SELECT seq FROM sqlite_sequence WHERE name = 'records'"
                ).fetchone()
                cursor, n, v = (row[0] if row else 0), 0, 0
            else:
                # One full scan, once per new sink: acceptable for a rare event.
                n, v = conn.execute("SELECT count(*), total(n_values) FROM records").fetchone()
                cursor = 0
            conn.execute(
                "INSERT INTO sinks (name, cursor, pending_records, pending_values, created_ns) "
                "VALUES (?, ?, ?, ?, ?)",
                (name, cursor, n, int(v), self._clock()),
            )

    def unregister_sink(self, name: str) -> None:
        """Forget a sink (removed from the configuration): its cursor, its
        set-aside records; unknown names are ignored."""
        with self._write() as (conn, _):
            conn.execute("DELETE FROM sinks WHERE name = ?", (name,))
            conn.execute("DELETE FROM rejected WHERE sink = ?", (name,))

    def _cursor(self, conn: sqlite3.Connection, sink: str) -> int:
        row = conn.execute("SELECT cursor FROM sinks WHERE name = ?", (sink,)).fetchone()
        if row is None:
            raise UnknownSinkError(f"sink {sink!r} is not registered (call register_sink first)")
        return int(row[0])

    def take(
        self,
        sink: str,
        max_records: int,
        *,
        max_values: int | None = None,
        kinds: Collection[RecordKind] | None = None,
    ) -> list[Record]:
        """The next records after the sink's cursor, in seq order, without
        moving the cursor: at most ``max_records`` records and, if given, at
        most ``max_values`` values (but always at least one record when any
        is waiting, so a huge record cannot stall the sink).

        Never returns a record this sink acked or set aside. ``kinds``
        narrows what is returned; records of other kinds stay pending until
        the sink acks past them.
        """
        if max_records <= 0:
            return []
        conn = self._conn()
        sql = (
            _SELECT_RECORD + " WHERE seq > (SELECT cursor FROM sinks WHERE name = :sink) "
            "AND seq NOT IN (SELECT seq FROM rejected WHERE sink = :sink "
            "AND seq > (SELECT cursor FROM sinks WHERE name = :sink))"
        )
        params: dict[str, object] = {"sink": sink, "limit": max_records}
        if kinds is not None:
            names = [RecordKind(k).value for k in kinds]
            sql += " AND kind IN (" + ",".join(f":k{i}" for i in range(len(names))) + ")"
            params.update({f"k{i}": k for i, k in enumerate(names)})
        sql += " ORDER BY seq LIMIT :limit"
        rows = conn.execute(sql, params).fetchall()
        if not rows:
            self._cursor(conn, sink)  # raises for an unknown sink
            return []
        if max_values is not None:
            kept: list[Any] = []
            total = 0
            for row in rows:
                if kept and total + row[6] > max_values:
                    break
                total += row[6]
                kept.append(row)
            rows = kept
        return self._decode_rows(conn, rows)

    def ack(self, sink: str, upto_seq: int) -> None:
        """The sink's server accepted every record with seq <= upto_seq: move
        the cursor there. Acking at or below the cursor is a no-op (a
        re-sent batch); acking beyond the last appended seq is a ValueError."""
        with self._write() as (conn, _):
            cursor = self._cursor(conn, sink)
            if upto_seq <= cursor:
                return
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            last = row[0] if row else 0
            if upto_seq > last:
                raise ValueError(f"sink {sink!r}: ack up to {upto_seq} beyond the last seq {last}")
            n, v = conn.execute(
                "SELECT count(*), total(n_values) FROM records WHERE seq > ? AND seq <= ? "
                "AND seq NOT IN (SELECT seq FROM rejected WHERE sink = ? AND seq > ? AND seq <= ?)",
                (cursor, upto_seq, sink, cursor, upto_seq),
            ).fetchone()
            conn.execute(
                "UPDATE sinks SET cursor = ?, pending_records = pending_records - ?, "
                "pending_values = pending_values - ? WHERE name = ?",
                (upto_seq, n, int(v), sink),
            )

    def set_aside(self, sink: str, record: Record, reason: str) -> None:
        """The sink's server rejected ``record`` as malformed: keep a copy in
        the ``rejected`` table with the reason, count it
        (``rejected_<sink>``) and never offer it to this sink again. Other
        sinks are unaffected. Setting aside the same record twice counts once."""
        if record.seq <= 0:
            raise ValueError("set_aside needs a record returned by take() (seq > 0)")
        with self._write() as (conn, _):
            cursor = self._cursor(conn, sink)
            if conn.execute(
                "SELECT 1 FROM rejected WHERE sink = ? AND seq = ?", (sink, record.seq)
            ).fetchone():
                return
            row = conn.execute(
                "SELECT kind, device, ts_ns, n_values, payload, fields FROM records WHERE seq = ?",
                (record.seq,),
            ).fetchone()
            if row is None:  # dropped meanwhile: keep what the sink saw
                row = (
                    record.kind.value,
                    record.device,
                    record.ts_ns,
                    len(record.points),
                    self._encode(conn, record, {}),
                    encode_fields(record.fields),
                )
            elif record.seq > cursor:
                conn.execute(
                    "UPDATE sinks SET pending_records = pending_records - 1, "
                    "pending_values = pending_values - ? WHERE name = ?",
                    (row[3], sink),
                )
            conn.execute(
                "INSERT INTO rejected (sink, seq, kind, device, ts_ns, n_values, payload, fields, "
                "reason, at_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (sink, record.seq, *row, reason, self._clock()),
            )
            add_counters(conn, {f"rejected_{sink}": 1})

    def rejected(self, sink: str) -> list[tuple[Record, str]]:
        """Records set aside for a sink, with the reason, in seq order."""
        conn = self._conn()
        rows = conn.execute(
            "SELECT seq, kind, device, ts_ns, payload, fields, n_values, reason FROM rejected "
            "WHERE sink = ? ORDER BY seq",
            (sink,),
        ).fetchall()
        recs = self._decode_rows(conn, [r[:7] for r in rows])
        return [(rec, r[7]) for rec, r in zip(recs, rows, strict=True)]

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

    def sinks(self) -> dict[str, int]:
        """Every registered sink and its cursor (the highest seq it acked)."""
        return {
            n: c for n, c in self._conn().execute("SELECT name, cursor FROM sinks ORDER BY name")
        }

    # ----------------------------------------------------------- counters

    def counters(self) -> dict[str, int]:
        """Persistent counters, including bumps not yet written."""
        out = {n: v for n, v in self._conn().execute("SELECT name, value FROM counters")}
        with self._counters_lock:
            for k, n in self._pending_counters.items():
                out[k] = out.get(k, 0) + n
        return out

    def bump(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter. Cheap: written with the next write
        transaction (append, ack, ...), or by flush()/close(); a crash loses
        only bumps made since the last write transaction."""
        with self._counters_lock:
            self._pending_counters[name] = self._pending_counters.get(name, 0) + n

    # ----------------------------------------------------------- limits

    def enforce_limits(self) -> dict[str, int]:
        """Apply retention, then the size bound. Returns the counter deltas
        of what was removed: ``expired_<kind>`` (older than retention),
        ``dropped_<kind>`` (size bound) and ``dropped_unsent_<sink>`` (either
        one, for records that sink had not acked). Works in short
        transactions so appends (alarms) are never held up for long."""
        self.flush()  # the latest table must not depend on records about to go
        removed: dict[str, int] = {}
        cutoff = self._clock() - int(self.retention_s * _NS_PER_S)
        enforce_retention(self, cutoff, sorted(self._sources), removed)
        enforce_size(self, removed)
        return removed

    def size_bytes(self) -> int:
        """Bytes the store occupies: database pages plus the WAL file."""
        conn = self._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        wal = Path(f"{self.path}-wal")
        try:
            wal_bytes = wal.stat().st_size
        except FileNotFoundError:
            wal_bytes = 0
        return int(pages * page_size + wal_bytes)

    def close(self) -> None:
        """Write buffered state, checkpoint the WAL and close every
        connection. Idempotent; any later call raises StoreClosedError."""
        if self._closed:
            return
        try:
            if self._ready:
                self.flush()
                self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.DatabaseError as exc:
            log.error("store %s: could not flush on close: %s", self.path, exc)
        finally:
            self._closed = True
            with self._conns_lock:
                conns, self._conns = self._conns, []
            for conn in conns:
                conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

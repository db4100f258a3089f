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
  write transactions are serialised by one in-process lock (no busy-wait),
  reads run concurrently with writes thanks to WAL.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.model import Quality, Record, RecordKind, Sample
from gateway.store import outbox
from gateway.store.codec import PayloadError, decode_fields, decode_one
from gateway.store.errors import (
    StoreClosedError,
    StoreError,
    StoreFileError,
    check_hint,
    translate,
)
from gateway.store.latest import LatestValues
from gateway.store.limits import (
    DISK_RESERVE_BYTES,
    OnCommit,
    StoreAccess,
    enforce_retention,
    enforce_size,
)
from gateway.store.outbox_api import OutboxMethods
from gateway.store.reads import reads
from gateway.store.recent import RecentRecords, round_trips
from gateway.store.rows import RECORD_COLUMNS, Name, RowCodec
from gateway.store.schema import (
    SYNCHRONOUS_MODES,
    add_counters,
    connect,
    initialise,
    note_appended,
    note_events,
)

_NS_PER_S = 1_000_000_000
_MAX_TS = 2**63 - 1
_UPSERT_LATEST = (
    "INSERT INTO latest (device, point, value, is_bool, unit, quality, ts_ns) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (device, point) DO UPDATE SET value = excluded.value, "
    "is_bool = excluded.is_bool, unit = excluded.unit, quality = excluded.quality, "
    "ts_ns = excluded.ts_ns WHERE excluded.ts_ns >= latest.ts_ns"
)


class Store(OutboxMethods):
    """Local history and outbox of the gateway, in one SQLite file (WAL).

    ``clock`` returns the current time in ns since the epoch; retention and
    bookkeeping timestamps use it, so tests run on virtual time.
    ``low_water``: the size bound deletes down to this fraction of
    ``max_bytes``, so it does not run again at the next append.
    ``reserve_bytes``: disk space the size bound keeps free (the store is
    bounded by ``min(max_bytes, its size + free space - reserve_bytes)``).
    ``latest_flush_s`` bounds how often the ``latest`` table is rewritten:
    ``latest()`` is served from memory and the values not yet flushed are
    rebuilt from the records on reopen, so a crash never loses one.
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
        latest_flush_s: float = 5.0,
        reserve_bytes: int = DISK_RESERVE_BYTES,
        recent_values: int = 150_000,
    ) -> None:
        if synchronous.upper() not in SYNCHRONOUS_MODES:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS_MODES}, not {synchronous!r}")
        if retention_s <= 0 or max_bytes <= 0 or not 0 < low_water < 1:
            raise ValueError("retention_s and max_bytes must be > 0, low_water in (0, 1)")
        self.path = Path(path)
        self.retention_s = retention_s
        self.max_bytes = max_bytes
        self.low_water = low_water
        self.reserve_bytes = reserve_bytes
        self._clock = clock
        self._synchronous = synchronous.upper()
        self._latest_flush_s = latest_flush_s
        self._local = threading.local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        self._write_lock = threading.RLock()  # serialises every write transaction
        self._state_lock = threading.Lock()  # guards _latest and _sources
        self._counters_lock = threading.Lock()
        self._closed = False
        self._rows = RowCodec()
        self._sources: set[str] = set()
        self._latest = LatestValues()
        self._latest_flushed_at = time.monotonic()
        self._recent = RecentRecords(recent_values)
        self._pending_counters: dict[str, int] = {}
        self._ready = False  # close() must not write to a file we refused

        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = self._conn()
            initialise(conn, self.path)
            self._load(conn)
            self._ready = True
        except (StoreError, sqlite3.Error, PayloadError) as exc:
            self.close()
            if isinstance(exc, StoreError):
                raise
            mapped = translate(self.path, exc) if isinstance(exc, sqlite3.Error) else None
            if mapped is not None:
                raise mapped from exc
            raise StoreFileError(
                f"{self.path}: cannot open the store ({exc}); {check_hint(self.path)}"
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
        COMMIT, so in-memory state never reflects an uncommitted change;
        pending counter bumps ride along and are kept if the transaction
        fails. Disk-full and damaged-file errors become StoreErrors."""
        with self._write_lock:
            conn = self._conn()
            on_commit: OnCommit = []
            with self._counters_lock:
                bumps, self._pending_counters = self._pending_counters, {}
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn, on_commit
                add_counters(conn, bumps)
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                with self._counters_lock:
                    for k, n in bumps.items():
                        self._pending_counters[k] = self._pending_counters.get(k, 0) + n
                if isinstance(exc, sqlite3.Error) and (mapped := translate(self.path, exc)):
                    raise mapped from exc
                raise
            for callback in on_commit:
                callback()

    def _load(self, conn: sqlite3.Connection) -> None:
        self._rows.load(conn)
        self._sources = {r[0] for r in conn.execute("SELECT device FROM sources")}
        for device, point, value, is_bool, unit, quality, ts in conn.execute(
            "SELECT device, point, value, is_bool, unit, quality, ts_ns FROM latest"
        ):
            v = bool(value) if is_bool else value
            self._latest.load(Sample(device, point, v, unit, Quality(quality), ts))
        # Samples appended after the last flush of `latest` (a crash): replay.
        row = conn.execute("SELECT value FROM meta WHERE key = 'latest_seq'").fetchone()
        replay = conn.execute(
            f"SELECT {RECORD_COLUMNS} FROM records WHERE seq > ? AND kind = ? ORDER BY seq",
            (row[0] if row else 0, RecordKind.SAMPLE.value),
        ).fetchall()
        for rec in self._rows.decode_rows(conn, replay):
            self._latest.merge(rec)

    # ----------------------------------------------------------- history

    def append(self, records: Sequence[Record], counters: Mapping[str, int] | None = None) -> None:
        """Store records in one transaction; on return they are durable
        (per ``synchronous``) and each ``rec.seq`` holds its new sequence
        number. ``counters`` are added to the persistent counters in that
        same transaction (the gateway's ``records_stored``, ...), so they
        never disagree with the records, even after a kill. On error
        nothing is stored, no ``seq`` is changed and ``counters`` are not
        added (the caller still holds both): ValueError / TypeError for a
        malformed record, StoreFullError when the disk is full."""
        if not records:
            return
        for rec in records:
            if not isinstance(rec.kind, RecordKind):
                raise TypeError(f"record of {rec.device!r}: kind {rec.kind!r} is not a RecordKind")
            if not isinstance(rec.ts_ns, int) or not isinstance(rec.device, str):
                raise TypeError(
                    f"record of {rec.device!r}: ts_ns must be an int (ns since the epoch) "
                    f"and device a str, not {rec.ts_ns!r}"
                )
        with self._write() as (conn, on_commit):
            first = outbox.last_seq(conn) + 1
            new_names: dict[Name, int] = {}
            rows = [
                self._rows.row(conn, rec, first + i, new_names) for i, rec in enumerate(records)
            ]
            conn.executemany(
                f"INSERT INTO records ({RECORD_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)", rows
            )
            outbox.add_pending(conn, len(records), sum(len(rec) for rec in records))
            note_appended(conn, len(records))
            add_counters(conn, dict(counters or {}))
            events = [
                (row[2], row[0], row[3], row[5])  # device, seq, ts_ns, fields
                for row, rec in zip(rows, records, strict=True)
                if rec.kind is RecordKind.EVENT
            ]
            if events:
                note_events(conn, events)
            new_sources = {rec.device for rec in records} - self._sources
            if new_sources:
                conn.executemany(
                    "INSERT OR IGNORE INTO sources (device) VALUES (?)",
                    [(d,) for d in new_sources],
                )

            def committed() -> None:
                self._rows.learn(new_names)
                with self._state_lock:
                    self._sources |= new_sources
                    for rec in records:
                        if rec.kind is RecordKind.SAMPLE:
                            self._latest.merge(rec)
                for j, rec in enumerate(records):
                    rec.seq = first + j
                # the sinks take these from memory (as the table gives them back)
                self._recent.add(
                    [
                        rec if round_trips(rec) else self._rows.decode_rows(conn, [row])[0]
                        for rec, row in zip(records, rows, strict=True)
                    ]
                )

            on_commit.append(committed)
        if time.monotonic() - self._latest_flushed_at >= self._latest_flush_s:
            # The records are committed: a flush that fails (disk full) must
            # not make the caller think they were not, and append them again.
            # The values stay buffered for the next flush; a crash meanwhile
            # rebuilds them from the records.
            with contextlib.suppress(StoreError):
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
                    conn.executemany(_UPSERT_LATEST, LatestValues.rows(dirty))
                    conn.execute(
                        "INSERT INTO meta (key, value) VALUES ('latest_seq', ?) "
                        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                        (outbox.last_seq(conn),),
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

    @reads
    def history(
        self,
        device: str,
        point: str,
        since_ns: int = 0,
        until_ns: int | None = None,
        *,
        kinds: Collection[RecordKind] = (RecordKind.SAMPLE,),
    ) -> list[Sample]:
        """Values of one point with ``since_ns <= ts_ns < until_ns`` (None:
        no upper bound), in time order, from the records of the given kinds
        still in the store."""
        conn = self._conn()
        wanted = self._rows.ids_of_point(conn, point)
        if not wanted:
            return []
        kind_list = [RecordKind(k).value for k in kinds]
        rows = conn.execute(
            "SELECT ts_ns, payload FROM records WHERE device = ? AND ts_ns >= ? AND ts_ns < ? "
            f"AND kind IN ({','.join('?' * len(kind_list))}) ORDER BY ts_ns, seq",
            (device, since_ns, _MAX_TS if until_ns is None else until_ns, *kind_list),
        ).fetchall()
        out = []
        for ts_ns, payload in rows:
            found = decode_one(payload, wanted)
            if found is not None:
                name_id, value, quality = found
                ((_, unit),) = self._rows.names_of(conn, [name_id])
                out.append(Sample(device, point, value, unit, quality, ts_ns))
        return out

    @reads
    def records_between(
        self, since_ns: int, until_ns: int, kinds: Collection[RecordKind]
    ) -> list[Record]:
        """Records of the given kinds with ``since_ns <= ts_ns < until_ns``,
        of every source, in seq order (the recovery after an unclean stop)."""
        conn = self._conn()
        kind_list = [RecordKind(k).value for k in kinds]
        marks = ",".join("?" * len(kind_list))
        rows: list[Any] = []
        for (device,) in conn.execute("SELECT device FROM sources").fetchall():
            rows += conn.execute(
                f"SELECT {RECORD_COLUMNS} FROM records WHERE device = ? AND ts_ns >= ? "
                f"AND ts_ns < ? AND kind IN ({marks})",
                (device, since_ns, until_ns, *kind_list),
            ).fetchall()
        rows.sort(key=lambda row: row[0])
        return self._rows.decode_rows(conn, rows)

    @reads
    def last_event(self, device: str) -> tuple[int, dict[str, object]] | None:
        """(ts_ns, fields) of the newest EVENT record of ``device``, kept
        even after retention removed the record itself; None if none."""
        row = (
            self._conn()
            .execute("SELECT ts_ns, fields FROM last_events WHERE device = ?", (device,))
            .fetchone()
        )
        return None if row is None else (int(row[0]), decode_fields(row[1]))

    @reads
    def last_record_ts(self) -> int | None:
        """``ts_ns`` of the last record appended (the highest seq) still
        stored; None when the store is empty."""
        row = self._conn().execute("SELECT ts_ns FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else int(row[0])

    # ----------------------------------------------------------- counters

    @reads
    def counters(self) -> dict[str, int]:
        """Persistent counters, including bumps not yet written."""
        out = {n: v for n, v in self._conn().execute("SELECT name, value FROM counters")}
        with self._counters_lock:
            for k, n in self._pending_counters.items():
                out[k] = out.get(k, 0) + n
        return out

    def bump(self, name: str, n: int = 1) -> None:
        """Add ``n`` to a counter. Cheap (no disk write): the bump is written
        with the next write transaction (append, ack, flush, close, ...); a
        crash loses only bumps made since the last one."""
        with self._counters_lock:
            self._pending_counters[name] = self._pending_counters.get(name, 0) + n

    # ----------------------------------------------------------- limits

    def enforce_limits(self) -> dict[str, int]:
        """Apply retention, then the size bound (policy in gateway.store.limits).
        Returns the counter deltas of what was removed: ``expired_<kind>``
        (older than retention), ``dropped_<kind>`` (size bound) and
        ``dropped_unsent_<sink>`` (either, for records that sink had not
        acked). Works in short transactions, so appends are never held up
        for long."""
        self.flush()  # the latest table must not depend on records about to go
        removed: dict[str, int] = {}
        cutoff = self._clock() - int(self.retention_s * _NS_PER_S)
        # From the table, not our cache: another process (`minegate survey
        # --publish`) may have appended records of sources we never saw.
        sources = [r[0] for r in self._conn().execute("SELECT device FROM sources ORDER BY device")]
        access = StoreAccess(self.path, self._conn, self._write, self._write_lock, self.size_bytes)
        # while records may be deleted, takes read the table; if any were, the
        # records kept in memory are forgotten (they may be among them)
        try:
            with self._recent.suspended():
                enforce_retention(access, cutoff, sources, removed)
                enforce_size(
                    access,
                    self.max_bytes,
                    self.low_water,
                    removed,
                    reserve_bytes=self.reserve_bytes,
                )
        except sqlite3.Error as exc:  # the reclaiming checkpoint on a full disk
            mapped = translate(self.path, exc)
            if mapped is None:
                raise
            raise mapped from exc
        return removed

    @reads
    def size_bytes(self) -> int:
        """Bytes the store occupies: database pages plus the WAL file."""
        conn = self._conn()
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        try:
            wal_bytes = Path(f"{self.path}-wal").stat().st_size
        except FileNotFoundError:
            wal_bytes = 0
        return int(pages * page_size + wal_bytes)

    @reads
    def check(self) -> list[str]:
        """SQLite's quick_check of the file: an empty list when healthy.
        Reads the whole file: for maintenance, not for every start."""
        rows = self._conn().execute("PRAGMA quick_check").fetchall()
        return [] if [r[0] for r in rows] == ["ok"] else [r[0] for r in rows]

    def backup(self, dest: Path) -> None:
        """Write a consistent, compacted copy of the store to ``dest`` (which
        must not exist) while the gateway keeps running: one read snapshot
        (``VACUUM INTO``), so appends and acks go on meanwhile. Buffered
        latest values and counters are flushed first so the copy has them."""
        dest = Path(dest)
        if dest.exists():
            raise FileExistsError(f"{dest}: backup target exists; choose a new file name")
        self.flush()
        self._conn().execute("VACUUM INTO ?", (str(dest),))

    def close(self) -> None:
        """Write buffered state, checkpoint the WAL and close every
        connection. Idempotent; any later call raises StoreClosedError.
        Call it once the tasks and threads using the store have stopped: it
        closes their connections too."""
        with self._write_lock:
            if self._closed:
                return
            try:
                if self._ready:
                    self.flush()
                    self._conn().execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
            finally:  # even if the flush failed (disk full): release the file
                self._closed = True
                with self._conns_lock:
                    conns, self._conns = self._conns, []
                for conn in conns:
                    conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

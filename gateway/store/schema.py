"""SQLite schema of the store and how a connection is opened (its errors are
in ``gateway.store.errors``). See docs/store.md for the meaning of every table.

A file is recognised as a minegate store by ``PRAGMA application_id`` and
the ``meta`` table's ``schema_version``. Opening a file written by a newer
minegate, a SQLite database of another program, or a damaged / non-SQLite
file raises a :class:`StoreFileError` that names the path and says what to
do; the file is never modified in those cases.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from gateway.store.errors import StoreError, StoreFileError, check_hint, move_aside_hint, translate

SCHEMA_VERSION = 2
# 2: ``last_events`` and ``meta.record_count``, so that `minegate status`
#    reads a store of millions of records in milliseconds (migrated on open).
APPLICATION_ID = 0x4D474154  # "MGAT": lets `file`/sqlite3 tools recognise the store
BUSY_TIMEOUT_MS = 10_000  # other processes (status tools) may hold the lock briefly
SYNCHRONOUS_MODES = ("OFF", "NORMAL", "FULL", "EXTRA")
JOURNAL_SIZE_LIMIT = 8 * 2**20
# Rows are ~1 KiB per 100 values: with 4 KiB pages a fifth of each page is
# left over, with 16 KiB pages a few percent (measured: 1,453 -> 1,183 bytes
# per 100-value record). The WAL is checkpointed every 4 MiB.
PAGE_SIZE = 16384
WAL_CHECKPOINT_PAGES = 4 * 2**20 // PAGE_SIZE

_DDL = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;

-- One row per Record. AUTOINCREMENT so that a seq is never reused, even when
-- the newest records have been dropped: sink cursors rely on it.
CREATE TABLE records (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    kind     TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    ts_ns    INTEGER NOT NULL,
    n_values INTEGER NOT NULL,
    payload  BLOB    NOT NULL,   -- store_codec: name ids, qualities, values
    fields   TEXT                -- JSON of Record.fields, NULL when empty
);
-- history(device, point, since, until) and per-device retention.
CREATE INDEX records_device_ts ON records (device, ts_ns);

-- Every (point, unit) pair once, payloads refer to it by id.
CREATE TABLE names (
    id    INTEGER PRIMARY KEY,
    point TEXT NOT NULL,
    unit  TEXT NOT NULL,
    UNIQUE (point, unit)
);

-- Every record source once (retention walks it, using records_device_ts).
CREATE TABLE sources (
    device TEXT PRIMARY KEY
) WITHOUT ROWID;

-- Last value of every (device, point) of SAMPLE records.
CREATE TABLE latest (
    device  TEXT    NOT NULL,
    point   TEXT    NOT NULL,
    value,                        -- REAL / INTEGER / TEXT / NULL as given
    is_bool INTEGER NOT NULL,     -- SQLite has no boolean: 1 when value is a bool
    unit    TEXT    NOT NULL,
    quality TEXT    NOT NULL,
    ts_ns   INTEGER NOT NULL,
    PRIMARY KEY (device, point)
) WITHOUT ROWID;

-- One row per sink: its cursor (everything <= cursor is acked) and what it
-- still has to send, maintained incrementally so backlog() is O(1).
CREATE TABLE sinks (
    name            TEXT PRIMARY KEY,
    cursor          INTEGER NOT NULL,
    pending_records INTEGER NOT NULL,
    pending_values  INTEGER NOT NULL,
    created_ns      INTEGER NOT NULL
) WITHOUT ROWID;

-- Records a sink's server refused as malformed: kept for inspection, never retried.
CREATE TABLE rejected (
    sink     TEXT    NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT    NOT NULL,
    device   TEXT    NOT NULL,
    ts_ns    INTEGER NOT NULL,
    n_values INTEGER NOT NULL,
    payload  BLOB    NOT NULL,
    fields   TEXT,
    reason   TEXT    NOT NULL,
    at_ns    INTEGER NOT NULL,
    PRIMARY KEY (sink, seq)
) WITHOUT ROWID;

CREATE TABLE counters (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"""

# The newest EVENT record of every source (comm lost / restored ...), kept
# when retention deletes the record itself: `minegate status` shows it.
_LAST_EVENTS_DDL = """
CREATE TABLE last_events (
    device TEXT PRIMARY KEY,
    seq    INTEGER NOT NULL,
    ts_ns  INTEGER NOT NULL,
    fields TEXT
) WITHOUT ROWID
"""
_DDL += ";" + _LAST_EVENTS_DDL + ";"


def connect(path: Path, synchronous: str) -> sqlite3.Connection:
    """Open one connection with the store's per-connection settings.

    Autocommit mode (``isolation_level=None``): the store issues BEGIN /
    COMMIT itself so a transaction's extent is explicit.
    """
    try:
        conn = sqlite3.connect(
            str(path), isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
    except sqlite3.OperationalError as exc:  # a directory, a missing parent, no permission
        raise StoreFileError(
            f"{path}: cannot open the store ({exc}); check that the path names a file in an "
            "existing directory the gateway's user may write"
        ) from exc
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        # Sorting and temp b-trees of retention queries stay in memory.
        conn.execute("PRAGMA temp_store = MEMORY")
        # After a burst the WAL is cut back to this on checkpoint, so it does
        # not keep occupying disk (it counts towards max_bytes).
        conn.execute(f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}")
        conn.execute(f"PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES}")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise _open_error(path, exc) from exc
    return conn


def _open_error(path: Path, exc: sqlite3.DatabaseError) -> StoreError:
    """The error of a file that could not be opened: damaged only when
    SQLite says so; a full disk (a -shm that cannot be created) or another
    I/O error never advises discarding the file."""
    mapped = translate(path, exc)
    if mapped is not None:
        return mapped
    return StoreFileError(f"{path}: cannot use the store ({exc}); {check_hint(path)}")


def initialise(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in an empty file, or check an existing one.

    Raises StoreFileError when the file is not a minegate store of a version
    this code understands.
    """
    try:
        app_id = conn.execute("PRAGMA application_id").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    except sqlite3.DatabaseError as exc:
        raise _open_error(path, exc) from exc
    if not tables and app_id == 0:
        _create(conn)
        return
    if app_id != APPLICATION_ID or "meta" not in tables:
        raise StoreFileError(
            f"{path}: a SQLite database of another program, not a minegate store; "
            "point the gateway at another path or " + move_aside_hint(path)
        )
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    version = row[0] if row else 0
    if version > SCHEMA_VERSION:
        raise StoreFileError(
            f"{path}: store schema version {version} was written by a newer minegate "
            f"(this one reads up to {SCHEMA_VERSION}); upgrade minegate, or "
            + move_aside_hint(path)
        )
    if version < 1:
        raise StoreFileError(
            f"{path}: unknown store schema version {version}; " + move_aside_hint(path)
        )
    mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    if mode.lower() != "wal":
        raise StoreFileError(f"{path}: cannot switch to WAL journal mode (got {mode!r})")
    if version == 1:
        _migrate_1_to_2(conn)
    conn.execute(ALARM_INDEX)


# The sink runners send alarms ahead of any backlog: a partial index (only
# ALARM rows, so it costs nothing when samples are appended) finds the next
# unsent alarm without scanning the backlog. Created on open, so older
# files get it too.
ALARM_INDEX = "CREATE INDEX IF NOT EXISTS records_alarms ON records (seq) WHERE kind = 'alarm'"


def _migrate_1_to_2(conn: sqlite3.Connection) -> None:
    """Add ``last_events`` and ``meta.record_count`` to a version-1 store,
    filled from its records (one scan, once)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_LAST_EVENTS_DDL)
        conn.execute(
            "INSERT INTO last_events (device, seq, ts_ns, fields) "
            "SELECT device, seq, ts_ns, fields FROM records WHERE seq IN "
            "(SELECT max(seq) FROM records WHERE kind = 'event' GROUP BY device)"
        )
        conn.execute(
            "INSERT OR REPLACE INTO meta (key, value) SELECT 'record_count', count(*) FROM records"
        )
        conn.execute("UPDATE meta SET value = 2 WHERE key = 'schema_version'")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def note_appended(conn: sqlite3.Connection, n_records: int) -> None:
    """Count appended records in ``meta.record_count`` (caller's transaction)."""
    conn.execute("UPDATE meta SET value = value + ? WHERE key = 'record_count'", (n_records,))


def note_events(conn: sqlite3.Connection, rows: list[tuple[str, int, int, str | None]]) -> None:
    """Keep (device, seq, ts_ns, fields) of new EVENT records as the
    newest of their source (caller's transaction)."""
    conn.executemany(
        "INSERT INTO last_events (device, seq, ts_ns, fields) VALUES (?, ?, ?, ?) "
        "ON CONFLICT (device) DO UPDATE SET seq = excluded.seq, ts_ns = excluded.ts_ns, "
        "fields = excluded.fields WHERE excluded.seq > last_events.seq",
        rows,
    )


def _create(conn: sqlite3.Connection) -> None:
    # auto_vacuum must be chosen before the first table exists; INCREMENTAL
    # lets enforce_limits() give freed pages back to the file system.
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("BEGIN IMMEDIATE")
    for stmt in _DDL.split(";"):
        if stmt.strip():
            conn.execute(stmt)
    conn.execute(ALARM_INDEX)
    conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (SCHEMA_VERSION,))
    conn.execute("INSERT INTO meta (key, value) VALUES ('record_count', 0)")
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute("COMMIT")


def add_counters(conn: sqlite3.Connection, deltas: dict[str, int]) -> None:
    """Add to persistent counters inside the caller's transaction."""
    if deltas:
        conn.executemany(
            "INSERT INTO counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            list(deltas.items()),
        )

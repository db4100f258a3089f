"""Unit tests of gateway.store.Store: one behaviour per test, virtual clock."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.model import Quality, Record, RecordKind, Sample
from gateway.store import Store, StoreClosedError, StoreFileError, UnknownSinkError

T0 = 1_700_000_000 * 10**9
DAY_NS = 86400 * 10**9


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def rec(
    device: str = "fan1",
    ts: int = T0,
    kind: RecordKind = RecordKind.SAMPLE,
    n: int = 3,
    base: float = 0.0,
    **fields: object,
) -> Record:
    return Record(
        kind=kind,
        device=device,
        ts_ns=ts,
        points=[f"p{i}" for i in range(n)],
        values=[base + i for i in range(n)],
        units=["m/s"] * n,
        qualities=[Quality.GOOD] * n,
        fields=dict(fields),
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Iterator[Store]:
    s = Store(tmp_path / "store.db", clock=clock, synchronous="NORMAL")
    yield s
    s.close()


# ------------------------------------------------------------------ append


def test_append_assigns_consecutive_seqs(store: Store) -> None:
    batch = [rec(ts=T0 + i) for i in range(4)]
    store.append(batch)
    store.append([second := rec(ts=T0 + 9)])
    assert [r.seq for r in batch] == [1, 2, 3, 4]
    assert second.seq == 5


def test_append_empty_is_noop(store: Store) -> None:
    store.append([])
    assert store.latest() == []


def test_append_round_trips_every_value_type(store: Store) -> None:
    store.register_sink("s", start_at="start")
    r = Record(
        kind=RecordKind.ALARM,
        device="gas7",
        ts_ns=T0,
        points=["ch4", "state", "count", "on", "missing", "big"],
        values=[1.25, "HIGH", 7, True, None, 2**62 + 1],
        units=["%", "", "", "", "ppm", ""],
        qualities=[
            Quality.GOOD,
            Quality.BAD,
            Quality.STALE,
            Quality.COMM_LOSS,
            Quality.GOOD,
            Quality.GOOD,
        ],
        fields={"threshold": 1.0, "action": "power_off", "nested": {"a": [1, 2]}},
    )
    store.append([r])
    (got,) = store.take("s", 10)
    assert got == r
    assert type(got.values[2]) is int and type(got.values[3]) is bool


def test_append_rejects_mismatched_lists_and_stores_nothing(store: Store) -> None:
    store.register_sink("s")
    good = rec()
    bad = rec()
    bad.values.pop()
    with pytest.raises(ValueError, match="same length"):
        store.append([good, bad])
    assert good.seq == 0
    assert store.take("s", 10) == []
    assert store.backlog("s") == (0, 0)


def test_append_rejects_unstorable_value(store: Store) -> None:
    bad = rec()
    bad.values[0] = [1, 2]  # type: ignore[call-overload]
    with pytest.raises(TypeError, match="cannot be stored"):
        store.append([bad])


# ------------------------------------------------------------------ latest / history


def test_latest_keeps_newest_timestamp_per_point(store: Store) -> None:
    store.append([rec(ts=T0 + 10, base=10.0), rec(ts=T0 + 5, base=5.0)])
    store.append([rec(ts=T0 + 7, base=7.0, n=1)])
    latest = {(s.device, s.point): s for s in store.latest()}
    assert latest[("fan1", "p0")] == Sample("fan1", "p0", 10.0, "m/s", Quality.GOOD, T0 + 10)
    assert len(latest) == 3


def test_latest_ignores_non_sample_kinds(store: Store) -> None:
    store.append([rec(kind=RecordKind.STAT), rec(kind=RecordKind.ALARM, device="gas")])
    assert store.latest() == []


def test_latest_survives_reopen_with_and_without_flush(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "s.db"
    s = Store(path, clock=clock, latest_flush_s=3600)
    s.append([rec(ts=T0 + 1, base=1.0)])
    before = s.latest()
    # Simulate a crash: connections dropped without close() flushing `latest`.
    for conn in s._conns:
        conn.close()
    s._closed = True
    s2 = Store(path, clock=clock)
    assert s2.latest() == before
    s2.close()
    s3 = Store(path, clock=clock)
    assert s3.latest() == before
    s3.close()


def test_history_returns_one_point_in_time_order_half_open(store: Store) -> None:
    store.append([rec(ts=T0 + i, base=float(i)) for i in (3, 1, 2, 0)])
    store.append([rec(device="other", ts=T0 + 1)])
    got = store.history("fan1", "p1", since_ns=T0 + 1, until_ns=T0 + 3)
    assert [(s.ts_ns, s.value) for s in got] == [(T0 + 1, 2.0), (T0 + 2, 3.0)]
    assert all(s.unit == "m/s" and s.device == "fan1" for s in got)
    assert store.history("fan1", "nope") == []


def test_history_skips_records_without_the_point(store: Store) -> None:
    store.append([rec(n=1), rec(ts=T0 + 1, n=3)])
    assert [s.ts_ns for s in store.history("fan1", "p2")] == [T0 + 1]


# ------------------------------------------------------------------ outbox


def test_new_sink_starts_at_end_or_start(store: Store) -> None:
    store.append([rec(), rec()])
    store.register_sink("late")
    store.register_sink("full", start_at="start")
    assert store.take("late", 10) == []
    assert [r.seq for r in store.take("full", 10)] == [1, 2]
    assert store.backlog("late") == (0, 0)
    assert store.backlog("full") == (2, 6)


def test_register_existing_sink_keeps_cursor(store: Store) -> None:
    store.register_sink("s")
    store.append([rec(), rec()])
    store.ack("s", 1)
    store.register_sink("s", start_at="start")
    assert store.sinks() == {"s": 1}


def test_take_does_not_move_cursor_and_ack_does(store: Store) -> None:
    store.register_sink("s")
    store.append([rec(ts=T0 + i) for i in range(5)])
    first = store.take("s", 2)
    assert [r.seq for r in first] == [1, 2]
    assert [r.seq for r in store.take("s", 2)] == [1, 2]
    store.ack("s", 2)
    assert [r.seq for r in store.take("s", 10)] == [3, 4, 5]
    assert store.backlog("s") == (3, 9)


def test_take_respects_max_values_but_returns_at_least_one(store: Store) -> None:
    store.register_sink("s")
    store.append([rec(n=5), rec(n=5), rec(n=5)])
    assert [r.seq for r in store.take("s", 10, max_values=10)] == [1, 2]
    assert [r.seq for r in store.take("s", 10, max_values=3)] == [1]


def test_take_kinds_filter(store: Store) -> None:
    store.register_sink("s")
    store.append([rec(), rec(kind=RecordKind.ALARM), rec()])
    assert [r.seq for r in store.take("s", 10, kinds=[RecordKind.ALARM])] == [2]


def test_sinks_are_independent(store: Store) -> None:
    store.register_sink("fast")
    store.register_sink("dead")
    store.append([rec() for _ in range(3)])
    store.ack("fast", 3)
    assert store.take("fast", 10) == []
    assert len(store.take("dead", 10)) == 3
    assert store.sinks() == {"dead": 0, "fast": 3}


def test_ack_below_cursor_is_noop_and_beyond_end_is_error(store: Store) -> None:
    store.register_sink("s")
    store.append([rec(), rec()])
    store.ack("s", 2)
    store.ack("s", 1)
    assert store.sinks()["s"] == 2
    with pytest.raises(ValueError, match="beyond the last seq"):
        store.ack("s", 3)


def test_unknown_sink_raises(store: Store) -> None:
    with pytest.raises(UnknownSinkError, match="register_sink"):
        store.take("ghost", 1)
    with pytest.raises(UnknownSinkError):
        store.ack("ghost", 1)
    with pytest.raises(UnknownSinkError):
        store.backlog("ghost")


def test_set_aside_is_never_retaken_and_counted(store: Store) -> None:
    store.register_sink("s")
    store.register_sink("other")
    store.append([rec(), rec(base=9.0), rec()])
    bad = store.take("s", 10)[1]
    store.set_aside("s", bad, "field type conflict")
    store.set_aside("s", bad, "again")
    assert [r.seq for r in store.take("s", 10)] == [1, 3]
    assert [r.seq for r in store.take("other", 10)] == [1, 2, 3]
    assert store.backlog("s") == (2, 6)
    store.ack("s", 3)
    assert store.backlog("s") == (0, 0)
    assert store.counters()["rejected_s"] == 1
    ((kept, reason),) = store.rejected("s")
    assert kept == bad and reason == "field type conflict"


def test_cursors_survive_reopen(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "s.db"
    with Store(path, clock=clock) as s:
        s.register_sink("s")
        s.append([rec() for _ in range(4)])
        s.ack("s", 2)
    with Store(path, clock=clock) as s:
        assert s.sinks() == {"s": 2}
        assert [r.seq for r in s.take("s", 10)] == [3, 4]
        assert s.backlog("s") == (2, 6)


def test_unregister_sink(store: Store) -> None:
    store.register_sink("s")
    store.unregister_sink("s")
    assert store.sinks() == {}


# ------------------------------------------------------------------ counters


def test_counters_persist_bumps(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "s.db"
    with Store(path, clock=clock) as s:
        s.bump("polled", 5)
        s.bump("polled")
        assert s.counters()["polled"] == 6
    with Store(path, clock=clock) as s:
        assert s.counters() == {"polled": 6}


# ------------------------------------------------------------------ limits


def test_retention_drops_old_records_counts_unsent_and_keeps_latest(
    store: Store, clock: Clock
) -> None:
    store.register_sink("s")
    store.register_sink("up_to_date")
    store.append(
        [rec(ts=T0 - 100 * DAY_NS), rec(kind=RecordKind.ALARM, ts=T0 - 95 * DAY_NS), rec(ts=T0)]
    )
    store.ack("up_to_date", 3)
    latest_before = store.latest()
    removed = store.enforce_limits()
    assert removed == {"expired_sample": 1, "expired_alarm": 1, "dropped_unsent_s": 2}
    assert [r.seq for r in store.take("s", 10)] == [3]
    assert store.backlog("s") == (1, 3)
    assert store.counters()["dropped_unsent_s"] == 2
    assert store.latest() == latest_before


def test_size_bound_drops_oldest_droppable_only(tmp_path: Path, clock: Clock) -> None:
    s = Store(tmp_path / "s.db", clock=clock, max_bytes=400_000, synchronous="OFF")
    s.register_sink("s")
    alarms = [rec(kind=RecordKind.ALARM, ts=T0 + i, n=5) for i in range(20)]
    s.append(alarms)
    for j in range(40):
        s.append([rec(ts=T0 + 1000 + j * 100 + i, n=100) for i in range(20)])
    assert s.size_bytes() > 400_000
    removed = s.enforce_limits()
    assert s.size_bytes() <= 400_000
    assert removed["dropped_sample"] > 0
    assert "dropped_alarm" not in removed
    assert removed["dropped_unsent_s"] == removed["dropped_sample"]
    left = s.take("s", 10_000)
    assert [r.seq for r in left if r.kind is RecordKind.ALARM] == [a.seq for a in alarms]
    samples = [r.seq for r in left if r.kind is RecordKind.SAMPLE]
    assert samples == list(range(samples[0], 20 + 800 + 1))  # the oldest went, no holes
    assert s.backlog("s")[0] == len(left)
    s.close()


def test_size_bound_keeps_undroppable_and_logs(
    tmp_path: Path, clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    s = Store(tmp_path / "s.db", clock=clock, max_bytes=150_000, synchronous="OFF")
    s.append([rec(kind=RecordKind.STAT, ts=T0 + i, n=100) for i in range(200)])
    removed = s.enforce_limits()
    assert removed == {}
    assert len(s.history("fan1", "p0", kinds=[RecordKind.STAT])) == 200
    assert "only alarms" in caplog.text
    assert s.counters()["size_limit_exceeded"] == 1
    s.close()


# ------------------------------------------------------------------ files


def test_not_sqlite_file_gives_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreFileError, match="move it aside"):
        Store(path)
    assert path.read_bytes().startswith(b"this is not")


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (x)")
    conn.commit()
    conn.close()
    with pytest.raises(StoreFileError, match="another program"):
        Store(path)


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    Store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("UPDATE meta SET value = 99 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(StoreFileError, match="newer minegate"):
        Store(path)


def test_closed_store_raises(tmp_path: Path) -> None:
    s = Store(tmp_path / "s.db")
    s.close()
    s.close()
    with pytest.raises(StoreClosedError):
        s.sinks()


def test_bad_options_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="synchronous"):
        Store(tmp_path / "s.db", synchronous="SOMETIMES")


# ------------------------------------------------------------------ threads


def test_concurrent_writer_and_sink_threads(store: Store) -> None:
    store.register_sink("s")
    received: list[int] = []
    done = threading.Event()

    def writer() -> None:
        for i in range(200):
            store.append([rec(ts=T0 + i)])
        done.set()

    def sink() -> None:
        while True:
            finished = done.is_set()
            batch = store.take("s", 17)
            if batch:
                received.extend(r.seq for r in batch)
                store.ack("s", batch[-1].seq)
            elif finished:
                return

    threads = [threading.Thread(target=writer), threading.Thread(target=sink)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert received == list(range(1, 201))
    assert store.backlog("s") == (0, 0)


def test_directory_instead_of_file_gives_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StoreFileError, match="cannot open the store"):
        Store(tmp_path)


def test_read_only_store_gives_clear_error(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db")
    # query_only makes SQLite answer SQLITE_READONLY, as a file without write
    # permission does (chmod is no test here: the CI may run as root).
    store._conn().execute("PRAGMA query_only = 1")
    batch = [rec()]
    with pytest.raises(StoreFileError, match="writable"):
        store.append(batch)
    assert batch[0].seq == 0
    store._conn().execute("PRAGMA query_only = 0")
    store.close()


def test_damaged_pages_give_store_file_error_on_read(tmp_path: Path, clock: Clock) -> None:
    import random

    path = tmp_path / "s.db"
    with Store(path, clock=clock, synchronous="OFF") as s:
        s.register_sink("s", start_at="start")
        s.append([rec(device=f"d{i % 5}", ts=T0 + i, n=50) for i in range(2000)])
    size = path.stat().st_size
    with path.open("r+b") as f:  # a failing SD card: garbage in the middle of the file
        f.seek(size // 2)
        f.write(random.Random(7).randbytes(50_000))
    with pytest.raises(StoreFileError, match="move it aside"):
        s = Store(path, clock=clock)
        try:
            s.take("s", 5000)
        finally:
            s.close()


def _as_version_1(path: Path) -> None:
    """Turn a store file back into schema version 1 (no last_events, no
    record_count), as the first release wrote it."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE last_events")
    conn.execute("DELETE FROM meta WHERE key = 'record_count'")
    conn.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    conn.commit()
    conn.close()


def test_version_1_store_is_migrated_on_open_and_read_by_status_before(
    tmp_path: Path, clock: Clock
) -> None:
    """A store of the first schema: `minegate status` reads it as it is
    (read-only, counting and scanning), and the gateway's next open adds
    the event table and the record count, filled from the records."""
    from gateway.status import read_status

    path = tmp_path / "s.db"
    s = Store(path, clock=clock)
    s.append([rec("fan1", T0 + i) for i in range(5)])
    s.append([rec("fan1", T0 + 10, RecordKind.EVENT, n=0, event="comm_lost")])
    s.append([rec("fan1", T0 + 20, RecordKind.EVENT, n=0, event="comm_restored")])
    s.append([rec("pump1", T0 + 30, RecordKind.EVENT, n=0, event="comm_lost")])
    s.close()
    _as_version_1(path)

    before = read_status(path)  # read-only: the file stays version 1
    assert before.records == 8
    assert before.events == {
        "fan1": {"event": "comm_restored"},
        "pump1": {"event": "comm_lost"},
    }
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (1,)
    conn.close()

    Store(path, clock=clock).close()  # the gateway opens it: migrated
    conn = sqlite3.connect(path)
    meta = dict(conn.execute("SELECT key, value FROM meta").fetchall())
    assert meta["schema_version"] == 2 and meta["record_count"] == 8
    conn.close()
    after = read_status(path)
    assert after.records == before.records and after.events == before.events


def test_status_keeps_the_last_event_after_retention_removed_it(
    tmp_path: Path, clock: Clock
) -> None:
    from gateway.status import read_status

    path = tmp_path / "s.db"
    s = Store(path, clock=clock, retention_s=3600)
    s.append([rec("fan1", T0, RecordKind.EVENT, n=0, event="comm_lost")])
    clock.now = T0 + 2 * 3600 * 10**9
    s.append([rec("fan1", clock.now)])
    removed = s.enforce_limits()
    assert removed.get("expired_event") == 1
    s.close()
    report = read_status(path)
    assert report.records == 1
    assert report.events == {"fan1": {"event": "comm_lost"}}

"""Edge cases of gateway.store: disk full, several writers on one file,
records dropped while a sink holds them, maintenance calls."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model import Quality, Record, RecordKind
from gateway.store import Store, StoreFullError

T0 = 1_700_000_000 * 10**9
DAY_NS = 86400 * 10**9


def rec(
    device: str = "pump1", ts: int = T0, n: int = 3, kind: RecordKind = RecordKind.SAMPLE
) -> Record:
    return Record(
        kind,
        device,
        ts,
        [f"q{i}" for i in range(n)],
        [float(i) for i in range(n)],
        ["m3/h"] * n,
        [Quality.GOOD] * n,
    )


def test_disk_full_raises_store_full_and_stores_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", synchronous="OFF")
    store.register_sink("s")
    conn = store._conn()
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    # SQLite reports SQLITE_FULL once the file would pass max_page_count:
    # the same error a full disk gives.
    conn.execute(f"PRAGMA max_page_count = {pages + 3}")
    store.append([rec(n=10)])
    store.bump("polled", 2)
    big = [rec(ts=T0 + i, n=500) for i in range(20)]
    with pytest.raises(StoreFullError, match="disk full"):
        store.append(big, {"stored": 20})
    assert all(r.seq == 0 for r in big)
    assert store.backlog("s") == (1, 10)
    assert "stored" not in store.counters()  # an append's counters go with its records
    conn.execute("PRAGMA max_page_count = 1000000")
    store.append(big[:1], {"stored": 1})
    assert big[0].seq == 2
    assert store.counters()["polled"] == 2  # the bump survived the failed transaction
    assert store.counters()["stored"] == 1
    store.close()
    with Store(tmp_path / "s.db") as again:  # written by the append, not only pending
        assert again.counters() == {"polled": 2, "stored": 1}


def test_two_store_objects_on_one_file_share_names(tmp_path: Path) -> None:
    # Two writers (e.g. the gateway and a maintenance tool) that each learn
    # a new point name: the second must reuse the first one's id.
    path = tmp_path / "s.db"
    a = Store(path, synchronous="OFF")
    b = Store(path, synchronous="OFF")
    a.register_sink("s")
    a.append([rec(device="d1")])
    b.append([rec(device="d2")])
    got = a.take("s", 10)
    assert [(r.device, r.points, r.seq) for r in got] == [
        ("d1", ["q0", "q1", "q2"], 1),
        ("d2", ["q0", "q1", "q2"], 2),
    ]
    assert a.backlog("s") == (2, 6)
    a.close()
    b.close()


def test_set_aside_of_a_record_dropped_meanwhile_keeps_the_sinks_copy(tmp_path: Path) -> None:
    now = [T0]
    store = Store(tmp_path / "s.db", clock=lambda: now[0], retention_s=86400, synchronous="OFF")
    store.register_sink("s")
    store.append([rec(ts=T0 - 2 * DAY_NS), rec()])
    held = store.take("s", 1)[0]
    assert store.enforce_limits() == {"expired_sample": 1, "dropped_unsent_s": 1}
    store.set_aside("s", held, "schema mismatch")
    ((kept, reason),) = store.rejected("s")
    assert kept == held and reason == "schema mismatch"
    assert store.backlog("s") == (1, 3)  # the drop already took it out of the backlog
    assert [r.seq for r in store.take("s", 10)] == [2]
    store.close()


def test_take_with_kinds_leaves_other_kinds_pending_until_acked_past(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", synchronous="OFF")
    store.register_sink("alarms")
    store.append([rec(), rec(kind=RecordKind.ALARM), rec()])
    (alarm,) = store.take("alarms", 10, kinds=[RecordKind.ALARM])
    assert store.backlog("alarms") == (3, 9)
    store.ack("alarms", alarm.seq)
    assert store.backlog("alarms") == (1, 3)
    assert store.take("alarms", 10, kinds=[RecordKind.ALARM]) == []
    store.close()


def test_history_of_other_kinds(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", synchronous="OFF")
    store.append([rec(kind=RecordKind.SNAPSHOT, ts=T0 + 1), rec(ts=T0 + 2)])
    assert [s.ts_ns for s in store.history("pump1", "q1")] == [T0 + 2]
    both = store.history("pump1", "q1", kinds=[RecordKind.SAMPLE, RecordKind.SNAPSHOT])
    assert [s.ts_ns for s in both] == [T0 + 1, T0 + 2]
    store.close()


def test_flush_writes_latest_table(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", synchronous="OFF", latest_flush_s=3600)
    store.append([rec()])
    conn = store._conn()
    assert conn.execute("SELECT count(*) FROM latest").fetchone()[0] == 0
    store.flush()
    rows = conn.execute("SELECT device, point, value, unit, quality FROM latest ORDER BY point")
    assert rows.fetchall()[0] == ("pump1", "q0", 0.0, "m3/h", "good")
    store.close()


def test_check_reports_healthy_file(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", synchronous="OFF")
    store.append([rec()])
    assert store.check() == []
    store.close()


def test_file_shrinks_after_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = Store(path, synchronous="OFF", max_bytes=10 * 2**20, clock=lambda: T0)
    for j in range(30):
        store.append([rec(ts=T0 + j * 100 + i, n=200) for i in range(50)])
    big = store.size_bytes()
    store.max_bytes = big // 4
    removed = store.enforce_limits()
    assert removed["dropped_sample"] > 0
    assert store.size_bytes() <= big // 4
    assert path.stat().st_size <= big // 4  # pages given back to the file system
    store.close()


def test_writer_sinks_and_limits_in_parallel_threads(tmp_path: Path) -> None:
    """The runtime's pattern: one writer thread, a thread per sink, and the
    limits pass, all at once. Each sink sees strictly increasing seqs, and
    everything appended was either delivered or counted as dropped for it."""
    import threading

    store = Store(tmp_path / "s.db", synchronous="OFF", max_bytes=600_000, clock=lambda: T0)
    for name in ("influx", "mqtt"):
        store.register_sink(name)
    total = 600
    done = threading.Event()
    received: dict[str, list[int]] = {"influx": [], "mqtt": []}
    errors: list[BaseException] = []

    def guarded(fn):  # type: ignore[no-untyped-def]
        def run() -> None:
            try:
                fn()
            except BaseException as exc:  # re-raised in the test thread below
                errors.append(exc)
                done.set()

        return run

    def writer() -> None:
        for i in range(total // 10):
            kind = RecordKind.ALARM if i % 7 == 0 else RecordKind.SAMPLE
            store.append([rec(ts=T0 + i * 10 + j, n=60, kind=kind) for j in range(10)])
        done.set()

    def sink(name: str, batch: int) -> None:
        while True:
            finished = done.is_set()
            got = store.take(name, batch)
            if got:
                received[name].extend(r.seq for r in got)
                store.ack(name, got[-1].seq)
            elif finished:
                return

    def limits() -> None:
        while not done.is_set():
            store.enforce_limits()

    threads = [
        threading.Thread(target=guarded(writer)),
        threading.Thread(target=guarded(lambda: sink("influx", 7))),
        threading.Thread(target=guarded(lambda: sink("mqtt", 50))),
        threading.Thread(target=guarded(limits)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    if errors:
        raise errors[0]
    counters = store.counters()
    for name, seqs in received.items():
        assert seqs == sorted(set(seqs))  # in order, never twice
        assert len(seqs) + counters.get(f"dropped_unsent_{name}", 0) >= total
        assert store.backlog(name) == (0, 0)
    assert counters["dropped_sample"] > 0  # the size bound did act meanwhile
    assert "dropped_alarm" not in counters
    store.close()


def test_retention_covers_sources_written_by_another_process(tmp_path: Path) -> None:
    # `minegate survey --publish` appends FINDING records to the running
    # gateway's store from its own process.
    path = tmp_path / "s.db"
    now = [T0]
    gateway = Store(path, clock=lambda: now[0], retention_s=86400, synchronous="OFF")
    survey = Store(path, clock=lambda: now[0], synchronous="OFF")
    survey.append([rec(device="check-42", kind=RecordKind.FINDING)])
    survey.close()
    now[0] += 2 * DAY_NS
    assert gateway.enforce_limits() == {"expired_finding": 1}
    gateway.close()


def test_backup_is_a_usable_store_with_cursors_and_latest(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.db", synchronous="OFF", clock=lambda: T0, latest_flush_s=3600)
    store.register_sink("s")
    store.append([rec(ts=T0 + i) for i in range(5)])
    store.ack("s", 2)
    store.bump("polled", 5)
    store.backup(tmp_path / "copy.db")
    with pytest.raises(FileExistsError):
        store.backup(tmp_path / "copy.db")
    with Store(tmp_path / "copy.db", clock=lambda: T0) as copy:
        assert copy.sinks() == {"s": 2}
        assert [r.seq for r in copy.take("s", 10)] == [3, 4, 5]
        assert copy.latest() == store.latest()
        assert copy.counters()["polled"] == 5
    store.close()

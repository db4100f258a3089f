"""Store.take from the records kept in memory (gateway.store.recent) gives
exactly what reading the table gives: same records, same order, same cuts,
set-aside records skipped, records of another process seen, nothing after a
deletion by the limits."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model import Quality, Record, RecordKind
from gateway.store import Store
from gateway.store.recent import RecentRecords, round_trips

T0 = 1_700_000_000 * 10**9


def sample(device: str, ts: int, values: list[object], **kw: object) -> Record:
    n = len(values)
    return Record(
        kw.pop("kind", RecordKind.SAMPLE),  # type: ignore[arg-type]
        device,
        ts,
        [f"p{i}" for i in range(n)],
        values,  # type: ignore[arg-type]
        ["V"] * n,
        kw.pop("qualities", [Quality.GOOD] * n),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


def table_take(path: Path, sink: str, *args: object, **kw: object) -> list[Record]:
    """The same take through a second store object: nothing in its memory,
    so it reads the table."""
    with Store(path, synchronous="OFF") as other:
        return other.take(sink, *args, **kw)  # type: ignore[arg-type]


def same(a: list[Record], b: list[Record]) -> None:
    assert [r.seq for r in a] == [r.seq for r in b]
    for x, y in zip(a, b, strict=True):
        assert (x.kind, x.device, x.ts_ns, x.points, x.units, x.qualities, x.fields) == (
            y.kind,
            y.device,
            y.ts_ns,
            y.points,
            y.units,
            y.qualities,
            y.fields,
        )
        assert [(type(v), v) for v in x.values] == [(type(v), v) for v in y.values]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "s.db", synchronous="OFF", clock=lambda: T0)
    s.register_sink("a")
    return s


def test_take_serves_the_appended_objects_and_equals_the_table(store: Store) -> None:
    recs = [sample("d1", T0 + i, [float(i), i, i + 0.5]) for i in range(50)]
    store.append(recs[:20])
    store.append(recs[20:])
    got = store.take("a", 30)
    assert all(g is r for g, r in zip(got, recs, strict=False))  # from memory
    same(got, table_take(store.path, "a", 30))
    # cut by values, after a seq, narrowed to kinds
    for kw in ({"max_values": 10}, {"after_seq": 17}, {"kinds": (RecordKind.SAMPLE,)}):
        same(store.take("a", 100, **kw), table_take(store.path, "a", 100, **kw))  # type: ignore[arg-type]
    store.ack("a", 25)
    same(store.take("a", 100), table_take(store.path, "a", 100))
    assert store.take("a", 100, kinds=(RecordKind.ALARM,)) == []


def test_records_that_do_not_round_trip_are_kept_as_the_table_returns_them(store: Store) -> None:
    odd = [
        sample("gw", T0, ["x"], kind=RecordKind.EVENT, fields={"k": (1, 2), "n": None}),
        sample("d1", T0 + 1, [True, None, 2**60, "s"]),
        sample("d1", T0 + 2, [1.0, float("inf")], qualities=["good", "bad"]),
    ]
    assert not any(round_trips(r) for r in odd[::2])
    store.append(odd)
    got = store.take("a", 10)
    assert got[0] is not odd[0] and got[0].fields == {"k": [1, 2], "n": None}
    assert got[2].qualities == [Quality.GOOD, Quality.BAD]
    same(got, table_take(store.path, "a", 10))


def test_set_aside_records_are_skipped(store: Store) -> None:
    store.append([sample("d1", T0 + i, [float(i)]) for i in range(10)])
    batch = store.take("a", 10)
    store.set_aside("a", batch[3], "malformed")
    store.set_aside("a", batch[7], "malformed")
    got = store.take("a", 10)
    assert [r.seq for r in got] == [1, 2, 3, 5, 6, 7, 9, 10]
    same(got, table_take(store.path, "a", 10))


def test_records_appended_by_another_process_are_not_missed(store: Store) -> None:
    store.append([sample("d1", T0, [1.0])])
    with Store(store.path, synchronous="OFF") as survey:  # `minegate survey --publish`
        survey.append([sample("check", T0 + 1, [2.0], kind=RecordKind.FINDING)])
    got = store.take("a", 10)
    assert [r.device for r in got] == ["d1", "check"]
    store.append([sample("d1", T0 + 2, [3.0])])  # a gap in our own seqs
    same(store.take("a", 10), table_take(store.path, "a", 10))
    assert len(store.take("a", 10)) == 3


def test_nothing_deleted_by_the_limits_is_taken(tmp_path: Path) -> None:
    now = [T0]
    store = Store(tmp_path / "s.db", synchronous="OFF", clock=lambda: now[0], retention_s=60)
    store.register_sink("a")
    store.append([sample("d1", T0 + i, [float(i)]) for i in range(5)])
    now[0] = T0 + 3600 * 10**9  # all of them older than the retention
    store.enforce_limits()
    assert store.take("a", 10) == []
    store.append([sample("d1", now[0], [9.0])])
    assert [r.values for r in store.take("a", 10)] == [[9.0]]


def test_the_memory_is_bounded_and_the_oldest_read_from_the_table(store: Store) -> None:
    small = Store(store.path, synchronous="OFF", recent_values=100)
    small.register_sink("b")
    for k in range(10):
        small.append([sample("d1", T0 + 10 * k + i, [float(i)] * 10) for i in range(10)])
    got = small.take("b", 1000)
    assert len(got) == 100  # the first ones from the table, in one answer
    same(got, table_take(small.path, "b", 1000))
    small.close()


def test_recent_records_refuses_what_it_cannot_answer() -> None:
    recent = RecentRecords(max_values=6)
    recs = [sample("d", T0 + i, [1.0, 2.0]) for i in range(5)]
    for i, r in enumerate(recs):
        r.seq = 10 + i
    recent.add(recs)
    assert (recent.first, recent.last) == (12, 14)  # at most 6 values kept, the newest
    assert recent.take(10, 14, 10, None, None, set()) is None  # starts before what it holds
    assert recent.take(11, 15, 10, None, None, set()) is None  # someone appended after
    assert [r.seq for r in recent.take(11, 14, 10, None, None, {13}) or []] == [12, 14]
    with recent.suspended():
        assert recent.take(11, 14, 10, None, None, set()) is None
    assert recent.take(11, 14, 10, None, None, set()) is None  # forgotten after deletions


def test_many_small_records_are_bounded_by_their_count() -> None:
    recent = RecentRecords(max_values=1_000_000, max_records=3)
    recs = [sample("d", T0 + i, [1.0]) for i in range(5)]
    for i, r in enumerate(recs):
        r.seq = 1 + i
    recent.add(recs)
    assert (recent.first, recent.last) == (3, 5)  # the newest three, whatever the values
    assert recent.take(1, 5, 10, None, None, set()) is None  # older ones: from the table
    assert [r.seq for r in recent.take(2, 5, 10, None, None, set()) or []] == [3, 4, 5]

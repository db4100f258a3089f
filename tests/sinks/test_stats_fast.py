"""The buffered StatsAggregator and the lazy Snapshotter against the
value-by-value implementation they replaced (kept here as the reference):
same records, same floats to the last bit."""

from __future__ import annotations

import math
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st

import gateway.stats as stats_mod
from gateway.model import Quality, Record, RecordKind
from gateway.stats import NS, Snapshotter, StatsAggregator

T0 = 1_764_000_000 * NS
WINDOW_S = 10


class RefStats:
    def __init__(self, window_s: int, grace_s: float, clock: Callable[[], int]) -> None:
        self.window_s = window_s
        self.window_ns = window_s * NS
        self.grace_ns = int(grace_s * NS)
        self.clock = clock
        self.windows: dict[int, dict[str, dict[str, list[float]]]] = {}
        self.units: dict[tuple[str, str], str] = {}
        self.emitted_before = -(2**62)
        self.first: dict[tuple[int, str], int] = {}  # (window, device) -> first reading
        self.since = clock()
        self.late = 0

    def add(self, r: Record) -> None:
        if r.kind is not RecordKind.SAMPLE:
            return
        start = r.ts_ns - r.ts_ns % self.window_ns
        if start < self.emitted_before:
            self.late += len(r.points)
            return
        if start not in self.windows:
            self.windows[start] = {}
        key = (start, r.device)
        self.first[key] = min(self.first.get(key, r.ts_ns), r.ts_ns)
        dev = self.windows[start].setdefault(r.device, {})
        for p, v, u, q in zip(r.points, r.values, r.units, r.qualities, strict=True):
            if p not in dev:
                dev[p] = [0, 0.0, math.inf, -math.inf]
                self.units[(r.device, p)] = u
            acc = dev[p]
            if q is not Quality.GOOD or type(v) not in (int, float):
                continue
            f = float(v)  # type: ignore[arg-type]
            if not math.isfinite(f):
                continue
            acc[0] += 1
            acc[1] += f
            if f < acc[2]:
                acc[2] = f
            if f > acc[3]:
                acc[3] = f

    def flush(self, now: int) -> list[Record]:
        done = [s for s in self.windows if s + self.window_ns + self.grace_ns <= now]
        return self.emit(sorted(done), False)

    def flush_all(self) -> list[Record]:
        now = self.clock()
        starts = sorted(self.windows)
        closed = [s for s in starts if s + self.window_ns <= now]
        return self.emit(closed, False) + self.emit([s for s in starts if s not in closed], True)

    def emit(self, starts: list[int], partial: bool) -> list[Record]:
        out = []
        for start in starts:
            window = self.windows.pop(start)
            self.emitted_before = max(self.emitted_before, start + self.window_ns)
            cut = partial or start < self.since
            for device, points in window.items():
                fields: dict[str, object] = {}
                values: list[object] = []
                qualities = []
                for p, (n, total, lo, hi) in points.items():
                    st_: dict[str, object]
                    if n:
                        st_ = {"max": hi, "min": lo, "mean": total / n, "count": int(n)}
                        values.append(total / n)
                        qualities.append(Quality.GOOD)
                    else:
                        st_ = {"count": 0}
                        values.append(None)
                        qualities.append(Quality.BAD)
                    st_["window_s"] = self.window_s
                    if cut:
                        st_["partial"] = True
                    fields[p] = st_
                out.append(
                    Record(
                        RecordKind.STAT,
                        device,
                        self.first.pop((start, device)) if cut else start,
                        list(points),
                        values,  # type: ignore[arg-type]
                        [self.units.get((device, p), "") for p in points],
                        qualities,
                        fields=fields,
                    )
                )
        return out


class RefSnapshots:
    def __init__(self, interval_s: float) -> None:
        self.interval_ns = int(interval_s * NS)
        self.latest: dict[str, dict[str, tuple[object, str, Quality, int]]] = {}
        self.next_ns: int | None = None

    def add(self, r: Record) -> None:
        if r.kind is not RecordKind.SAMPLE:
            return
        dev = self.latest.setdefault(r.device, {})
        for p, v, u, q in zip(r.points, r.values, r.units, r.qualities, strict=True):
            old = dev.get(p)
            if old is None or old[3] <= r.ts_ns:
                dev[p] = (v, u, q, r.ts_ns)

    def flush(self, now: int) -> list[Record]:
        if self.next_ns is None:
            self.next_ns = now - now % self.interval_ns + self.interval_ns
        if now < self.next_ns:
            return []
        boundary = now - now % self.interval_ns
        self.next_ns = boundary + self.interval_ns
        return [
            Record(
                RecordKind.SNAPSHOT,
                device,
                boundary,
                list(points),
                [v[0] for v in points.values()],  # type: ignore[misc]
                [v[1] for v in points.values()],
                [v[2] for v in points.values()],
            )
            for device, points in self.latest.items()
        ]


def _key(records: list[Record]) -> list[object]:
    # repr tells -0.0 from 0.0 and 1 from 1.0
    return [
        (r.kind, r.device, r.ts_ns, r.points, r.units, r.qualities, repr(r.values), repr(r.fields))
        for r in records
    ]


LAYOUTS = [("a", "b", "c"), ("d", "e"), ("a", "b", "c", "d", "e"), ("c", "a"), ("e", "e")]
G = Quality.GOOD
value_st = st.one_of(
    st.floats(-100, 100),
    st.sampled_from([0.0, -0.0, 0.1, 0.2, 0.3, 1e16, -1e16, 2**53 + 1]),
    st.integers(-3, 3),
    st.sampled_from([math.nan, math.inf, True, "x", None]),
)
record_st = st.tuples(
    st.sampled_from(["d1", "d2"]),
    st.sampled_from(range(len(LAYOUTS))),
    st.lists(value_st, min_size=5, max_size=5),
    st.sampled_from([G] * 6 + [Quality.BAD, Quality.STALE, Quality.COMM_LOSS]),
    st.integers(0, 70).map(lambda s: s * NS // 2),  # three and a half windows, out of order, ties
    st.integers(0, 12),  # what to do after: >= 10 flush
)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(record_st, max_size=60),
    fold_rows=st.sampled_from([1, 2, 3, 64]),
    numbers=st.booleans(),
    since=st.sampled_from([0, 3 * NS, 15 * NS]),
)
def test_stats_and_snapshots_match_reference(
    steps: list[tuple[str, int, list[object], Quality, int, int]],
    fold_rows: int,
    numbers: bool,
    since: int,
) -> None:
    now = [T0 + since]
    clock = lambda: now[0]  # noqa: E731
    saved = stats_mod.FOLD_ROWS
    stats_mod.FOLD_ROWS = fold_rows
    try:
        agg, ref = StatsAggregator(WINDOW_S, grace_s=2, clock=clock), RefStats(WINDOW_S, 2, clock)
        snap, ref_snap = Snapshotter(2.0, clock=clock), RefSnapshots(2.0)
        for device, layout, values, quality, dt, then in steps:
            points = LAYOUTS[layout]
            vals = values[: len(points)]
            if numbers:
                vals = [v if type(v) is float and math.isfinite(v) else 0.5 for v in vals]
            # one bad quality in a record, sometimes
            quals = [quality if i == 0 else G for i in range(len(points))]
            r = Record(
                RecordKind.SAMPLE, device, T0 + dt, list(points), vals, ["u"] * len(points), quals
            )  # type: ignore[arg-type]
            for x in (agg, ref, snap, ref_snap):
                x.add(r)
            if then >= 10:
                now[0] = T0 + dt + then * NS // 4
                assert _key(agg.flush(now[0])) == _key(ref.flush(now[0]))
                assert _key(snap.flush(now[0])) == _key(ref_snap.flush(now[0]))
        assert _key(agg.flush_all()) == _key(ref.flush_all())
        assert agg.late == ref.late
    finally:
        stats_mod.FOLD_ROWS = saved


def test_sum_adds_in_arrival_order() -> None:
    """0.1 + 0.2 + 0.3 differs from 0.1 + (0.2 + 0.3): the buffered rows are
    added one after the other, as a loop would."""
    agg = StatsAggregator(WINDOW_S, clock=lambda: T0)
    ref = RefStats(WINDOW_S, 5, lambda: T0)
    for i, v in enumerate([1e16, 1.0, 1.0, -1e16, 0.1, 0.2, 0.3]):
        r = Record(RecordKind.SAMPLE, "d", T0 + i, ["p"], [v], [""], [G])
        agg.add(r)
        ref.add(r)
    assert _key(agg.flush_all()) == _key(ref.flush_all())


def _both(records: list[Record], fold_rows: int = 64) -> None:
    saved = stats_mod.FOLD_ROWS
    stats_mod.FOLD_ROWS = fold_rows
    try:
        agg = StatsAggregator(WINDOW_S, clock=lambda: T0)
        ref = RefStats(WINDOW_S, 5, lambda: T0)
        for r in records:
            agg.add(r)
            ref.add(r)
        assert _key(agg.flush_all()) == _key(ref.flush_all())
    finally:
        stats_mod.FOLD_ROWS = saved


def _r(
    ts: int, points: tuple[str, ...], values: list[object], q: list[Quality] | None = None
) -> Record:
    n = len(points)
    return Record(RecordKind.SAMPLE, "d", T0 + ts, list(points), values, [""] * n, q or [G] * n)  # type: ignore[arg-type]


def test_signed_zero_min_max_keep_the_first() -> None:
    _both([_r(1, ("p",), [0.0]), _r(2, ("p",), [-0.0]), _r(3, ("p",), [0.0])], fold_rows=2)
    _both([_r(1, ("p",), [-0.0]), _r(2, ("p",), [0.0]), _r(3, ("p",), [-0.0])], fold_rows=2)
    for fold_rows in (1, 2, 64):
        for zeros in ([0.0, 0.0, -0.0, -0.0], [-0.0, -0.0, 0.0, 0.0]):
            _both([_r(i, ("p",), [z]) for i, z in enumerate(zeros)], fold_rows)


def test_overlapping_point_sets_add_in_arrival_order() -> None:
    big = 1e16  # 1e16 + 1 == 1e16: the order of the additions shows
    records = [
        _r(1, ("a", "b"), [big, 0.0]),
        _r(2, ("a",), [1.0]),
        _r(3, ("a",), [1.0]),
        _r(4, ("a", "b"), [-big, 0.0]),
    ]
    _both(records, fold_rows=2)
    _both(records, fold_rows=3)


def test_value_by_value_records_come_after_the_buffered_rows() -> None:
    big = 1e16
    records = [
        _r(1, ("a", "b"), [big, 0.0]),
        _r(2, ("a", "b"), [1.0, 0.0], [G, Quality.BAD]),  # not all good: one by one
        _r(3, ("a", "b"), [1.0, 0.0], [G, Quality.BAD]),
        _r(4, ("a", "b"), [-big, 0.0]),
    ]
    _both(records)

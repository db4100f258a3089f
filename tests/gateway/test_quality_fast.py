"""The fast paths of ``DeviceRecorder.values_record`` and
``ReportByException.record_plain_numbers`` against the straightforward
implementation they replaced (kept here as the reference)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.errors import DecodeError, DeviceTimeout
from drivers.types import DataType, PointSpec, RegisterKind, Value
from gateway.metrics import DeviceMetrics
from gateway.model import Quality, Record, RecordKind
from gateway.quality import DeviceRecorder, finite_floats
from gateway.rbe import RbePolicy, ReportByException

NS = 1_000_000_000

# -- reference: the value-by-value implementation -------------------------


@dataclass
class _Last:
    value: Value | None
    quality: Quality
    ts_ns: int


def _changed(old: Value | None, new: Value | None, deadband: float) -> bool:
    if old is None or new is None:
        return old is not new
    if isinstance(old, bool | str) or isinstance(new, bool | str):
        return old != new or type(old) is not type(new)
    return abs(float(new) - float(old)) > deadband


class RefRbe:
    def __init__(self, policies: dict[str, RbePolicy]) -> None:
        self.policies = policies
        self.last: dict[str, _Last] = {}

    def should_record(self, point: str, value: Value | None, quality: Quality, ts: int) -> bool:
        policy = self.policies.get(point, RbePolicy())
        last = self.last.get(point)
        record = (
            last is None
            or quality != last.quality
            or _changed(last.value, value, policy.deadband)
            or (policy.max_interval_ns is not None and ts - last.ts_ns >= policy.max_interval_ns)
        )
        if record:
            self.last[point] = _Last(value, quality, ts)
        return record


def judge(value: object) -> tuple[Value | None, Quality]:
    if isinstance(value, Exception) or value is None:
        return None, Quality.BAD
    if isinstance(value, float) and not math.isfinite(value):
        return None, Quality.BAD
    return value, Quality.GOOD  # type: ignore[return-value]


class RefRecorder:
    def __init__(
        self,
        points: tuple[PointSpec, ...],
        stale_after_s: Mapping[str, float],
        observe: Callable[[Record], None],
    ) -> None:
        self.points = {p.name: p for p in points}
        self.stale_after_ns = {k: int(v * NS) for k, v in stale_after_s.items() if v > 0}
        self.observe = observe
        self.readings = 0
        self.rbe = RefRbe(
            {
                p.name: RbePolicy(p.deadband, int(p.max_interval * NS) if p.max_interval else None)
                for p in points
            }
        )
        self.frozen: dict[str, tuple[object, int]] = {}

    def values_record(self, ts: int, readings: Mapping[str, object]) -> Record | None:
        full = Record(RecordKind.SAMPLE, "d", ts, [], [], [], [])
        for name, raw in readings.items():
            spec = self.points.get(name)
            if spec is None:
                continue
            value, quality = judge(raw)
            if quality is Quality.GOOD and self._stale(name, value, ts):
                quality = Quality.STALE
            full.points.append(name)
            full.values.append(value)
            full.units.append(spec.unit)
            full.qualities.append(quality)
        self.readings += len(full.points)
        if full.points:
            self.observe(full)
        keep = [
            i
            for i, n in enumerate(full.points)
            if self.rbe.should_record(n, full.values[i], full.qualities[i], ts)
        ]
        if not keep:
            return None
        return Record(
            RecordKind.SAMPLE,
            "d",
            ts,
            [full.points[i] for i in keep],
            [full.values[i] for i in keep],
            [full.units[i] for i in keep],
            [full.qualities[i] for i in keep],
        )

    def _stale(self, name: str, value: object, ts: int) -> bool:
        limit = self.stale_after_ns.get(name)
        if limit is None:
            return False
        frozen = self.frozen.get(name)
        if frozen is None or frozen[0] != value:
            self.frozen[name] = (value, ts)
            return False
        return ts - frozen[1] > limit

    def comm_loss(self, ts: int) -> None:
        self.frozen.clear()
        for name in self.points:
            self.rbe.should_record(name, None, Quality.COMM_LOSS, ts)


# -- the cases --------------------------------------------------------------

numbers = st.one_of(
    st.integers(-5, 5),
    st.sampled_from([0.0, -0.0, 1.0, 1.5, 2**53 + 1, 2**60, 2**60 + 1, 1e308, -1e308]),
    st.floats(-3, 3).map(lambda f: round(f, 1)),
)
odd = st.sampled_from(
    [math.nan, math.inf, -math.inf, True, False, "A", "", None, 10**400, DecodeError("x")]
)
value_st = st.one_of(numbers, numbers, numbers, odd)


def _points(plain: list[bool]) -> tuple[PointSpec, ...]:
    out = []
    for i, p in enumerate(plain):
        kw: dict[str, object] = {}
        if not p:
            kw = [{"deadband": 0.5}, {"max_interval": 2.0}, {"deadband": 0.0}][i % 3]
        out.append(PointSpec(f"p{i}", RegisterKind.HOLDING, i, DataType.INT16, unit=f"u{i}", **kw))
    return tuple(out)


step = st.tuples(
    st.sampled_from(["read", "read", "read", "loss"]),
    st.integers(0, 3),  # which request
    st.lists(value_st, min_size=6, max_size=6),
    st.booleans(),  # all values the same as the previous read of the request
    st.integers(0, 3),  # seconds to the next step
)


@settings(max_examples=300, deadline=None)
@given(
    plain=st.lists(st.sampled_from([True, True, True, False]), min_size=6, max_size=6),
    stale=st.sets(st.integers(0, 5), max_size=2),
    prepare=st.booleans(),
    numbers_only=st.booleans(),
    steps=st.lists(step, max_size=25),
)
def test_recorder_matches_reference(
    plain: list[bool],
    stale: set[int],
    prepare: bool,
    numbers_only: bool,
    steps: list[tuple[str, int, list[object], bool, int]],
) -> None:
    points = _points(plain)
    stale_s = {f"p{i}": 3.0 for i in stale}
    # requests: two halves, the whole device, and an unknown key mixed in
    requests = [("p0", "p1", "p2"), ("p3", "p4", "p5"), tuple(f"p{i}" for i in range(6))]
    requests.append(("p5", "zz", "p4"))
    got_seen: list[Record] = []
    ref_seen: list[Record] = []
    rec = DeviceRecorder("d", points, stale_s, 1, DeviceMetrics(), got_seen.append)
    if prepare:
        for r in requests[:2]:
            rec.prepare(r)
    ref = RefRecorder(points, stale_s, ref_seen.append)
    ts = 0
    previous: dict[int, list[object]] = {}
    for kind, which, raw, repeat, dt in steps:
        ts += dt * NS
        if kind == "loss":
            rec.cycle_failed(ts, DeviceTimeout("x"))
            rec.cycle_ok(ts)
            ref.comm_loss(ts)
            ref_seen.append(got_seen[-1])  # the loss record itself is not compared here
            continue
        keys = requests[which]
        if numbers_only:
            raw = [v if isinstance(v, int | float) and not isinstance(v, bool) else 1 for v in raw]
            raw = [v if not isinstance(v, float) or math.isfinite(v) else 2.5 for v in raw]
        values = previous[which] if repeat and which in previous else raw[: len(keys)]
        previous[which] = values
        readings = dict(zip(keys, values, strict=True))
        got = _outcome(rec.values_record, ts, readings)
        want = _outcome(ref.values_record, ts, readings)
        if isinstance(want, type):
            assert got is want  # an int beyond float range, compared with a number
        else:
            assert not isinstance(got, type) and _same(got, want)
    assert len(got_seen) == len(ref_seen)
    assert all(_same(a, b) for a, b in zip(got_seen, ref_seen, strict=True))
    assert rec.stats.readings == ref.readings


def _outcome(
    fn: Callable[[int, dict[str, object]], Record | None], ts: int, readings: dict[str, object]
) -> Record | type | None:
    try:
        return fn(ts, readings)
    except OverflowError as exc:
        return type(exc)


def _same(a: Record | None, b: Record | None) -> bool:
    if a is None or b is None:
        return a is b
    return (a.kind, a.device, a.ts_ns, a.points, a.units, a.qualities) == (
        b.kind,
        b.device,
        b.ts_ns,
        b.points,
        b.units,
        b.qualities,
    ) and [(type(x), repr(x)) for x in a.values] == [(type(x), repr(x)) for x in b.values]


@settings(max_examples=300, deadline=None)
@given(
    batches=st.lists(
        st.tuples(
            st.lists(numbers, min_size=4, max_size=4),
            st.lists(st.tuples(st.integers(0, 3), value_st, st.sampled_from(list(Quality)))),
        ),
        max_size=15,
    )
)
def test_rbe_batch_matches_should_record(
    batches: list[tuple[list[Value], list[tuple[int, Value | None, Quality]]]],
) -> None:
    """Batches of plain numbers interleaved with single decisions of any value
    and quality (NaN, bools, strings included) give the reference's answers."""
    names = ["a", "b", "c", "d"]
    rbe = ReportByException({})
    ref = RefRbe({})
    rbe.slots(names)
    ts = 0
    for values, singles in batches:
        ts += NS
        floats = finite_floats(values)  # type: ignore[arg-type]
        if floats is not None:
            try:
                keep: object = rbe.record_plain_numbers(0, values, floats, ts)
            except (OverflowError, TypeError) as exc:  # after an odd GOOD value
                keep = type(exc)
            try:
                expect: object = [
                    j
                    for j, v in enumerate(values)
                    if ref.should_record(names[j], v, Quality.GOOD, ts)
                ]
            except (OverflowError, TypeError) as exc:
                expect = type(exc)
            assert (list(range(4)) if keep is None else keep) == expect
        for j, v, q in singles:
            try:
                want: object = ref.should_record(names[j], v, q, ts)
            except (OverflowError, TypeError) as exc:
                want = type(exc)
            try:
                got: object = rbe.should_record(names[j], v, q, ts)
            except (OverflowError, TypeError) as exc:
                got = type(exc)
            assert got == want


def test_finite_floats() -> None:
    assert finite_floats([1, 2.5, -0.0]) == [1.0, 2.5, -0.0]
    for bad in ([1, math.nan], [math.inf], [True], ["1"], [None], [10**400], [1e308, 1e308]):
        assert finite_floats(bad) is None  # type: ignore[arg-type]


def test_plain_numbers_take_the_fast_path(monkeypatch: object) -> None:
    points = _points([True] * 6)
    rec = DeviceRecorder("d", points, {}, 1, DeviceMetrics())
    rec.prepare(["p0", "p1", "p2"])
    rec.cycle_failed(0, DeviceTimeout("x"))  # slots of every point taken
    calls = []
    slow = rec._one_by_one
    rec._one_by_one = lambda *a: calls.append(a) or slow(*a)  # type: ignore[method-assign]
    r = rec.values_record(NS, {"p0": 1, "p1": 2.5, "p2": -3})
    assert r is not None and r.values == [1, 2.5, -3] and r.qualities == [Quality.GOOD] * 3
    assert rec.values_record(2 * NS, {"p0": 1, "p1": 2.5, "p2": -3}) is None
    r = rec.values_record(3 * NS, {"p0": 1, "p1": 2.0, "p2": -3})
    assert r is not None and r.points == ["p1"] and r.units == ["u1"]
    assert calls == []
    assert rec.values_record(4 * NS, {"p0": 1, "p1": math.nan, "p2": -3}) is not None
    assert len(calls) == 1

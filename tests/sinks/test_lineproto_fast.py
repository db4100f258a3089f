"""LineEncoder writes a SAMPLE/SNAPSHOT record of good finite numbers from a
template of its layout; the line must be byte for byte what the per-value
loop writes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import gateway.sinks.lineproto as lp
from gateway.model import Quality, Record, RecordKind
from gateway.sinks.lineproto import LineEncoder

number = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e300, 1e-300, 0.1, 2.0**63, 2**63, 10**400]),
)
other = st.sampled_from([math.nan, math.inf, True, False, None, "txt"])
names = st.sampled_from(["a", "b c", "d,e", "f=g", "h%s", "%%", "i\\"])


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(number, number, number, other), max_size=6),
    bad=st.sampled_from([None, Quality.BAD, Quality.STALE, "good"]),
    kind=st.sampled_from([RecordKind.SAMPLE, RecordKind.SNAPSHOT]),
    data=st.data(),
)
def test_fast_line_equals_the_loop(
    values: list[object], bad: object, kind: RecordKind, data: st.DataObject
) -> None:
    n = len(values)
    points = data.draw(st.lists(names, min_size=n, max_size=n, unique=True))
    quals: list[object] = [Quality.GOOD] * n
    if bad is not None and n:
        quals[data.draw(st.integers(0, n - 1))] = bad
    rec = Record(kind, "dev 1", 1_764_000_000_123_456_789, points, values, [""] * n, quals)  # type: ignore[arg-type]
    enc = LineEncoder("site", "gw")
    fast = enc.encode(rec)
    again = enc.encode(rec)  # the cached template
    saved = lp._good_finite_floats
    lp._good_finite_floats = lambda record: None  # type: ignore[assignment]
    try:
        slow = LineEncoder("site", "gw").encode(rec)
    finally:
        lp._good_finite_floats = saved
    assert fast == slow == again


def test_template_follows_the_layout() -> None:
    enc = LineEncoder("s", "g")
    g = Quality.GOOD
    a = enc.encode(Record(RecordKind.SAMPLE, "d", 1, ["x", "y"], [1, 2.5], ["", ""], [g, g]))
    b = enc.encode(Record(RecordKind.SAMPLE, "d", 2, ["y"], [3], [""], [g]))
    assert a == ["telemetry,device=d,gateway=g,site=s x=1.0,y=2.5 1"]
    assert b == ["telemetry,device=d,gateway=g,site=s y=3.0 2"]

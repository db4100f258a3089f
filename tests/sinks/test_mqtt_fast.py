"""MqttEncoder.fast_body writes a record of good finite numbers in one
C-level pass; the text must be byte for byte what the per-value loop writes."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

import gateway.sinks.mqtt_schema as schema
from gateway.model import Quality, Record, RecordKind
from gateway.sinks.mqtt_schema import MqttEncoder

number = st.one_of(
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([0.0, -0.0, 1e300, 1e-300, 0.1, 2.0**63]),
)
other = st.sampled_from([math.nan, math.inf, True, False, None, "txt", 10**400])


@settings(max_examples=300, deadline=None)
@given(
    values=st.lists(st.one_of(number, number, number, other), max_size=8),
    bad=st.sampled_from([None, Quality.BAD, Quality.STALE, "good"]),
    data=st.data(),
)
def test_fast_text_equals_the_loop(values: list[object], bad: object, data: st.DataObject) -> None:
    n = len(values)
    quals: list[object] = [Quality.GOOD] * n
    if bad is not None and n:
        quals[data.draw(st.integers(0, n - 1))] = bad
    units = [data.draw(st.sampled_from(["", "%", 'a"b'])) for _ in range(n)]
    rec = Record(
        RecordKind.SAMPLE, "dev/1", 1_764_000_000_123_456_789, [f"p{i}" for i in range(n)],
        values, units, quals, seq=7,  # type: ignore[arg-type]
    )  # fmt: skip
    fast = MqttEncoder("root", "s", "g").fast_body(rec)
    saved = schema._good_finite_numbers
    schema._good_finite_numbers = lambda record: False  # type: ignore[assignment]
    try:
        slow = MqttEncoder("root", "s", "g").fast_body(rec)
    finally:
        schema._good_finite_numbers = saved
    assert fast == slow


def test_fast_path_is_taken_for_good_numbers() -> None:
    rec = Record(RecordKind.SAMPLE, "d", 0, ["a", "b"], [1, 2.5], ["", ""], [Quality.GOOD] * 2)
    assert schema._good_finite_numbers(rec)
    rec.values = [1, math.inf]
    assert not schema._good_finite_numbers(rec)
    rec.values = [1.5, 10**400]
    assert not schema._good_finite_numbers(rec)
    rec.values = [1, True]
    assert not schema._good_finite_numbers(rec)
    rec.values = [1, 2]
    rec.qualities = [Quality.GOOD]  # lengths differ: the loop raises, as before
    assert not schema._good_finite_numbers(rec)

"""Round trips of the store's payload codec (gateway.store.codec)."""

from __future__ import annotations

import enum
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.model import Quality
from gateway.store.codec import (
    PayloadError,
    decode_fields,
    decode_one,
    decode_payload,
    encode_fields,
    encode_payload,
)

values_st = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)


def same(a: object, b: object) -> bool:
    """Equal with the same type; NaN equals NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


@given(
    st.lists(
        st.tuples(st.integers(0, 2**32 - 1), values_st, st.sampled_from(list(Quality))),
        max_size=40,
    )
)
def test_round_trip_preserves_values_types_and_qualities(
    items: list[tuple[int, object, Quality]],
) -> None:
    ids = [i for i, _, _ in items]
    values = [v for _, v, _ in items]
    qualities = [q for _, _, q in items]
    got_ids, got_values, got_qualities = decode_payload(encode_payload(ids, values, qualities))  # type: ignore[arg-type]
    assert got_ids == ids
    assert got_qualities == qualities
    assert all(same(a, b) for a, b in zip(values, got_values, strict=True))


@given(
    st.lists(st.tuples(values_st, st.sampled_from(list(Quality))), min_size=1, max_size=20),
    st.data(),
)
def test_decode_one_matches_full_decode(
    items: list[tuple[object, Quality]], data: st.DataObject
) -> None:
    ids = list(range(100, 100 + len(items)))
    blob = encode_payload(ids, [v for v, _ in items], [q for _, q in items])  # type: ignore[misc]
    k = data.draw(st.integers(0, len(items) - 1))
    found = decode_one(blob, frozenset({ids[k]}))
    assert found is not None
    name_id, value, quality = found
    assert name_id == ids[k] and quality == items[k][1] and same(value, items[k][0])
    assert decode_one(blob, frozenset({7})) is None


def test_all_float_all_good_payload_is_compact() -> None:
    blob = encode_payload(list(range(100)), [float(i) for i in range(100)], [Quality.GOOD] * 100)
    assert len(blob) == 5 + 2 * 100 + 8 * 100  # u16 ids, no tags, no qualities


def test_subclasses_are_stored_as_plain_values() -> None:
    class Mode(enum.StrEnum):
        AUTO = "auto"

    class MyFloat(float):
        pass

    _, values, _ = decode_payload(
        encode_payload([1, 2], [Mode.AUTO, MyFloat(2.5)], [Quality.GOOD] * 2)
    )
    assert values == ["auto", 2.5]
    assert type(values[0]) is str and type(values[1]) is float


@pytest.mark.parametrize("bad", [[1, 2], {"a": 1}, b"raw", object()])
def test_unsupported_value_raises_type_error(bad: object) -> None:
    with pytest.raises(TypeError, match="cannot be stored"):
        encode_payload([1], [bad], [Quality.GOOD])  # type: ignore[list-item]


def test_mismatched_lengths_raise() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        encode_payload([1, 2], [1.0], [Quality.GOOD])


def test_damaged_payload_raises_payload_error() -> None:
    blob = encode_payload([1, 2, 3], [1.0, 2.0, 3.0], [Quality.GOOD] * 3)
    with pytest.raises(PayloadError):
        decode_payload(blob[:9])
    with pytest.raises(PayloadError):
        decode_payload(b"")


def test_fields_round_trip_and_empty_is_null() -> None:
    fields = {"max": 1.5, "count": 3, "note": "ok", "nested": {"a": [1, None]}}
    assert encode_fields({}) is None
    assert decode_fields(None) == {}
    assert decode_fields(encode_fields(fields)) == fields
    with pytest.raises(TypeError):
        encode_fields({"when": object()})

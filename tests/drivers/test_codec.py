"""Codec: known vectors from the Modbus convention, round trips for every
type x order, scale/offset, strings, bits, and the block decoder."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import BlockDecoder, decode, decode_bits, encode, merge_bit
from drivers.errors import DecodeError
from drivers.types import DataType, PointSpec, RegisterKind, WordOrder

H = RegisterKind.HOLDING


def spec(dtype: DataType, order: WordOrder = WordOrder.ABCD, **kw: object) -> PointSpec:
    return PointSpec("p", kw.pop("kind", H), kw.pop("address", 0), dtype, order, **kw)  # type: ignore[arg-type]


# Byte layouts written down by hand from the order definitions: A..H are the
# value's bytes, most significant first; each register is big-endian on the wire.
U32 = 0x12345678
U64 = 0x0102030405060708
KNOWN = [
    (DataType.FLOAT32, WordOrder.ABCD, 123.456, [0x42F6, 0xE979]),
    (DataType.FLOAT32, WordOrder.CDAB, 123.456, [0xE979, 0x42F6]),
    (DataType.FLOAT32, WordOrder.BADC, 123.456, [0xF642, 0x79E9]),
    (DataType.FLOAT32, WordOrder.DCBA, 123.456, [0x79E9, 0xF642]),
    (DataType.FLOAT32, WordOrder.ABCD, 1.0, [0x3F80, 0x0000]),
    (DataType.FLOAT32, WordOrder.ABCD, -2.5, [0xC020, 0x0000]),
    (DataType.UINT32, WordOrder.ABCD, U32, [0x1234, 0x5678]),
    (DataType.UINT32, WordOrder.CDAB, U32, [0x5678, 0x1234]),
    (DataType.UINT32, WordOrder.BADC, U32, [0x3412, 0x7856]),
    (DataType.UINT32, WordOrder.DCBA, U32, [0x7856, 0x3412]),
    (DataType.INT32, WordOrder.ABCD, -2, [0xFFFF, 0xFFFE]),
    (DataType.INT32, WordOrder.CDAB, -2, [0xFFFE, 0xFFFF]),
    (DataType.INT32, WordOrder.DCBA, -2, [0xFEFF, 0xFFFF]),
    (DataType.UINT64, WordOrder.ABCD, U64, [0x0102, 0x0304, 0x0506, 0x0708]),
    (DataType.UINT64, WordOrder.CDAB, U64, [0x0708, 0x0506, 0x0304, 0x0102]),
    (DataType.UINT64, WordOrder.BADC, U64, [0x0201, 0x0403, 0x0605, 0x0807]),
    (DataType.UINT64, WordOrder.DCBA, U64, [0x0807, 0x0605, 0x0403, 0x0201]),
    (DataType.INT64, WordOrder.ABCD, -1, [0xFFFF] * 4),
    (DataType.FLOAT64, WordOrder.ABCD, 1.0, [0x3FF0, 0, 0, 0]),
    (DataType.FLOAT64, WordOrder.CDAB, 1.0, [0, 0, 0, 0x3FF0]),
    (DataType.FLOAT64, WordOrder.DCBA, 1.0, [0, 0, 0, 0xF03F]),
    (DataType.INT16, WordOrder.ABCD, -1, [0xFFFF]),
    (DataType.INT16, WordOrder.ABCD, -300, [0xFED4]),
    (DataType.INT16, WordOrder.BADC, -300, [0xD4FE]),
    (DataType.UINT16, WordOrder.ABCD, 0x1234, [0x1234]),
    (DataType.UINT16, WordOrder.CDAB, 0x1234, [0x1234]),
    (DataType.UINT16, WordOrder.BADC, 0x1234, [0x3412]),
    (DataType.UINT16, WordOrder.DCBA, 0x1234, [0x3412]),
]


@pytest.mark.parametrize(("dtype", "order", "value", "registers"), KNOWN)
def test_known_vectors(
    dtype: DataType, order: WordOrder, value: float, registers: list[int]
) -> None:
    s = spec(dtype, order)
    assert encode(value, s) == registers
    decoded = decode(registers, s)
    if dtype is DataType.FLOAT32:
        assert decoded == pytest.approx(value, rel=1e-7)
    else:
        assert decoded == value
        assert type(decoded) is type(value)


INT_TYPES = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize("dtype", list(INT_TYPES))
@given(data=st.data())
def test_integer_round_trip(dtype: DataType, order: WordOrder, data: st.DataObject) -> None:
    low, high = INT_TYPES[dtype]
    value = data.draw(st.integers(low, high))
    s = spec(dtype, order)
    regs = encode(value, s)
    assert len(regs) == s.width and all(0 <= r <= 0xFFFF for r in regs)
    assert decode(regs, s) == value


@pytest.mark.parametrize("order", list(WordOrder))
@pytest.mark.parametrize(("dtype", "width"), [(DataType.FLOAT32, 32), (DataType.FLOAT64, 64)])
@given(data=st.data())
def test_float_round_trip(
    dtype: DataType, width: int, order: WordOrder, data: st.DataObject
) -> None:
    value = data.draw(st.floats(width=width, allow_nan=False))  # type: ignore[arg-type]
    s = spec(dtype, order)
    assert decode(encode(value, s), s) == value


@pytest.mark.parametrize("order", list(WordOrder))
@given(regs=st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4))
def test_registers_round_trip_through_value(order: WordOrder, regs: list[int]) -> None:
    # Every bit pattern survives decode -> encode (except NaN payloads, which
    # Python floats may canonicalise): no order loses or moves a byte.
    for dtype in (DataType.UINT64, DataType.INT64):
        s = spec(dtype, order)
        assert encode(decode(regs, s), s) == regs
    for dtype in (DataType.UINT32, DataType.INT32):
        s = spec(dtype, order)
        assert encode(decode(regs[:2], s), s) == regs[:2]


@pytest.mark.parametrize("order", list(WordOrder))
def test_nan_and_inf_decode_as_they_are(order: WordOrder) -> None:
    s = spec(DataType.FLOAT32, order)
    assert math.isnan(decode(encode(float("nan"), s), s))  # type: ignore[arg-type]
    assert decode(encode(float("inf"), s), s) == float("inf")
    s64 = spec(DataType.FLOAT64, order)
    assert decode(encode(float("-inf"), s64), s64) == float("-inf")


def test_scale_and_offset() -> None:
    s = spec(DataType.INT16, scale=0.1, offset=-40.0)
    value = decode([625], s)
    assert isinstance(value, float)
    assert value == pytest.approx(625 * 0.1 - 40.0)
    assert encode(value, s) == [625]
    # identity scale keeps integers as int
    assert type(decode([625], spec(DataType.INT16))) is int
    # integer with a scale rounds to the nearest raw value on encode
    assert encode(22.46, spec(DataType.UINT16, scale=0.1)) == [225]


def test_encode_out_of_range_raises() -> None:
    with pytest.raises(ValueError, match="outside uint16 range"):
        encode(70000, spec(DataType.UINT16))
    with pytest.raises(ValueError, match="outside int16 range"):
        encode(-40000, spec(DataType.INT16))
    with pytest.raises(ValueError, match="float32"):
        encode(1e300, spec(DataType.FLOAT32))


@pytest.mark.parametrize("order", list(WordOrder))
@given(text=st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=8))
def test_string_round_trip(order: WordOrder, text: str) -> None:
    s = spec(DataType.STRING, order, length=4)
    regs = encode(text, s)
    assert len(regs) == 4
    assert decode(regs, s) == text


def test_string_layout_and_trimming() -> None:
    s = spec(DataType.STRING, length=3)
    assert encode("ABC", s) == [0x4142, 0x4300, 0x0000]
    assert decode([0x4142, 0x4320, 0x2020], s) == "ABC"
    assert decode([0x4241, 0x0043, 0], spec(DataType.STRING, WordOrder.BADC, length=3)) == "ABC"
    with pytest.raises(ValueError, match="does not fit"):
        encode("ABCDEFG", s)


@pytest.mark.parametrize("bit", range(16))
def test_bit_of_register(bit: int) -> None:
    s = spec(DataType.BIT, bit=bit)
    assert decode([1 << bit], s) is True
    assert decode([0xFFFF ^ (1 << bit)], s) is False
    assert encode(True, s) == [1 << bit]
    swapped = spec(DataType.BIT, WordOrder.BADC, bit=bit)
    assert decode(encode(True, swapped), swapped) is True
    # with a byte swap, value bit n travels as wire bit n ^ 8
    assert decode([1 << (bit ^ 8)], swapped) is True
    assert decode([1 << bit], swapped) is False


def test_merge_bit_and_bool() -> None:
    word = merge_bit(merge_bit(0, 3, True), 15, True)
    assert word == 0x8008
    assert merge_bit(word, 3, False) == 0x8000
    assert decode([0], spec(DataType.BOOL)) is False
    assert decode([7], spec(DataType.BOOL)) is True


def test_coil_and_discrete_bits() -> None:
    coil = PointSpec("c", RegisterKind.COIL, 10, DataType.BIT)
    assert decode([1], coil) is True
    assert encode(False, coil) == [0]
    assert decode_bits([False, False, True], coil, start=8) is True
    with pytest.raises(DecodeError, match="outside"):
        decode_bits([True], coil, start=0)


def test_wrong_register_count_is_decode_error() -> None:
    with pytest.raises(DecodeError, match="needs 2 register"):
        decode([1], spec(DataType.FLOAT32))
    with pytest.raises(DecodeError, match=r"0\.\.65535"):
        decode([70000, 0], spec(DataType.UINT32))


@given(regs=st.lists(st.integers(0, 0xFFFF), min_size=20, max_size=20))
def test_block_decoder_matches_per_point_decode(regs: list[int]) -> None:
    points = [
        (PointSpec(f"p{dt}{o}", H, 0, dt, o, scale=s), off)
        for off, (dt, o, s) in enumerate(
            (dt, o, s)
            for dt in (DataType.INT32, DataType.FLOAT32, DataType.UINT64, DataType.INT16)
            for o in WordOrder
            for s in (1.0,)
        )
        if off + PointSpec("x", H, 0, dt).width <= 20
    ]
    points += [
        (PointSpec("bit", H, 0, DataType.BIT, WordOrder.DCBA, bit=9), 3),
        (PointSpec("flag", H, 0, DataType.BOOL), 4),
        (PointSpec("scaled", H, 0, DataType.INT16, scale=0.5, offset=1.0), 5),
        (PointSpec("name", H, 0, DataType.STRING, length=3), 6),
    ]
    out = BlockDecoder(20, points).decode(regs)
    for p, off in points:
        expected = decode(regs[off : off + p.width], p)
        got = out[p.name]
        if isinstance(expected, float) and math.isnan(expected):
            assert isinstance(got, float) and math.isnan(got)
        else:
            assert got == expected


def test_block_decoder_isolates_bad_registers() -> None:
    a = PointSpec("a", H, 0, DataType.UINT16)
    b = PointSpec("b", H, 1, DataType.UINT16)
    out = BlockDecoder(2, [(a, 0), (b, 1)]).decode([5, 70000])
    assert out["a"] == 5
    assert isinstance(out["b"], DecodeError)
    short = BlockDecoder(2, [(a, 0)]).decode([5])
    assert isinstance(short["a"], DecodeError)


CASES = tomllib.loads((Path(__file__).parent / "cases" / "codec_vectors.toml").read_text())["case"]


@pytest.mark.parametrize("case", CASES, ids=[c["what"] for c in CASES])
def test_regression_vectors(case: dict[str, Any]) -> None:
    spec = PointSpec(
        "p",
        H,
        0,
        DataType(case["type"]),
        WordOrder(case["order"]),
        length=int(case.get("length", 1)),
        bit=case.get("bit"),
        scale=float(case.get("scale", 1.0)),
        offset=float(case.get("offset", 0.0)),
    )
    registers = [int(word, 16) for word in case["registers"]]
    assert decode(registers, spec) == pytest.approx(case["value"])
    assert encode(case["value"], spec) == registers

"""BlockDecoder reads runs of neighbouring unscaled points of one type and
order with one unpack; it must give what per-point decoding gives."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.codec import BlockDecoder, decode
from drivers.errors import DecodeError
from drivers.types import DataType, PointSpec, RegisterKind, WordOrder

H = RegisterKind.HOLDING
NUMERIC = [
    DataType.INT16,
    DataType.UINT16,
    DataType.INT32,
    DataType.UINT32,
    DataType.INT64,
    DataType.UINT64,
    DataType.FLOAT32,
    DataType.FLOAT64,
]

point_st = st.tuples(
    st.sampled_from([*NUMERIC, *NUMERIC, DataType.BOOL, DataType.BIT, DataType.STRING]),
    st.sampled_from(list(WordOrder)),
    st.sampled_from([1.0, 1.0, 1.0, 0.5]),
    st.sampled_from([0, 0, 0, 0, 1, -1]),  # gap to the previous point (-1: overlap)
    st.booleans(),  # same type and order as the previous point
)


def _same(a: object, b: object) -> bool:
    if isinstance(a, DecodeError) or isinstance(b, DecodeError):
        return type(a) is type(b) and str(a) == str(b)
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    return type(a) is type(b) and a == b


@settings(max_examples=300, deadline=None)
@given(
    layout=st.lists(point_st, min_size=1, max_size=12),
    data=st.data(),
)
def test_runs_match_per_point_decode(
    layout: list[tuple[DataType, WordOrder, float, int, bool]], data: st.DataObject
) -> None:
    points: list[tuple[PointSpec, int]] = []
    off = 0
    prev: PointSpec | None = None
    for i, (dtype, order, scale, gap, same) in enumerate(layout):
        if same and prev is not None:
            dtype, order = prev.dtype, prev.order
        spec = PointSpec(
            f"p{i}", H, 0, dtype, order, length=2, bit=3 if dtype is DataType.BIT else None,
            scale=scale,
        )  # fmt: skip
        off = max(0, off + gap)
        points.append((spec, off))
        off += spec.width
        prev = spec
    count = off
    regs = data.draw(
        st.lists(
            st.one_of(st.integers(0, 0xFFFF), st.just(0x7FC0), st.just(0xFFFF)),
            min_size=count,
            max_size=count,
        )
    )
    if data.draw(st.booleans()) and regs:
        regs[data.draw(st.integers(0, count - 1))] = 70000  # out of range
    out = BlockDecoder(count, points).decode(regs)
    assert list(out) == [p.name for p, _ in points]
    for p, o in points:
        try:
            want: object = decode(regs[o : o + p.width], p)
        except DecodeError as exc:
            want = exc
        assert _same(out[p.name], want), (p, o, out[p.name], want)

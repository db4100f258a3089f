"""Poll planner: merging, gaps, limits, unmergeable devices, kinds, bits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.codec import encode
from drivers.errors import DecodeError
from drivers.plan import ReadRequest, build_plan, split_request
from drivers.types import DataType, PointSpec, RegisterKind, Value, WordOrder

H, INP, C, D = RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL, RegisterKind.DISCRETE


def reg(
    name: str, address: int, dtype: DataType = DataType.UINT16, kind: RegisterKind = H, **kw: object
) -> PointSpec:
    return PointSpec(name, kind, address, dtype, **kw)  # type: ignore[arg-type]


def spans(plan: object) -> list[tuple[str, int, int]]:
    return [(str(r.kind), r.address, r.count) for r in plan.requests]  # type: ignore[attr-defined]


def test_neighbours_merge_and_far_points_split() -> None:
    plan = build_plan(
        [reg("a", 0), reg("b", 1, DataType.FLOAT32), reg("c", 13), reg("d", 30)], max_gap=10
    )
    # a..b contiguous (0..2), c after a gap of 10 (3..12) merges, d after 16 does not
    assert spans(plan) == [("holding", 0, 14), ("holding", 30, 1)]
    assert [p.name for p in plan.requests[0].points] == ["a", "b", "c"]


def test_gap_exactly_max_gap_merges_one_more_does_not() -> None:
    assert len(build_plan([reg("a", 0), reg("b", 6)], max_gap=5).requests) == 1
    assert len(build_plan([reg("a", 0), reg("b", 7)], max_gap=5).requests) == 2
    assert len(build_plan([reg("a", 0), reg("b", 1)], max_gap=0).requests) == 1


def test_register_limit_exactly_125_and_126() -> None:
    exactly = [reg(f"r{i}", i) for i in range(125)]
    assert spans(build_plan(exactly)) == [("holding", 0, 125)]
    one_more = [*exactly, reg("r125", 125)]
    assert spans(build_plan(one_more)) == [("holding", 0, 125), ("holding", 125, 1)]
    # a float straddling the boundary moves to the next request whole
    straddle = [reg("low", 0), reg("f", 124, DataType.FLOAT32)]
    assert spans(build_plan(straddle)) == [("holding", 0, 1), ("holding", 124, 2)]


def test_lower_limit_for_fussy_devices() -> None:
    plan = build_plan([reg(f"r{i}", i) for i in range(50)], max_registers=20)
    assert spans(plan) == [("holding", 0, 20), ("holding", 20, 20), ("holding", 40, 10)]


def test_bits_limit_2000() -> None:
    coils = [reg(f"c{i}", i, DataType.BIT, kind=C) for i in range(2001)]
    assert spans(build_plan(coils)) == [("coil", 0, 2000), ("coil", 2000, 1)]
    plan = build_plan(coils[:50], max_bits=16)
    assert [r.count for r in plan.requests] == [16, 16, 16, 2]


def test_unmergeable_device_reads_only_contiguous_runs() -> None:
    points = [reg("a", 0), reg("b", 1, DataType.INT32), reg("c", 4), reg("d", 5)]
    assert spans(build_plan(points, merge=False)) == [("holding", 0, 3), ("holding", 4, 2)]
    assert spans(build_plan(points, merge=True)) == [("holding", 0, 6)]


def test_mixed_kinds_are_separate_requests_in_fixed_order() -> None:
    points = [
        reg("d0", 0, DataType.BIT, kind=D),
        reg("c0", 0, DataType.BOOL, kind=C),
        reg("i0", 0, kind=INP),
        reg("h0", 0),
        reg("i1", 1, DataType.FLOAT32, kind=INP),
    ]
    assert spans(build_plan(points)) == [
        ("holding", 0, 1),
        ("input", 0, 3),
        ("coil", 0, 1),
        ("discrete", 0, 1),
    ]


def test_overlapping_bits_share_one_request() -> None:
    points = [reg(f"alarm{b}", 7, DataType.BIT, bit=b) for b in range(16)] + [reg("word", 7)]
    plan = build_plan(points, merge=False)
    assert spans(plan) == [("holding", 7, 1)]
    values = plan.decode(plan.requests[0], [0b1000_0000_0000_0101])
    assert values["word"] == 0x8005
    assert [values[f"alarm{b}"] for b in range(16)] == [b in (0, 2, 15) for b in range(16)]


def test_point_wider_than_limit_is_named() -> None:
    with pytest.raises(ValueError, match="'serial_no'"):
        build_plan([reg("serial_no", 0, DataType.STRING, length=126)])
    with pytest.raises(ValueError, match="'serial_no'"):
        build_plan([reg("serial_no", 0, DataType.STRING, length=20)], max_registers=10)


def test_duplicate_names_and_bad_limits_rejected() -> None:
    with pytest.raises(ValueError, match="twice"):
        build_plan([reg("a", 0), reg("a", 1)])
    with pytest.raises(ValueError, match="max_registers"):
        build_plan([reg("a", 0)], max_registers=126)
    with pytest.raises(ValueError, match="max_gap"):
        build_plan([reg("a", 0)], max_gap=-1)


def test_decode_whole_request_and_isolate_failures() -> None:
    points = [
        reg("t", 10, DataType.FLOAT32, order=WordOrder.CDAB),
        reg("n", 12, DataType.INT16, scale=0.1),
        reg("s", 14, DataType.STRING, length=2),
    ]
    plan = build_plan(points)
    (req,) = plan.requests
    words = [0] * req.count
    wanted: dict[str, Value] = {"t": 21.5, "n": -12.3, "s": "OK"}
    for p in points:
        regs = encode(wanted[p.name], p)
        words[p.address - req.address : p.address - req.address + p.width] = regs
    values = plan.decode(req, words)
    assert values["t"] == 21.5
    assert values["n"] == pytest.approx(-12.3)
    assert values["s"] == "OK"
    words[2] = 1 << 20  # one corrupt register only spoils the point covering it
    values = plan.decode(req, words)
    assert isinstance(values["n"], DecodeError)
    assert values["t"] == 21.5 and values["s"] == "OK"


def test_bit_request_decode_tolerates_padding() -> None:
    points = [reg("c3", 3, DataType.BIT, kind=C), reg("c5", 5, DataType.BOOL, kind=C)]
    plan = build_plan(points)
    (req,) = plan.requests
    assert (req.address, req.count) == (3, 3)
    # pymodbus pads a bit response to a multiple of 8
    assert plan.decode(req, [True, False, False, False, False, False, False, False]) == {
        "c3": True,
        "c5": False,
    }
    short = plan.decode(req, [True])
    assert all(isinstance(v, DecodeError) for v in short.values())


def test_request_rejects_points_outside() -> None:
    with pytest.raises(ValueError, match="outside"):
        ReadRequest(H, 0, 2, (reg("f", 1, DataType.FLOAT32),))


@given(
    addresses=st.lists(st.integers(0, 2000), min_size=1, max_size=60, unique=True),
    widths=st.lists(st.sampled_from([1, 2, 4]), min_size=60, max_size=60),
    max_gap=st.integers(0, 20),
    max_registers=st.integers(4, 125),
    merge=st.booleans(),
)
def test_plan_invariants(
    addresses: list[int], widths: list[int], max_gap: int, max_registers: int, merge: bool
) -> None:
    dtypes = {1: DataType.UINT16, 2: DataType.FLOAT32, 4: DataType.FLOAT64}
    points = [reg(f"p{a}", a, dtypes[w]) for a, w in zip(addresses, widths, strict=False)]
    plan = build_plan(points, merge=merge, max_gap=max_gap, max_registers=max_registers)
    covered = [p.name for r in plan.requests for p in r.points]
    assert sorted(covered) == sorted(p.name for p in points)  # every point exactly once
    for r in plan.requests:
        assert 1 <= r.count <= max_registers
        for p in r.points:
            assert r.address <= p.address and p.address + p.width <= r.end
        # request starts and ends at a point: no useless registers at the edges
        assert r.address == min(p.address for p in r.points)
        assert r.end == max(p.address + p.width for p in r.points)
    for a, b in zip(plan.requests, plan.requests[1:], strict=False):
        if a.kind == b.kind:  # ordered by address within a kind
            assert a.address < b.address


def test_split_request_halves_down_to_overlapping_points() -> None:
    points = [
        reg("a", 0),
        reg("b", 1, DataType.FLOAT32),
        reg("s0", 5, DataType.BIT, bit=0),
        reg("s1", 5, DataType.BIT, bit=1),
        reg("c", 9),
    ]
    (req,) = build_plan(points, max_gap=10).requests
    first, second = split_request(req)  # type: ignore[misc]
    # runs: a | b | s0+s1 | c -> halves a, b and s0, s1, c
    assert (first.address, first.count, [p.name for p in first.points]) == (0, 3, ["a", "b"])
    assert (second.address, second.count) == (5, 5)
    assert [p.name for p in second.points] == ["s0", "s1", "c"]
    bits, last = split_request(second)  # type: ignore[misc]
    assert [p.name for p in bits.points] == ["s0", "s1"] and (bits.address, bits.count) == (5, 1)
    assert split_request(bits) is None  # the bits of one register stay one read
    assert split_request(last) is None
    words = list(range(10))
    merged = req.decode(words)
    assert {**first.decode(words[0:3]), **second.decode(words[5:10])} == merged

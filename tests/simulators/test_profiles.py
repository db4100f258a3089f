"""The built-in profiles as data: they load, they map to the physics, they
exercise what a gateway must handle, and docs/profiles.md matches them."""

from __future__ import annotations

from pathlib import Path

import pytest

from drivers.profile import builtin_profile_dir, find_profile, list_profiles
from drivers.types import DataType, RegisterKind, WordOrder
from simulators.profile_doc import BEGIN, END, render

DOC = Path(__file__).resolve().parents[2] / "docs" / "profiles.md"
EXPECTED = {
    "main_fan",
    "aux_fan",
    "drainage",
    "power_meter",
    "gas_monitor",
    "gas_ascii",
    "fire_water",
    "smoke",
    "hoist",
    "crusher",
}


def test_every_design_class_has_a_profile() -> None:
    assert EXPECTED <= set(list_profiles())
    for path in builtin_profile_dir().glob("*.toml"):
        assert find_profile(path.stem).name == path.stem


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_points_do_not_overlap_and_fit_one_read(name: str) -> None:
    profile = find_profile(name)
    if profile.protocol != "modbus":
        assert all(p.key for p in profile.points)
        return
    taken: dict[tuple[RegisterKind, int], str] = {}
    for p in profile.points:
        for address in range(p.address, p.address + p.width):
            other = taken.get((p.kind, address))
            # Only bit fields of one status word may share a register.
            assert other is None or p.dtype is DataType.BIT, f"{p.name} overlaps {other}"
            taken[(p.kind, address)] = p.name
        assert p.address + p.width <= 125 or p.kind.is_bit


def test_profiles_exercise_word_orders_scales_gaps_and_merge() -> None:
    points = [(name, p) for name in EXPECTED for p in find_profile(name).points]
    orders = {p.order for _, p in points if p.width > 1 and p.dtype is not DataType.STRING}
    assert {WordOrder.ABCD, WordOrder.CDAB, WordOrder.BADC, WordOrder.DCBA} <= orders
    power = find_profile("power_meter")
    assert {p.order for p in power.points if p.width > 1} == {WordOrder.CDAB}
    ch4 = next(p for p in find_profile("gas_monitor").points if p.name == "ch4")
    assert (ch4.dtype, ch4.scale, ch4.unit) == (DataType.UINT16, 0.01, "%")
    assert not find_profile("aux_fan").merge
    dtypes = {p.dtype for _, p in points}
    assert {DataType.UINT32, DataType.INT64, DataType.FLOAT64, DataType.STRING} <= dtypes
    bits = [p for p in power.points if p.dtype is DataType.BIT and p.kind is RegisterKind.HOLDING]
    assert len({p.address for p in bits}) == 1 and len(bits) >= 3
    assert all(p.deadband > 0 for _, p in points if p.unit and p.dtype is not DataType.STRING)


def test_docs_register_maps_are_generated_from_the_profiles() -> None:
    text = DOC.read_text(encoding="utf-8")
    start, end = text.index(BEGIN), text.index(END) + len(END)
    assert text[start:end] == render(), (
        "run: python -m simulators.profile_doc, paste into docs/profiles.md"
    )

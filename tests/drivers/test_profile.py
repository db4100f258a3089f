"""Profile loader: built-ins, the test profile, and every validation rule
with the file/line/point/key it must name."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from drivers.plan import build_plan
from drivers.profile import (
    ProfileError,
    builtin_profile_dir,
    find_profile,
    list_profiles,
    load_profile,
    parse_profile,
)
from drivers.types import DataType, RegisterKind, WordOrder

HERE = Path(__file__).resolve().parent
TEST_PROFILE = HERE / "profiles" / "test_pump.toml"


def test_every_builtin_profile_loads_and_plans() -> None:
    names = list_profiles()
    stems = sorted(p.stem for p in builtin_profile_dir().glob("*.toml"))
    assert names == stems and names
    for name in names:
        profile = find_profile(name)
        assert profile.name == name and profile.points
        if profile.protocol == "modbus":
            plan = build_plan(profile.points, merge=profile.merge, max_gap=profile.max_gap)
            assert sum(len(r.points) for r in plan.requests) == len(profile.points)


def test_test_profile_fields_and_defaults() -> None:
    profile = load_profile(TEST_PROFILE)
    assert (profile.name, profile.device_class, profile.merge, profile.max_gap) == (
        "test_pump",
        "drainage",
        False,
        4,
    )
    points = {p.name: p for p in profile.points}
    flow = points["flow"]
    assert (flow.kind, flow.address, flow.dtype, flow.order) == (
        RegisterKind.INPUT,
        0,
        DataType.FLOAT32,
        WordOrder.CDAB,
    )
    assert flow.max_interval == 60 and flow.deadband == 0.5 and flow.unit == "m3/h"
    assert flow.sim == "flow"  # sim defaults to the point name
    assert points["level"].sim == "sump_level" and points["level"].scale == 0.01
    assert points["running"].bit == 3 and points["running"].order is WordOrder.ABCD
    assert points["model"].width == 4
    start = points["start"]
    assert start.dtype is DataType.BIT and start.writable  # coils default to bit
    assert not flow.writable  # read-only unless said otherwise


def test_find_profile_by_name_path_and_extra_dirs(tmp_path: Path) -> None:
    assert find_profile(str(TEST_PROFILE)).name == "test_pump"
    assert find_profile("test_pump", extra_dirs=[HERE / "profiles"]).name == "test_pump"
    assert "test_pump" in list_profiles([HERE / "profiles"])
    with pytest.raises(ProfileError, match=r"available: .*main_fan"):
        find_profile("no_such_device")
    # a site directory overrides a built-in of the same name
    builtin = list_profiles()[0]
    override = tmp_path / f"{builtin}.toml"
    override.write_text(
        textwrap.dedent(f"""
        name = "{builtin}"
        description = "site copy"
        device_class = "power"
        [[points]]
        name = "x"
        kind = "holding"
        address = 1
        """)
    )
    assert find_profile(builtin, extra_dirs=[tmp_path]).description == "site copy"
    with pytest.raises(ProfileError, match="not found"):
        load_profile(tmp_path / "missing.toml")


HEAD = 'name = "p"\ndevice_class = "ventilation"\n'


def errors_of(body: str, **kw: object) -> str:
    with pytest.raises(ProfileError) as info:
        parse_profile(HEAD + textwrap.dedent(body), "site/p.toml", **kw)  # type: ignore[arg-type]
    return str(info.value)


def point(extra: str, name: str = "a") -> str:
    return f'[[points]]\nname = "{name}"\n{extra}\n'


def test_unknown_key_names_file_line_point_and_allowed_keys() -> None:
    msg = errors_of(
        point('kind = "holding"\naddress = 0') + point('kind = "input"\nadress = 3', "b")
    )
    assert msg.startswith("site/p.toml:10: point #1 ('b'): key 'adress': unknown key")
    assert "allowed: address," in msg


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (point("address = 0"), "point #0 ('a'): key 'kind': required for Modbus points"),
        (point('kind = "holding"'), "key 'address': required"),
        (point('kind = "holding"\naddress = 70000'), "key 'address': must be 0..65535"),
        (
            point('kind = "holding"\naddress = 400001'),
            "looks like a manual's reference to holding register 1 (4xxxx numbering starts at 1);"
            " its protocol address is 0: write address = 0",
        ),
        (point('kind = "holding"\naddress = 65535\ntype = "float32"'), "past 65535"),
        (
            point('kind = "holding"\naddress = 0\ntype = "bit"'),
            "key 'bit': type 'bit' on a register needs",
        ),
        (
            point('kind = "holding"\naddress = 0\ntype = "bit"\nbit = 16'),
            "key 'bit': must be 0..15",
        ),
        (
            point('kind = "holding"\naddress = 0\nbit = 2'),
            "only type 'bit' on a holding/input register",
        ),
        (point('kind = "coil"\naddress = 0\nbit = 2'), "key 'bit'"),
        (
            point('kind = "holding"\naddress = 0\ntype = "string"'),
            "key 'length': type 'string' needs",
        ),
        (point('kind = "holding"\naddress = 0\nlength = 2'), "only type 'string' takes 'length'"),
        (point('kind = "coil"\naddress = 0\ntype = "float32"'), "a coil holds one bit"),
        (point('kind = "discrete"\naddress = 0\norder = "CDAB"'), "has no byte order"),
        (point('kind = "input"\naddress = 0\nwritable = true'), "read-only in Modbus"),
        (point('kind = "holding"\naddress = 0\nscale = 0'), "key 'scale': must not be 0"),
        (point('kind = "holding"\naddress = 0\ndeadband = -1'), "key 'deadband': must be >= 0"),
        (point('kind = "holding"\naddress = 0\ntype = "float16"'), "key 'type'"),
        (point('kind = "holding"\naddress = 0\norder = "ACBD"'), "key 'order'"),
        (
            point('kind = "holding"\naddress = 0') + point('kind = "holding"\naddress = 1'),
            "duplicate of point #0",
        ),
        (point('kind = "holding"\naddress = 0\nkey = "X"'), "only ASCII points have a line key"),
        ("merge = true\n", "key 'points': required key is missing"),
        ("points = []\n", "has no [[points]]"),
        ("max_gap = 200\n" + point('kind = "holding"\naddress = 0'), "max_gap must be 0..124"),
        ("this is = not toml [", "not valid TOML"),
    ],
)
def test_validation_rules(body: str, expected: str) -> None:
    assert expected in errors_of(body)


def test_device_class_and_name_rules() -> None:
    body = point('kind = "holding"\naddress = 0')
    msg = parse_profile(HEAD + body, "x.toml")  # valid
    assert msg.name == "p"
    with pytest.raises(ProfileError, match="device_class 'bakery'"):
        parse_profile('name = "p"\ndevice_class = "bakery"\n' + body, "x.toml")
    with pytest.raises(ProfileError, match="must equal the file stem 'q'"):
        parse_profile(HEAD + body, "q.toml", expect_name="q")


def test_ascii_profiles_take_keys_not_registers() -> None:
    text = HEAD.replace("ventilation", "gas") + 'protocol = "ascii"\n'
    profile = parse_profile(text + point('key = "CH4"\nunit = "%"') + point("", "co"), "g.toml")
    ch4, co = profile.points
    assert ch4.key == "CH4" and co.key == "co" and ch4.dtype is DataType.FLOAT64
    with pytest.raises(ProfileError, match="key 'address': ASCII points have no register layout"):
        parse_profile(text + point("address = 3"), "g.toml")
    with pytest.raises(ProfileError, match="key 'writable': ASCII line sensors only talk"):
        parse_profile(text + point("writable = true"), "g.toml")
    with pytest.raises(ProfileError, match="read the same line key 'X'"):
        parse_profile(text + point('key = "X"') + point('key = "X"', "b"), "g.toml")


def test_all_problems_reported_at_once() -> None:
    msg = errors_of(
        point('kind = "holding"\naddress = -1')
        + point('kind = "coil"\naddress = 0\ntype = "int16"', "b")
    )
    assert len(msg.splitlines()) == 2


def test_manual_reference_hint_names_the_protocol_address() -> None:
    from drivers.profile import manual_reference_hint

    assert "protocol address is 0" in str(manual_reference_hint(RegisterKind.HOLDING, 40001))
    assert "protocol address is 99" in str(manual_reference_hint(RegisterKind.INPUT, 30100))
    assert "protocol address is 65535" in str(manual_reference_hint(RegisterKind.HOLDING, 465536))
    assert "discrete input 5" in str(manual_reference_hint(RegisterKind.DISCRETE, 10005))
    # plain addresses, another table's digit, coils (0xxxx looks like any number)
    assert manual_reference_hint(RegisterKind.HOLDING, 100) is None
    assert manual_reference_hint(RegisterKind.HOLDING, 30001) is None
    assert manual_reference_hint(RegisterKind.INPUT, 40001) is None
    assert manual_reference_hint(RegisterKind.COIL, 1) is None

"""Register-map tables of the built-in profiles, for ``docs/profiles.md``.

The tables in the document are generated from the profile files so they
cannot drift: ``python -m simulators.profile_doc`` prints them, and a test
checks the document holds exactly this text between its markers.
"""

from __future__ import annotations

from drivers.profile import find_profile, list_profiles
from drivers.types import DataType, DeviceProfile, PointSpec, RegisterKind

BEGIN = "<!-- BEGIN GENERATED REGISTER MAPS (python -m simulators.profile_doc) -->"
END = "<!-- END GENERATED REGISTER MAPS -->"

# Conventional 1-based references printed in device manuals.
_REFERENCE_BASE = {
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE: 10001,
    RegisterKind.INPUT: 30001,
    RegisterKind.HOLDING: 40001,
}


def _type(point: PointSpec) -> str:
    if point.dtype is DataType.STRING:
        return f"string[{point.length}]"
    if point.dtype is DataType.BIT and point.bit is not None and not point.kind.is_bit:
        return f"bit {point.bit}"
    return point.dtype.value


def _order(point: PointSpec) -> str:
    wide = point.width > 1 and point.dtype is not DataType.STRING
    return point.order.value if wide or point.order.value in ("BADC", "DCBA") else ""


def _num(value: float) -> str:
    return f"{value:g}"


def modbus_table(profile: DeviceProfile) -> list[str]:
    rows = [
        "| point | table | address | ref | type | order | scale | unit | deadband | notes |",
        "|---|---|---:|---:|---|---|---:|---|---:|---|",
    ]
    order = list(RegisterKind)
    for p in sorted(profile.points, key=lambda p: (order.index(p.kind), p.address, p.bit or 0)):
        notes = p.description
        if p.writable:
            notes += " (writable)"
        if p.sim and p.sim != p.name:
            notes += f" [sim: {p.sim}]"
        span = f"{p.address}" if p.width == 1 else f"{p.address}-{p.address + p.width - 1}"
        rows.append(
            f"| `{p.name}` | {p.kind.value} | {span} | {_REFERENCE_BASE[p.kind] + p.address:05d} "
            f"| {_type(p)} | {_order(p)} | {_num(p.scale) if p.scale != 1.0 else ''} | {p.unit} "
            f"| {_num(p.deadband) if p.deadband else ''} | {notes} |"
        )
    return rows


def ascii_table(profile: DeviceProfile) -> list[str]:
    rows = ["| point | key | type | unit | deadband | notes |", "|---|---|---|---|---:|---|"]
    for p in profile.points:
        rows.append(
            f"| `{p.name}` | `{p.key or p.name}` | {p.dtype.value} | {p.unit} "
            f"| {_num(p.deadband) if p.deadband else ''} | {p.description} |"
        )
    return rows


def render() -> str:
    """Every built-in profile's table, between the document's markers."""
    out = [BEGIN, ""]
    for name in list_profiles():
        profile = find_profile(name)
        merge = "yes" if profile.merge else "no: reads must not span unmapped registers"
        out += [
            f"### `{name}`: {profile.description}",
            "",
            f"Class `{profile.device_class}`, protocol `{profile.protocol}`"
            + (
                f", merge {merge}, max gap {profile.max_gap}."
                if profile.protocol == "modbus"
                else "."
            ),
            "",
        ]
        out += modbus_table(profile) if profile.protocol == "modbus" else ascii_table(profile)
        out.append("")
    out.append(END)
    return "\n".join(out)


if __name__ == "__main__":
    print(render())

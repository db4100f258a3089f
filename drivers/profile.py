"""Load device profiles (TOML data files) into frozen :class:`DeviceProfile`.

A profile describes one device model: its points (where they live, their
type, word order, scale, unit) and how the device likes to be read. The
file format is documented in ``docs/drivers.md``; a short example::

    name = "main_fan"
    description = "Main ventilation fan controller"
    device_class = "ventilation"
    protocol = "modbus"
    [[points]]
    name = "airflow"
    kind = "input"
    address = 0
    type = "float32"
    order = "CDAB"
    unit = "m3/min"

Validation happens once, here: unknown keys, wrong types and inconsistent
combinations are rejected with a :class:`ProfileError` naming the file, the
line, the point (index and name), the key and what to do. Nothing is
silently fixed or dropped.

ASCII profiles (``protocol = "ascii"``) take no ``kind``/``address``/
``order``/``bit``/``length``; their points get ``kind=input, address=0`` in
the :class:`PointSpec` (ignored by the ASCII driver) and ``key`` defaults to
the point name. ``sim`` defaults to the point name for every protocol.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from drivers.types import (
    REGISTER_WIDTH,
    DataType,
    DeviceProfile,
    PointSpec,
    RegisterKind,
    WordOrder,
)

__all__ = [
    "DEVICE_CLASSES",
    "ProfileError",
    "builtin_profile_dir",
    "find_profile",
    "list_profiles",
    "load_profile",
    "parse_profile",
]

# Known device classes. "hoist", "environment" and "ground_pressure" are
# here because non-coal mines monitor them (AQ 2031) and regulators watch
# hoists of suspended mines; extend the tuple when a new class is needed.
DEVICE_CLASSES = (
    "ventilation",
    "drainage",
    "power",
    "gas",
    "fire",
    "hoist",
    "environment",
    "ground_pressure",
    "annunciator",  # beacons and horns driven by the alarm outputs
    "processing",  # crushers, screens: a quarry's production machinery
)

_BIT_TYPES = frozenset((DataType.BIT, DataType.BOOL))


class ProfileError(ValueError):
    """A profile file is missing, unreadable or invalid. The message names
    the file (and line where known), the point and key, and the fix."""


class _PointModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: RegisterKind | None = None
    address: int | None = None
    type: DataType | None = None
    order: WordOrder | None = None
    length: int | None = None
    bit: int | None = None
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    description: str = ""
    writable: bool = False
    deadband: float = 0.0
    max_interval_s: float | None = None
    key: str = ""
    sim: str = ""


class _ProfileModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    device_class: str
    protocol: Literal["modbus", "ascii"] = "modbus"
    merge: bool = True
    max_gap: int = 10
    points: list[_PointModel]


def builtin_profile_dir() -> Path:
    """Directory of the profiles shipped with minegate (``drivers/profiles``)."""
    return Path(__file__).resolve().parent / "profiles"


# ------------------------------------------------------------------ locating


class _Locator:
    """Maps (point index, key) to a line of the TOML text, for messages."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()
        self.headers = [
            i for i, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*points\s*\]\]", line)
        ]

    def line_of(self, index: int | None, key: str | None) -> int | None:
        """1-based line of ``key`` in point ``index`` (or at top level)."""
        if index is None:
            start, end = 0, (self.headers[0] if self.headers else len(self.lines))
        elif index < len(self.headers):
            start = self.headers[index]
            end = self.headers[index + 1] if index + 1 < len(self.headers) else len(self.lines)
        else:
            return None
        if key:
            pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
            for i in range(start, end):
                if pattern.match(self.lines[i]):
                    return i + 1
        return start + 1 if index is not None else None

    def where(self, index: int | None = None, key: str | None = None) -> str:
        line = self.line_of(index, key)
        return f"{self.path}:{line}" if line else str(self.path)


def _point_label(index: int, name: object) -> str:
    return f"point #{index} ({name!r})" if name else f"point #{index}"


def _describe_validation(exc: ValidationError, raw: dict[str, Any], loc: _Locator) -> list[str]:
    points_value = raw.get("points")
    raw_points: list[Any] = points_value if isinstance(points_value, list) else []
    messages = []
    for err in exc.errors():
        where = err["loc"]
        index = None
        key = None
        if len(where) >= 2 and where[0] == "points" and isinstance(where[1], int):
            index = where[1]
            key = str(where[2]) if len(where) > 2 else None
        elif where:
            key = str(where[0])
        subject = "profile"
        if index is not None:
            entry = raw_points[index] if index < len(raw_points) else None
            name = entry.get("name") if isinstance(entry, dict) else None
            subject = _point_label(index, name)
        etype = err["type"]
        if etype == "extra_forbidden":
            allowed = sorted((_PointModel if index is not None else _ProfileModel).model_fields)
            fix = f"unknown key; remove or rename it (allowed: {', '.join(allowed)})"
        elif etype == "missing":
            fix = "required key is missing; add it"
        elif etype in ("enum", "literal_error"):
            fix = f"got {err.get('input')!r}; {err['msg'][0].lower()}{err['msg'][1:]}"
        else:
            fix = f"{err['msg']} (got {err.get('input')!r}); correct the value"
        messages.append(f"{loc.where(index, key)}: {subject}: key {key!r}: {fix}")
    return messages


# ---------------------------------------------------------------- validation


def _check_point(
    p: _PointModel, index: int, protocol: str, loc: _Locator
) -> tuple[PointSpec | None, list[str]]:
    errors: list[str] = []
    label = _point_label(index, p.name)

    def bad(key: str, what: str) -> None:
        errors.append(f"{loc.where(index, key)}: {label}: key {key!r}: {what}")

    if not p.name.strip():
        bad("name", "must not be empty; give the point a name")
    for key, number in (("scale", p.scale), ("offset", p.offset), ("deadband", p.deadband)):
        if not math.isfinite(number):
            bad(key, f"must be a finite number, got {number}")
    if p.scale == 0.0:
        bad("scale", "must not be 0 (every value would read 0); use 1.0 for no scaling")
    if p.deadband < 0:
        bad("deadband", f"must be >= 0, got {p.deadband}")
    if p.max_interval_s is not None and not p.max_interval_s > 0:
        bad("max_interval_s", f"must be > 0 seconds, got {p.max_interval_s}")

    if protocol == "ascii":
        for key in ("kind", "address", "order", "length", "bit"):
            if getattr(p, key) is not None:
                bad(key, "ASCII points have no register layout; remove this key")
        if p.writable:
            bad("writable", "ASCII line sensors only talk; remove 'writable'")
        dtype = p.type or DataType.FLOAT64
        if dtype is DataType.BIT:
            bad("type", "type 'bit' needs a register; use 'bool' for an ASCII flag")
        if errors:
            return None, errors
        return _spec(p, kind=RegisterKind.INPUT, address=0, dtype=dtype, key=p.key or p.name), []

    # Modbus point.
    if p.kind is None:
        bad("kind", "required for Modbus points: holding | input | coil | discrete")
    if p.address is None:
        bad("address", "required for Modbus points: the 0-based protocol address")
    if p.key:
        bad("key", "only ASCII points have a line key; remove it")
    if p.kind is None or p.address is None:
        return None, errors
    kind = p.kind
    dtype = p.type or (DataType.BIT if kind.is_bit else DataType.UINT16)
    if kind.is_bit and dtype not in _BIT_TYPES:
        bad("type", f"a {kind} holds one bit: use type 'bit' or 'bool', not '{dtype}'")
    if p.writable and kind in (RegisterKind.INPUT, RegisterKind.DISCRETE):
        bad("writable", f"{kind} points are read-only in Modbus; use kind 'holding' or 'coil'")
    if dtype is DataType.BIT and not kind.is_bit:
        if p.bit is None:
            bad("bit", "type 'bit' on a register needs 'bit = 0..15' (0 = least significant)")
        elif not 0 <= p.bit <= 15:
            bad("bit", f"must be 0..15, got {p.bit}")
    elif p.bit is not None:
        bad("bit", "only type 'bit' on a holding/input register takes 'bit'; remove it")
    if dtype is DataType.STRING:
        if p.length is None:
            bad("length", "type 'string' needs 'length' (registers, 2 characters each)")
        elif not 1 <= p.length <= 125:
            bad("length", f"must be 1..125 registers, got {p.length}")
    elif p.length is not None:
        bad("length", "only type 'string' takes 'length'; remove it")
    if p.order is not None and kind.is_bit:
        bad("order", f"a {kind} has no byte order; remove it")
    width = 1 if kind.is_bit else (p.length or 1) if dtype is DataType.STRING else None
    spec_width = width if width is not None else _fixed_width(dtype)
    if not 0 <= p.address <= 65535:
        hint = manual_reference_hint(kind, p.address)
        bad(
            "address",
            f"must be 0..65535 (0-based protocol address), got {p.address}"
            + (f"; {hint}" if hint else ""),
        )
    elif p.address + spec_width - 1 > 65535:
        bad("address", f"point spans {spec_width} registers from {p.address}, past 65535")
    if errors:
        return None, errors
    return _spec(
        p,
        kind=kind,
        address=p.address,
        dtype=dtype,
        order=p.order or WordOrder.ABCD,
        length=p.length or 1,
        bit=p.bit,
        key="",
    ), []


def _spec(p: _PointModel, **layout: Any) -> PointSpec:
    """A checked point: what every protocol takes from the profile entry,
    plus ``layout`` (where and how the value is read: kind, address, type,
    order, length, bit, line key)."""
    return PointSpec(
        name=p.name,
        scale=p.scale,
        offset=p.offset,
        unit=p.unit,
        description=p.description,
        writable=p.writable,
        deadband=p.deadband,
        max_interval=p.max_interval_s,
        sim=p.sim or p.name,
        **layout,
    )


def _fixed_width(dtype: DataType) -> int:
    return REGISTER_WIDTH.get(dtype, 1)


def parse_profile(
    text: str, path: Path | str = "<profile>", *, expect_name: str | None = None
) -> DeviceProfile:
    """Validate profile TOML ``text`` (``path`` is used in messages only).

    ``expect_name``: the ``name`` the profile must carry (the file stem, for
    built-in and directory profiles). Raises :class:`ProfileError` listing
    every problem found, one per line.
    """
    path = Path(path)
    loc = _Locator(path, text)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{path}: not valid TOML: {exc}; fix the syntax") from exc
    try:
        model = _ProfileModel.model_validate(raw)
    except ValidationError as exc:
        raise ProfileError("\n".join(_describe_validation(exc, raw, loc))) from None

    errors: list[str] = []
    if expect_name is not None and model.name != expect_name:
        errors.append(
            f"{loc.where(None, 'name')}: name {model.name!r} must equal the file stem "
            f"{expect_name!r}; rename the file or the profile"
        )
    if model.device_class not in DEVICE_CLASSES:
        errors.append(
            f"{loc.where(None, 'device_class')}: device_class {model.device_class!r} is not "
            f"one of {', '.join(DEVICE_CLASSES)}"
        )
    if not 0 <= model.max_gap <= 124:
        errors.append(f"{loc.where(None, 'max_gap')}: max_gap must be 0..124, got {model.max_gap}")
    if not model.points:
        errors.append(f"{path}: profile has no [[points]]; add at least one")
    specs: list[PointSpec] = []
    seen: dict[str, int] = {}
    for index, point in enumerate(model.points):
        if point.name in seen:
            errors.append(
                f"{loc.where(index, 'name')}: {_point_label(index, point.name)}: key 'name': "
                f"duplicate of point #{seen[point.name]}; point names must be unique"
            )
        seen.setdefault(point.name, index)
        spec, problems = _check_point(point, index, model.protocol, loc)
        errors.extend(problems)
        if spec is not None:
            specs.append(spec)
    if model.protocol == "ascii":
        keys: dict[str, str] = {}
        for spec in specs:
            if spec.key in keys:
                errors.append(
                    f"{path}: points {keys[spec.key]!r} and {spec.name!r} read the same "
                    f"line key {spec.key!r}; give each its own 'key'"
                )
            keys.setdefault(spec.key, spec.name)
    if errors:
        raise ProfileError("\n".join(errors))
    return DeviceProfile(
        name=model.name,
        description=model.description,
        device_class=model.device_class,
        points=tuple(specs),
        protocol=model.protocol,
        merge=model.merge,
        max_gap=model.max_gap,
    )


def load_profile(path: Path | str, *, require_stem_name: bool | None = None) -> DeviceProfile:
    """Load and validate one profile file.

    ``require_stem_name``: insist that ``name`` equals the file stem; by
    default only for files in :func:`builtin_profile_dir`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProfileError(f"{path}: profile file not found; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{path}: cannot read profile: {exc}") from exc
    if require_stem_name is None:
        require_stem_name = path.resolve().parent == builtin_profile_dir()
    return parse_profile(text, path, expect_name=path.stem if require_stem_name else None)


def _search_dirs(extra_dirs: Iterable[Path | str]) -> list[Path]:
    # Site directories come first so an integrator can override a built-in
    # profile of the same name without editing the installed package.
    return [Path(d) for d in extra_dirs] + [builtin_profile_dir()]


def list_profiles(extra_dirs: Iterable[Path | str] = ()) -> list[str]:
    """Sorted names of the profiles in ``extra_dirs`` and the built-in dir."""
    names: set[str] = set()
    for directory in _search_dirs(extra_dirs):
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.toml"))
    return sorted(names)


def find_profile(name_or_path: Path | str, extra_dirs: Iterable[Path | str] = ()) -> DeviceProfile:
    """A profile by name (searched in ``extra_dirs``, then the built-ins) or
    by path (anything ending in ``.toml`` or containing a path separator).

    Profiles found by name must carry that name. Raises
    :class:`ProfileError` listing the available names when nothing matches.
    """
    text = str(name_or_path)
    dirs = _search_dirs(extra_dirs)
    if text.endswith(".toml") or "/" in text or "\\" in text:
        return load_profile(Path(text))
    for directory in dirs:
        candidate = directory / f"{text}.toml"
        if candidate.is_file():
            return load_profile(candidate, require_stem_name=True)
    available = list_profiles(extra_dirs)
    raise ProfileError(
        f"no device profile named {text!r} in {', '.join(str(d) for d in dirs)}; "
        f"available: {', '.join(available) or '(none)'}; or give a path to a .toml file"
    )


# The leading digit of a manual's register reference names its table
# (0xxxx coils are left out: they look like any small address).
_REFERENCE_DIGIT = {RegisterKind.DISCRETE: 1, RegisterKind.INPUT: 3, RegisterKind.HOLDING: 4}
_REFERENCE_NAME = {
    RegisterKind.DISCRETE: "discrete input",
    RegisterKind.INPUT: "input register",
    RegisterKind.HOLDING: "holding register",
}


def manual_reference_hint(kind: RegisterKind, address: int) -> str | None:
    """What to write instead when ``address`` looks like a register
    reference copied from a manual (30001, 40001, 400001: table digit and
    1-based number) rather than the 0-based protocol address, else None.

    A 5-digit reference can also be a real address (a few devices do map
    registers at 40001), so callers warn; past 65535 it cannot be one.
    """
    digit = _REFERENCE_DIGIT.get(kind)
    if digit is None:
        return None
    for base, last in (
        (digit * 10_000 + 1, digit * 10_000 + 9999),
        (digit * 100_000 + 1, digit * 100_000 + 65536),
    ):
        if base <= address <= last:
            number = address - base + 1
            return (
                f"{address} looks like a manual's reference to {_REFERENCE_NAME[kind]} {number} "
                f"({digit}xxxx numbering starts at 1); its protocol address is {number - 1}: "
                f"write address = {number - 1}"
            )
    return None

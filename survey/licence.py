"""The licensed extent (采矿许可证): load, validate and describe it.

``load_licence(path)`` reads a TOML or GeoJSON licence file (both are
documented with full examples in ``docs/survey-inputs.md``) and returns a
frozen :class:`survey.model.Licence`.

Conventions (see ``survey.model``):

* corners are printed as (number, X = northing, Y = easting); Y may carry the
  2-digit Gauss-Krüger zone prefix (8 integer digits) or not (6 digits);
* the Licence stores the easting **without** the zone prefix; ``zone_prefix``
  records the zone when the EPSG code's eastings carry one, and
  :func:`gk_zone` gives the zone of any supported code so readers can strip a
  prefix from survey data;
* elevations are metres in the 1985 national height datum, ``z_top`` above
  ``z_bottom``.

Every problem a user must fix raises :class:`SurveyInputError` naming the
file, the line (TOML corners) or field, and what to do.

The coordinate systems (CRS table, zones, zone prefixes) are in
:mod:`survey.crs`; this module re-exports its public names.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
from shapely.geometry import LineString, Polygon
from shapely.validation import explain_validity

from survey.crs import (
    CRS_TABLE,
    GUANGXI_EPSG,
    CrsInfo,
    crs_info,
    gk_zone,
    looks_like_easting,
    looks_like_northing,
    split_zone_prefix,
)
from survey.model import Block, Corner, Licence, Seam, SurveyInputError

DEFAULT_TOLERANCE_PLAN_M = 1.5
DEFAULT_TOLERANCE_HEIGHT_M = 0.5
# Heights in China lie between about -2 000 m (the deepest workings) and
# +8 848 m; anything outside this band is a unit or typing error.
PLAUSIBLE_ELEVATION_M = (-5000.0, 9000.0)


def licence_polygon(block: Block) -> Polygon:
    """The block's plan polygon as a shapely Polygon in (easting, northing)."""
    return Polygon(block.polygon_en())


def licence_valid_on(licence: Licence, day: date) -> bool:
    """True if ``day`` lies within the licence's validity (open ends count
    as valid)."""
    if licence.valid_from is not None and day < licence.valid_from:
        return False
    return not (licence.valid_to is not None and day > licence.valid_to)


def licence_zone(licence: Licence) -> int:
    """Gauss-Krüger zone of the licence's system (whether or not its eastings
    carry the prefix)."""
    return gk_zone(licence.epsg)


# --------------------------------------------------------------------------
# parsing helpers

_NUM = r"[+-]?\s*\d+(?:\.\d+)?"


def parse_elevation_range(
    text: str,
    *,
    path: str | Path | None = None,
    field: str = "elevation",
    line: int | None = None,
) -> tuple[float, float]:
    """(z_top, z_bottom) from text like "from +120 m to -80 m", "+120m～-80m",
    "+120 至 -80 米". The first number is the top, as licences print it."""
    nums = [float(n.replace(" ", "")) for n in re.findall(_NUM, text)]
    if len(nums) != 2:
        raise SurveyInputError(
            f"field '{field}': cannot read an elevation range from {text!r}; write it like "
            '"from +120 m to -80 m" (top first) or give z_top and z_bottom as numbers',
            path=path,
            line=line,
        )
    return nums[0], nums[1]


def as_date(value: Any, field: str, path: Path) -> date | None:
    if value is None:
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise SurveyInputError(
        f"field '{field}': {value!r} is not a date; write it as YYYY-MM-DD", path=path
    )


def as_float(value: Any, field: str, path: Path, line: int | None = None) -> float:
    if isinstance(value, bool):
        raise SurveyInputError(f"field '{field}': expected a number, got {value!r}", path=path)
    if isinstance(value, int | float):
        f = float(value)
    elif isinstance(value, str):
        try:
            f = float(value.replace(",", "").strip())
        except ValueError:
            raise SurveyInputError(
                f"field '{field}': expected a number, got {value!r}", path=path, line=line
            ) from None
    else:
        raise SurveyInputError(
            f"field '{field}': expected a number, got {value!r}", path=path, line=line
        )
    if not math.isfinite(f):
        raise SurveyInputError(f"field '{field}': {value!r} is not finite", path=path, line=line)
    return f


def check_keys(table: Mapping[str, Any], allowed: set[str], where: str, path: Path) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SurveyInputError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}",
            path=path,
        )


# --------------------------------------------------------------------------
# building blocks of the file parsers (survey.readers.licence_files): the
# checks live here so TOML and GeoJSON licences are judged alike


@dataclass
class RawCorner:
    """A corner as read, with where it was read (``source``: a corner table
    file named by the licence, else the licence file itself)."""

    number: str
    x: float
    y: float
    line: int | None
    source: Path | None = None


# --------------------------------------------------------------------------
# validation shared by TOML and GeoJSON


def _validate_corners(
    raw: Sequence[RawCorner], *, block: str, crs: CrsInfo, path: Path
) -> tuple[Corner, ...]:
    """Strip a closing repeat, check counts, magnitudes (swapped X/Y), zone
    prefixes; return corners with the easting stored without prefix."""
    corners = list(raw)
    if len(corners) >= 2 and (corners[0].x, corners[0].y) == (corners[-1].x, corners[-1].y):
        corners.pop()  # a ring closed by repeating the first corner is fine
    if len(corners) < 3:
        raise SurveyInputError(
            f"block '{block}': {len(corners)} distinct corner(s); a boundary needs at least 3 "
            "corners (拐点), listed in order around the polygon",
            path=(corners[0].source or path) if corners else path,
            line=corners[0].line if corners else None,
        )
    out: list[Corner] = []
    seen: dict[tuple[float, float], str] = {}
    numbers: set[str] = set()
    for c in corners:
        if c.number in numbers:
            raise SurveyInputError(
                f"block '{block}': corner number {c.number} is used twice; number each corner "
                "once, as on the licence",
                path=c.source or path,
                line=c.line,
            )
        numbers.add(c.number)
        if looks_like_easting(c.x) and looks_like_northing(c.y):
            raise SurveyInputError(
                f"block '{block}', corner {c.number}: X={c.x:.3f} Y={c.y:.3f}: X and Y look "
                "swapped: on Chinese licences X is the northing (7 digits, e.g. 2815193.253) "
                "and Y the easting (6 digits, or 8 with the zone prefix). Swap the two columns.",
                path=c.source or path,
                line=c.line,
            )
        if abs(c.x) <= 90 and abs(c.y) <= 180:
            raise SurveyInputError(
                f"block '{block}', corner {c.number}: X={c.x} Y={c.y} look like latitude and "
                "longitude in degrees; give the Gauss-Kruger coordinates in metres printed on "
                "the licence (X = northing, Y = easting)",
                path=c.source or path,
                line=c.line,
            )
        if not looks_like_northing(c.x):
            raise SurveyInputError(
                f"block '{block}', corner {c.number}: X={c.x:.3f} is not a plausible "
                "Gauss-Kruger northing (7 integer digits); check the value",
                path=c.source or path,
                line=c.line,
            )
        if not looks_like_easting(c.y):
            raise SurveyInputError(
                f"block '{block}', corner {c.number}: Y={c.y:.3f} is not a plausible "
                "easting (6 integer digits, or 8 with the zone prefix); check the value",
                path=c.source or path,
                line=c.line,
            )
        prefix, east = split_zone_prefix(c.y)
        if prefix is not None and prefix != crs.zone:
            raise SurveyInputError(
                f"block '{block}', corner {c.number}: Y={c.y:.3f} carries zone prefix {prefix} "
                f"but EPSG {crs.epsg} ({crs.name}) is zone {crs.zone}; fix the EPSG code or "
                "the coordinates",
                path=c.source or path,
                line=c.line,
            )
        key = (c.x, east)
        if key in seen:
            raise SurveyInputError(
                f"block '{block}': corners {seen[key]} and {c.number} are the same point; "
                "list each corner once (repeating only the first at the end is allowed)",
                path=c.source or path,
                line=c.line,
            )
        seen[key] = c.number
        out.append(Corner(number=c.number, x_north=c.x, y_east=east))
    _check_polygon(out, block=block, path=path)
    return tuple(out)


def _segments_cross(p1: np.ndarray, p2: np.ndarray, q1: np.ndarray, q2: np.ndarray) -> bool:
    return bool(LineString([p1, p2]).intersects(LineString([q1, q2])))


def _check_polygon(corners: Sequence[Corner], *, block: str, path: Path) -> None:
    """Valid simple polygon; a self-crossing names the crossing edges by
    corner numbers."""
    en = np.array([[c.y_east, c.x_north] for c in corners], dtype=np.float64)
    poly = Polygon(en)
    if poly.is_valid and poly.area > 0:
        return
    k = len(corners)
    crossings: list[str] = []
    for i in range(k):
        for j in range(i + 1, k):
            # neighbouring edges share a corner; only non-adjacent edges can cross
            if j == i + 1 or (i == 0 and j == k - 1):
                continue
            if _segments_cross(en[i], en[(i + 1) % k], en[j], en[(j + 1) % k]):
                a = f"{corners[i].number}-{corners[(i + 1) % k].number}"
                b = f"{corners[j].number}-{corners[(j + 1) % k].number}"
                crossings.append(f"edge {a} crosses edge {b}")
    detail = "; ".join(crossings) if crossings else explain_validity(poly)
    raise SurveyInputError(
        f"block '{block}': the boundary polygon is not a simple polygon ({detail}). "
        "Corners must be listed in order around the boundary; check the order and the "
        "coordinates of these corners.",
        path=path,
    )


def make_block(
    name: str,
    raw: Sequence[RawCorner],
    z_top: float,
    z_bottom: float,
    *,
    crs: CrsInfo,
    path: Path,
    line: int | None,
) -> Block:
    if z_top == z_bottom:
        raise SurveyInputError(
            f"block '{name}': the elevation range is empty (top = bottom = {z_top:+.1f} m); "
            "give the licensed range, e.g. from +120 m to -80 m",
            path=path,
            line=line,
        )
    if z_top < z_bottom:
        raise SurveyInputError(
            f"block '{name}': the elevation range is inverted (top {z_top:+.1f} m is below "
            f'bottom {z_bottom:+.1f} m); write the top first ("from +120 m to -80 m") or swap '
            "z_top and z_bottom",
            path=path,
            line=line,
        )
    lo, hi = PLAUSIBLE_ELEVATION_M
    if not (lo <= z_bottom and z_top <= hi):
        raise SurveyInputError(
            f"block '{name}': elevation range {z_top:+.1f} m to {z_bottom:+.1f} m is outside "
            f"{lo:+.0f} m to {hi:+.0f} m: metres expected (1985 national height datum), not "
            "millimetres or depths below surface",
            path=path,
            line=line,
        )
    corners = _validate_corners(raw, block=name, crs=crs, path=path)
    return Block(name=name, corners=corners, z_top=z_top, z_bottom=z_bottom)


def elevation_of(
    table: Mapping[str, Any], where: str, path: Path, line: int | None = None
) -> tuple[float, float]:
    """(z_top, z_bottom) of a block table: ``elevation`` text or numbers."""
    if "elevation" in table:
        if "z_top" in table or "z_bottom" in table:
            raise SurveyInputError(
                f"{where}: give either 'elevation' or 'z_top'/'z_bottom', not both",
                path=path,
                line=line,
            )
        return parse_elevation_range(
            str(table["elevation"]), path=path, field=f"{where}.elevation", line=line
        )
    if "z_top" not in table or "z_bottom" not in table:
        raise SurveyInputError(
            f'{where}: missing elevation range; add elevation = "from +120 m to -80 m" or '
            "z_top and z_bottom",
            path=path,
            line=line,
        )
    return (
        as_float(table["z_top"], f"{where}.z_top", path, line),
        as_float(table["z_bottom"], f"{where}.z_bottom", path, line),
    )


def seams_of(items: Any, base: Path, path: Path, zone: int) -> tuple[Seam, ...]:
    if items is None:
        return ()
    from survey.surfaces import load_surface  # seams are optional; surfaces pull in scipy

    if not isinstance(items, list):
        raise SurveyInputError("field 'seams': expected a list of seam tables", path=path)
    seams: list[Seam] = []
    for i, s in enumerate(items):
        where = f"seams[{i}]"
        if not isinstance(s, Mapping):
            raise SurveyInputError(f"{where}: expected a table with name, roof, floor", path=path)
        check_keys(s, {"name", "roof", "floor"}, where, path)
        for key in ("roof", "floor"):
            if key not in s:
                raise SurveyInputError(
                    f"{where}: missing '{key}' (a grid .asc/.csv or a TIN .obj/.ply/.stl/.csv file)",
                    path=path,
                )
        roof = load_surface(base / str(s["roof"]), zone=zone)
        floor = load_surface(base / str(s["floor"]), zone=zone)
        seams.append(Seam(name=str(s.get("name", f"seam {i + 1}")), roof=roof, floor=floor))
    return tuple(seams)


# Names of older datums: a licence saying so cannot be in a CGCS2000 code.
_OLD_DATUMS = re.compile(r"西安\s*80|西安\s*1980|北京\s*54|北京\s*1954|xi'?an|beijing", re.I)


def _check_system_text(text: Any, crs: CrsInfo, path: Path) -> None:
    """The free-text coordinate_system must not contradict the EPSG code."""
    if text is None:
        return
    s = str(text)
    if _OLD_DATUMS.search(s):
        raise SurveyInputError(
            f"field 'coordinate_system' says {s!r}, an older datum, but EPSG {crs.epsg} is "
            "CGCS2000: convert the corners to CGCS2000 first (or correct the text)",
            path=path,
        )
    m = re.search(r"(?:zone|带|带号)\s*(\d{2})|(\d{2})\s*带", s, re.I)
    if m:
        zone = int(m.group(1) or m.group(2))
        if zone != crs.zone:
            raise SurveyInputError(
                f"field 'coordinate_system' names zone {zone} but EPSG {crs.epsg} is zone "
                f"{crs.zone}; correct one of them",
                path=path,
            )


def finish_licence(
    doc: Mapping[str, Any], blocks: list[Block], crs: CrsInfo, path: Path, seams: tuple[Seam, ...]
) -> Licence:
    _check_system_text(doc.get("coordinate_system"), crs, path)
    valid_from = as_date(doc.get("valid_from"), "valid_from", path)
    valid_to = as_date(doc.get("valid_to"), "valid_to", path)
    if valid_from and valid_to and valid_to < valid_from:
        raise SurveyInputError(
            f"fields 'valid_from'/'valid_to': validity is inverted ({valid_from} is after "
            f"{valid_to}); swap the dates",
            path=path,
        )
    tol = doc.get("tolerance", {}) or {}
    if not isinstance(tol, Mapping):
        raise SurveyInputError("field 'tolerance': expected plan_m and height_m", path=path)
    check_keys(tol, {"plan_m", "height_m"}, "tolerance", path)
    plan = as_float(tol.get("plan_m", DEFAULT_TOLERANCE_PLAN_M), "tolerance.plan_m", path)
    height = as_float(tol.get("height_m", DEFAULT_TOLERANCE_HEIGHT_M), "tolerance.height_m", path)
    if plan < 0 or height < 0:
        raise SurveyInputError("field 'tolerance': tolerances must be >= 0 m", path=path)
    names = [b.name for b in blocks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SurveyInputError(f"block name(s) used twice: {', '.join(sorted(dup))}", path=path)
    for key in ("mine_name", "licence_no"):
        if not str(doc.get(key, "")).strip():
            raise SurveyInputError(f"field '{key}' is missing or empty", path=path)
    return Licence(
        mine_name=str(doc["mine_name"]),
        licence_no=str(doc["licence_no"]),
        epsg=crs.epsg,
        zone_prefix=crs.zone if crs.prefixed else None,
        blocks=tuple(blocks),
        seams=seams,
        valid_from=valid_from,
        valid_to=valid_to,
        tolerance_m=plan,
        tolerance_z_m=height,
        source=str(path),
    )


def epsg_of(value: Any, path: Path) -> CrsInfo:
    if value is None:
        raise SurveyInputError(
            "field 'epsg' is missing; give the CGCS2000 EPSG code, e.g. epsg = 4524 (zone 36 "
            "with prefix) or 4545 (zone 36, no prefix)",
            path=path,
        )
    if isinstance(value, str):
        m = re.search(r"(\d{4,5})\s*$", value)
        if not m:
            raise SurveyInputError(f"field 'epsg': cannot read a code from {value!r}", path=path)
        value = int(m.group(1))
    if not isinstance(value, int) or isinstance(value, bool):
        raise SurveyInputError(f"field 'epsg': expected an integer, got {value!r}", path=path)
    return crs_info(value, path=path)


def load_licence(
    path: str | Path,
    *,
    tolerance_m: float | None = None,
    tolerance_z_m: float | None = None,
) -> Licence:
    """Load and validate a licence from ``.toml`` or ``.geojson``/``.json``.

    ``tolerance_m`` / ``tolerance_z_m`` (metres, >= 0) override the survey
    uncertainty in plan / height given in the file (or the defaults 1.5 m
    and 0.5 m), e.g. from a command-line option.
    """
    p = Path(path)
    if not p.is_file():
        raise SurveyInputError("licence file not found", path=p)
    suffix = p.suffix.lower()
    # the file formats live with the other input readers (imported here, not
    # at the top: survey.readers itself imports this module)
    from survey.readers.licence_files import load_geojson_licence, load_toml_licence

    if suffix == ".toml":
        licence = load_toml_licence(p)
    elif suffix in (".geojson", ".json"):
        licence = load_geojson_licence(p)
    else:
        raise SurveyInputError(
            f"unknown licence format {suffix!r}; use .toml or .geojson (see docs/survey-inputs.md)",
            path=p,
        )
    for name, value in (("tolerance_m", tolerance_m), ("tolerance_z_m", tolerance_z_m)):
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise SurveyInputError(f"{name} must be a finite number >= 0, got {value!r}", path=p)
    return replace(
        licence,
        tolerance_m=licence.tolerance_m if tolerance_m is None else float(tolerance_m),
        tolerance_z_m=licence.tolerance_z_m if tolerance_z_m is None else float(tolerance_z_m),
    )


__all__ = [
    "CRS_TABLE",
    "DEFAULT_TOLERANCE_HEIGHT_M",
    "DEFAULT_TOLERANCE_PLAN_M",
    "GUANGXI_EPSG",
    "PLAUSIBLE_ELEVATION_M",
    "CrsInfo",
    "crs_info",
    "gk_zone",
    "licence_polygon",
    "licence_valid_on",
    "licence_zone",
    "load_licence",
    "looks_like_easting",
    "looks_like_northing",
    "parse_elevation_range",
    "split_zone_prefix",
]

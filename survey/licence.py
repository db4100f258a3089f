"""The licensed extent (采矿许可证): describe it, and the checks every
licence passes.

The licence is a frozen :class:`survey.model.Licence`;
:func:`survey.readers.licence_files.load_licence` reads one from a TOML or
GeoJSON file (both documented with full examples in
``docs/survey-inputs.md``), parsing the values there and judging them with
the checks here (corners, zone prefix, polygon, elevation range, datum
text, validity, tolerance), so both formats are judged alike. This module
imports no reader.

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

import re
from collections.abc import Sequence
from dataclasses import dataclass
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
from survey.model import Block, Corner, Licence, SurveyInputError

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


# --------------------------------------------------------------------------
# corners as read: the file readers (survey.readers.licence_files) give them
# to the checks below, so TOML and GeoJSON licences are judged alike


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
# the checks every licence passes, whatever its file format


def validate_corners(
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


def check_elevation_range(
    name: str, z_top: float, z_bottom: float, *, path: Path, line: int | None
) -> None:
    """The block's licensed range: top above bottom, metres in the national
    height datum (not millimetres or depths)."""
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


_OLD_DATUMS = re.compile(r"西安\s*80|西安\s*1980|北京\s*54|北京\s*1954|xi'?an|beijing", re.I)


def check_system_text(text: Any, crs: CrsInfo, path: Path) -> None:
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


def check_validity(valid_from: date | None, valid_to: date | None, path: Path) -> None:
    """The validity runs forwards (open ends allowed)."""
    if valid_from and valid_to and valid_to < valid_from:
        raise SurveyInputError(
            f"fields 'valid_from'/'valid_to': validity is inverted ({valid_from} is after "
            f"{valid_to}); swap the dates",
            path=path,
        )


def check_terms(
    blocks: Sequence[Block], tolerance_m: float, tolerance_z_m: float, path: Path
) -> None:
    """Tolerances >= 0, each block name once."""
    if tolerance_m < 0 or tolerance_z_m < 0:
        raise SurveyInputError("field 'tolerance': tolerances must be >= 0 m", path=path)
    names = [b.name for b in blocks]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise SurveyInputError(f"block name(s) used twice: {', '.join(sorted(dup))}", path=path)


__all__ = [
    "CRS_TABLE",
    "DEFAULT_TOLERANCE_HEIGHT_M",
    "DEFAULT_TOLERANCE_PLAN_M",
    "GUANGXI_EPSG",
    "PLAUSIBLE_ELEVATION_M",
    "CrsInfo",
    "RawCorner",
    "check_elevation_range",
    "check_system_text",
    "check_terms",
    "check_validity",
    "crs_info",
    "gk_zone",
    "licence_polygon",
    "licence_valid_on",
    "licence_zone",
    "looks_like_easting",
    "looks_like_northing",
    "parse_elevation_range",
    "split_zone_prefix",
    "validate_corners",
]

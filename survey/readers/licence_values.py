"""Value parsers and builders shared by the TOML and GeoJSON licence
readers (:mod:`survey.readers.licence_files`): numbers, dates, elevation
ranges, EPSG codes and seam surfaces as written in a licence file, and the
blocks and licence built from them with the checks of :mod:`survey.licence`.
Errors name the file, the line when known, and the field.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from survey.crs import CrsInfo, crs_info
from survey.licence import (
    DEFAULT_TOLERANCE_HEIGHT_M,
    DEFAULT_TOLERANCE_PLAN_M,
    RawCorner,
    check_elevation_range,
    check_system_text,
    check_terms,
    check_validity,
    parse_elevation_range,
    validate_corners,
)
from survey.model import Block, Licence, Seam, SurveyInputError


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
    check_elevation_range(name, z_top, z_bottom, path=path, line=line)
    corners = validate_corners(raw, block=name, crs=crs, path=path)
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
def finish_licence(
    doc: Mapping[str, Any], blocks: list[Block], crs: CrsInfo, path: Path, seams: tuple[Seam, ...]
) -> Licence:
    check_system_text(doc.get("coordinate_system"), crs, path)
    valid_from = as_date(doc.get("valid_from"), "valid_from", path)
    valid_to = as_date(doc.get("valid_to"), "valid_to", path)
    check_validity(valid_from, valid_to, path)
    tol = doc.get("tolerance", {}) or {}
    if not isinstance(tol, Mapping):
        raise SurveyInputError("field 'tolerance': expected plan_m and height_m", path=path)
    check_keys(tol, {"plan_m", "height_m"}, "tolerance", path)
    plan = as_float(tol.get("plan_m", DEFAULT_TOLERANCE_PLAN_M), "tolerance.plan_m", path)
    height = as_float(tol.get("height_m", DEFAULT_TOLERANCE_HEIGHT_M), "tolerance.height_m", path)
    check_terms(blocks, plan, height, path)
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

"""Licence files: :func:`load_licence` reads a TOML or GeoJSON licence
(examples in ``docs/survey-inputs.md``) into a :class:`survey.model.Licence`,
and the writers round-trip with it.

This module reads the two file layouts; the values in them are parsed and
the licence built by :mod:`survey.readers.licence_values`, and every check
of the content (corners, zone prefix, polygon, elevation range, dates,
tolerance) is in :mod:`survey.licence`, so both formats are judged
alike. TOML keeps no positions, so :class:`_LineFinder` finds each
corner's line in the text for the error messages.
"""

from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from survey.crs import gk_zone, looks_like_easting, looks_like_northing
from survey.licence import RawCorner
from survey.model import Block, Licence, SurveyInputError
from survey.readers.licence_values import (
    as_float,
    check_keys,
    elevation_of,
    epsg_of,
    finish_licence,
    make_block,
    seams_of,
)
from survey.readers.text import read_text
from survey.readers.totalstation import normalise_name, parse_float, split_rows


class _LineFinder:
    """Finds the TOML line of each corner, in document order, so errors can
    point at it (tomllib keeps no positions)."""

    def __init__(self, text: str) -> None:
        self._lines = text.splitlines()
        self._cursor = 0

    def find(self, number: str) -> int | None:
        n = re.escape(number)
        pat = re.compile(
            rf"(number\s*=\s*[\"']?{n}[\"']?\s*[,}}\s#]|^\s*\[\s*[\"']?{n}[\"']?\s*,|number\s*=\s*[\"']?{n}[\"']?\s*$)"
        )
        for i in range(self._cursor, len(self._lines)):
            if pat.search(self._lines[i]):
                self._cursor = i + 1
                return i + 1
        return None


# --------------------------------------------------------------------------
# TOML

_TOP_KEYS = {
    "mine_name",
    "licence_no",
    "epsg",
    "coordinate_system",
    "valid_from",
    "valid_to",
    "tolerance",
    "blocks",
    "seams",
    "mineral",
    "holder",
    "notes",
}
_BLOCK_KEYS = {"name", "elevation", "z_top", "z_bottom", "corners", "corners_file"}
# corner-table headers: number / X (northing) / Y (easting), as printed
_CORNER_HEADER = {
    "number": {"number", "no", "id", "点号", "拐点", "拐点号", "编号", "点", "name"},
    "x": {"x", "北坐标", "纵坐标", "northing", "n"},
    "y": {"y", "东坐标", "横坐标", "easting", "e"},
}


def _toml_corner(item: Any, where: str, finder: _LineFinder, path: Path) -> RawCorner:
    if isinstance(item, Mapping):
        check_keys(item, {"number", "x", "y"}, where, path)
        if not {"number", "x", "y"} <= set(item):
            raise SurveyInputError(
                f"{where}: a corner needs number, x (northing) and y (easting)", path=path
            )
        number, x, y = item["number"], item["x"], item["y"]
    elif isinstance(item, list) and len(item) == 3:
        number, x, y = item
    else:
        raise SurveyInputError(
            f'{where}: write a corner as {{ number = "1", x = 2815193.253, y = 36408261.305 }} '
            'or ["1", 2815193.253, 36408261.305]',
            path=path,
        )
    number = str(number)
    line = finder.find(number)
    return RawCorner(
        number,
        as_float(x, f"{where}.x", path, line),
        as_float(y, f"{where}.y", path, line),
        line,
    )


_TABLE_HEADER = re.compile(r"\s*\[\[?\s*[A-Za-z_][\w.\-]*\s*\]\]?\s*(#.*)?$")


def _block_key_line(text: str, block_index: int, keys: tuple[str, ...]) -> int | None:
    """1-based line of the first of ``keys`` inside the block_index-th
    ``[[blocks]]`` table (or of the table header when none is there)."""
    lines = text.splitlines()
    headers = [i for i, ln in enumerate(lines) if re.match(r"\s*\[\[\s*blocks\s*\]\]", ln)]
    if block_index >= len(headers):
        return None
    start = headers[block_index]
    key_re = re.compile(rf"\s*({'|'.join(map(re.escape, keys))})\s*=")
    for i in range(start + 1, len(lines)):
        if _TABLE_HEADER.match(lines[i]):
            break  # the next table (corner rows like ["5", ...] are not headers)
        if key_re.match(lines[i]):
            return i + 1
    return start + 1


def _corner_table(table: Path, licence: Path) -> list[RawCorner]:
    """Corners from a CSV/TXT table ``number, X, Y`` (X = northing), with or
    without a header (点号,X,Y / number,x,y); errors name the table's line."""
    if not table.is_file():
        raise SurveyInputError(
            f"corner table {table} not found (paths are relative to the licence file)",
            path=licence,
        )
    rows = split_rows(read_text(table)[0])
    cols = {"number": 0, "x": 1, "y": 2}
    if rows and all(parse_float(t) is None for t in rows[0][1] if t.strip()):
        names = [normalise_name(t) for t in rows[0][1]]
        for role, aliases in _CORNER_HEADER.items():
            hits = [i for i, n in enumerate(names) if n in aliases]
            if not hits:
                raise SurveyInputError(
                    f"corner table header {rows[0][1]} has no {role} column; name the columns "
                    "点号,X,Y (X = northing)",
                    path=table,
                    line=rows[0][0],
                )
            cols[role] = hits[0]
        rows = rows[1:]
    if not rows:
        raise SurveyInputError("the corner table holds no corners", path=table)
    out: list[RawCorner] = []
    for ln, f in rows:
        if len(f) <= max(cols.values()):
            raise SurveyInputError(
                f"expected number, X, Y; found {','.join(f)[:60]!r}", path=table, line=ln
            )
        x, y = parse_float(f[cols["x"]]), parse_float(f[cols["y"]])
        if x is None or y is None:
            raise SurveyInputError(
                f"cannot read X and Y numbers from {','.join(f)[:60]!r}", path=table, line=ln
            )
        out.append(RawCorner(f[cols["number"]].strip(), x, y, ln, table))
    return out


def load_toml_licence(path: Path) -> Licence:
    """Parse and validate a TOML licence (see docs/survey-inputs.md)."""
    text, _enc = read_text(path)  # UTF-8, or GBK from Chinese office tools
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"at line (\d+)", str(exc))
        raise SurveyInputError(
            f"not valid TOML: {exc}; compare with the example in docs/survey-inputs.md",
            path=path,
            line=int(m.group(1)) if m else None,
        ) from None
    check_keys(doc, _TOP_KEYS, "licence", path)
    crs = epsg_of(doc.get("epsg"), path)
    blocks_raw = doc.get("blocks")
    if not isinstance(blocks_raw, list) or not blocks_raw:
        raise SurveyInputError(
            "no [[blocks]] table; a licence needs at least one block with corners and an "
            "elevation range",
            path=path,
        )
    finder = _LineFinder(text)
    blocks: list[Block] = []
    for bi, b in enumerate(blocks_raw):
        name = str(b.get("name", f"block {bi + 1}"))
        where = f"blocks[{bi}] ('{name}')"
        check_keys(b, _BLOCK_KEYS, where, path)
        corners_raw = b.get("corners")
        if ("corners" in b) == ("corners_file" in b):
            raise SurveyInputError(
                f"{where}: give the corners either inline ('corners') or as a table "
                "('corners_file'), exactly one of the two",
                path=path,
                line=_block_key_line(text, bi, ("corners", "corners_file")),
            )
        if "corners_file" in b:
            raw = _corner_table(path.parent / str(b["corners_file"]), path)
        elif isinstance(corners_raw, list):
            raw = [
                _toml_corner(c, f"{where}.corners[{ci}]", finder, path)
                for ci, c in enumerate(corners_raw)
            ]
        else:
            raise SurveyInputError(f"{where}: 'corners' must be a list", path=path)
        line = _block_key_line(text, bi, ("elevation", "z_top", "z_bottom"))
        z_top, z_bottom = elevation_of(b, where, path, line)
        blocks.append(make_block(name, raw, z_top, z_bottom, crs=crs, path=path, line=line))
    return finish_licence(
        doc, blocks, crs, path, seams_of(doc.get("seams"), path.parent, path, crs.zone)
    )


# --------------------------------------------------------------------------
# GeoJSON


def load_geojson_licence(path: Path) -> Licence:
    """Parse and validate a GeoJSON licence (see docs/survey-inputs.md)."""
    try:
        doc = json.loads(read_text(path)[0])
    except json.JSONDecodeError as exc:
        raise SurveyInputError(
            f"not valid JSON: {exc.msg} at column {exc.colno}", path=path, line=exc.lineno
        ) from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise SurveyInputError(
            "a GeoJSON licence must be a FeatureCollection with one Polygon feature per block",
            path=path,
        )
    meta = doc.get("licence")
    if not isinstance(meta, dict):
        raise SurveyInputError(
            "missing the 'licence' member (mine_name, licence_no, epsg, ...) of the "
            "FeatureCollection",
            path=path,
        )
    check_keys(meta, _TOP_KEYS - {"blocks"}, "licence", path)
    epsg = meta.get("epsg")
    crs_member = doc.get("crs")
    if epsg is None and isinstance(crs_member, dict):
        epsg = crs_member.get("properties", {}).get("name")
    crs = epsg_of(epsg, path)
    features = doc.get("features")
    if not isinstance(features, list) or not features:
        raise SurveyInputError("no features: add one Polygon feature per block", path=path)
    blocks: list[Block] = []
    for fi, feat in enumerate(features):
        props = feat.get("properties") or {}
        name = str(props.get("name", f"block {fi + 1}"))
        where = f"features[{fi}] ('{name}')"
        check_keys(props, {"name", "elevation", "z_top", "z_bottom", "corner_numbers"}, where, path)
        geom = feat.get("geometry") or {}
        if geom.get("type") != "Polygon" or not geom.get("coordinates"):
            raise SurveyInputError(
                f"{where}: geometry must be a Polygon (one outer ring, no holes)", path=path
            )
        if len(geom["coordinates"]) != 1:
            raise SurveyInputError(
                f"{where}: holes are not supported; give the outer ring only", path=path
            )
        ring = geom["coordinates"][0]
        numbers = props.get("corner_numbers")
        # GeoJSON positions are [x, y] = [easting, northing]: the opposite of
        # the printed (X = northing, Y = easting) corner table.
        raw: list[RawCorner] = []
        for pi, pos in enumerate(ring):
            if not isinstance(pos, list) or len(pos) < 2:
                raise SurveyInputError(
                    f"{where}: position {pi} is not [easting, northing]", path=path
                )
            e = as_float(pos[0], f"{where}.coordinates[{pi}][0]", path)
            n = as_float(pos[1], f"{where}.coordinates[{pi}][1]", path)
            if looks_like_northing(e) and looks_like_easting(n):
                raise SurveyInputError(
                    f"{where}, position {pi}: [{e:.3f}, {n:.3f}]: X and Y look swapped: GeoJSON "
                    "positions are [easting, northing] (Chinese [Y, X]); on Chinese licences X "
                    "is the northing. Swap the two numbers.",
                    path=path,
                )
            num = (
                str(numbers[pi]) if isinstance(numbers, list) and pi < len(numbers) else str(pi + 1)
            )
            raw.append(RawCorner(num, n, e, None))
        z_top, z_bottom = elevation_of(props, where, path)
        blocks.append(make_block(name, raw, z_top, z_bottom, crs=crs, path=path, line=None))
    return finish_licence(
        meta, blocks, crs, path, seams_of(meta.get("seams"), path.parent, path, crs.zone)
    )


# --------------------------------------------------------------------------
# any licence file


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


# --------------------------------------------------------------------------
# writers (round-trip with the loaders above)


def _num(v: float) -> str:
    """Shortest text that reads back as the same double (numpy scalars
    included, whose repr is ``np.float64(...)``)."""
    return repr(float(v))


def _toml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # JSON strings are valid TOML basic strings


def write_licence_toml(
    path: str | Path,
    licence: Licence,
    *,
    y_with_prefix: bool | None = None,
    seam_files: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """A TOML licence that :func:`load_licence` reads back
    into an equal Licence. ``y_with_prefix`` (default: when the EPSG code
    carries one) prints Y with the zone prefix as on paper licences;
    ``seam_files`` maps seam name -> (roof file, floor file)."""
    prefix = licence.zone_prefix is not None if y_with_prefix is None else y_with_prefix
    add = gk_zone(licence.epsg) * 1.0e6 if prefix else 0.0
    out = [
        f"mine_name = {_toml_str(licence.mine_name)}",
        f"licence_no = {_toml_str(licence.licence_no)}",
        f"epsg = {licence.epsg}",
    ]
    if licence.valid_from:
        out.append(f"valid_from = {licence.valid_from.isoformat()}")
    if licence.valid_to:
        out.append(f"valid_to = {licence.valid_to.isoformat()}")
    out += ["", "[tolerance]", f"plan_m = {_num(licence.tolerance_m)}"]
    out.append(f"height_m = {_num(licence.tolerance_z_m)}")
    for b in licence.blocks:
        out += ["", "[[blocks]]", f"name = {_toml_str(b.name)}"]
        out += [f"z_top = {_num(b.z_top)}", f"z_bottom = {_num(b.z_bottom)}", "corners = ["]
        for c in b.corners:
            out.append(
                f"  {{ number = {_toml_str(c.number)}, x = {_num(c.x_north)}, "
                f"y = {_num(round(c.y_east + add, 6) if add else c.y_east)} }},"
            )
        out.append("]")
    for name, (roof, floor) in (seam_files or {}).items():
        out += ["", "[[seams]]", f"name = {_toml_str(name)}"]
        out += [f"roof = {_toml_str(roof)}", f"floor = {_toml_str(floor)}"]
    p = Path(path)
    p.write_text("\n".join(out) + "\n", encoding="utf-8")
    return p


def write_licence_geojson(
    path: str | Path,
    licence: Licence,
    *,
    seam_files: Mapping[str, tuple[str, str]] | None = None,
) -> Path:
    """A GeoJSON FeatureCollection licence (one Polygon feature per block,
    positions [easting, northing] without zone prefix, licence metadata in
    the ``licence`` member)."""
    meta: dict[str, Any] = {
        "mine_name": licence.mine_name,
        "licence_no": licence.licence_no,
        "epsg": licence.epsg,
        "tolerance": {"plan_m": licence.tolerance_m, "height_m": licence.tolerance_z_m},
    }
    if licence.valid_from:
        meta["valid_from"] = licence.valid_from.isoformat()
    if licence.valid_to:
        meta["valid_to"] = licence.valid_to.isoformat()
    if seam_files:
        meta["seams"] = [{"name": n, "roof": r, "floor": f} for n, (r, f) in seam_files.items()]
    features = []
    for b in licence.blocks:
        ring = [[c.y_east, c.x_north] for c in b.corners]  # json writes repr: exact
        ring.append(ring[0])  # GeoJSON rings are closed
        features.append(
            {
                "type": "Feature",
                "properties": {
                    "name": b.name,
                    "z_top": b.z_top,
                    "z_bottom": b.z_bottom,
                    "corner_numbers": [c.number for c in b.corners] + [b.corners[0].number],
                },
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            }
        )
    doc = {"type": "FeatureCollection", "licence": meta, "features": features}
    p = Path(path)
    p.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return p

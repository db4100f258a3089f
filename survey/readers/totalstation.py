"""Total-station point tables: CSV with or without a header, and South CASS
``.dat``.

* CSV: column names such as 点号/point/name, X/北坐标/northing,
  Y/东坐标/easting, H/Z/高程/elevation; **X is the northing** (Chinese
  convention). Without names the northing is found by magnitude (7 integer
  digits) and the easting (6 digits, or 8 with the zone prefix); local
  coordinates where magnitude cannot tell need a ``column_map``.
* CASS ``.dat``: ``name,code,Y,X,H`` per line, **easting first**, code
  often empty (``1,,408261.305,2815193.253,4.952``).

Both return raw (E, N, H) float64 plus point ids and the file line of each
point, so later checks can name lines. A CSV point whose height field is
empty (or NaN) was surveyed without its height: it gets a NaN height, is
checked in plan only, and a note names those points.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey.crs import looks_like_easting, looks_like_northing
from survey.model import F64, SurveyInputError
from survey.readers.common import ColumnMap, ReadOptions
from survey.readers.text import read_text

# normalised header name -> role; roles use the Chinese naming x = northing
_ALIASES: dict[str, str] = {}
for _role, _names in {
    "id": "点号 点名 点 编号 name point pt id no number pointid point_id pointname 点号名",
    "x": "x 北坐标 北 北向 纵坐标 x坐标 northing north n",
    "y": "y 东坐标 东 东向 横坐标 y坐标 easting east e",
    "h": "h z 高程 高 标高 elevation elev height h坐标 z坐标",
    "code": "编码 代码 code 属性",
}.items():
    for _n in _names.split():
        _ALIASES[_n] = _role

_ROLE_KEYS = {"id": "id", "x": "x", "y": "y", "h": "h", "n": "x", "e": "y", "z": "h"}


def normalise_name(name: str) -> str:
    """A header name without units, blanks and case: "X(m)" -> "x"."""
    s = re.sub(r"[（(].*?[)）]", "", name)  # drop units: "X(m)", "高程（米）"
    return re.sub(r"[\s_\-.:]", "", s).lower()


@dataclass
class PointTable:
    """Raw points of a table: ids, (n, 3) float64 (E, N, H), file lines."""

    ids: list[str]
    xyz: F64
    lines: list[int]


def split_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, fields) of non-blank, non-comment lines."""
    text = text.replace("，", ",")  # full-width comma from Chinese keyboards
    sample = next((ln for ln in text.splitlines() if ln.strip()), "")
    if "," in sample:
        delim = ","
    elif "\t" in sample:
        delim = "\t"
    elif ";" in sample:
        delim = ";"
    else:
        delim = " "
    quoted = '"' in text  # the csv module only where quoting needs it (it is slow)
    out: list[tuple[int, list[str]]] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if delim == " ":
            fields = line.split()
        elif quoted:
            fields = [f.strip() for f in next(csv.reader(io.StringIO(line), delimiter=delim))]
        else:
            fields = line.split(delim)  # numbers parse with blanks; ids are stripped later
        out.append((i, fields))
    return out


def parse_float(tok: str) -> float | None:
    """float(tok), or None when tok is not a number."""
    try:
        return float(tok)
    except ValueError:
        return None


def _resolve_map(column_map: ColumnMap, header: list[str] | None, path: Path) -> dict[str, int]:
    roles: dict[str, int] = {}
    for key, col in column_map.items():
        role = _ROLE_KEYS.get(key.lower())
        if role is None:
            raise SurveyInputError(
                f"column_map key {key!r} unknown; use id, x (northing), y (easting), h", path=path
            )
        if isinstance(col, int):
            roles[role] = col
        elif header is not None and col in header:
            roles[role] = header.index(col)
        else:
            raise SurveyInputError(
                f"column_map: column {col!r} not found; header is {header}", path=path
            )
    missing = {"x", "y", "h"} - set(roles)
    if missing:
        raise SurveyInputError(
            f"column_map lacks {', '.join(sorted(missing))}; give x (northing), y (easting), h",
            path=path,
        )
    return roles


def _roles_from_header(header: list[str], path: Path, line: int) -> dict[str, int] | None:
    roles: dict[str, int] = {}
    for i, name in enumerate(header):
        role = _ALIASES.get(normalise_name(name))
        if role and role != "code" and role not in roles:
            roles[role] = i
    if not roles:
        return None
    missing = {"x", "y", "h"} - set(roles)
    if missing:
        raise SurveyInputError(
            f"header {header} has no column for {', '.join(sorted(missing))}; name the columns "
            "点号/X/Y/H (X = northing) or pass a column map",
            path=path,
            line=line,
        )
    return roles


def _median_abs(rows: list[tuple[int, list[str]]], col: int) -> float:
    """Median magnitude of a column over at most ~2 000 evenly spread rows."""
    sample = rows[:: max(1, len(rows) // 2000)]
    vals = [abs(v) for _, f in sample if col < len(f) and (v := parse_float(f[col])) is not None]
    return float(np.median(vals)) if vals else float("nan")


def _check_header_magnitudes(
    roles: dict[str, int], header: list[str], body: list[tuple[int, list[str]]], path: Path
) -> list[str]:
    """A header X/Y that contradicts the magnitudes: the bare letters x/y
    (scanner software uses x = easting) are swapped with a note; explicit
    names (北坐标, northing, ...) are an error."""
    mx, my = _median_abs(body, roles["x"]), _median_abs(body, roles["y"])
    if not (looks_like_easting(mx) and looks_like_northing(my)):
        return []
    names = (header[roles["x"]], header[roles["y"]])
    if {normalise_name(n) for n in names} <= {"x", "y"}:
        roles["x"], roles["y"] = roles["y"], roles["x"]
        return [
            f"{path.name}: column {names[0]!r} holds eastings and {names[1]!r} northings (the "
            "scanner x/y order, not the Chinese X = northing): read by magnitude"
        ]
    raise SurveyInputError(
        f"column {names[0]!r} is named as the northing but holds values like {mx:,.1f} (an "
        f"easting), and {names[1]!r} holds {my:,.1f} (a northing): fix the header or pass a "
        "column map",
        path=path,
    )


def _roles_by_magnitude(rows: list[tuple[int, list[str]]], path: Path) -> dict[str, int]:
    """Guess id / northing / easting / height columns of a table without
    names: numeric columns are candidates; the plan pair is told apart by
    magnitude."""
    width = min(len(f) for _, f in rows[:50])
    numeric = [
        c
        for c in range(width)
        if all(parse_float(f[c]) is not None for _, f in rows[:50] if f[c].strip())
        and any(f[c].strip() for _, f in rows[:50])
    ]
    roles: dict[str, int] = {}
    if numeric and numeric[0] != 0:
        roles["id"] = 0
    elif len(numeric) >= 4:
        roles["id"] = numeric.pop(0)  # point number in front of X, Y, H
    if len(numeric) < 3:
        raise SurveyInputError(
            "cannot find three coordinate columns (X, Y, H); add a header line "
            "(点号,X,Y,H) or pass a column map",
            path=path,
            line=rows[0][0],
        )
    a, b, h = numeric[:3]
    ma, mb = _median_abs(rows, a), _median_abs(rows, b)
    if looks_like_northing(ma) and looks_like_easting(mb):
        roles.update(x=a, y=b, h=h)
    elif looks_like_easting(ma) and looks_like_northing(mb):
        roles.update(x=b, y=a, h=h)
    else:
        raise SurveyInputError(
            f"no header and the plan columns ({ma:,.1f}, {mb:,.1f}) cannot be told apart by "
            "magnitude (a Guangxi northing has 7 digits, an easting 6 or 8): add a header "
            "(点号,X,Y,H with X = northing) or pass column_map={'x': .., 'y': .., 'h': ..}",
            path=path,
            line=rows[0][0],
        )
    return roles


def read_point_table(
    path: Path, column_map: ColumnMap | None = None, notes: list[str] | None = None
) -> PointTable:
    """Parse a point CSV/TXT table into raw (E, N, H); see module doc.
    What was inferred goes into ``notes``."""
    text, _enc = read_text(path)
    rows = split_rows(text)
    if not rows:
        raise SurveyInputError("the file holds no points", path=path)
    first_line, first = rows[0]
    has_header = all(parse_float(t) is None for t in first if t)  # data rows hold numbers
    header = first if has_header else None
    body = rows[1:] if has_header else rows
    if not body:
        raise SurveyInputError("the file has a header but no points", path=path)
    if column_map is not None:
        roles = _resolve_map(column_map, header, path)
    else:
        found = _roles_from_header(first, path, first_line) if has_header else None
        if found is not None:
            roles = found
            (notes if notes is not None else []).extend(
                _check_header_magnitudes(roles, first, body, path)
            )
        else:
            roles = _roles_by_magnitude(body, path)
    table = _extract(body, roles, path)
    no_height = np.flatnonzero(np.isnan(table.xyz[:, 2]))
    if no_height.size and notes is not None:
        shown = ", ".join(table.ids[i] for i in no_height[:10])
        notes.append(
            f"{path.name}: {no_height.size} point(s) have no height (empty or NaN H field): checked "
            f"in plan only, against the boundary but not the levels or seams ({shown}"
            + (" ...)" if no_height.size > 10 else ")")
        )
    return table


def _extract(body: list[tuple[int, list[str]]], roles: Mapping[str, int], path: Path) -> PointTable:
    lines = [ln for ln, _ in body]
    try:
        # vectorised: numpy parses the strings; any problem -> the row loop
        # below, which names the line
        cols = [
            np.array([f[roles[k]] for _, f in body]).astype(np.float64) for k in ("y", "x", "h")
        ]
        ids = (
            [f[roles["id"]].strip() for _, f in body]
            if "id" in roles
            else [str(k + 1) for k in range(len(body))]
        )
        return PointTable(ids, np.column_stack(cols), lines)
    except (ValueError, IndexError):
        return _extract_rows(body, roles, path)


def _extract_rows(
    body: list[tuple[int, list[str]]], roles: Mapping[str, int], path: Path
) -> PointTable:
    ids: list[str] = []
    out = np.empty((len(body), 3), dtype=np.float64)
    lines: list[int] = []
    need = max(roles.values()) + 1
    for k, (ln, f) in enumerate(body):
        if len(f) < need:
            raise SurveyInputError(
                f"{len(f)} field(s), expected at least {need}: {','.join(f)[:60]!r}",
                path=path,
                line=ln,
            )
        h_tok = f[roles["h"]]
        h = parse_float(h_tok) if h_tok.strip() else np.nan  # no height: plan only
        vals = [parse_float(f[roles["y"]]), parse_float(f[roles["x"]]), h]
        if any(v is None for v in vals):
            raise SurveyInputError(
                f"cannot read X/Y/H numbers from {','.join(f)[:60]!r}", path=path, line=ln
            )
        out[k] = vals
        ids.append(f[roles["id"]].strip() if "id" in roles else str(k + 1))
        lines.append(ln)
    return PointTable(ids, out, lines)


def read_cass(opts: ReadOptions) -> PointTable:
    """South CASS ``.dat``: ``name,code,Y,X,H`` (easting first)."""
    path = opts.path
    text, _enc = read_text(path)
    ids: list[str] = []
    rows: list[tuple[float, float, float]] = []
    lines: list[int] = []
    for ln, f in split_rows(text):
        if len(f) != 5:
            raise SurveyInputError(
                f"a CASS .dat line has 5 fields name,code,Y,X,H (code may be empty, as in "
                f"'1,,408261.305,2815193.253,4.952'); found {len(f)}: {','.join(f)[:60]!r}",
                path=path,
                line=ln,
            )
        y, x, h = parse_float(f[2]), parse_float(f[3]), parse_float(f[4])
        if y is None or x is None or h is None:
            raise SurveyInputError(
                f"cannot read Y, X, H numbers from {','.join(f)[:60]!r}", path=path, line=ln
            )
        ids.append(f[0])
        rows.append((y, x, h))  # Y first = easting: already (E, N, H)
        lines.append(ln)
    if not rows:
        raise SurveyInputError("the file holds no points", path=path)
    xyz = np.array(rows, dtype=np.float64)
    me, mn = float(np.median(np.abs(xyz[:, 0]))), float(np.median(np.abs(xyz[:, 1])))
    if looks_like_northing(me) and looks_like_easting(mn):
        raise SurveyInputError(
            "the third field holds northings and the fourth eastings, but CASS .dat is "
            "name,code,Y,X,H with Y = easting first. This file has the columns the other way "
            "round: export it again from CASS, or save it as .csv with a header (点号,X,Y,H)",
            path=path,
            line=lines[0],
        )
    return PointTable(ids, xyz, lines)

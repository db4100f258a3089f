"""Leica GSI-8 / GSI-16 coordinate files.

A line is a block of words separated by blanks. A word is::

    WI (2) | info (4) | sign (1) | data (8 = GSI-8, 16 = GSI-16)
    81..00+0000000408261305

GSI-16 blocks start with ``*``. Word indices used here: 11 = point id,
81 = easting (Chinese Y), 82 = northing (Chinese X), 83 = height. The 6th
character of a word (last of the info) gives the units and decimals of the
data: 0 = metre, last digit 1 mm; 6 = metre, 1/10 mm; 8 = metre, 1/100 mm;
1 = feet, 1/1000 ft; 7 = feet, 1/10000 ft (Leica TPS1100 manual, "Data
format"; the GSI word index table). Feet are converted with the
international foot (0.3048 m) and a note is added.

GSI-8 holds 8 digits: at millimetres at most 99 999.999 m, so a 7-digit
Gauss-Krüger northing (or a 6-digit easting) is silently truncated by the
instrument export. Such a file is refused unless a plan transform says the
coordinates are in a local grid.

A value the instrument did not measure is written ``-----``. A point
without an easting or northing cannot be placed and is skipped; a point
without a height gets a NaN height and is checked in plan only (the check
counts such points in its notes). Both are noted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions
from survey.readers.text import read_text
from survey.readers.totalstation import PointTable

FOOT_M = 0.3048
# units character -> (metres per data unit)
_UNITS: dict[str, float] = {
    "0": 1e-3,
    "6": 1e-4,
    "8": 1e-5,
    "1": 1e-3 * FOOT_M,
    "7": 1e-4 * FOOT_M,
}
_COORD_WI = {"81": 0, "82": 1, "83": 2}  # -> column in (E, N, H)
_MISSING = "-----"  # in a word's data: the instrument measured no value


def read_gsi(opts: ReadOptions) -> PointTable:
    """Raw (E, N, H) points of the coordinate blocks of a GSI file."""
    path = opts.path
    text, _enc = read_text(path)
    ids: list[str] = []
    rows: list[list[float]] = []
    lines: list[int] = []
    widths: set[int] = set()
    feet = False
    skipped = unplaced = missing_values = 0
    no_height: list[str] = []
    for ln, raw_line in enumerate(text.splitlines(), start=1):
        line = raw_line.strip().strip("\x1a")  # DOS end-of-file mark after the last block
        if not line:
            continue
        line = line.removeprefix("*")
        point_id: str | None = None
        coords: list[float | None] = [None, None, None]
        unmeasured: set[int] = set()
        for word in line.split():
            wi, value = _word(word, path, ln)
            widths.add(len(word) - 7)
            if wi == "11":
                point_id = str(value)
            elif wi in _COORD_WI:
                if value is None:
                    unmeasured.add(_COORD_WI[wi])
                    continue
                assert isinstance(value, tuple)
                coords[_COORD_WI[wi]], in_feet = value
                feet = feet or in_feet
        if all(c is None for c in coords) and not unmeasured:
            skipped += 1  # a measurement block (angles, distances): not a coordinate
            continue
        absent = [w for w, i in _COORD_WI.items() if coords[i] is None and i not in unmeasured]
        if absent:
            raise SurveyInputError(
                f"coordinate block without word(s) {', '.join(absent)} (81 easting, 82 northing, "
                "83 height); export full coordinates",
                path=path,
                line=ln,
            )
        missing_values += len(unmeasured)
        if coords[0] is None or coords[1] is None:
            unplaced += 1  # an unmeasured easting or northing: the point cannot be placed
            continue
        if coords[2] is None:  # checked in plan only: NaN height
            no_height.append(point_id if point_id is not None else f"line {ln}")
        ids.append(point_id if point_id is not None else str(len(ids) + 1))
        rows.append([float(c) if c is not None else np.nan for c in coords])
        lines.append(ln)
    if not rows and unplaced:
        raise SurveyInputError(
            f"no GSI point has both easting and northing measured ({unplaced} without a "
            "position: '-----' values); export the coordinates again once measured",
            path=path,
        )
    if not rows:
        raise SurveyInputError(
            "no coordinate blocks (words 81/82/83) in the file; export coordinates, not raw "
            "measurements",
            path=path,
        )
    if len(widths) > 1:
        raise SurveyInputError("the file mixes GSI-8 and GSI-16 words", path=path)
    xyz: F64 = np.array(rows, dtype=np.float64)
    if 8 in widths:
        _refuse_truncated(xyz, lines, opts)  # NaN heights compare False: only E and N matter
    if feet:
        opts.notes.append(f"{path.name}: GSI units in feet converted with 0.3048 m/ft")
    if skipped:
        opts.notes.append(f"{path.name}: {skipped} GSI blocks without coordinates skipped")
    _note_missing(opts, missing_values, unplaced, no_height)
    return PointTable(ids, xyz, lines)


def _word(word: str, path: Path, ln: int) -> tuple[str, str | tuple[float, bool] | None]:
    """(word index, value) of one GSI word: the point id for word 11,
    (metres, in feet?) for 81/82/83, None for a missing value (``-----`` in
    the data, as Leica instruments write an unmeasured value), the raw
    data for other words."""
    if len(word) not in (15, 23):
        raise SurveyInputError(
            f"GSI word {word[:24]!r} has {len(word)} characters; a GSI-8 word has 15 "
            "(WI 2 + info 4 + sign 1 + 8 data) and a GSI-16 word 23. Is this a GSI file?",
            path=path,
            line=ln,
        )
    wi, info, sign, data = word[:2], word[2:6], word[6], word[7:]
    if wi == "11":
        return wi, data.lstrip("0") or "0"
    if wi not in _COORD_WI:
        return wi, data
    if _MISSING in word[6:]:
        return wi, None
    unit = info[3]
    if unit not in _UNITS or sign not in "+-" or not data.isdigit():
        raise SurveyInputError(
            f"GSI word {word!r}: expected sign + digits and a units code 0/6/8 "
            "(metres) or 1/7 (feet) in the 6th character",
            path=path,
            line=ln,
        )
    v = int(data) * _UNITS[unit]
    return wi, (-v if sign == "-" else v, unit in "17")


def _note_missing(opts: ReadOptions, values: int, unplaced: int, no_height: list[str]) -> None:
    name = opts.path.name
    if values:
        opts.notes.append(f"{name}: {values} GSI coordinate value(s) missing ('-----')")
    if unplaced:
        opts.notes.append(
            f"{name}: {unplaced} GSI point(s) without an easting or northing cannot be placed "
            "and were not checked"
        )
    if no_height:
        shown = ", ".join(no_height[:10]) + (" ..." if len(no_height) > 10 else "")
        opts.notes.append(
            f"{name}: {len(no_height)} GSI point(s) have no height (unmeasured, '-----'): "
            f"checked in plan only, against the boundary but not the levels or seams ({shown})"
        )


def _refuse_truncated(xyz: F64, lines: list[int], opts: ReadOptions) -> None:
    if opts.transform is not None:
        return  # a local grid: small numbers are expected
    short = (np.abs(xyz[:, 1]) < 1.0e6) | (np.abs(xyz[:, 0]) < 1.0e5)
    if short.any():
        i = int(np.flatnonzero(short)[0])
        raise SurveyInputError(
            f"GSI-8 file: the northing {xyz[i, 1]:.3f} / easting {xyz[i, 0]:.3f} is too short "
            "for a Gauss-Kruger coordinate. GSI-8 holds only 8 digits (99 999.999 m at mm), so "
            "the instrument truncated the 7-digit northing. Export GSI-16 instead (or, for a "
            "local grid, give the plan transform).",
            path=opts.path,
            line=lines[i],
        )

"""XYZ and PTS point text.

* XYZ: one point per line, ``E N H`` separated by whitespace, commas or
  semicolons; extra columns (intensity, RGB) are ignored; one non-numeric
  header line and ``#`` comments are allowed.
* PTS (Leica/Cyclone): the first line is the point count, then
  ``E N H [intensity [R G B]]`` lines. A file with fewer points than its
  count line says is refused as truncated.

The fast path is ``numpy.loadtxt``; when it fails the file is walked line by
line to name the first line that does not parse.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, check_finite

_SPLIT = re.compile(r"[,;\s]+")
ENCODINGS = ("utf-8-sig", "gb18030")  # Chinese exports are often GBK


def read_text(path: Path) -> tuple[str, str]:
    """(text, encoding): UTF-8 first, then GB18030 (a superset of GBK)."""
    raw = path.read_bytes()
    for enc in ENCODINGS:
        try:
            return raw.decode(enc), enc
        except UnicodeDecodeError:
            continue
    raise SurveyInputError(
        "the file is neither UTF-8 nor GBK/GB18030 text; re-export it as UTF-8", path=path
    )


def _is_number(tok: str) -> bool:
    try:
        float(tok)
    except ValueError:
        return False
    return True


def _data_lines(lines: list[str], start: int) -> list[int]:
    """1-based line numbers of data lines (not blank, not comments) from
    index ``start``."""
    return [
        i + 1
        for i in range(start, len(lines))
        if lines[i].strip() and not lines[i].lstrip().startswith("#")
    ]


def _parse_slow(lines: list[str], start: int, path: Path) -> tuple[F64, list[int]]:
    rows: list[tuple[float, float, float]] = []
    numbers: list[int] = []
    for i in range(start, len(lines)):
        s = lines[i].strip()
        if not s or s.startswith("#"):
            continue
        toks = [t for t in _SPLIT.split(s) if t]
        if len(toks) < 3:
            raise SurveyInputError(
                f"expected at least 3 numbers (easting northing height), found {len(toks)}: "
                f"{s[:60]!r}",
                path=path,
                line=i + 1,
            )
        try:
            rows.append((float(toks[0]), float(toks[1]), float(toks[2])))
        except ValueError:
            raise SurveyInputError(
                f"cannot read numbers from {s[:60]!r}; expected easting northing height",
                path=path,
                line=i + 1,
            ) from None
        numbers.append(i + 1)
    return np.array(rows, dtype=np.float64).reshape(-1, 3), numbers


def read_xyz_text(opts: ReadOptions) -> F64:
    """(n, 3) float64 raw (E, N, H) of an XYZ or PTS file (not yet in the
    licence frame)."""
    path = opts.path
    text, _enc = read_text(path)
    lines = text.splitlines()
    start = 0
    while start < len(lines) and not lines[start].strip():
        start += 1
    if start == len(lines):
        raise SurveyInputError("the file is empty (no points)", path=path)
    expected: int | None = None
    first = lines[start].strip()
    toks = [t for t in _SPLIT.split(first) if t]
    if len(toks) == 1 and toks[0].isdigit():
        expected = int(toks[0])  # PTS count line
        start += 1
    elif toks and not _is_number(toks[0]):
        start += 1  # a header line such as "X Y Z intensity"
    body = "\n".join(lines[start:])
    sample = next((ln for ln in lines[start:] if ln.strip() and not ln.startswith("#")), "")
    delim = "," if "," in sample else (";" if ";" in sample else None)
    xyz: F64
    numbers: list[int] | None = None
    try:
        arr = np.loadtxt(
            body.splitlines(), delimiter=delim, usecols=(0, 1, 2), comments="#", ndmin=2
        )
        xyz = np.asarray(arr, dtype=np.float64).reshape(-1, 3)
    except (ValueError, IndexError):
        xyz, numbers = _parse_slow(lines, start, path)
    if expected is not None and xyz.shape[0] != expected:
        raise SurveyInputError(
            f"the PTS count line says {expected:,} points but the file holds {xyz.shape[0]:,}; "
            "the file is truncated or the count is wrong: upload the complete file",
            path=path,
            line=start,
        )
    if xyz.shape[0] == 0:
        raise SurveyInputError("the file holds no points (empty scan)", path=path)
    if not np.isfinite(xyz).all():
        check_finite(xyz, path=path, lines=numbers or _data_lines(lines, start))
    opts.report(xyz.shape[0], xyz.shape[0])
    return xyz

"""XYZ and PTS point text.

* XYZ: one point per line, ``E N H`` separated by whitespace, commas or
  semicolons; extra columns (intensity, RGB) are ignored; one non-numeric
  header line and ``#`` comments are allowed. Column order is the scanner
  software's x, y, z = easting, northing, height.
* PTS (Leica/Cyclone): the first line is the point count, then
  ``E N H [intensity [R G B]]`` lines. A file with fewer points than its
  count line says is refused as truncated.

Files are streamed in batches of lines (bounded memory for 100 M-point
exports); each batch goes through ``numpy.loadtxt``. When a batch fails, it
is walked line by line to name the first line that does not parse.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, check_finite, check_magnitude, within_magnitude

_SPLIT = re.compile(r"[,;\s]+")
ENCODINGS = ("utf-8-sig", "gb18030")  # Chinese exports are often GBK


def read_text(path: Path) -> tuple[str, str]:
    """(text, encoding) of a small text file: UTF-8 first, then GB18030 (a
    superset of GBK)."""
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


def _is_data(line: str) -> bool:
    s = line.strip()
    return bool(s) and not s.startswith("#")


def _parse_slow(lines: list[str], first_line: int, path: Path) -> F64:
    """Parse a batch line by line; SurveyInputError names the bad line."""
    rows: list[tuple[float, float, float]] = []
    for k, line in enumerate(lines):
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        toks = [t for t in _SPLIT.split(s) if t]
        if len(toks) < 3:
            raise SurveyInputError(
                f"expected at least 3 numbers (easting northing height), found {len(toks)}: "
                f"{s[:60]!r}",
                path=path,
                line=first_line + k,
            )
        try:
            rows.append((float(toks[0]), float(toks[1]), float(toks[2])))
        except ValueError:
            raise SurveyInputError(
                f"cannot read numbers from {s[:60]!r}; expected easting northing height",
                path=path,
                line=first_line + k,
            ) from None
    return np.array(rows, dtype=np.float64).reshape(-1, 3)


def _parse_batch(lines: list[str], first_line: int, delim: str | None, path: Path) -> F64:
    if not any(_is_data(ln) for ln in lines):
        return np.empty((0, 3), dtype=np.float64)  # only comments / blank lines
    try:
        arr = np.loadtxt(lines, delimiter=delim, usecols=(0, 1, 2), comments="#", ndmin=2)
        xyz = np.asarray(arr, dtype=np.float64).reshape(-1, 3)
    except (ValueError, IndexError):
        xyz = _parse_slow(lines, first_line, path)
    if not within_magnitude(xyz):  # NaN, inf or no place on Earth: name the line
        numbers = [first_line + k for k, ln in enumerate(lines) if _is_data(ln)]
        check_finite(xyz, path=path, lines=numbers)
        check_magnitude(xyz, path=path, lines=numbers)
    return xyz


def iter_xyz_text(opts: ReadOptions, batch_lines: int = 1_000_000) -> Iterator[F64]:
    """Yield raw (k, 3) float64 (E, N, H) batches of an XYZ or PTS file (not
    yet in the licence frame)."""
    path = opts.path
    # numbers are ASCII; only a header or comment could hold other bytes
    with path.open("r", encoding="utf-8-sig", errors="replace", newline=None) as fh:
        line_no = 0
        first = ""
        for line in fh:
            line_no += 1
            if line.strip():
                first = line
                break
        if not first:
            raise SurveyInputError("the file is empty (no points)", path=path)
        toks = [t for t in _SPLIT.split(first.strip()) if t]
        expected: int | None = None
        pending: list[str] = []
        if len(toks) == 1 and toks[0].isdigit():
            expected = int(toks[0])  # PTS count line
        elif toks and not _is_number(toks[0]) and not first.lstrip().startswith("#"):
            pass  # a header line such as "X Y Z intensity"
        else:
            pending = [first]
        count_line = line_no
        start = line_no + (0 if pending else 1)
        delim: str | None = None
        done = 0
        while True:
            batch = pending + list(itertools.islice(fh, batch_lines))
            pending = []
            if not batch:
                break
            if delim is None:
                sample = next((ln for ln in batch if _is_data(ln)), "")
                delim = "," if "," in sample else (";" if ";" in sample else " ")
            xyz = _parse_batch(batch, start, None if delim == " " else delim, path)
            start += len(batch)
            if xyz.shape[0]:
                done += xyz.shape[0]
                opts.report(done, expected)
                yield xyz
    if expected is not None and done != expected:
        raise SurveyInputError(
            f"the PTS count line says {expected:,} points but the file holds {done:,}; the file "
            "is truncated or the count is wrong: upload the complete file",
            path=path,
            line=count_line,
        )
    if done == 0:
        raise SurveyInputError("the file holds no points (empty scan)", path=path)


def read_xyz_text(opts: ReadOptions) -> F64:
    """All points of an XYZ or PTS file, raw (n, 3) float64 (E, N, H)."""
    parts = list(iter_xyz_text(opts))
    return np.concatenate(parts, axis=0)

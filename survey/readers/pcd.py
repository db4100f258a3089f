"""PCL point cloud data (``.pcd``), ``DATA ascii`` and ``DATA binary``.

The header names the fields (``FIELDS x y z intensity``), their byte size
(``SIZE 4 4 4 4``), type (``TYPE F F F U``: F float, I signed, U unsigned)
and count, then ``POINTS n`` and ``DATA``. Most exporters write ``F 4``
(float32): refused when the points hold absolute CGCS2000 coordinates (see
``common.refuse_float32``); ``F 8`` (double) is fine.

``VIEWPOINT`` is the sensor pose; PCL does not apply it to the points when
loading, so neither does minegate (a non-identity viewpoint is noted).
Field names are case-insensitive (PDAL writes ``X Y Z``, PCL ``x y z``).
``DATA binary_compressed`` (what PCL's tools save by default) is read
too: after the DATA line, the compressed and uncompressed sizes (uint32
each), then LZF data that decompresses to the fields one after the other
(all x, then all y, ...), not point by point.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, refuse_float32
from survey.readers.lzf import lzf_decompress

_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "<i1", ("I", 2): "<i2", ("I", 4): "<i4",
          ("I", 8): "<i8", ("U", 1): "<u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}  # fmt: skip


@dataclass
class _Layout:
    """What a PCD header says: field names (lower case), types, sizes and
    counts, the point count, the viewpoint and the DATA kind."""

    fields: list[str]
    types: list[str]
    sizes: list[int]
    counts: list[int]
    n: int
    viewpoint: list[float]
    kind: str

    def column(self, name: str) -> int:
        """First value column of field ``name`` in an ascii row."""
        return sum(self.counts[: self.fields.index(name)])


def _header(blob: bytes, path: Path) -> tuple[dict[str, list[str]], int]:
    """Header lines (upper-case key -> values) and where the data starts."""
    header: dict[str, list[str]] = {}
    pos = 0
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise SurveyInputError(
                "PCD header without a DATA line: not a PCD file, or truncated; export it again",
                path=path,
            )
        line = blob[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            return header, pos


def _layout(header: dict[str, list[str]], path: Path) -> _Layout:
    for key in ("FIELDS", "SIZE", "TYPE", "POINTS", "DATA"):
        if key not in header or not header[key]:
            raise SurveyInputError(
                f"PCD header lacks {key}; export the file again from the scanner software",
                path=path,
            )
    # field names are case-insensitive: PDAL writes X Y Z, PCL x y z
    fields = [f.lower() for f in header["FIELDS"]]
    types = [t.upper() for t in header["TYPE"]]
    try:
        counts = [int(c) for c in header.get("COUNT", ["1"] * len(fields))]
        sizes = [int(s) for s in header["SIZE"]]
        n = int(header["POINTS"][0])
        vp = [float(v) for v in header.get("VIEWPOINT", ["0", "0", "0", "1", "0", "0", "0"])]
    except (ValueError, IndexError):
        raise SurveyInputError(
            "PCD header: COUNT, SIZE, POINTS or VIEWPOINT is not a number; export the file again",
            path=path,
        ) from None
    if not (len(fields) == len(types) == len(sizes) == len(counts)):
        raise SurveyInputError(
            "PCD header: FIELDS, SIZE, TYPE and COUNT have different lengths; export the file "
            "again",
            path=path,
        )
    if not {"x", "y", "z"} <= set(fields):
        raise SurveyInputError(
            f"PCD fields {header['FIELDS']} lack x, y or z; export the coordinates", path=path
        )
    if n == 0:
        raise SurveyInputError("the PCD file holds 0 points (empty scan)", path=path)
    return _Layout(fields, types, sizes, counts, n, vp, header["DATA"][0].lower())


def _read_ascii(blob: bytes, pos: int, lay: _Layout, path: Path) -> F64:
    cols = [lay.column(c) for c in ("x", "y", "z")]
    text = blob[pos:].decode("ascii", errors="replace").splitlines()
    try:
        arr = np.loadtxt(text, usecols=cols, ndmin=2, comments="#")
    except ValueError as exc:
        raise SurveyInputError(f"PCD ascii data does not parse: {exc}", path=path) from None
    return np.asarray(arr, dtype=np.float64).reshape(-1, 3)


def _field_types(lay: _Layout, path: Path) -> list[str]:
    try:
        return [_TYPES[(t, s)] for t, s in zip(lay.types, lay.sizes, strict=True)]
    except KeyError:
        raise SurveyInputError(
            f"PCD TYPE/SIZE {lay.types}/{lay.sizes} not supported; export x y z as F 4 or F 8",
            path=path,
        ) from None


def _read_binary(blob: bytes, pos: int, lay: _Layout, path: Path) -> F64:
    # unique names for the record fields (a PCD may repeat '_' padding fields)
    names = [f"{i}_{f}" for i, f in enumerate(lay.fields)]
    types = _field_types(lay, path)
    dtype = np.dtype(
        [
            (name, t, (c,)) if c > 1 else (name, t)
            for name, t, c in zip(names, types, lay.counts, strict=True)
        ]
    )
    if len(blob) - pos < lay.n * dtype.itemsize:
        raise SurveyInputError(
            f"the PCD header says {lay.n:,} points but the file holds only "
            f"{(len(blob) - pos) // dtype.itemsize:,}: truncated upload, send it again",
            path=path,
        )
    rec = np.frombuffer(blob, dtype=dtype, count=lay.n, offset=pos)
    cols = [names[lay.fields.index(c)] for c in ("x", "y", "z")]
    return np.column_stack([rec[c] for c in cols]).astype(np.float64)


def _read_compressed(blob: bytes, pos: int, lay: _Layout, path: Path) -> F64:
    types = _field_types(lay, path)
    widths = [np.dtype(t).itemsize * c for t, c in zip(types, lay.counts, strict=True)]
    if len(blob) - pos < 8:
        raise SurveyInputError(
            "the PCD file ends before its compressed data: truncated upload, send it again",
            path=path,
        )
    packed, size = (int(v) for v in np.frombuffer(blob, dtype="<u4", count=2, offset=pos))
    if size != lay.n * sum(widths) or packed > len(blob) - pos - 8:
        raise SurveyInputError(
            f"the PCD compressed data announces {packed:,} bytes unpacking to {size:,}, but "
            f"{lay.n:,} points need {lay.n * sum(widths):,} and the file holds "
            f"{len(blob) - pos - 8:,}: truncated or damaged, send it again",
            path=path,
        )
    raw = lzf_decompress(blob[pos + 8 : pos + 8 + packed], size)
    if raw is None:
        raise SurveyInputError(
            "the PCD compressed data is damaged (it does not unpack to the size it announces); "
            "send the file again, or re-save it as 'binary' or 'ascii'",
            path=path,
        )
    cols = []
    for c in ("x", "y", "z"):
        k = lay.fields.index(c)
        start = lay.n * sum(widths[:k])  # the fields lie one after the other
        cols.append(np.frombuffer(raw, dtype=types[k], count=lay.n, offset=start))
    return np.column_stack(cols).astype(np.float64)


def read_pcd(opts: ReadOptions) -> F64:
    """Raw (n, 3) float64 (E, N, H) of a PCD file's x, y, z fields (names
    in any case)."""
    path = opts.path
    blob = path.read_bytes()
    header, pos = _header(blob, path)
    lay = _layout(header, path)
    if lay.viewpoint != [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]:
        opts.notes.append(f"{path.name}: PCD VIEWPOINT {lay.viewpoint} not applied (as in PCL)")
    if lay.kind == "ascii":
        xyz = _read_ascii(blob, pos, lay, path)
    elif lay.kind == "binary":
        xyz = _read_binary(blob, pos, lay, path)
    elif lay.kind == "binary_compressed":
        xyz = _read_compressed(blob, pos, lay, path)
    else:
        raise SurveyInputError(
            f"PCD DATA {lay.kind!r} not supported; save as 'binary' or 'ascii'", path=path
        )
    if xyz.shape[0] != lay.n:
        raise SurveyInputError(
            f"the PCD header says {lay.n:,} points but {xyz.shape[0]:,} were read: truncated "
            "upload? send it again",
            path=path,
        )
    ix = lay.fields.index("x")
    if lay.types[ix] == "F" and lay.sizes[ix] == 4:
        refuse_float32(float(np.nanmax(np.abs(xyz))), path=path, what="this PCD (TYPE F SIZE 4)")
    opts.report(lay.n, lay.n)
    return xyz

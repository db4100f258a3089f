"""PCL point cloud data (``.pcd``), ``DATA ascii`` and ``DATA binary``.

The header names the fields (``FIELDS x y z intensity``), their byte size
(``SIZE 4 4 4 4``), type (``TYPE F F F U``: F float, I signed, U unsigned)
and count, then ``POINTS n`` and ``DATA``. Most exporters write ``F 4``
(float32): refused when the points hold absolute CGCS2000 coordinates (see
``common.refuse_float32``); ``F 8`` (double) is fine.

``VIEWPOINT`` is the sensor pose; PCL does not apply it to the points when
loading, so neither does minegate (a non-identity viewpoint is noted).
``DATA binary_compressed`` (LZF) is not supported: re-save as binary or
ascii.
"""

from __future__ import annotations

import numpy as np

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, refuse_float32

_TYPES = {("F", 4): "<f4", ("F", 8): "<f8", ("I", 1): "<i1", ("I", 2): "<i2", ("I", 4): "<i4",
          ("I", 8): "<i8", ("U", 1): "<u1", ("U", 2): "<u2", ("U", 4): "<u4", ("U", 8): "<u8"}  # fmt: skip


def read_pcd(opts: ReadOptions) -> F64:
    """Raw (n, 3) float64 (E, N, H) of a PCD file's x, y, z fields."""
    path = opts.path
    blob = path.read_bytes()
    header: dict[str, list[str]] = {}
    pos = 0
    line_no = 0
    while True:
        end = blob.find(b"\n", pos)
        if end < 0:
            raise SurveyInputError(
                "PCD header without a DATA line: not a PCD file, or truncated; export it again",
                path=path,
            )
        line_no += 1
        line = blob[pos:end].decode("ascii", errors="replace").strip()
        pos = end + 1
        if not line or line.startswith("#"):
            continue
        key, *vals = line.split()
        header[key.upper()] = vals
        if key.upper() == "DATA":
            break
    for key in ("FIELDS", "SIZE", "TYPE", "POINTS", "DATA"):
        if key not in header:
            raise SurveyInputError(
                f"PCD header lacks {key}; export the file again from the scanner software",
                path=path,
            )
    fields = header["FIELDS"]
    types = header["TYPE"]
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
            f"PCD fields {fields} lack x, y or z; export the coordinates", path=path
        )
    if n == 0:
        raise SurveyInputError("the PCD file holds 0 points (empty scan)", path=path)
    if vp != [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]:
        opts.notes.append(f"{path.name}: PCD VIEWPOINT {vp} not applied (as in PCL)")
    kind = header["DATA"][0].lower()
    ix = fields.index("x")
    if kind == "ascii":
        cols = [sum(counts[: fields.index(c)]) for c in ("x", "y", "z")]
        text = blob[pos:].decode("ascii", errors="replace").splitlines()
        try:
            arr = np.loadtxt(text, usecols=cols, ndmin=2, comments="#")
        except ValueError as exc:
            raise SurveyInputError(f"PCD ascii data does not parse: {exc}", path=path) from None
        xyz = np.asarray(arr, dtype=np.float64).reshape(-1, 3)
    elif kind == "binary":
        try:
            dtype = np.dtype(
                [
                    (f, _TYPES[(t, s)], (c,)) if c > 1 else (f, _TYPES[(t, s)])
                    for f, t, s, c in zip(fields, types, sizes, counts, strict=True)
                ]
            )
        except KeyError:
            raise SurveyInputError(
                f"PCD TYPE/SIZE {types}/{sizes} not supported; export x y z as F 4 or F 8",
                path=path,
            ) from None
        if len(blob) - pos < n * dtype.itemsize:
            raise SurveyInputError(
                f"the PCD header says {n:,} points but the file holds only "
                f"{(len(blob) - pos) // dtype.itemsize:,}: truncated upload, send it again",
                path=path,
            )
        rec = np.frombuffer(blob, dtype=dtype, count=n, offset=pos)
        xyz = np.column_stack([rec["x"], rec["y"], rec["z"]]).astype(np.float64)
    else:
        raise SurveyInputError(
            f"PCD DATA {kind!r} not supported; save as 'binary' or 'ascii'", path=path
        )
    if xyz.shape[0] != n:
        raise SurveyInputError(
            f"the PCD header says {n:,} points but {xyz.shape[0]:,} were read: truncated "
            "upload? send it again",
            path=path,
        )
    if types[ix] == "F" and sizes[ix] == 4:
        refuse_float32(float(np.nanmax(np.abs(xyz))), path=path, what="this PCD (TYPE F SIZE 4)")
    opts.report(n, n)
    return xyz

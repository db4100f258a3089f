"""The LAS/LAZ public header, read and bounded here before laspy sees it.

laspy believes what a header says: a VLR or extended VLR (EVLR) length of
2^40 bytes, or an EVLR start of 0, becomes an allocation that ends in a
``MemoryError``; a zero, negative or NaN scale factor reads "fine" and
puts every point at the offset (garbage that must never become a finding of
illegal mining). So every size the header claims is bounded by the file's
size, and scales and offsets must be numbers a survey can have, before the
file is opened with laspy.

Layout (ASPRS LAS 1.0-1.4, little-endian): "LASF" at 0; version major,
minor at 24, 25; header size u16 at 94; offset to point data u32 at 96;
number of VLRs u32 at 100; point format u8 at 104 (bit 7, and bit 6 in
some writers, mark LAZ compression); record length u16 at 105; X, Y, Z
scale f64 at 131, 139, 147 and offsets at 155, 163, 171. LAS 1.4 adds
the start of the first EVLR u64 at 235 and the EVLR count u32 at 243. A
VLR header is 54 bytes (its data length u16 at 20), an EVLR header 60 bytes
(its data length u64 at 20).
"""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import BinaryIO

from survey.model import SurveyInputError

#: coarsest LAS scale factor accepted (metres per integer step); finer than
#: 0 and coarser than this is a damaged header, not a survey
SCALE_MAX_M = 1000.0
#: largest |offset| accepted: 1e9 m is far beyond any projected coordinate
#: (a zone-prefixed CGCS2000 easting is 4e7 m)
OFFSET_MAX_M = 1.0e9
#: point formats defined by LAS 1.0-1.4
POINT_FORMATS = range(11)

_VLR_HEADER = 54
_EVLR_HEADER = 60


def _damaged(path: Path, what: str) -> SurveyInputError:
    return SurveyInputError(
        f"the LAS header is damaged: {what}; this is not a usable scan, export or upload it again",
        path=path,
    )


def check_las_header(path: Path) -> None:
    """SurveyInputError unless the header's sizes fit in the file and its
    scales, offsets and point format are ones a survey can have."""
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(375)
        if not head.startswith(b"LASF") or len(head) < 227:
            return  # laspy names what this is (not LAS, or cut in its header)
        major, minor = head[24], head[25]
        if major != 1 or minor > 4:
            raise _damaged(path, f"it says LAS version {major}.{minor}; LAS versions are 1.0-1.4")
        header_size, offset_points, n_vlrs = struct.unpack_from("<HII", head, 94)
        fmt = head[104] & 0x3F
        scales = struct.unpack_from("<3d", head, 131)
        offsets = struct.unpack_from("<3d", head, 155)
        _check_numbers(path, fmt, scales, offsets)
        if not 227 <= header_size <= offset_points <= size:
            raise _damaged(
                path,
                f"it puts the points at byte {offset_points:,} after a {header_size:,}-byte "
                f"header, in a file of {size:,} bytes",
            )
        pos = header_size
        for k in range(n_vlrs):
            if pos + _VLR_HEADER > size:
                raise _damaged(path, f"it counts {n_vlrs:,} VLRs but only {k:,} fit in the file")
            fh.seek(pos + 20)
            (length,) = struct.unpack("<H", fh.read(2))
            pos += _VLR_HEADER + length
        if minor >= 4 and len(head) >= 247:
            start, n_evlrs = struct.unpack_from("<QI", head, 235)
            if n_evlrs:
                _check_evlrs(path, fh, start, n_evlrs, offset_points, size)


def _check_numbers(
    path: Path, fmt: int, scales: tuple[float, ...], offsets: tuple[float, ...]
) -> None:
    if fmt not in POINT_FORMATS:
        raise _damaged(path, f"point format {fmt} is not a LAS point format (0-10)")
    for axis, s, o in zip("XYZ", scales, offsets, strict=True):
        if not (math.isfinite(s) and 0.0 < s <= SCALE_MAX_M):
            raise _damaged(
                path,
                f"its {axis} scale factor is {s!r} (a LAS scale is a positive step such as "
                f"0.001 m, at most {SCALE_MAX_M:g} m)",
            )
        if not (math.isfinite(o) and abs(o) <= OFFSET_MAX_M):
            raise _damaged(
                path, f"its {axis} offset is {o:.6g} (beyond {OFFSET_MAX_M:.0e} m: not a place)"
            )


def _check_evlrs(
    path: Path, fh: BinaryIO, start: int, n: int, offset_points: int, size: int
) -> None:
    if not offset_points <= start <= size - _EVLR_HEADER:
        raise _damaged(
            path,
            f"it puts its {n:,} extended VLR(s) at byte {start:,}, outside the file's "
            f"{offset_points:,}-{size:,} after the point data start",
        )
    pos = start
    for k in range(n):
        if pos + _EVLR_HEADER > size:
            raise _damaged(
                path, f"it counts {n:,} extended VLRs but only {k:,} fit in {size:,} bytes"
            )
        fh.seek(pos + 20)
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > size - pos - _EVLR_HEADER:
            raise _damaged(
                path,
                f"extended VLR {k + 1} claims {length:,} bytes but the file has {size:,}",
            )
        pos += _EVLR_HEADER + length

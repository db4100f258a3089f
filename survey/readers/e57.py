"""ASTM E57 through pye57 (libE57Format).

Every ``data3D`` scan is read and its pose applied: ``global = R(q) @ local
+ t`` with the pose quaternion (w, x, y, z) and translation. Cartesian scans
are read in their local frame (``read_scan(i, transform=False)``) so the
storage precision can be judged on the local values, and the pose is
applied here in float64 (the same formula as pye57's ``transform=True``);
the tests check it against poses computed independently. Spherical scans
are converted and posed by pye57 (``transform=True``).

Scan points are often stored as float32 (pye57 itself writes single
precision) in the scanner's local frame, which is fine; float32 points that
hold absolute CGCS2000 coordinates are refused (see ``common``). Invalid
points (``cartesianInvalidState``) are dropped by pye57.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pye57
from pye57 import libe57

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, refuse_float32

_CARTESIAN = ("cartesianX", "cartesianY", "cartesianZ")
_SPHERICAL = ("sphericalRange", "sphericalAzimuth", "sphericalElevation")


def _stores_float32(header: pye57.ScanHeader) -> bool:
    """True if the scan's cartesian coordinates are single-precision floats."""
    proto = libe57.StructureNode(header.points.prototype())
    for name in _CARTESIAN:
        node = proto[name]
        if isinstance(node, libe57.FloatNode) and node.precision() == libe57.E57_SINGLE:
            return True
    return False


def _scan_points(e57: pye57.E57, i: int, header: pye57.ScanHeader, opts: ReadOptions) -> F64:
    """Global (n, 3) float64 points of scan ``i``."""
    fields = set(header.point_fields)
    if set(_CARTESIAN) <= fields:
        # read local coordinates, judge their storage, then apply the pose
        # here in float64: global = R(q) @ local + t
        data = e57.read_scan(i, ignore_missing_fields=True, transform=False)
        local = np.column_stack([np.asarray(data[c], dtype=np.float64) for c in _CARTESIAN])
        if local.size and _stores_float32(header):
            refuse_float32(float(np.nanmax(np.abs(local))), path=opts.path, what=f"E57 scan {i}")
        if not header.has_pose():
            return local
        rot = np.asarray(header.rotation_matrix, dtype=np.float64)
        return local @ rot.T + np.asarray(header.translation, dtype=np.float64)
    if set(_SPHERICAL) <= fields:
        # ranges and angles are local by nature; pye57 converts and applies the pose
        data = e57.read_scan(i, ignore_missing_fields=True, transform=True)
        return np.column_stack([np.asarray(data[c], dtype=np.float64) for c in _CARTESIAN])
    raise SurveyInputError(
        f"scan {i} has neither cartesian nor spherical coordinates (fields: {sorted(fields)})",
        path=opts.path,
    )


def iter_e57_scans(opts: ReadOptions) -> Iterator[F64]:
    """Yield each scan of an E57 file, pose applied: (n, 3) float64 raw
    (E, N, H) per scan (empty scans skipped with a note)."""
    path = opts.path
    try:
        e57 = pye57.E57(str(path))
    except libe57.E57Exception as exc:
        raise SurveyInputError(
            f"not a readable E57 file ({str(exc).splitlines()[0]}); the upload may be truncated "
            "or damaged: export and upload it again",
            path=path,
        ) from None
    try:
        count = e57.scan_count
        if count == 0:
            raise SurveyInputError("the E57 file holds no scans (empty)", path=path)
        totals = [int(e57.get_header(i).point_count) for i in range(count)]
        total, done = sum(totals), 0
        for i in range(count):
            if totals[i] == 0:
                opts.notes.append(f"{path.name}: E57 scan {i} holds no points, skipped")
                continue
            xyz = _scan_points(e57, i, e57.get_header(i), opts)
            done += totals[i]
            opts.report(done, total)
            yield xyz
    except libe57.E57Exception as exc:
        raise SurveyInputError(
            f"the E57 file is damaged ({str(exc).splitlines()[0]}); export and upload it again",
            path=path,
        ) from None
    finally:
        e57.close()
    opts.notes.append(f"{path.name}: {count} E57 scan(s), poses applied")


def read_e57(opts: ReadOptions) -> F64:
    """All scans of an E57 file, poses applied: (n, 3) float64 raw (E, N, H)."""
    parts = list(iter_e57_scans(opts))
    return np.concatenate(parts, axis=0) if parts else np.empty((0, 3))

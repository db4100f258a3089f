"""ASTM E57 through pye57 (libE57Format).

Every ``data3D`` scan is read and its pose applied: ``global = R(q) @ local
+ t`` with the pose quaternion (w, x, y, z) and translation. pye57's
``read_scan(i, transform=True)`` does exactly that in float64 (numpy
``rotation_matrix @ points.T + translation``); the tests check it against
poses computed independently. Spherical scans are converted by pye57 too.

Scan points are often stored as float32 (pye57 itself writes single
precision) in the scanner's local frame, which is fine; float32 points that
hold absolute CGCS2000 coordinates are refused (see ``common``). Invalid
points (``cartesianInvalidState``) are dropped by pye57.
"""

from __future__ import annotations

import numpy as np
import pye57
from pye57 import libe57

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, refuse_float32

_CARTESIAN = ("cartesianX", "cartesianY", "cartesianZ")
_SPHERICAL = ("sphericalRange", "sphericalAzimuth", "sphericalElevation")


def _float32_extent(header: pye57.ScanHeader) -> float | None:
    """Largest absolute local coordinate if the scan stores float32, else
    None."""
    proto = libe57.StructureNode(header.points.prototype())
    worst: float | None = None
    for name in _CARTESIAN:
        if name not in header.point_fields:
            return None
        node = proto[name]
        if isinstance(node, libe57.FloatNode) and node.precision() == libe57.E57_SINGLE:
            m = max(abs(float(node.minimum())), abs(float(node.maximum())))
            worst = m if worst is None else max(worst, m)
    return worst


def read_e57(opts: ReadOptions) -> F64:
    """All scans of an E57 file, poses applied: (n, 3) float64 raw (E, N, H)."""
    path = opts.path
    parts: list[F64] = []
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
        totals = [e57.get_header(i).point_count for i in range(count)]
        total, done = int(sum(totals)), 0
        for i in range(count):
            if totals[i] == 0:
                opts.notes.append(f"{path.name}: E57 scan {i} holds no points, skipped")
                continue
            header = e57.get_header(i)
            fields = set(header.point_fields)
            if not (set(_CARTESIAN) <= fields or set(_SPHERICAL) <= fields):
                raise SurveyInputError(
                    f"scan {i} has neither cartesian nor spherical coordinates "
                    f"(fields: {sorted(fields)})",
                    path=path,
                )
            extent = _float32_extent(header)
            if extent is not None:
                refuse_float32(extent, path=path, what=f"E57 scan {i}")
            data = e57.read_scan(i, ignore_missing_fields=True, transform=True)
            xyz = np.column_stack([np.asarray(data[c], dtype=np.float64) for c in _CARTESIAN])
            parts.append(xyz)
            done += int(totals[i])
            opts.report(done, total)
    except libe57.E57Exception as exc:
        raise SurveyInputError(
            f"the E57 file is damaged ({str(exc).splitlines()[0]}); export and upload it again",
            path=path,
        ) from None
    finally:
        e57.close()
    xyz_all = np.concatenate(parts, axis=0) if parts else np.empty((0, 3))
    opts.notes.append(f"{path.name}: {len(parts)} E57 scan(s), poses applied")
    return xyz_all

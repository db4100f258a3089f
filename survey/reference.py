"""Slow, obviously correct reference for :mod:`survey.classify`.

One point at a time with shapely geometry objects and plain Python, no
rasters, no local origin, no numba. Used by the property tests to check the
fast path; never on real data (a few thousand points per second).

The conventions are those of :class:`survey.classify.Classification`:
distances in metres, positive beyond the limit; a point on the boundary is
not inside (shapely ``contains``) and has plan distance 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import shapely

from survey.classify import (
    ABOVE_BIT,
    BELOW_BIT,
    BOUNDARY_BIT,
    COMPLIANT,
    SEAM_BIT,
    UNCERTAIN,
    VIOLATION,
    Classification,
    block_polygon,
)
from survey.model import F64, Licence
from survey.tolerances import NEAREST_BLOCK_TIE_M


def classify_reference(licence: Licence, xyz: F64) -> Classification:
    """Same contract as :func:`survey.classify.classify`, except that
    ``plan_dist`` is exact for every point (no inside bound)."""
    polys = [block_polygon(licence, i) for i in range(len(licence.blocks))]
    union = shapely.union_all(polys)
    boundary = union.boundary
    n = len(xyz)
    out: dict[str, Any] = {
        "block": np.full(n, -1, dtype=np.int32),
        "ref_block": np.zeros(n, dtype=np.int32),
        "plan_dist": np.zeros(n),
        "above": np.zeros(n),
        "below": np.zeros(n),
        "seam": np.full(n, np.nan),
        "violated": np.zeros(n, dtype=np.uint8),
        "uncertain": np.zeros(n, dtype=np.uint8),
        "status": np.zeros(n, dtype=np.uint8),
    }
    for i in range(n):
        e, nn, h = (float(v) for v in xyz[i])
        pt = shapely.Point(e, nn)
        containing = [b for b, p in enumerate(polys) if p.contains(pt)]
        dist = boundary.distance(pt)
        inside_union = union.contains(pt)
        out["plan_dist"][i] = -dist if inside_union else dist
        if containing:

            def vert(b: int, h: float = h) -> float:
                blk = licence.blocks[b]
                return max(h - blk.z_top, blk.z_bottom - h)

            best = min(containing, key=lambda b: (vert(b), b))
            out["block"][i] = best
            ref = best
        else:
            dists = [polys[b].boundary.distance(pt) for b in range(len(polys))]
            ref = next(b for b, d in enumerate(dists) if d <= min(dists) + NEAREST_BLOCK_TIE_M)
        out["ref_block"][i] = ref
        blk = licence.blocks[ref]
        out["above"][i] = h - blk.z_top
        out["below"][i] = blk.z_bottom - h
        seam = math.nan
        for s in licence.seams:
            en = np.array([[e, nn]])
            roof = float(s.roof.height(en)[0])
            floor = float(s.floor.height(en)[0])
            if math.isnan(roof) or math.isnan(floor):
                continue
            off = max(h - roof, floor - h)
            seam = off if math.isnan(seam) else min(seam, off)
        out["seam"][i] = seam
        viol = unc = 0
        checks = [
            (out["plan_dist"][i], BOUNDARY_BIT, licence.tolerance_m),
            (out["above"][i], ABOVE_BIT, licence.tolerance_z_m),
            (out["below"][i], BELOW_BIT, licence.tolerance_z_m),
        ]
        if licence.seams:
            checks.append((seam, SEAM_BIT, licence.tolerance_z_m))
        for value, bit, t in checks:
            if value > t:
                viol |= bit
            elif value > 0.0:
                unc |= bit
        out["violated"][i] = viol
        out["uncertain"][i] = unc
        out["status"][i] = VIOLATION if viol else (UNCERTAIN if unc else COMPLIANT)
    return Classification(**out)

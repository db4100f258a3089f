"""Ground excavated beyond the licence: outside the plan boundary (越界),
below the licensed floor or above the licensed top (超层), as cells and
volumes of the DSM, grouped into incidents of the underground model
(:class:`survey.model.Incident`).

Excavated means lower than the ground before mining by more than the
height tolerance. The ground before mining is the pre-mining surface when
one is given (a DSM of the first flight, a survey of the original terrain),
else the surrounding terrain: a plane fitted (least squares, after
dropping the lowest third) to the DSM's outer rim of cells. The second is
only right for a pit cut into ground that was about flat or evenly sloping
around it; the report says which one was used.

Volumes are per cell: (ground before - DSM) x cell area outside the
boundary; max(0, floor - DSM) below the floor; the part of the removed
column above the top. A connected group of cells is a violation when its
largest exceedance (metres beyond the boundary in plan, below the floor or
above the top) passes the licence's tolerance, else it is within survey
uncertainty; its volume is all of the group's volume beyond the limit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage

from survey.model import F64, Block, Incident, Licence, SurveyInputError, ViolationType
from survey.openpit.dsm import Dsm

MIN_AREA_M2 = 1.0  # smaller groups of cells are DSM noise, not excavation
RIM_CELLS = 3  # width of the outer rim that stands for the surrounding terrain


@dataclass
class Excavation:
    """Per cell (ny, nx): depth excavated below the ground before mining
    (0 where not excavated), and how the ground was known."""

    depth: F64
    ground: F64
    ground_source: (
        str  # "pre-mining surface <file>" | "surrounding terrain (plane fit to the DSM rim)"
    )


def terrain_plane(dsm: Dsm) -> F64:
    """A plane through the DSM's outer rim (its highest two thirds), as (ny, nx) heights."""
    z = dsm.z
    rim = np.zeros(z.shape, dtype=bool)
    k = RIM_CELLS
    rim[:k], rim[-k:], rim[:, :k], rim[:, -k:] = True, True, True, True
    rim &= np.isfinite(z)
    if rim.sum() < 3 * k:
        raise SurveyInputError(
            "the DSM has almost no heights on its outer rim, so the terrain around the pit is "
            "unknown; give the ground before mining with --pre-mining",
            path=dsm.source or None,
        )
    rows, cols = np.nonzero(rim)
    ze, ne, he = dsm.east[cols], dsm.north[rows], z[rows, cols]
    keep = he >= np.quantile(he, 1 / 3)
    ce, cn = float(dsm.east.mean()), float(dsm.north.mean())
    a = np.column_stack([np.ones(keep.sum()), ze[keep] - ce, ne[keep] - cn])
    coef, *_ = np.linalg.lstsq(a, he[keep], rcond=None)
    plane = coef[0] + coef[1] * (dsm.east[None, :] - ce) + coef[2] * (dsm.north[:, None] - cn)
    return np.asarray(plane, dtype=np.float64)


def excavation(dsm: Dsm, pre: Dsm | None, tol_z: float) -> Excavation:
    if pre is not None:
        from survey.openpit.dsm import on_grid

        ground = on_grid(pre, dsm).z
        source = f"pre-mining surface {pre.source}"
    else:
        ground = terrain_plane(dsm)
        source = "surrounding terrain (a plane fitted to the DSM's outer rim)"
    depth = np.nan_to_num(ground - dsm.z, nan=0.0)
    depth[depth <= tol_z] = 0.0
    return Excavation(depth, ground, source)


def _inside(dsm: Dsm, block: Block) -> tuple[npt.NDArray[np.bool_], shapely.Polygon]:
    return dsm.polygon_mask(block.polygon_en()), shapely.Polygon(block.polygon_en())


def _nearest(block: Block, e: float, n: float) -> tuple[tuple[str, str], str]:
    pts = block.polygon_en()
    k = len(pts)
    best, edge = np.inf, 0
    for i in range(k):
        a, b = pts[i], pts[(i + 1) % k]
        ab = b - a
        t = float(np.clip(np.dot([e - a[0], n - a[1]], ab) / max(np.dot(ab, ab), 1e-12), 0, 1))
        d = float(np.hypot(*(a + t * ab - (e, n))))
        if d < best:
            best, edge = d, i
    corner = int(np.argmin(np.hypot(pts[:, 0] - e, pts[:, 1] - n)))
    c = block.corners
    return (c[edge].number, c[(edge + 1) % k].number), c[corner].number


def _group(
    dsm: Dsm,
    mask: npt.NDArray[np.bool_],
    exceed: F64,
    volume: F64,
    kind: ViolationType,
    block: Block,
    tol: float,
    heights: F64,
) -> list[Incident]:
    labels, _n = ndimage.label(mask, structure=np.ones((3, 3)))
    out = []
    area = dsm.cell_area()
    # each group within its bounding box: a noisy DSM has thousands of groups
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None:
            continue
        sel = labels[box] == lab
        if sel.sum() * area < MIN_AREA_M2:
            continue
        exc = float(exceed[box][sel].max())
        vol = float(volume[box][sel].sum() * area)
        rows, cols = np.nonzero(sel)
        es = dsm.east[box[1].start + cols]
        ns = dsm.north[box[0].start + rows]
        hs = heights[box][sel]
        w = volume[box][sel] + 1e-12
        centroid = (
            float(np.average(es, weights=w)),
            float(np.average(ns, weights=w)),
            float(np.average(hs, weights=w)),
        )
        edge, corner = (
            _nearest(block, centroid[0], centroid[1])
            if kind == ViolationType.BOUNDARY
            else (None, None)
        )
        out.append(
            Incident(
                id="",
                type=kind,
                block=block.name,
                point_count=int(sel.sum()),  # cells
                bbox_min=(float(es.min()), float(ns.min()), float(hs.min())),
                bbox_max=(float(es.max()), float(ns.max()), float(hs.max())),
                centroid=centroid,
                max_exceedance_m=exc,
                volume_m3=vol,
                nearest_edge=edge,
                nearest_corner=corner,
                within_uncertainty=exc <= tol,
            )
        )
    return out


def boundary_incidents(dsm: Dsm, licence: Licence, exc: Excavation) -> list[Incident]:
    """Incidents (ids not yet given) beyond the boundary, below the floor
    and above the top of every block. A cell outside every block counts
    once, against the nearest block."""
    dug = exc.depth > 0
    finite = np.isfinite(dsm.z)
    z_or_inf = np.where(finite, dsm.z, np.inf)
    out: list[Incident] = []
    inside_any = np.zeros(dsm.shape, dtype=bool)
    polys, insides = [], []
    for block in licence.blocks:
        inside, poly = _inside(dsm, block)
        inside_any |= inside
        polys.append(poly)
        insides.append(inside)
    # beyond the boundary: excavated cells outside every block
    outside = dug & ~inside_any
    if outside.any():
        dist = np.zeros(dsm.shape)
        rows, cols = np.nonzero(outside)
        pts = shapely.points(dsm.east[cols], dsm.north[rows])
        d_all = np.stack([shapely.distance(p.exterior, pts) for p in polys])
        dist[outside] = d_all.min(axis=0)
        nearest = np.zeros(dsm.shape, dtype=np.int64)
        nearest[outside] = d_all.argmin(axis=0)
        for k, block in enumerate(licence.blocks):
            sel = outside & (nearest == k)
            out += _group(
                dsm, sel, dist, exc.depth, ViolationType.BOUNDARY, block, licence.tolerance_m, dsm.z
            )
    for block, inside in zip(licence.blocks, insides, strict=True):
        below = np.where(inside & finite, block.z_bottom - z_or_inf, 0.0)
        below = np.maximum(below, 0.0)
        out += _group(
            dsm,
            below > 0,
            below,
            below,
            ViolationType.BELOW_RANGE,
            block,
            licence.tolerance_z_m,
            dsm.z,
        )
        removed_above = np.maximum(exc.ground - np.maximum(z_or_inf, block.z_top), 0.0)
        above = np.where(inside & dug, removed_above, 0.0)
        out += _group(
            dsm,
            above > 0,
            above,
            above,
            ViolationType.ABOVE_RANGE,
            block,
            licence.tolerance_z_m,
            dsm.z,
        )
    return out

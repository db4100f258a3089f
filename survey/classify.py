"""Fast per-point classification of survey points against a licence.

``classify(licence, xyz)`` answers, for every point of an (n, 3) float64
(easting, northing, height) array, where it lies relative to the licensed
extent. All distances are metres and **positive beyond the licensed limit**.

How it is fast (the plan test dominates on big scans):

1. Once per licence (:func:`prepare`), the union of the block polygons is
   rasterised into a mask of at most ``tolerances.MASK_CELLS`` cells a side.
   Each cell is *outside*, *inside far from the boundary* (with a lower bound
   of its depth), *inside near the boundary*, or *boundary* (an edge passes
   through the cell or one of its 8 neighbours). The one-cell band makes the
   mask safe against the rounding of the cell lookup.
2. Per point, the cell is looked up (float64, relative to a local origin at
   the licence centroid). With numba installed this is one compiled loop;
   without it the same arithmetic runs as numpy passes over blocks of
   ``tolerances.CLASSIFY_BLOCK_POINTS`` points.
3. Only points in boundary cells get the exact test, done by
   ``shapely.contains_xy`` on absolute float64 coordinates, so inside/outside
   is **identical to shapely**.
4. The signed plan distance is computed exactly (vectorised point-to-segment
   distance over the few licence edges) only for points outside the licence
   or within ``tolerances.EXACT_INSIDE_BAND_M`` inside it.

Boundary convention: a point exactly on the boundary is *outside* for
``block`` (shapely's ``contains_xy`` excludes the boundary) but its
``plan_dist`` is 0.0, which is not beyond the limit, so it is compliant.

Several blocks: ``block`` is the block whose polygon contains the point; when
polygons overlap (stacked blocks with different elevation ranges) it is the
one whose elevation range the point exceeds least. ``plan_dist`` is measured
to the boundary of the *union* of the blocks. Points outside every block
take the elevation range of the nearest block (``ref_block``), so a point
beyond the boundary and below that block's floor counts as both.

A streaming check needs the details (exceedances, blocks) of the
non-compliant points only: :func:`classify_status` runs the same compiled
per-point code writing one status byte a point (a seam's offsets in one more
pass), and the caller classifies the few non-compliant points in full.

Modules: the masks and :func:`prepare` are in :mod:`survey.plan_mask`, the
plan distances (:func:`segment_distance`, :func:`mask_distance`) in
:mod:`survey.distance`; this module classifies and re-exports them. Its
``numba`` (None without numba) decides, per call, between the compiled and
the numpy path for the whole classification.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from survey import tolerances as tol
from survey.distance import mask_distance, segment_distance
from survey.jit import numba
from survey.model import F64, Licence, ViolationType
from survey.plan_mask import (
    CELL_EDGE,
    CELL_IN_DEEP,
    CELL_IN_NEAR,
    EdgeGrid,
    PolygonMask,
    PreparedLicence,
    block_polygon,
    contains,
    prepare,
)
from survey.surfaces import GridSurface, TinSurface

__all__ = [
    "ABOVE_BIT",
    "BELOW_BIT",
    "BOUNDARY_BIT",
    "COMPLIANT",
    "SEAM_BIT",
    "TYPE_BITS",
    "UNCERTAIN",
    "VIOLATION",
    "Classification",
    "EdgeGrid",
    "PolygonMask",
    "PreparedLicence",
    "block_polygon",
    "classify",
    "classify_status",
    "empty_classification",
    "mask_distance",
    "prepare",
    "segment_distance",
]


U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]

#: Bits of ``Classification.violated`` / ``.uncertain``.
BOUNDARY_BIT = 1
ABOVE_BIT = 2
BELOW_BIT = 4
SEAM_BIT = 8
TYPE_BITS: dict[ViolationType, int] = {
    ViolationType.BOUNDARY: BOUNDARY_BIT,
    ViolationType.ABOVE_RANGE: ABOVE_BIT,
    ViolationType.BELOW_RANGE: BELOW_BIT,
    ViolationType.OUTSIDE_SEAM: SEAM_BIT,
}

#: ``Classification.status`` values.
COMPLIANT = 0
UNCERTAIN = 1
VIOLATION = 2


@dataclass
class Classification:
    """Per-point answers for n points; every array has shape (n,).

    * ``block``: int32 index into ``licence.blocks`` of the block containing
      the point in plan, -1 if none (boundary points are in none).
    * ``ref_block``: int32 block the elevation range was taken from: ``block``
      when inside, otherwise the nearest block in plan.
    * ``plan_dist``: float64 m, signed distance to the boundary of the union
      of the blocks, positive outside, negative inside. Exact outside and up to
      ``EXACT_INSIDE_BAND_M`` inside; deeper it is a bound (the point is at
      least ``-plan_dist`` inside).
    * ``above``: float64 m, H - z_top of ``ref_block`` (positive above).
    * ``below``: float64 m, z_bottom - H of ``ref_block`` (positive below).
    * ``seam``: float64 m, signed vertical offset outside the licensed seam:
      H - roof above the roof, floor - H below the floor, negative (distance
      to the nearer of roof/floor) inside; with several seams the smallest;
      NaN where the licence has no seam or no seam surface covers the point.
    * ``violated`` / ``uncertain``: uint8 bitmasks (``BOUNDARY_BIT`` ...) of
      the limits exceeded beyond the tolerance / by at most the tolerance.
    * ``status``: uint8, ``COMPLIANT`` 0, ``UNCERTAIN`` 1, ``VIOLATION`` 2
      (the worst over the limits).
    """

    block: I32
    ref_block: I32
    plan_dist: F64
    above: F64
    below: F64
    seam: F64
    violated: U8
    uncertain: U8
    status: U8

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def exceedance(self, vtype: ViolationType) -> F64:
        """(n,) float64 exceedance of one limit, positive beyond it."""
        if vtype is ViolationType.BOUNDARY:
            return self.plan_dist
        if vtype is ViolationType.ABOVE_RANGE:
            return self.above
        if vtype is ViolationType.BELOW_RANGE:
            return self.below
        return self.seam


# --------------------------------------------------------------------------
# the single-block kernel: numba only (the numpy path is _classify_block's else)

if numba is not None:
    from survey.distance import near_dist_numba

    @numba.njit(cache=True, nogil=True)
    def _fused_numba(
        xyz,
        e0,
        n0,
        ox,
        oy,
        inv,
        codes,
        depth,
        edges,
        gox,
        goy,
        ginv,
        gnx,
        gny,
        start,
        index,
        ztop,
        zbot,
        tp,
        tz,
        code_out,
        block_out,
        plan_out,
        above_out,
        below_out,
        viol_out,
        unc_out,
        status_out,
        ref_out,
        seam_out,
        status_only,
    ):
        # one pass for a single-block licence: cell lookup, plan distance
        # (except in boundary cells, which need shapely's exact test),
        # elevation limits, bits and status. ``status_only``: write the
        # status alone (PENDING in boundary cells; the other outputs may be
        # empty arrays) and return how many points are not compliant or
        # pending
        ny, nx = codes.shape
        bad = 0
        for i in range(xyz.shape[0]):
            lx = xyz[i, 0] - e0
            ly = xyz[i, 1] - n0
            ix = math.floor((lx - ox) * inv)
            iy = math.floor((ly - oy) * inv)
            c = 0
            dep = 0.0
            if ix >= 0 and iy >= 0 and ix < nx and iy < ny:
                c = codes[iy, ix]
                dep = depth[iy, ix]
            v = 0
            u = 0
            if c == 1:  # deep inside: a bound is enough
                blk = 0
                plan = -dep
            elif c == 2:  # boundary cell: settled by the caller
                blk = -1
                plan = 0.0
            else:
                d = near_dist_numba(lx, ly, edges, gox, goy, ginv, gnx, gny, start, index)
                if c == 3:
                    blk = 0
                    plan = -d
                else:
                    blk = -1
                    plan = d
                    if d > tp:
                        v |= 1
                    elif d > 0.0:
                        u |= 1
            h = xyz[i, 2]
            a = h - ztop
            b = zbot - h
            if a > tz:
                v |= 2
            elif a > 0.0:
                u |= 2
            if b > tz:
                v |= 4
            elif b > 0.0:
                u |= 4
            st = 2 if v else (1 if u else 0)
            if status_only:
                if c == 2:
                    st = 255  # PENDING
                status_out[i] = st
                if st:
                    bad += 1
                continue
            status_out[i] = st
            code_out[i] = c
            block_out[i] = blk
            plan_out[i] = plan
            above_out[i] = a
            below_out[i] = b
            viol_out[i] = v
            unc_out[i] = u
            ref_out[i] = 0
            seam_out[i] = np.nan
        return bad


# --------------------------------------------------------------------------


def empty_classification(n: int) -> Classification:
    """Uninitialised :class:`Classification` of n points."""
    return Classification(
        block=np.empty(n, dtype=np.int32),
        ref_block=np.empty(n, dtype=np.int32),
        plan_dist=np.empty(n, dtype=np.float64),
        above=np.empty(n, dtype=np.float64),
        below=np.empty(n, dtype=np.float64),
        seam=np.empty(n, dtype=np.float64),
        violated=np.empty(n, dtype=np.uint8),
        uncertain=np.empty(n, dtype=np.uint8),
        status=np.empty(n, dtype=np.uint8),
    )


def _view(c: Classification, s: slice) -> Classification:
    return Classification(
        c.block[s],
        c.ref_block[s],
        c.plan_dist[s],
        c.above[s],
        c.below[s],
        c.seam[s],
        c.violated[s],
        c.uncertain[s],
        c.status[s],
    )


def classify(
    licence: Licence | PreparedLicence, xyz: F64, *, out: Classification | None = None
) -> Classification:
    """Classify points against the licence.

    ``xyz``: (n, 3) float64 (easting, northing, height) in the licence's
    coordinate system (zone prefix removed), all finite: the answers for
    NaN or infinite coordinates are undefined (``survey.check`` refuses such
    input before it gets here). Returns a :class:`Classification`
    of n points. Large inputs are processed in blocks of
    ``CLASSIFY_BLOCK_POINTS`` to bound temporary memory. ``out``: optional
    buffers of at least n points to reuse between chunks (the result is then
    a view of its first n entries).
    """
    prep = licence if isinstance(licence, PreparedLicence) else prepare(licence)
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must be (n, 3) float64, got shape {xyz.shape}")
    n = xyz.shape[0]
    if out is None or len(out) < n:
        out = empty_classification(n)
    elif len(out) > n:
        out = _view(out, slice(0, n))
    step = tol.CLASSIFY_BLOCK_POINTS
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        _classify_block(prep, xyz[sl], _view(out, sl))
    return out


PENDING = 255  # status of a point in a boundary cell before its exact test


def _kernel_licence(prep: PreparedLicence) -> tuple[Any, ...]:
    """The licence arguments of ``_fused_numba`` (single block)."""
    m = prep.union
    g = m.near_edges
    lic = prep.licence
    return (
        prep.origin[0],
        prep.origin[1],
        m.ox,
        m.oy,
        1.0 / m.cell,
        m.codes,
        m.depth,
        m.edges,
        *g.kernel_args(),
        prep.z_top[0],
        prep.z_bottom[0],
        lic.tolerance_m,
        lic.tolerance_z_m,
    )


def classify_status(
    prep: PreparedLicence, xyz: F64, out: U8, *, seam_out: F64 | None = None
) -> tuple[U8, int] | None:
    """Status of each point (0 compliant, 1 within uncertainty, 2 violation:
    the same as ``classify(prep, xyz).status``) without the per-point
    details, for a streaming check that keeps the details of the
    non-compliant points only (it classifies those again: a few per cent of
    a scan). ``out``: a uint8 buffer of at least n points; ``seam_out``: a
    float64 buffer of at least n points for a licence with seams (allocated
    when not given), which then holds every point's seam offset
    (``Classification.seam``). Returns
    (the status view of n points, how many are not compliant), or None where
    this path does not apply (numba missing, several blocks): call
    :func:`classify` then."""
    lic = prep.licence
    if numba is None or len(prep.blocks) != 1:
        return None
    xyz = np.asarray(xyz, dtype=np.float64)
    n = xyz.shape[0]
    status = out[:n]
    u8, i32, f64 = (np.empty(0, dtype=t) for t in (np.uint8, np.int32, np.float64))
    # the details are not written: empty arrays of the same types (the same
    # compiled specialisation as classify's)
    bad = int(
        _fused_numba(
            xyz, *_kernel_licence(prep), u8, i32, f64, f64, f64, u8, u8, status, i32, f64, True
        )
    )
    if lic.seams:
        seam = np.empty(n, dtype=np.float64) if seam_out is None else seam_out[:n]
        _seam_offset(lic, xyz, seam, jit=True)
        bad = int(_seam_status_numba(seam, lic.tolerance_z_m, status))
    if bad:
        pending = np.flatnonzero(status == PENDING)
        if pending.size:  # boundary cells: the exact test, as classify does
            settled = classify(prep, xyz[pending]).status
            status[pending] = settled
            bad -= int(np.count_nonzero(settled == 0))
    return status, bad


def _classify_block(prep: PreparedLicence, xyz: F64, out: Classification) -> None:
    """Fill ``out`` (views of length len(xyz)) for one block of points."""
    lic = prep.licence
    origin = prep.origin
    tp, tz = lic.tolerance_m, lic.tolerance_z_m
    single = len(prep.blocks) == 1
    jit = numba is not None  # read per call: tests switch numba off here
    if single and jit:
        code = np.empty(xyz.shape[0], dtype=np.uint8)
        _fused_numba(
            xyz,
            *_kernel_licence(prep),
            code,
            out.block,
            out.plan_dist,
            out.above,
            out.below,
            out.violated,
            out.uncertain,
            out.status,
            out.ref_block,
            out.seam,
            False,
        )
        todo = np.flatnonzero(code == CELL_EDGE)
        if todo.size:
            _exact_plan(prep, xyz[todo], code[todo], todo, out)
    else:
        inside, code, depth = contains(xyz, origin, prep.union, jit=jit)
        out.plan_dist[:] = -depth  # deep points: a bound; the rest overwritten below
        exact = np.flatnonzero(code != CELL_IN_DEEP)
        if exact.size:
            d = mask_distance(
                prep.union, xyz[exact, 0] - origin[0], xyz[exact, 1] - origin[1], jit=jit
            )
            out.plan_dist[exact] = np.where(inside[exact], -d, d)
        if single:
            out.block[:] = np.where(inside, 0, -1)
            out.ref_block[:] = 0
        else:
            block, ref = _assign_blocks(prep, xyz, inside)
            out.block[:] = block
            out.ref_block[:] = ref
        ref = out.ref_block
        np.subtract(xyz[:, 2], prep.z_top[ref], out=out.above)
        np.subtract(prep.z_bottom[ref], xyz[:, 2], out=out.below)
        out.violated[:] = 0
        out.uncertain[:] = 0
        for arr, bit, t in (
            (out.plan_dist, BOUNDARY_BIT, tp),
            (out.above, ABOVE_BIT, tz),
            (out.below, BELOW_BIT, tz),
        ):
            _set_bits(arr, bit, t, out.violated, out.uncertain)
        out.status[:] = _status(out.violated, out.uncertain)

    if lic.seams:
        _seam_offset(lic, xyz, out.seam, jit=jit)
        if jit:
            _seam_bits_numba(out.seam, tz, out.violated, out.uncertain, out.status)
        else:
            _set_bits(out.seam, SEAM_BIT, tz, out.violated, out.uncertain)
            out.status[:] = _status(out.violated, out.uncertain)
    elif not (single and jit):
        out.seam.fill(np.nan)


def _status(violated: U8, uncertain: U8) -> U8:
    st = (uncertain > 0).astype(np.uint8)
    st[violated > 0] = VIOLATION
    return st


def _set_bits(arr: F64, bit: int, t: float, violated: U8, uncertain: U8) -> None:
    over = arr > t
    violated[over] |= np.uint8(bit)
    beyond = (arr > 0.0) & ~over
    uncertain[beyond] |= np.uint8(bit)


def _exact_plan(
    prep: PreparedLicence, pts: F64, code: U8, idx: npt.NDArray[np.intp], out: Classification
) -> None:
    """Exact inside test and signed distance for the non-deep points ``idx``
    of a single-block licence (the fused kernel left them provisional)."""
    m = prep.union
    inside = code == CELL_IN_NEAR
    edge = np.flatnonzero(code == CELL_EDGE)
    if edge.size:
        inside[edge] = shapely.contains_xy(m.geometry, pts[edge, 0], pts[edge, 1])
    d = mask_distance(
        m, pts[:, 0] - prep.origin[0], pts[:, 1] - prep.origin[1], jit=numba is not None
    )
    plan = np.where(inside, -d, d)
    out.plan_dist[idx] = plan
    out.block[idx] = np.where(inside, 0, -1)
    viol = out.violated[idx]
    unc = out.uncertain[idx]
    _set_bits(plan, BOUNDARY_BIT, prep.licence.tolerance_m, viol, unc)
    out.violated[idx] = viol
    out.uncertain[idx] = unc
    out.status[idx] = _status(viol, unc)


def _assign_blocks(
    prep: PreparedLicence, xyz: F64, inside_union: npt.NDArray[np.bool_]
) -> tuple[I32, I32]:
    """Block containing each point (least vertical exceedance among
    overlapping ones) and the reference block (nearest one when outside)."""
    n = xyz.shape[0]
    h = xyz[:, 2]
    block = np.full(n, -1, dtype=np.int32)
    best = np.full(n, np.inf)
    for b, m in enumerate(prep.blocks):
        inside_b, _, _ = contains(xyz, prep.origin, m, jit=numba is not None)
        v = np.maximum(h - prep.z_top[b], prep.z_bottom[b] - h)
        better = inside_b & (v < best)
        block[better] = b
        best[better] = v[better]
    ref = block.copy()
    out = np.flatnonzero(~inside_union)
    if out.size:
        px = xyz[out, 0] - prep.origin[0]
        py = xyz[out, 1] - prep.origin[1]
        ref[out] = _nearest_block(prep, px, py)
    # inside the union but on a shared edge of two blocks: nearest block
    lost = np.flatnonzero(ref < 0)
    if lost.size:
        px = xyz[lost, 0] - prep.origin[0]
        py = xyz[lost, 1] - prep.origin[1]
        ref[lost] = _nearest_block(prep, px, py)
    return block, ref


def _nearest_block(prep: PreparedLicence, px: F64, py: F64) -> I32:
    """Index of the nearest block to local points (k,); on a tie (within
    ``NEAREST_BLOCK_TIE_M``) the first listed block."""
    jit = numba is not None
    dists = np.stack([segment_distance(px, py, m.edges, jit=jit) for m in prep.blocks])
    near = dists <= dists.min(axis=0) + tol.NEAREST_BLOCK_TIE_M
    return np.argmax(near, axis=0).astype(np.int32)


#: Plan margin (m) around a seam surface's extent inside which its
#: ``height`` is asked at all; beyond it every surface answers NaN (the
#: margin only absorbs the rounding of the surfaces' own bounds tests).
SEAM_EXTENT_MARGIN_M = 1.0e-3


def _surface_extent(surface: object) -> tuple[float, float, float, float] | None:
    """(min E, max E, min N, max N) a surface covers at most, or None."""
    if isinstance(surface, GridSurface):
        return surface.plan_extent()
    if isinstance(surface, TinSurface):
        v = surface.vertices
        return (
            float(v[:, 0].min()),
            float(v[:, 0].max()),
            float(v[:, 1].min()),
            float(v[:, 1].max()),
        )
    return None


def _seam_offset(lic: Licence, xyz: F64, best: F64, *, jit: bool) -> None:
    """Fill ``best`` (n,) with the seam offset of every point (see
    ``Classification.seam``). Surfaces are asked only about points within
    their plan extent (NaN beyond it anyway); a seam of two grids runs as one
    compiled loop with numba."""
    best.fill(np.nan)
    for s in lic.seams:
        roof, floor = s.roof, s.floor
        if jit and isinstance(roof, GridSurface) and isinstance(floor, GridSurface):
            if _same_lattice(roof, floor):
                # one cell search and one set of weights for both surfaces
                _seam_lattice_numba(
                    xyz,
                    roof.origin[0],
                    roof.origin[1],
                    roof.local_north,
                    roof.local_east,
                    roof.values,
                    floor.values,
                    best,
                )
                continue
            _seam_grids_numba(
                xyz,
                roof.origin[0],
                roof.origin[1],
                roof.local_north,
                roof.local_east,
                roof.values,
                floor.origin[0],
                floor.origin[1],
                floor.local_north,
                floor.local_east,
                floor.values,
                best,
            )
            continue
        idx = _within_extent(xyz, (_surface_extent(roof), _surface_extent(floor)))
        if idx is not None and idx.size == 0:
            continue
        pts = xyz if idx is None else xyz[idx]
        en = np.ascontiguousarray(pts[:, :2])
        h = pts[:, 2]
        r = np.asarray(roof.height(en), dtype=np.float64)
        f = np.asarray(floor.height(en), dtype=np.float64)
        off = np.maximum(h - r, f - h)  # NaN where either surface is missing
        # fmin ignores NaN: any covering seam counts
        if idx is None:
            np.fmin(best, off, out=best)
        else:
            best[idx] = np.fmin(best[idx], off)


def _same_lattice(a: GridSurface, b: GridSurface) -> bool:
    """Roof and floor grids on the same nodes (the usual export of one
    geological model)."""
    return (
        bool(np.array_equal(a.origin, b.origin))
        and np.array_equal(a.local_north, b.local_north)
        and np.array_equal(a.local_east, b.local_east)
    )


def _within_extent(
    xyz: F64, extents: tuple[tuple[float, float, float, float] | None, ...]
) -> npt.NDArray[np.intp] | None:
    """Indices of the points within every known extent (plus the margin);
    None when no extent is known (all points)."""
    known = [e for e in extents if e is not None]
    if not known:
        return None
    m = SEAM_EXTENT_MARGIN_M
    e0 = max(e[0] for e in known) - m
    e1 = min(e[1] for e in known) + m
    n0 = max(e[2] for e in known) - m
    n1 = min(e[3] for e in known) + m
    x, y = xyz[:, 0], xyz[:, 1]
    return np.flatnonzero((x >= e0) & (x <= e1) & (y >= n0) & (y <= n1))


if numba is not None:
    from survey.surfaces import _interval, grid_height_numba

    @numba.njit(cache=True, nogil=True)
    def _seam_grids_numba(xyz, re0, rn0, rgn, rge, rv, fe0, fn0, fgn, fge, fv, best):
        # GridSurface.height of roof and floor, the offset and the fmin of
        # _seam_offset's general path, point by point
        for i in range(xyz.shape[0]):
            e = xyz[i, 0]
            n = xyz[i, 1]
            r = grid_height_numba(rgn, rge, rv, n - rn0, e - re0)
            if math.isnan(r):
                continue
            f = grid_height_numba(fgn, fge, fv, n - fn0, e - fe0)
            if math.isnan(f):
                continue
            h = xyz[i, 2]
            off = max(h - r, f - h)
            b = best[i]
            if math.isnan(b) or off < b:
                best[i] = off

    @numba.njit(cache=True, nogil=True)
    def _seam_lattice_numba(xyz, e0, n0, gn, ge, rv, fv, best):
        # _seam_grids_numba for a roof and a floor on the same nodes: the
        # cell and the weights once, the same arithmetic (bit for bit).
        # Spelled out rather than calling cell/value helpers: numba compiled
        # that factoring (tuple-returning helpers, inlined or not) to a loop
        # two to three times slower (0.107 s -> 0.21-0.31 s for 20 M points)
        last_n = gn[gn.shape[0] - 1]
        last_e = ge[ge.shape[0] - 1]
        for i in range(xyz.shape[0]):
            xn = xyz[i, 1] - n0
            xe = xyz[i, 0] - e0
            if not (xn >= gn[0] and xn <= last_n and xe >= ge[0] and xe <= last_e):
                continue
            i0 = _interval(gn, xn)
            i1 = _interval(ge, xe)
            y0 = (xn - gn[i0]) / (gn[i0 + 1] - gn[i0])
            y1 = (xe - ge[i1]) / (ge[i1 + 1] - ge[i1])
            a0 = 1 - y0
            a1 = 1 - y1
            # grid_height_numba's products in its order: (v * a0) * a1 ...
            r = (
                rv[i0, i1] * a0 * a1
                + rv[i0, i1 + 1] * a0 * y1
                + rv[i0 + 1, i1] * y0 * a1
                + rv[i0 + 1, i1 + 1] * y0 * y1
            )
            if math.isnan(r):
                continue
            f = (
                fv[i0, i1] * a0 * a1
                + fv[i0, i1 + 1] * a0 * y1
                + fv[i0 + 1, i1] * y0 * a1
                + fv[i0 + 1, i1 + 1] * y0 * y1
            )
            if math.isnan(f):
                continue
            h = xyz[i, 2]
            off = max(h - r, f - h)
            b = best[i]
            if math.isnan(b) or off < b:
                best[i] = off

    @numba.njit(cache=True, nogil=True)
    def _seam_status_numba(seam, tz, status):
        # the seam's part of the status (as _seam_bits_numba sets it) for
        # points not PENDING; returns how many are not compliant or pending
        bad = 0
        for i in range(seam.shape[0]):
            st = status[i]
            if st != 255:
                x = seam[i]
                if x > tz:
                    st = 2
                elif x > 0.0 and st == 0:
                    st = 1
                status[i] = st
            if st:
                bad += 1
        return bad

    @numba.njit(cache=True, nogil=True)
    def _seam_bits_numba(seam, tz, violated, uncertain, status):
        # _set_bits(seam, SEAM_BIT, ...) and _status in one pass
        for i in range(seam.shape[0]):
            v = violated[i]
            u = uncertain[i]
            x = seam[i]
            if x > tz:
                v |= 8
            elif x > 0.0:
                u |= 8
            violated[i] = v
            uncertain[i] = u
            status[i] = 2 if v else (1 if u else 0)

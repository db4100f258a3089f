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
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from survey import tolerances as tol
from survey.model import F64, Licence, SurveyInputError, ViolationType

numba: Any
try:  # numba is optional: the numpy fallback gives identical results, slower
    numba = importlib.import_module("numba")
except ImportError:  # pragma: no cover - depends on the environment
    numba = None

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

# cell codes of the raster mask
_OUT = 0
_IN_DEEP = 1
_EDGE = 2
_IN_NEAR = 3


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


@dataclass(frozen=True)
class PolygonMask:
    """Raster mask of one (multi)polygon in local coordinates.

    ``codes`` (ny, nx) uint8 cell codes, ``depth`` (ny, nx) float64 lower
    bound of the depth inside for deep cells; cell (0, 0) has its lower-left
    corner at local (ox, oy); ``edges`` (m, 4) float64 local x0, y0, x1, y1 of
    every ring segment.
    """

    geometry: shapely.Geometry  # absolute coordinates, prepared
    ox: float
    oy: float
    cell: float
    codes: U8
    depth: F64
    edges: F64
    near_edges: EdgeGrid


@dataclass(frozen=True)
class EdgeGrid:
    """Candidate nearest edges per cell of a coarse grid, so the distance of
    a point needs a few edges, not all: every edge whose lower distance
    bound to the cell is at most the smallest upper bound is listed (so the
    nearest edge of any point in the cell is among them). Cell (0, 0) has its
    lower-left corner at local (ox, oy); cell c's edges are
    ``index[start[c]:start[c + 1]]``; points off the grid use all edges."""

    ox: float
    oy: float
    cell: float
    nx: int
    ny: int
    start: npt.NDArray[np.int64]
    index: npt.NDArray[np.int64]


@dataclass(frozen=True)
class PreparedLicence:
    """What :func:`classify` needs, computed once per licence.

    ``origin`` (2,) float64 (E, N) local origin (the centroid of the union);
    ``union`` the mask of the union of the blocks; ``blocks`` one mask per
    block (the same object as ``union`` for a single block); ``z_top`` /
    ``z_bottom`` (b,) float64 per block.
    """

    licence: Licence
    origin: F64
    union: PolygonMask
    blocks: tuple[PolygonMask, ...]
    z_top: F64
    z_bottom: F64


def block_polygon(licence: Licence, index: int) -> shapely.Polygon:
    """Shapely polygon (absolute E, N) of block ``index``; made valid."""
    poly = shapely.Polygon(licence.blocks[index].polygon_en())
    if not poly.is_valid:
        # a self-touching ring drawn from a paper licence: take the area it
        # encloses rather than refusing the whole check
        poly = shapely.make_valid(poly)
    return poly


def prepare(licence: Licence, *, mask_cells: int = tol.MASK_CELLS) -> PreparedLicence:
    """Build the masks of ``licence`` (about 0.1-0.5 s; reuse the result).
    ``mask_cells``: cells along the longer side of the masks (>= 8; fewer
    cells = more points get the exact test, same answers)."""
    if mask_cells < 8:
        raise ValueError(f"mask_cells must be >= 8, got {mask_cells}")
    if not licence.blocks:
        raise SurveyInputError(
            "the licence has no block: nothing to check against", path=licence.source or None
        )
    polys = [block_polygon(licence, i) for i in range(len(licence.blocks))]
    for b, p in zip(licence.blocks, polys, strict=True):
        if p.area <= 0.0:
            raise SurveyInputError(
                f"block {b.name!r}: its corners enclose no area; check the corner list",
                path=licence.source or None,
            )
    union = shapely.union_all(polys) if len(polys) > 1 else polys[0]
    c = shapely.centroid(union)
    origin = np.array([c.x, c.y], dtype=np.float64)
    umask = _build_mask(union, origin, mask_cells)
    bmasks = (
        (umask,) if len(polys) == 1 else tuple(_build_mask(p, origin, mask_cells) for p in polys)
    )
    return PreparedLicence(
        licence=licence,
        origin=origin,
        union=umask,
        blocks=bmasks,
        z_top=np.array([b.z_top for b in licence.blocks], dtype=np.float64),
        z_bottom=np.array([b.z_bottom for b in licence.blocks], dtype=np.float64),
    )


def _ring_edges(geom: shapely.Geometry, origin: F64) -> F64:
    rings = shapely.get_rings(shapely.get_parts(geom))
    segs = []
    for ring in rings:
        xy = shapely.get_coordinates(ring) - origin
        segs.append(np.column_stack([xy[:-1], xy[1:]]))
    return np.ascontiguousarray(np.concatenate(segs), dtype=np.float64)


def _build_mask(geom: shapely.Geometry, origin: F64, cells: int) -> PolygonMask:
    shapely.prepare(geom)
    edges = _ring_edges(geom, origin)
    minx, miny, maxx, maxy = shapely.bounds(geom)
    lminx, lminy = minx - origin[0], miny - origin[1]
    span = max(maxx - minx, maxy - miny)
    cell = span / (cells - 4)
    # a 2-cell margin keeps every polygon edge away from the mask's rim
    ox, oy = lminx - 2 * cell, lminy - 2 * cell
    nx = math.ceil((maxx - minx) / cell) + 5
    ny = math.ceil((maxy - miny) / cell) + 5
    edge_cells = np.zeros((ny, nx), dtype=bool)
    for x0, y0, x1, y1 in edges:
        steps = max(2, math.ceil(4 * math.hypot(x1 - x0, y1 - y0) / cell) + 1)
        t = np.linspace(0.0, 1.0, steps)
        ix = np.floor((x0 + t * (x1 - x0) - ox) / cell).astype(np.int64)
        iy = np.floor((y0 + t * (y1 - y0) - oy) / cell).astype(np.int64)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                edge_cells[np.clip(iy + dy, 0, ny - 1), np.clip(ix + dx, 0, nx - 1)] = True
    cx = origin[0] + ox + (np.arange(nx) + 0.5) * cell
    cy = origin[1] + oy + (np.arange(ny) + 0.5) * cell
    gx, gy = np.meshgrid(cx, cy)
    inside = shapely.contains_xy(geom, gx, gy)
    codes = np.full((ny, nx), _OUT, dtype=np.uint8)
    depth = np.zeros((ny, nx), dtype=np.float64)
    inner = inside & ~edge_cells
    if inner.any():
        lx = gx[inner] - origin[0]
        ly = gy[inner] - origin[1]
        bound = segment_distance(lx, ly, edges) - cell * math.sqrt(0.5)
        near = bound < tol.EXACT_INSIDE_BAND_M
        sub = np.where(near, _IN_NEAR, _IN_DEEP).astype(np.uint8)
        codes[inner] = sub
        depth[inner] = np.maximum(bound, 0.0)
    codes[edge_cells] = _EDGE
    return PolygonMask(
        geom, float(ox), float(oy), float(cell), codes, depth, edges, _edge_grid(edges)
    )


def _edge_grid(edges: F64) -> EdgeGrid:
    """Coarse candidate-edge grid over three times the edges' extent."""
    lo = np.minimum(edges[:, :2].min(axis=0), edges[:, 2:].min(axis=0))
    hi = np.maximum(edges[:, :2].max(axis=0), edges[:, 2:].max(axis=0))
    span = float(max(hi - lo)) or 1.0
    n = tol.EDGE_GRID_CELLS
    cell = 3.0 * span / n
    ox = float((lo[0] + hi[0]) / 2 - 1.5 * span)
    oy = float((lo[1] + hi[1]) / 2 - 1.5 * span)
    cx = ox + (np.arange(n) + 0.5) * cell
    cy = oy + (np.arange(n) + 0.5) * cell
    gx, gy = np.meshgrid(cx, cy)  # (ny, nx) row-major, as the lookup
    px, py = gx.ravel(), gy.ravel()
    half = cell * math.sqrt(0.5)
    dist = np.stack([_segdist_numpy(px, py, edges[k : k + 1]) for k in range(len(edges))])
    upper = (dist + half).min(axis=0)
    cand = (dist - half) <= upper  # (edges, cells)
    counts = cand.sum(axis=0)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    index = np.nonzero(cand.T)[1].astype(np.int64)  # per cell, edges ascending
    return EdgeGrid(ox, oy, cell, n, n, start, index)


# --------------------------------------------------------------------------
# kernels: numba when available, numpy otherwise (same arithmetic)


def _lookup_numpy(xyz: F64, origin: F64, m: PolygonMask) -> tuple[U8, F64]:
    ny, nx = m.codes.shape
    fx = xyz[:, 0] - origin[0]
    fx -= m.ox
    fx *= 1.0 / m.cell
    fy = xyz[:, 1] - origin[1]
    fy -= m.oy
    fy *= 1.0 / m.cell
    ix = np.floor(fx)
    iy = np.floor(fy)
    ok = (ix >= 0) & (iy >= 0) & (ix < nx) & (iy < ny)
    flat = np.where(ok, iy * nx + ix, 0).astype(np.intp)
    code = np.where(ok, m.codes.ravel()[flat], _OUT).astype(np.uint8)
    depth = np.where(ok, m.depth.ravel()[flat], 0.0)
    return code, depth


def _segdist_numpy(px: F64, py: F64, edges: F64) -> F64:
    best = np.full(px.shape, np.inf)
    for x0, y0, x1, y1 in edges:
        ex, ey = x1 - x0, y1 - y0
        ll = ex * ex + ey * ey
        dx = px - x0
        dy = py - y0
        if ll > 0.0:
            t = np.clip((dx * ex + dy * ey) / ll, 0.0, 1.0)
            dx = dx - t * ex
            dy = dy - t * ey
        np.minimum(best, dx * dx + dy * dy, out=best)
    return np.sqrt(best)


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _lookup_numba(xyz, e0, n0, ox, oy, inv, codes, depth, code_out, depth_out):
        ny, nx = codes.shape
        for i in range(xyz.shape[0]):
            fx = ((xyz[i, 0] - e0) - ox) * inv
            fy = ((xyz[i, 1] - n0) - oy) * inv
            ix = math.floor(fx)
            iy = math.floor(fy)
            if ix >= 0 and iy >= 0 and ix < nx and iy < ny:
                code_out[i] = codes[iy, ix]
                depth_out[i] = depth[iy, ix]
            else:
                code_out[i] = 0
                depth_out[i] = 0.0

    @numba.njit(cache=True, nogil=True)
    def _segdist_numba(px, py, edges, out):
        for i in range(px.shape[0]):
            best = np.inf
            for k in range(edges.shape[0]):
                x0 = edges[k, 0]
                y0 = edges[k, 1]
                ex = edges[k, 2] - x0
                ey = edges[k, 3] - y0
                ll = ex * ex + ey * ey
                dx = px[i] - x0
                dy = py[i] - y0
                if ll > 0.0:
                    t = (dx * ex + dy * ey) / ll
                    t = min(max(t, 0.0), 1.0)
                    dx = dx - t * ex
                    dy = dy - t * ey
                d = dx * dx + dy * dy
                if d < best:
                    best = d
            out[i] = math.sqrt(best)

    @numba.njit(cache=True, nogil=True)
    def _near_dist_numba(lx, ly, edges, gox, goy, ginv, gnx, gny, start, index):
        """Distance from local (lx, ly) to the nearest edge, over the
        candidates of its coarse cell (all edges off the grid)."""
        jx = math.floor((lx - gox) * ginv)
        jy = math.floor((ly - goy) * ginv)
        on = jx >= 0 and jy >= 0 and jx < gnx and jy < gny
        k0 = 0
        k1 = edges.shape[0]
        if on:
            c = jy * gnx + jx
            k0 = start[c]
            k1 = start[c + 1]
        best = np.inf
        for kk in range(k0, k1):
            k = index[kk] if on else kk
            x0 = edges[k, 0]
            y0 = edges[k, 1]
            ex = edges[k, 2] - x0
            ey = edges[k, 3] - y0
            ll = ex * ex + ey * ey
            dx = lx - x0
            dy = ly - y0
            if ll > 0.0:
                t = (dx * ex + dy * ey) / ll
                t = min(max(t, 0.0), 1.0)
                dx = dx - t * ex
                dy = dy - t * ey
            d = dx * dx + dy * dy
            if d < best:
                best = d
        return math.sqrt(best)

    @numba.njit(cache=True, nogil=True)
    def _grid_dist_numba(px, py, edges, gox, goy, ginv, gnx, gny, start, index, out):
        for i in range(px.shape[0]):
            out[i] = _near_dist_numba(px[i], py[i], edges, gox, goy, ginv, gnx, gny, start, index)

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
    ):
        # one pass for a single-block licence: cell lookup, plan distance
        # (except in boundary cells, which need shapely's exact test),
        # elevation limits, bits and status
        ny, nx = codes.shape
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
            code_out[i] = c
            v = 0
            u = 0
            if c == 1:  # deep inside: a bound is enough
                block_out[i] = 0
                plan_out[i] = -dep
            elif c == 2:  # boundary cell: settled by the caller
                block_out[i] = -1
                plan_out[i] = 0.0
            else:
                d = _near_dist_numba(lx, ly, edges, gox, goy, ginv, gnx, gny, start, index)
                if c == 3:
                    block_out[i] = 0
                    plan_out[i] = -d
                else:
                    block_out[i] = -1
                    plan_out[i] = d
                    if d > tp:
                        v |= 1
                    elif d > 0.0:
                        u |= 1
            h = xyz[i, 2]
            a = h - ztop
            b = zbot - h
            above_out[i] = a
            below_out[i] = b
            if a > tz:
                v |= 2
            elif a > 0.0:
                u |= 2
            if b > tz:
                v |= 4
            elif b > 0.0:
                u |= 4
            viol_out[i] = v
            unc_out[i] = u
            status_out[i] = 2 if v else (1 if u else 0)
            ref_out[i] = 0
            seam_out[i] = np.nan


def segment_distance(px: F64, py: F64, edges: F64) -> F64:
    """Distance (m) from points (px, py), each (k,) float64 local
    coordinates, to the nearest of ``edges`` (m, 4) float64 segments."""
    px = np.ascontiguousarray(px, dtype=np.float64)
    py = np.ascontiguousarray(py, dtype=np.float64)
    if numba is not None and px.shape[0] > 0:
        out = np.empty(px.shape[0], dtype=np.float64)
        _segdist_numba(px, py, edges, out)
        return out
    return _segdist_numpy(px, py, edges)


def mask_distance(m: PolygonMask, px: F64, py: F64) -> F64:
    """Distance (m) from local points (px, py), each (k,) float64, to the
    boundary of the mask's polygon; the same values as
    :func:`segment_distance` over all its edges."""
    if numba is None or px.shape[0] == 0:
        return _segdist_numpy(
            np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64), m.edges
        )
    g = m.near_edges
    out = np.empty(px.shape[0], dtype=np.float64)
    _grid_dist_numba(
        np.ascontiguousarray(px, dtype=np.float64),
        np.ascontiguousarray(py, dtype=np.float64),
        m.edges,
        g.ox,
        g.oy,
        1.0 / g.cell,
        g.nx,
        g.ny,
        g.start,
        g.index,
        out,
    )
    return out


def _lookup(xyz: F64, origin: F64, m: PolygonMask) -> tuple[U8, F64]:
    if numba is None:
        return _lookup_numpy(xyz, origin, m)
    n = xyz.shape[0]
    code = np.empty(n, dtype=np.uint8)
    depth = np.empty(n, dtype=np.float64)
    _lookup_numba(
        xyz, origin[0], origin[1], m.ox, m.oy, 1.0 / m.cell, m.codes, m.depth, code, depth
    )
    return code, depth


def _contains(xyz: F64, origin: F64, m: PolygonMask) -> tuple[npt.NDArray[np.bool_], U8, F64]:
    """Exact inside test (shapely semantics) plus the cell codes and depths."""
    code, depth = _lookup(xyz, origin, m)
    inside = (code == _IN_DEEP) | (code == _IN_NEAR)
    edge = np.flatnonzero(code == _EDGE)
    if edge.size:
        inside[edge] = shapely.contains_xy(m.geometry, xyz[edge, 0], xyz[edge, 1])
    return inside, code, depth


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


def _classify_block(prep: PreparedLicence, xyz: F64, out: Classification) -> None:
    """Fill ``out`` (views of length len(xyz)) for one block of points."""
    lic = prep.licence
    origin = prep.origin
    tp, tz = lic.tolerance_m, lic.tolerance_z_m
    single = len(prep.blocks) == 1
    if single and numba is not None:
        m = prep.union
        g = m.near_edges
        code = np.empty(xyz.shape[0], dtype=np.uint8)
        _fused_numba(
            xyz,
            origin[0],
            origin[1],
            m.ox,
            m.oy,
            1.0 / m.cell,
            m.codes,
            m.depth,
            m.edges,
            g.ox,
            g.oy,
            1.0 / g.cell,
            g.nx,
            g.ny,
            g.start,
            g.index,
            prep.z_top[0],
            prep.z_bottom[0],
            tp,
            tz,
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
        )
        todo = np.flatnonzero(code == _EDGE)
        if todo.size:
            _exact_plan(prep, xyz[todo], code[todo], todo, out)
    else:
        inside, code, depth = _contains(xyz, origin, prep.union)
        out.plan_dist[:] = -depth  # deep points: a bound; the rest overwritten below
        exact = np.flatnonzero(code != _IN_DEEP)
        if exact.size:
            d = mask_distance(prep.union, xyz[exact, 0] - origin[0], xyz[exact, 1] - origin[1])
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
        out.seam[:] = _seam_offset(lic, xyz)
        _set_bits(out.seam, SEAM_BIT, tz, out.violated, out.uncertain)
        out.status[:] = _status(out.violated, out.uncertain)
    elif not (single and numba is not None):
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
    inside = code == _IN_NEAR
    edge = np.flatnonzero(code == _EDGE)
    if edge.size:
        inside[edge] = shapely.contains_xy(m.geometry, pts[edge, 0], pts[edge, 1])
    d = mask_distance(m, pts[:, 0] - prep.origin[0], pts[:, 1] - prep.origin[1])
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
        inside_b, _, _ = _contains(xyz, prep.origin, m)
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
    dists = np.stack([segment_distance(px, py, m.edges) for m in prep.blocks])
    near = dists <= dists.min(axis=0) + tol.NEAREST_BLOCK_TIE_M
    return np.argmax(near, axis=0).astype(np.int32)


def _seam_offset(lic: Licence, xyz: F64) -> F64:
    n = xyz.shape[0]
    if not lic.seams:
        return np.full(n, np.nan)
    en = np.ascontiguousarray(xyz[:, :2])
    h = xyz[:, 2]
    best = np.full(n, np.nan)
    for s in lic.seams:
        roof = np.asarray(s.roof.height(en), dtype=np.float64)
        floor = np.asarray(s.floor.height(en), dtype=np.float64)
        off = np.maximum(h - roof, floor - h)  # NaN where either surface is missing
        best = np.fmin(best, off)  # fmin ignores NaN: any covering seam counts
    return best

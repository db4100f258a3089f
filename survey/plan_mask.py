"""The licence as :func:`survey.classify.classify` needs it: the union of
the block polygons (and each block) rasterised into a mask of cells, built
once per licence by :func:`prepare`, and the per-point cell lookup.

Each cell is *outside* (``CELL_OUT``), *inside far from the boundary*
(``CELL_IN_DEEP``, with a lower bound of its depth), *inside near the
boundary* (``CELL_IN_NEAR``), or *boundary* (``CELL_EDGE``: an edge passes
through the cell or one of its 8 neighbours). The one-cell band makes the
mask safe against the rounding of the cell lookup. Coordinates in a mask are
local, relative to the licence's local origin (the centroid of the union).
See :mod:`survey.classify` for how the classification uses it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from survey import tolerances as tol
from survey.distance import grid_distance, segdist_numpy, segment_distance
from survey.jit import numba, use_jit
from survey.model import F64, Licence, SurveyInputError

__all__ = [
    "CELL_EDGE",
    "CELL_IN_DEEP",
    "CELL_IN_NEAR",
    "CELL_OUT",
    "EdgeGrid",
    "PolygonMask",
    "PreparedLicence",
    "block_polygon",
    "contains",
    "lookup",
    "prepare",
]

U8 = npt.NDArray[np.uint8]

# cell codes of the raster mask
CELL_OUT = 0
CELL_IN_DEEP = 1
CELL_EDGE = 2
CELL_IN_NEAR = 3


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

    def kernel_args(self) -> tuple[Any, ...]:
        """(ox, oy, 1 / cell, nx, ny, start, index): the grid as the
        compiled distance kernels take it."""
        return (self.ox, self.oy, 1.0 / self.cell, self.nx, self.ny, self.start, self.index)


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
    near_edges = _edge_grid(edges)
    jit = use_jit(None)
    if jit:
        # even-odd crossings row by row: the cells that matter (those no edge
        # passes through) have their centres at least a cell from any edge
        inside = np.zeros((ny, nx), dtype=np.bool_)
        _parity_fill_numba(edges, float(ox), float(oy), float(cell), inside)
    else:
        cx = origin[0] + ox + (np.arange(nx) + 0.5) * cell
        cy = origin[1] + oy + (np.arange(ny) + 0.5) * cell
        gx, gy = np.meshgrid(cx, cy)
        inside = shapely.contains_xy(geom, gx, gy)
    codes = np.full((ny, nx), CELL_OUT, dtype=np.uint8)
    depth = np.zeros((ny, nx), dtype=np.float64)
    inner = inside & ~edge_cells
    if inner.any():
        iy_in, ix_in = np.nonzero(inner)
        lx = ox + (ix_in + 0.5) * cell
        ly = oy + (iy_in + 0.5) * cell
        if jit:  # the candidate edges of each coarse cell, not all of them
            dist = grid_distance(near_edges, edges, lx, ly)
        else:
            dist = segment_distance(lx, ly, edges)
        bound = dist - cell * math.sqrt(0.5)
        near = bound < tol.EXACT_INSIDE_BAND_M
        sub = np.where(near, CELL_IN_NEAR, CELL_IN_DEEP).astype(np.uint8)
        codes[inner] = sub
        depth[inner] = np.maximum(bound, 0.0)
    codes[edge_cells] = CELL_EDGE
    return PolygonMask(geom, float(ox), float(oy), float(cell), codes, depth, edges, near_edges)


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _parity_fill_numba(edges, ox, oy, cell, out):
        # out (ny, nx): True where the cell centre is inside the rings
        # ``edges`` (m, 4) local x0, y0, x1, y1 by the even-odd rule (the
        # same as containment for a valid (multi)polygon with holes)
        ny, nx = out.shape
        xs = np.empty(edges.shape[0], dtype=np.float64)
        for r in range(ny):
            y = oy + (r + 0.5) * cell
            k = 0
            for e in range(edges.shape[0]):
                y0 = edges[e, 1]
                y1 = edges[e, 3]
                if (y0 <= y) != (y1 <= y):
                    x0 = edges[e, 0]
                    xs[k] = x0 + (y - y0) * (edges[e, 2] - x0) / (y1 - y0)
                    k += 1
            xr = np.sort(xs[:k])
            for j in range(0, k - 1, 2):
                # cells whose centre lies in [xr[j], xr[j + 1])
                c0 = max(0, min(nx, math.ceil((xr[j] - ox) / cell - 0.5)))
                c1 = max(0, min(nx, math.ceil((xr[j + 1] - ox) / cell - 0.5)))
                for c in range(c0, c1):
                    out[r, c] = True


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
    dist = np.stack([segdist_numpy(px, py, edges[k : k + 1]) for k in range(len(edges))])
    upper = (dist + half).min(axis=0)
    cand = (dist - half) <= upper  # (edges, cells)
    counts = cand.sum(axis=0)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    index = np.nonzero(cand.T)[1].astype(np.int64)  # per cell, edges ascending
    return EdgeGrid(ox, oy, cell, n, n, start, index)


# --------------------------------------------------------------------------
# cell lookup: numba when available, numpy otherwise (same arithmetic)


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
    code = np.where(ok, m.codes.ravel()[flat], CELL_OUT).astype(np.uint8)
    depth = np.where(ok, m.depth.ravel()[flat], 0.0)
    return code, depth


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


def lookup(xyz: F64, origin: F64, m: PolygonMask, *, jit: bool | None = None) -> tuple[U8, F64]:
    """Cell code (n,) uint8 and depth bound (n,) float64 of every point of
    ``xyz`` (n, 3) float64 absolute (E, N, H); ``origin`` the local origin.
    ``jit`` as in :mod:`survey.jit`."""
    if not use_jit(jit):
        return _lookup_numpy(xyz, origin, m)
    n = xyz.shape[0]
    code = np.empty(n, dtype=np.uint8)
    depth = np.empty(n, dtype=np.float64)
    _lookup_numba(
        xyz, origin[0], origin[1], m.ox, m.oy, 1.0 / m.cell, m.codes, m.depth, code, depth
    )
    return code, depth


def contains(
    xyz: F64, origin: F64, m: PolygonMask, *, jit: bool | None = None
) -> tuple[npt.NDArray[np.bool_], U8, F64]:
    """Exact inside test (shapely semantics) plus the cell codes and depths."""
    code, depth = lookup(xyz, origin, m, jit=jit)
    inside = (code == CELL_IN_DEEP) | (code == CELL_IN_NEAR)
    edge = np.flatnonzero(code == CELL_EDGE)
    if edge.size:
        inside[edge] = shapely.contains_xy(m.geometry, xyz[edge, 0], xyz[edge, 1])
    return inside, code, depth

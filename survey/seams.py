"""How far each point lies beyond its licensed seam (coal): the seam
offset of :attr:`survey.classify.Classification.seam`, max(height - roof,
floor - height) over the seams covering the point (NaN where none does).

Surfaces are asked only about points within their plan extent; a seam of two
grids runs as one compiled loop with numba (one cell search for both when
they share their nodes).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from survey.jit import numba
from survey.model import F64, Licence
from survey.surfaces import GridSurface, TinSurface

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


def seam_offset(lic: Licence, xyz: F64, best: F64, *, jit: bool) -> None:
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

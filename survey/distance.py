"""Plan distances from points to the edges of a licence polygon, in metres,
for :mod:`survey.classify` and :mod:`survey.plan_mask`.

Coordinates are *local*: easting and northing minus the licence's local
origin (see :class:`survey.plan_mask.PreparedLicence`), float64. With numba
installed the distances run as compiled loops; without it the same
arithmetic runs as numpy passes (the switch is :mod:`survey.jit`).

``jit`` (keyword of the public functions): use the numba kernels; ``None``
(the default) means whenever numba is installed. :mod:`survey.classify`
passes its own ``numba`` switch down, so switching that off gives the numpy
path throughout a classification.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from survey.jit import numba, use_jit
from survey.model import F64

if TYPE_CHECKING:
    from survey.plan_mask import EdgeGrid, PolygonMask

__all__ = ["mask_distance", "segment_distance"]


def segdist_numpy(px: F64, py: F64, edges: F64) -> F64:
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
    def segdist_numba(px, py, edges, out):
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
    def near_dist_numba(lx, ly, edges, gox, goy, ginv, gnx, gny, start, index):
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
    def grid_dist_numba(px, py, edges, gox, goy, ginv, gnx, gny, start, index, out):
        for i in range(px.shape[0]):
            out[i] = near_dist_numba(px[i], py[i], edges, gox, goy, ginv, gnx, gny, start, index)


def segment_distance(px: F64, py: F64, edges: F64, *, jit: bool | None = None) -> F64:
    """Distance (m) from points (px, py), each (k,) float64 local
    coordinates, to the nearest of ``edges`` (m, 4) float64 segments."""
    px = np.ascontiguousarray(px, dtype=np.float64)
    py = np.ascontiguousarray(py, dtype=np.float64)
    if use_jit(jit) and px.shape[0] > 0:
        out = np.empty(px.shape[0], dtype=np.float64)
        segdist_numba(px, py, edges, out)
        return out
    return segdist_numpy(px, py, edges)


def mask_distance(m: PolygonMask, px: F64, py: F64, *, jit: bool | None = None) -> F64:
    """Distance (m) from local points (px, py), each (k,) float64, to the
    boundary of the mask's polygon; the same values as
    :func:`segment_distance` over all its edges."""
    if not use_jit(jit) or px.shape[0] == 0:
        return segdist_numpy(
            np.asarray(px, dtype=np.float64), np.asarray(py, dtype=np.float64), m.edges
        )
    return grid_distance(m.near_edges, m.edges, px, py)


def grid_distance(g: EdgeGrid, edges: F64, px: F64, py: F64) -> F64:
    """Distance (m) from local points (px, py) to the nearest of ``edges``
    over the candidate edges ``g`` lists per coarse cell: the values of
    :func:`segment_distance` over all of them. numba only."""
    out = np.empty(px.shape[0], dtype=np.float64)
    grid_dist_numba(
        np.ascontiguousarray(px, dtype=np.float64),
        np.ascontiguousarray(py, dtype=np.float64),
        edges,
        *g.kernel_args(),
        out,
    )
    return out

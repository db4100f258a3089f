"""Area of one section of a scanned shell: its points split into openings
on a grid (two drifts cut by one section are two openings), the convex
hull areas of the openings summed. numba kernels (monotone chain hulls, a
flood fill per section) with a numpy / scipy twin."""

from __future__ import annotations

import numpy as np

from survey import tolerances as tol
from survey.jit import numba, use_jit
from survey.model import F64

#: Sections whose opening grid would have more cells are taken as one opening
#: (a section kilometres wide).
_MAX_GRID_CELLS = 4_000_000


def section_area(
    uv: F64,
    *,
    min_points: int = tol.VOLUME_MIN_SECTION_POINTS,
    cluster_m: float = tol.SECTION_CLUSTER_M,
    jit: bool | None = None,
) -> float:
    """Area (m2) of one section's points ``uv`` (k, 2): the points are split
    into groups 8-connected on a ``cluster_m`` grid (two drifts cut by the
    same section are two groups; the rock between them is not excavated)
    and the convex hull areas of the groups are summed."""
    uv = np.asarray(uv, dtype=np.float64)
    if len(uv) < min_points:
        return 0.0
    if use_jit(jit):
        u = np.ascontiguousarray(uv[:, 0])
        v = np.ascontiguousarray(uv[:, 1])
        return float(section_area_numba(u, v, float(cluster_m), int(min_points)))
    from scipy import ndimage

    keys = np.floor((uv - uv.min(axis=0)) / cluster_m).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if dims[0] * dims[1] > _MAX_GRID_CELLS:  # a section kilometres wide: one hull
        return _hull_area_qhull(uv, min_points)
    grid = np.zeros((int(dims[0]), int(dims[1])), dtype=bool)
    grid[keys[:, 0], keys[:, 1]] = True
    lab, k = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    if k <= 1:
        return _hull_area_qhull(uv, min_points)
    labels = lab[keys[:, 0], keys[:, 1]]
    order = np.argsort(labels, kind="stable")
    cuts = np.searchsorted(labels[order], np.arange(2, k + 1))
    return sum(_hull_area_qhull(uv[g], min_points) for g in np.split(order, cuts))


def hull_area(uv: F64, *, jit: bool | None = None) -> float:
    """Area (m2) of the convex hull of ``uv`` (k, 2); 0.0 for fewer than 3
    points or points on a line."""
    uv = np.asarray(uv, dtype=np.float64)
    if use_jit(jit):
        return float(
            _hull_area_numba(np.ascontiguousarray(uv[:, 0]), np.ascontiguousarray(uv[:, 1]))
        )
    return _hull_area_qhull(uv, 3)


def _hull_area_qhull(pts: F64, min_points: int) -> float:
    if len(pts) < max(min_points, 3):
        return 0.0
    from scipy.spatial import ConvexHull, QhullError

    try:
        return float(ConvexHull(pts).volume)  # in 2D "volume" is the area
    except QhullError:
        # all points on a line: the section has no area
        return 0.0


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _heapsort3(key, a, b, lo, hi):
        # sort key[lo:hi] in place, a and b along (small code: numba's
        # argsort would double the kernels' load time from the cache)
        n = hi - lo
        for root in range(n // 2 - 1, -1, -1):
            _sift3(key, a, b, lo, root, n)
        for end in range(n - 1, 0, -1):
            i = lo + end
            key[lo], key[i] = key[i], key[lo]
            a[lo], a[i] = a[i], a[lo]
            b[lo], b[i] = b[i], b[lo]
            _sift3(key, a, b, lo, 0, end)

    @numba.njit(cache=True, nogil=True)
    def _sift3(key, a, b, lo, root, n):
        while True:
            child = 2 * root + 1
            if child >= n:
                return
            if child + 1 < n and key[lo + child + 1] > key[lo + child]:
                child += 1
            if not key[lo + child] > key[lo + root]:
                return
            i = lo + root
            j = lo + child
            key[i], key[j] = key[j], key[i]
            a[i], a[j] = a[j], a[i]
            b[i], b[j] = b[j], b[i]
            root = child

    @numba.njit(cache=True, nogil=True)
    def _hull_area_numba(x, y):
        # Andrew's monotone chain, then the shoelace formula: the area qhull
        # gives (to rounding) without its per-call set-up; 0.0 for points on
        # a line, as qhull's refusal gives. The points are taken in order
        # along the diagonal x + y (ties by y - x): the chain works in any
        # rotated frame, and walls and floors of a section, each at one x
        # or one y, do not crowd single buckets of the sort
        n = x.shape[0]
        if n < 3:
            return 0.0
        lo = x[0] + y[0]
        hi = lo
        for i in range(1, n):
            t = x[i] + y[i]
            lo = min(lo, t)
            hi = max(hi, t)
        if not hi > lo:
            return 0.0  # all on one line x + y = constant
        # a bucket sort (one bucket per point over the range of x + y), each
        # bucket finished by insertion, or by a quicksort when it is crowded;
        # the points are moved, not indexed, so the chain reads them in order
        scale = n / (hi - lo)
        if not scale < 1e300:
            scale = 0.0
        start = np.zeros(n + 1, dtype=np.int64)
        for i in range(n):
            start[int(min((x[i] + y[i] - lo) * scale, n - 1.0)) + 1] += 1
        for j in range(n):
            start[j + 1] += start[j]
        pos = start[:-1].copy()
        ks = np.empty(n)
        px = np.empty(n)
        py = np.empty(n)
        for i in range(n):
            t = x[i] + y[i]
            j = int(min((t - lo) * scale, n - 1.0))
            q = pos[j]
            pos[j] += 1
            ks[q] = t
            px[q] = x[i]
            py[q] = y[i]
        for j in range(n):
            s = start[j]
            e = start[j + 1]
            if e - s < 2:
                continue
            if e - s > 32:
                _heapsort3(ks, px, py, s, e)
            # insertion: sorts a short bucket, finishes the runs of equal keys
            # (by y - x)
            for q in range(s + 1, e):
                kv = ks[q]
                xv = px[q]
                yv = py[q]
                w = q - 1
                while w >= s and (ks[w] > kv or (ks[w] == kv and py[w] - px[w] > yv - xv)):
                    ks[w + 1] = ks[w]
                    px[w + 1] = px[w]
                    py[w + 1] = py[w]
                    w -= 1
                ks[w + 1] = kv
                px[w + 1] = xv
                py[w + 1] = yv
        # the chord from the first point to the last splits the rest: only
        # points below it can be on the lower chain, above it on the upper
        x0 = px[0]
        y0 = py[0]
        ex = px[n - 1] - x0
        ey = py[n - 1] - y0
        side = np.empty(n)
        for j in range(n):
            side[j] = ex * (py[j] - y0) - ey * (px[j] - x0)
        hull = np.empty(n + 1, dtype=np.int64)
        hull[0] = 0
        k = 1
        for j in range(1, n):  # lower chain, left to right
            if j < n - 1 and not side[j] < 0.0:
                continue
            while k >= 2:
                a = hull[k - 2]
                b = hull[k - 1]
                cross = (px[b] - px[a]) * (py[j] - py[a]) - (py[b] - py[a]) * (px[j] - px[a])
                if cross > 0.0:
                    break
                k -= 1
            hull[k] = j
            k += 1
        n_lower = k
        for j in range(n - 2, -1, -1):  # upper chain, back to the first point
            if j > 0 and not side[j] > 0.0:
                continue
            while k >= n_lower + 1:
                a = hull[k - 2]
                b = hull[k - 1]
                cross = (px[b] - px[a]) * (py[j] - py[a]) - (py[b] - py[a]) * (px[j] - px[a])
                if cross > 0.0:
                    break
                k -= 1
            hull[k] = j
            k += 1
        k -= 1  # the upper chain ends where the lower one began
        area = 0.0
        for j in range(k):
            a = hull[j]
            b = hull[(j + 1) % k]
            area += px[a] * py[b] - px[b] * py[a]
        return abs(area) / 2.0

    @numba.njit(cache=True, nogil=True)
    def section_area_numba(u, v, cluster, min_points):
        # one section: 8-connected openings on the cluster grid (a flood
        # fill; the same partition as scipy.ndimage.label), hull areas summed
        n = u.shape[0]
        if n < min_points or n < 3:
            return 0.0
        umin = u[0]
        vmin = v[0]
        for i in range(1, n):
            umin = min(umin, u[i])
            vmin = min(vmin, v[i])
        cu = np.empty(n, dtype=np.int64)
        cv = np.empty(n, dtype=np.int64)
        du = 0
        dv = 0
        for i in range(n):
            cu[i] = int(np.floor((u[i] - umin) / cluster))
            cv[i] = int(np.floor((v[i] - vmin) / cluster))
            du = max(du, cu[i] + 1)
            dv = max(dv, cv[i] + 1)
        if du * dv > _MAX_GRID_CELLS:  # a section kilometres wide: one hull
            return _hull_area_numba(u, v)
        grid = np.zeros(du * dv, dtype=np.int32)
        cell = np.empty(n, dtype=np.int64)
        for i in range(n):
            c = cu[i] * dv + cv[i]
            cell[i] = c
            grid[c] = -1
        stack = np.empty(n, dtype=np.int64)
        nlab = 0
        for i in range(n):
            c0 = cell[i]
            if grid[c0] != -1:
                continue
            nlab += 1
            grid[c0] = nlab
            stack[0] = c0
            top = 1
            while top > 0:
                top -= 1
                c = stack[top]
                a = c // dv
                b = c - a * dv
                for aa in range(max(a - 1, 0), min(a + 2, du)):
                    for bb in range(max(b - 1, 0), min(b + 2, dv)):
                        cc = aa * dv + bb
                        if grid[cc] == -1:
                            grid[cc] = nlab
                            stack[top] = cc
                            top += 1
        if nlab <= 1:
            return _hull_area_numba(u, v)
        # points grouped by opening (a counting sort by label)
        start = np.zeros(nlab + 2, dtype=np.int64)
        for i in range(n):
            start[grid[cell[i]] + 1] += 1
        for g in range(1, nlab + 2):
            start[g] += start[g - 1]
        pos = start.copy()
        gu = np.empty(n)
        gv = np.empty(n)
        for i in range(n):
            g = grid[cell[i]]
            p = pos[g]
            pos[g] += 1
            gu[p] = u[i]
            gv[p] = v[i]
        area = 0.0
        for g in range(1, nlab + 1):
            a = start[g]
            b = start[g + 1]
            if b - a >= min_points:
                area += _hull_area_numba(gu[a:b], gv[a:b])
        return area

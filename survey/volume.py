"""Volume excavated beyond a licensed limit.

Two methods, one per kind of survey:

* **Scanned shell** (points on the walls, roof, floor and faces of the
  workings; an open surface, no inside/outside): :func:`shell_volume` is the
  section (overbreak) method of mine-survey packages. The points of one
  incident -- all beyond the limit -- are cut into slices along an axis;
  each slice's points, projected on the section plane, are split into
  openings on a ``tolerances.SECTION_CLUSTER_M`` grid (two drifts in one
  section are two openings), and the convex hull areas of the openings
  times the slice's thickness are summed. Because only points beyond the
  limit are given, each section is already clipped at the limit: where the
  workings cross it, the wall points end at the limit and close the section.
  The axis: the direction most parallel to the surface (from local normals:
  the drift axis of a drift however short, the long side of a chamber) and
  the three principal axes are all tried and the smallest estimate kept,
  since a slab cut obliquely only ever adds area.
  Slices are ``tolerances.VOLUME_SLICE_M`` thick, thicker for sparse
  surveys (``VOLUME_SLICE_SPACINGS`` point spacings).
  Limits: a single opening whose section is concave (an L-shaped chamber
  cut across its corner) is over-estimated by its hull; very sparse
  surveys (under ~2 pts/m2) under-estimate (hulls miss the corners). On the
  known-answer scenes of ``simulators.tunnels`` (2-400 pts/m2, 2 cm noise)
  it is within a few per cent.
* **Closed mesh** (a watertight tunnel model): :func:`mesh_volume_beyond`
  clips the mesh with the limit solid (the licence prism extruded over the
  mesh's heights, or the half-space above z_top / below z_bottom) using
  trimesh's manifold3d boolean engine and returns the volume outside the
  limit, optionally within a box around one incident.

Coordinates are (easting, northing, height) float64 metres; meshes are
shifted to a local origin before they reach the boolean engine (it works in
float64, but smaller numbers keep its tolerances meaningful).

Speed (the shell method runs for every incident of a scan check): with numba
installed, all sections along one axis are one compiled call (slice by a
counting sort, openings by a flood fill on each section's grid, hulls by
the monotone chain), the four axes run in threads (the kernels release the
GIL), and one neighbour search on a hash grid of cells gives both the
density and the surface normals. Without numba the same steps
run with numpy, ``scipy.ndimage`` and ``scipy.spatial`` (imported only
then: a scan check with numba never loads them), to the same results up to
rounding.

``jit`` (keyword of the shell functions): use the numba kernels; ``None``
(the default) means whenever numba is installed.
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely

from survey import tolerances as tol
from survey.jit import numba, use_jit
from survey.model import F64, Licence, ViolationType

if TYPE_CHECKING:  # imported where meshes are handled: a scan check never needs it
    import trimesh

I64 = npt.NDArray[np.int64]

#: Sections whose opening grid would have more cells are taken as one opening
#: (a section kilometres wide).
_MAX_GRID_CELLS = 4_000_000


def principal_axes(xyz: F64) -> F64:
    """(3, 3) float64 rows = unit axes of ``xyz`` (n, 3), longest first."""
    sample = xyz if len(xyz) <= 200_000 else xyz[:: len(xyz) // 200_000]
    centred = sample - sample.mean(axis=0)
    return _axes_of_scatter(centred.T @ centred)


def _axes_of_scatter(scatter: F64) -> F64:
    """Principal axes (rows, longest first) from the 3 x 3 scatter matrix of
    a centred cloud: its eigenvectors are the right singular vectors of the
    cloud (an SVD of the cloud costs ten times as much)."""
    _, vecs = np.linalg.eigh(scatter)
    axes = np.ascontiguousarray(vecs[:, ::-1].T)
    # a fixed sign (largest component positive): the same axes on every platform
    flip = axes[np.arange(3), np.argmax(np.abs(axes), axis=1)] < 0.0
    axes[flip] *= -1.0
    return axes


def _usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask: a gateway PC may
    pin it to one core, where threads only add switching)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def shell_volume(
    xyz: F64,
    *,
    slice_m: float = tol.VOLUME_SLICE_M,
    min_points: int = tol.VOLUME_MIN_SECTION_POINTS,
    jit: bool | None = None,
) -> float:
    """Volume (m3) enclosed by the scanned shell points ``xyz`` (n, 3).

    Sections along a principal axis, convex hull area per section times
    slice thickness (see the module doc). A slab cut obliquely through a
    working projects to more than its true section, so every section
    estimate errs high; the estimate is taken along each of the three
    principal axes and the surface axis (:func:`surface_axis`) and the
    smallest kept (the right axis is not always the longest one: a drift
    4 m wide that passes 3 m beyond a limit). Returns 0.0 for fewer than
    ``min_points`` points or a flat set.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) and not math.isfinite(float(xyz.sum())):
        xyz = xyz[np.isfinite(xyz).all(axis=1)]  # a non-finite point has no place
    if len(xyz) < min_points:
        return 0.0
    if len(xyz) > tol.VOLUME_MAX_POINTS:
        # hulls of a dense scan barely change when it is thinned at random;
        # the slices adapt to the thinner density
        pick = np.random.default_rng(0).choice(len(xyz), tol.VOLUME_MAX_POINTS, replace=False)
    else:
        pick = np.arange(len(xyz))
    if use_jit(jit):
        local, scatter = _centre_numba(np.ascontiguousarray(xyz), pick)
    else:
        xyz = xyz[pick]
        local = xyz - xyz.mean(axis=0)
        scatter = local.T @ local
    # one neighbour search gives the density and the surface normals
    rho, axis = _surface_stats(local, jit=jit)
    # sparse surveys get thicker slices, so each section holds enough points
    # for its hull to reach the section's corners
    slice_m = max(slice_m, tol.VOLUME_SLICE_SPACINGS / math.sqrt(rho))
    candidates = [*_axes_of_scatter(scatter)]
    if axis is not None:
        candidates.append(axis)
    cpus = _usable_cpus()
    if use_jit(jit) and len(local) >= _THREADS_MIN_POINTS and cpus > 1:
        # the compiled sections release the GIL: the axes in parallel
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(len(candidates), cpus)) as pool:
            volumes = list(
                pool.map(
                    lambda a: _sections_volume(local, a, rho, slice_m, min_points, jit=True),
                    candidates,
                )
            )
        return min(volumes)
    return min(_sections_volume(local, a, rho, slice_m, min_points, jit=jit) for a in candidates)


#: Shells of fewer points are cut along their axes one after another (the
#: threads would cost more than they save).
_THREADS_MIN_POINTS = 20_000


def _surface_stats(xyz: F64, *, jit: bool | None = None) -> tuple[float, F64 | None]:
    """(density, surface axis) of ``xyz`` (n, 3) from one search of the 12
    nearest neighbours of ``VOLUME_AXIS_NORMALS`` points among a random
    subset of ``VOLUME_AXIS_SAMPLE`` points: the density from the nearest
    distances (as :func:`surface_density`), the axis from the normals (as
    :func:`surface_axis`)."""
    n = len(xyz)
    k = 12
    if n < 2 * k:
        return surface_density(xyz, jit=jit), None
    d1, scatter = _neighbourhoods(
        xyz, tol.VOLUME_AXIS_SAMPLE, tol.VOLUME_AXIS_NORMALS, k, seed=0, jit=jit
    )
    d1 = d1[d1 > 0]  # coincident points say nothing about spacing
    m = min(n, tol.VOLUME_AXIS_SAMPLE)
    rho = 1.0 if d1.size == 0 else float(0.25 / np.mean(d1) ** 2 * (n / m))
    return rho, _smallest_axis(scatter)


def _smallest_axis(scatter: F64) -> F64:
    _, axes = np.linalg.eigh(scatter)
    return np.asarray(axes[:, 0], dtype=np.float64)


def _neighbourhoods(
    xyz: F64, sample: int, normals: int, k: int, *, seed: int, jit: bool | None
) -> tuple[F64, F64]:
    """For ``normals`` points of a random subset of ``sample`` points of
    ``xyz`` (n >= k, 3): their distances to the nearest other point of the
    subset, and the scatter matrix (3, 3) of their local normals (from
    their k nearest in the subset)."""
    n = len(xyz)
    m = min(n, sample)
    # in random order: the first ``normals`` points are a random subset
    sub = np.ascontiguousarray(xyz[np.random.default_rng(seed).choice(n, m, replace=False)])
    q = min(m, normals)
    if use_jit(jit):
        d1, scatter = _normal_scatter_numba(sub, q, k, _KNN_PER_CELL)
        return np.asarray(d1), np.asarray(scatter)
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(sub).query(sub[:q], k=k)
    nb = sub[idx]  # (q, k, 3)
    nb = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("mki,mkj->mij", nb, nb)
    _, vecs = np.linalg.eigh(cov)
    normal = vecs[:, :, 0]  # smallest eigenvalue: the local normal
    return np.asarray(dist[:, 1], dtype=np.float64), normal.T @ normal


def surface_axis(
    xyz: F64,
    *,
    sample: int = tol.VOLUME_AXIS_SAMPLE,
    normals: int = tol.VOLUME_AXIS_NORMALS,
    k: int = 12,
    seed: int = 0,
    jit: bool | None = None,
) -> F64 | None:
    """(3,) unit direction most nearly parallel to the scanned surface
    everywhere: the drift axis of a drift however short (its walls' normals
    all lie across it), the long side of a box-shaped chamber (the largest
    faces are normal to the other two directions). Local normals come from
    the k nearest neighbours, within a random subset of ``sample`` points of
    ``xyz`` (n, 3), of ``normals`` of the subset's points; the direction is
    the eigenvector of the smallest eigenvalue of their scatter matrix.
    None when there are too few points."""
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) < 2 * k:
        return None
    _, scatter = _neighbourhoods(xyz, sample, normals, k, seed=seed, jit=jit)
    return _smallest_axis(scatter)


def surface_density(
    xyz: F64, *, sample: int = tol.VOLUME_DENSITY_SAMPLE, seed: int = 0, jit: bool | None = None
) -> float:
    """Points per m2 of a scanned surface ``xyz`` (n, 3), from the mean
    nearest-neighbour distance d of a random subset (for points scattered
    evenly on a surface of density rho, d = 0.5 / sqrt(rho)), corrected for
    the thinning of the subset."""
    xyz = np.asarray(xyz, dtype=np.float64)
    n = len(xyz)
    if n < 3:
        return 1.0
    m = min(n, sample)
    sub = xyz if m == n else xyz[np.random.default_rng(seed).choice(n, m, replace=False)]
    d = nearest_distances(sub, jit=jit)
    d = d[d > 0]  # coincident points say nothing about spacing
    if d.size == 0:
        return 1.0
    return float(0.25 / np.mean(d) ** 2 * (n / m))


#: Points per occupied cell of the neighbour-search hash grid (the cell and
#: its 26 neighbours then nearly always hold the nearest 1 / 12).
_NN_PER_CELL = 3.0
_KNN_PER_CELL = 6.0


def nearest_distances(pts: F64, *, jit: bool | None = None) -> F64:
    """(n,) distance from each row of ``pts`` (n, 3) to its nearest other
    row (0.0 for a duplicate point; inf when ``pts`` has one row)."""
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    if use_jit(jit):
        dist, _ = _knn_numba(pts, len(pts), 2, _NN_PER_CELL)
        return np.asarray(dist[:, 1])
    from scipy.spatial import cKDTree

    # only the distances are used, which do not depend on the tree's shape:
    # an unbalanced tree builds in half the time
    dist, _ = cKDTree(pts, balanced_tree=False).query(pts, k=2)
    return np.asarray(dist[:, 1], dtype=np.float64)


def knn(pts: F64, nq: int, k: int, *, jit: bool | None = None) -> tuple[F64, I64]:
    """Distances (nq, k) and row indices (nq, k) of the ``k`` nearest rows
    of ``pts`` (n, 3) to each of its first ``nq`` rows, nearest first (a
    row finds itself first, or a duplicate of itself). Needs n >= k."""
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    if use_jit(jit):
        dist, idx = _knn_numba(pts, int(nq), int(k), _KNN_PER_CELL)
        return np.asarray(dist), np.asarray(idx)
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(pts).query(pts[:nq], k=k)
    return (
        np.asarray(dist, dtype=np.float64).reshape(nq, k),
        np.asarray(idx, dtype=np.int64).reshape(nq, k),
    )


def _frame(axis: F64) -> tuple[F64, F64, F64]:
    """``axis`` (3,) and two unit vectors completing it to an orthonormal frame."""
    axis = np.ascontiguousarray(axis, dtype=np.float64)
    helper = np.eye(3)[int(np.argmin(np.abs(axis)))]
    across1 = np.cross(axis, helper)
    across1 /= np.linalg.norm(across1)
    across2 = np.cross(axis, across1)
    return axis, across1, np.ascontiguousarray(across2)


def _sections_volume(
    local: F64,
    axis: F64,
    rho: float,
    slice_m: float,
    min_points: int,
    *,
    jit: bool | None = None,
) -> float:
    """Section method along the unit ``axis`` (3,) for centred points."""
    axis, across1, across2 = _frame(axis)
    if use_jit(jit):
        # the steps below, for all slices in one compiled call
        return float(
            _sections_numba(
                np.ascontiguousarray(local, dtype=np.float64),
                axis,
                across1,
                across2,
                float(slice_m),
                float(rho),
                float(tol.SECTION_CLUSTER_M),
                float(tol.SECTION_CLUSTER_GAPS),
                int(min_points),
            )
        )
    s = local @ axis
    s0, s1 = float(s.min()), float(s.max())
    length = s1 - s0
    if length <= 0.0:
        return 0.0
    nslices = max(1, math.ceil(length / slice_m))
    edges = s0 + np.arange(nslices + 1) * (length / nslices)
    # slice i holds edges[i] <= s < edges[i + 1] (the first and last open
    # ended); a counting sort by slice, not a sort by s: a section's hull
    # and openings do not depend on the order of its points
    which = np.searchsorted(edges[1:-1], s, side="right")
    # numpy sorts 16-bit integers by radix: ten times a 64-bit sort here
    order = np.argsort(which.astype(np.uint16) if nslices <= 65536 else which, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(which, minlength=nslices))])
    ordered = local[order]
    uv = np.column_stack([ordered @ across1, ordered @ across2])
    thickness = length / nslices
    # openings are told apart on a grid coarse enough that the gaps between
    # wall points of a sparse survey do not split one opening's ring
    gap = 1.0 / (rho * thickness)
    cluster = max(tol.SECTION_CLUSTER_M, tol.SECTION_CLUSTER_GAPS * gap)
    volume = 0.0
    for i in range(nslices):
        sec = uv[bounds[i] : bounds[i + 1]]
        area = section_area(sec, min_points=min_points, cluster_m=cluster, jit=False)
        volume += area * thickness
    return volume


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
        return float(_section_area_numba(u, v, float(cluster_m), int(min_points)))
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
    def _centre_numba(xyz, pick):
        # rows pick of xyz minus their mean, and the 3 x 3 scatter matrix of
        # the result
        n = pick.shape[0]
        local = np.empty((n, 3))
        m0 = 0.0
        m1 = 0.0
        m2 = 0.0
        for i in range(n):
            r = pick[i]
            local[i, 0] = xyz[r, 0]
            local[i, 1] = xyz[r, 1]
            local[i, 2] = xyz[r, 2]
            m0 += xyz[r, 0]
            m1 += xyz[r, 1]
            m2 += xyz[r, 2]
        m0 /= n
        m1 /= n
        m2 /= n
        s = np.zeros((3, 3))
        for i in range(n):
            a = local[i, 0] - m0
            b = local[i, 1] - m1
            c = local[i, 2] - m2
            local[i, 0] = a
            local[i, 1] = b
            local[i, 2] = c
            s[0, 0] += a * a
            s[0, 1] += a * b
            s[0, 2] += a * c
            s[1, 1] += b * b
            s[1, 2] += b * c
            s[2, 2] += c * c
        s[1, 0] = s[0, 1]
        s[2, 0] = s[0, 2]
        s[2, 1] = s[1, 2]
        return local, s

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
    def _section_area_numba(u, v, cluster, min_points):
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

    @numba.njit(cache=True, nogil=True)
    def _sections_numba(local, axis, across1, across2, slice_m, rho, cluster_m, gaps, min_points):
        # all the sections along one axis: the numpy path's steps in one pass
        n = local.shape[0]
        s = np.empty(n)
        for i in range(n):
            s[i] = local[i, 0] * axis[0] + local[i, 1] * axis[1] + local[i, 2] * axis[2]
        s0 = s.min()
        s1 = s.max()
        length = s1 - s0
        if length <= 0.0:
            return 0.0
        nslices = max(1, int(np.ceil(length / slice_m)))
        step = length / nslices
        edges = np.empty(nslices + 1)
        for j in range(nslices + 1):
            edges[j] = s0 + j * step
        # slice j holds edges[j] <= s < edges[j + 1] (the first and last
        # open ended), as the numpy path's searchsorted
        which = np.empty(n, dtype=np.int64)
        start = np.zeros(nslices + 1, dtype=np.int64)
        for i in range(n):
            j = int((s[i] - s0) / step)
            j = min(max(j, 0), nslices - 1)
            while j < nslices - 1 and s[i] >= edges[j + 1]:
                j += 1
            while j > 0 and s[i] < edges[j]:
                j -= 1
            which[i] = j
            start[j + 1] += 1
        for j in range(nslices):
            start[j + 1] += start[j]
        pos = start[:-1].copy()
        u = np.empty(n)
        v = np.empty(n)
        for i in range(n):
            j = which[i]
            p = pos[j]
            pos[j] += 1
            x = local[i, 0]
            y = local[i, 1]
            z = local[i, 2]
            u[p] = x * across1[0] + y * across1[1] + z * across1[2]
            v[p] = x * across2[0] + y * across2[1] + z * across2[2]
        cluster = max(cluster_m, gaps * (1.0 / (rho * step)))
        area = 0.0
        for j in range(nslices):
            a = start[j]
            b = start[j + 1]
            if b - a >= min_points:
                area += _section_area_numba(u[a:b], v[a:b], cluster, min_points) * step
        return area

    # -- neighbour search on a hash grid ------------------------------------
    # Cells of side h are keyed by their integer coordinates (each + 1, 21
    # bits, packed in one int64) in an open-addressing table; the points are
    # sorted by cell. A point's k nearest are searched in its cell and the 26
    # around it, and in further shells of cells only while the k-th distance
    # found exceeds the distance to the edge of the cells searched: exact, as
    # a k-d tree's answer (equal distances may come in another order).

    _FIELD = (1 << 21) - 1
    # the 27 cell offsets around a cell, its own first, then faces, edges, corners
    _OFFSETS = np.array(
        sorted(
            ((dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)),
            key=lambda o: abs(o[0]) + abs(o[1]) + abs(o[2]),
        ),
        dtype=np.int64,
    )

    @numba.njit(cache=True, nogil=True)
    def _slot(key, shift, mask):
        return ((key * -7046029254386353131) >> shift) & mask  # Fibonacci hashing

    @numba.njit(cache=True, nogil=True)
    def _lookup(tkey, tid, key, shift, mask):
        slot = _slot(key, shift, mask)
        while True:
            t = tkey[slot]
            if t == key:
                return tid[slot]
            if t == -1:
                return -1
            slot = (slot + 1) & mask

    @numba.njit(cache=True, nogil=True)
    def _cell_coord(x, lo, h):
        return int(np.floor((x - lo) / h)) + 1

    @numba.njit(cache=True, nogil=True)
    def _cell_table(pts, lo, h, size, shift):
        # per point its cell's id (0, 1, ... in order of first occupation);
        # the table of occupied cells; each cell's key
        n = pts.shape[0]
        mask = size - 1
        tkey = np.full(size, -1, dtype=np.int64)
        tid = np.empty(size, dtype=np.int64)
        cell = np.empty(n, dtype=np.int64)
        ckey = np.empty(n, dtype=np.int64)
        ncell = 0
        for i in range(n):
            key = (
                (_cell_coord(pts[i, 0], lo[0], h) << 42)
                | (_cell_coord(pts[i, 1], lo[1], h) << 21)
                | _cell_coord(pts[i, 2], lo[2], h)
            )
            slot = _slot(key, shift, mask)
            while tkey[slot] != -1 and tkey[slot] != key:
                slot = (slot + 1) & mask
            if tkey[slot] == -1:
                tkey[slot] = key
                tid[slot] = ncell
                ckey[ncell] = key
                ncell += 1
            cell[i] = tid[slot]
        return tkey, tid, cell, ckey[:ncell]

    @numba.njit(cache=True, nogil=True, inline="always")
    def _offer(d2, i, bd, bi, k):
        # keep the k smallest (d2, i) in bd, bi (ascending)
        if d2 < bd[k - 1]:
            w = k - 1
            while w > 0 and bd[w - 1] > d2:
                bd[w] = bd[w - 1]
                bi[w] = bi[w - 1]
                w -= 1
            bd[w] = d2
            bi[w] = i

    @numba.njit(cache=True, nogil=True)
    def _knn_grow(q, lo, h, k, bd, bi, tkey, tid, start, order, sp, shift, mask, cmax):
        # k nearest of point q in shells of cells r = 0, 1, 2, ... around its own
        c = np.empty(3, dtype=np.int64)
        edge = np.inf
        rmax = 0
        for d in range(3):
            f = (q[d] - lo[d]) / h
            c[d] = int(np.floor(f)) + 1
            frac = f - (c[d] - 1)
            edge = min(edge, frac, 1.0 - frac)
            rmax = max(rmax, c[d] - 1, cmax[d] - c[d])
        edge = max(edge, 0.0)
        n = sp.shape[0]
        for j in range(k):
            bd[j] = np.inf
            bi[j] = -1
        r = 0
        while True:
            for dx in range(-r, r + 1):
                x = c[0] + dx
                if x < 1 or x > cmax[0]:
                    continue
                for dy in range(-r, r + 1):
                    y = c[1] + dy
                    if y < 1 or y > cmax[1]:
                        continue
                    full = abs(dx) == r or abs(dy) == r
                    dz = -r
                    while dz <= r:
                        z = c[2] + dz
                        if z >= 1 and z <= cmax[2]:
                            cid = _lookup(tkey, tid, (x << 42) | (y << 21) | z, shift, mask)
                            if cid >= 0:
                                for p in range(start[cid], start[cid + 1]):
                                    ex = sp[p, 0] - q[0]
                                    ey = sp[p, 1] - q[1]
                                    ez = sp[p, 2] - q[2]
                                    _offer(ex * ex + ey * ey + ez * ez, order[p], bd, bi, k)
                        # inner rows of the shell: only its two faces
                        dz = dz + 1 if (full or r == 0) else dz + 2 * r
            if r >= rmax:
                return
            reach = (edge + r) * h
            if bd[k - 1] <= reach * reach:
                return
            r += 1
            if (2 * r + 1) ** 3 > n:
                # an outlier far from the rest: the next shells would cost
                # more lookups than there are points; try every point
                for j in range(k):
                    bd[j] = np.inf
                    bi[j] = -1
                for p in range(n):
                    ex = sp[p, 0] - q[0]
                    ey = sp[p, 1] - q[1]
                    ez = sp[p, 2] - q[2]
                    _offer(ex * ex + ey * ey + ez * ez, order[p], bd, bi, k)
                return

    @numba.njit(cache=True, nogil=True)
    def _knn_numba(pts, nq, k, per_cell):
        # the k nearest rows of pts (their distances, their indices) to each
        # of its first nq rows, nearest first
        n = pts.shape[0]
        dist = np.full((nq, k), np.inf)
        idx = np.full((nq, k), -1, dtype=np.int64)
        if n == 0 or nq == 0:
            return dist, idx
        lo = np.empty(3)
        ext = np.empty(3)
        for d in range(3):
            lo[d] = pts[:, d].min()
            ext[d] = pts[:, d].max() - lo[d]
        e = ext.copy()  # ascending (three values)
        for i in range(2):
            for j in range(2 - i):
                if e[j] > e[j + 1]:
                    e[j], e[j + 1] = e[j + 1], e[j]
        # first guess: n points on a surface of the two longer extents;
        # then cells resized for per_cell points in an occupied cell (on a
        # surface the points per cell go as the cell's side squared)
        if e[2] * e[1] > 0.0:
            h = np.sqrt(e[2] * e[1] / n)
        elif e[2] > 0.0:
            h = e[2] / n
        else:
            h = 1.0
        hmin = max(e[2] / (_FIELD - 8), 1e-9)  # cell coordinates within 21 bits
        h = max(h, hmin)
        size = 2
        bits = 1
        while size < 2 * n:
            size *= 2
            bits += 1
        shift = 64 - bits
        mask = size - 1
        for _ in range(4):
            ncell = _cell_table(pts, lo, h, size, shift)[3].shape[0]
            ratio = per_cell * ncell / n
            if 0.8 < ratio < 1.25:
                break
            h = max(h * np.sqrt(ratio), hmin)
        tkey, tid, cell, ckey = _cell_table(pts, lo, h, size, shift)
        ncell = ckey.shape[0]
        start = np.zeros(ncell + 1, dtype=np.int64)
        for i in range(n):
            start[cell[i] + 1] += 1
        for c in range(ncell):
            start[c + 1] += start[c]
        pos = start[:-1].copy()
        order = np.empty(n, dtype=np.int64)
        sp = np.empty((n, 3))
        for i in range(n):
            p = pos[cell[i]]
            pos[cell[i]] += 1
            order[p] = i
            sp[p, 0] = pts[i, 0]
            sp[p, 1] = pts[i, 1]
            sp[p, 2] = pts[i, 2]
        cmax = np.empty(3, dtype=np.int64)
        for d in range(3):
            cmax[d] = int(np.floor(ext[d] / h)) + 1
        bd = np.empty(k)
        bi = np.empty(k, dtype=np.int64)
        rs = np.empty(27, dtype=np.int64)
        re = np.empty(27, dtype=np.int64)
        ro = np.empty((27, 3), dtype=np.int64)
        gap = np.zeros((3, 3))
        h2 = h * h
        for c in range(ncell):
            a = start[c]
            b = start[c + 1]
            wanted = False
            for p in range(a, b):
                if order[p] < nq:
                    wanted = True
                    break
            if not wanted:
                continue
            # the 27 cells around this one (nearest first), looked up once for
            # all its points
            key = ckey[c]
            nr = 0
            for o in range(27):
                dx = _OFFSETS[o, 0]
                dy = _OFFSETS[o, 1]
                dz = _OFFSETS[o, 2]
                c2 = _lookup(tkey, tid, key + (dx << 42) + (dy << 21) + dz, shift, mask)
                if c2 >= 0:
                    rs[nr] = start[c2]
                    re[nr] = start[c2 + 1]
                    ro[nr, 0] = dx + 1
                    ro[nr, 1] = dy + 1
                    ro[nr, 2] = dz + 1
                    nr += 1
            cx = key >> 42
            cy = (key >> 21) & _FIELD
            cz = key & _FIELD
            for p in range(a, b):
                i = order[p]
                if i >= nq:
                    continue
                qx = sp[p, 0]
                qy = sp[p, 1]
                qz = sp[p, 2]
                # squared distance to the neighbouring cells, per axis
                fx = min(max((qx - lo[0]) / h - (cx - 1), 0.0), 1.0)
                fy = min(max((qy - lo[1]) / h - (cy - 1), 0.0), 1.0)
                fz = min(max((qz - lo[2]) / h - (cz - 1), 0.0), 1.0)
                gap[0, 0] = fx * fx * h2
                gap[0, 2] = (1.0 - fx) * (1.0 - fx) * h2
                gap[1, 0] = fy * fy * h2
                gap[1, 2] = (1.0 - fy) * (1.0 - fy) * h2
                gap[2, 0] = fz * fz * h2
                gap[2, 2] = (1.0 - fz) * (1.0 - fz) * h2
                edge = min(min(min(fx, 1.0 - fx), min(fy, 1.0 - fy)), min(fz, 1.0 - fz))
                for j in range(k):
                    bd[j] = np.inf
                    bi[j] = -1
                for r in range(nr):
                    if gap[0, ro[r, 0]] + gap[1, ro[r, 1]] + gap[2, ro[r, 2]] >= bd[k - 1]:
                        continue  # that cell holds nothing nearer
                    for pp in range(rs[r], re[r]):
                        ex = sp[pp, 0] - qx
                        ey = sp[pp, 1] - qy
                        ez = sp[pp, 2] - qz
                        _offer(ex * ex + ey * ey + ez * ez, order[pp], bd, bi, k)
                reach = (edge + 1.0) * h
                if bd[k - 1] > reach * reach:  # the k-th may lie further out
                    _knn_grow(
                        sp[p], lo, h, k, bd, bi, tkey, tid, start, order, sp, shift, mask, cmax
                    )
                for j in range(k):
                    dist[i, j] = np.sqrt(bd[j])
                    idx[i, j] = bi[j]
        return dist, idx

    @numba.njit(cache=True, nogil=True)
    def _smallest_eigvec(a):
        # unit eigenvector of the smallest eigenvalue of the symmetric 3 x 3
        # matrix a: the eigenvalue in closed form (trigonometric), the vector
        # as the longest cross product of two rows of a - lambda I
        p1 = a[0, 1] * a[0, 1] + a[0, 2] * a[0, 2] + a[1, 2] * a[1, 2]
        q = (a[0, 0] + a[1, 1] + a[2, 2]) / 3.0
        b00 = a[0, 0] - q
        b11 = a[1, 1] - q
        b22 = a[2, 2] - q
        p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * p1
        out = np.zeros(3)
        if not p2 > 0.0:  # a multiple of the identity: any direction
            out[2] = 1.0
            return out
        pp = np.sqrt(p2 / 6.0)
        det = (
            b00 * (b11 * b22 - a[1, 2] * a[1, 2])
            - a[0, 1] * (a[0, 1] * b22 - a[1, 2] * a[0, 2])
            + a[0, 2] * (a[0, 1] * a[1, 2] - b11 * a[0, 2])
        )
        r = min(max(det / (2.0 * pp * pp * pp), -1.0), 1.0)
        lam = q + 2.0 * pp * np.cos(np.arccos(r) / 3.0 + 2.0 * np.pi / 3.0)
        r0 = np.array((a[0, 0] - lam, a[0, 1], a[0, 2]))
        r1 = np.array((a[0, 1], a[1, 1] - lam, a[1, 2]))
        r2 = np.array((a[0, 2], a[1, 2], a[2, 2] - lam))
        best = -1.0
        for u, v in ((r0, r1), (r0, r2), (r1, r2)):
            cx = u[1] * v[2] - u[2] * v[1]
            cy = u[2] * v[0] - u[0] * v[2]
            cz = u[0] * v[1] - u[1] * v[0]
            nn = cx * cx + cy * cy + cz * cz
            if nn > best:
                best = nn
                out[0] = cx
                out[1] = cy
                out[2] = cz
        if not best > 0.0:
            out[:] = 0.0
            out[2] = 1.0
            return out
        out /= np.sqrt(best)
        return out

    @numba.njit(cache=True, nogil=True)
    def _normal_scatter_numba(pts, nq, k, per_cell):
        # for the first nq rows of pts: the distance to the nearest other row,
        # and the scatter matrix of their local normals (from their k nearest)
        dist, idx = _knn_numba(pts, nq, k, per_cell)
        scatter = np.zeros((3, 3))
        cov = np.empty((3, 3))
        for i in range(nq):
            m0 = 0.0
            m1 = 0.0
            m2 = 0.0
            for j in range(k):
                t = idx[i, j]
                m0 += pts[t, 0]
                m1 += pts[t, 1]
                m2 += pts[t, 2]
            m0 /= k
            m1 /= k
            m2 /= k
            cov[:, :] = 0.0
            for j in range(k):
                t = idx[i, j]
                a = pts[t, 0] - m0
                b = pts[t, 1] - m1
                c = pts[t, 2] - m2
                cov[0, 0] += a * a
                cov[0, 1] += a * b
                cov[0, 2] += a * c
                cov[1, 1] += b * b
                cov[1, 2] += b * c
                cov[2, 2] += c * c
            cov[1, 0] = cov[0, 1]
            cov[2, 0] = cov[0, 2]
            cov[2, 1] = cov[1, 2]
            nv = _smallest_eigvec(cov)
            for r in range(3):
                for s in range(3):
                    scatter[r, s] += nv[r] * nv[s]
        return dist[:, 1].copy(), scatter


# --------------------------------------------------------------------------
# closed meshes


def make_mesh(vertices: F64, faces: npt.NDArray[np.int64], origin: F64) -> trimesh.Trimesh:
    """A trimesh in local coordinates (``vertices`` - ``origin`` (3,))."""
    import trimesh

    return trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64) - origin,
        faces=np.asarray(faces, dtype=np.int64),
        process=True,
    )


def _box(lo: F64, hi: F64) -> trimesh.Trimesh:
    import trimesh

    return trimesh.creation.box(bounds=np.array([lo, hi], dtype=np.float64))


def _intersect_volume(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    import trimesh

    inter = trimesh.boolean.intersection([a, b], engine="manifold")
    return float(inter.volume) if len(inter.faces) else 0.0


def mesh_volume_beyond(
    licence: Licence,
    mesh: trimesh.Trimesh,
    origin: F64,
    vtype: ViolationType,
    *,
    block: int = 0,
    bbox: tuple[F64, F64] | None = None,
) -> float | None:
    """Volume (m3) of the closed ``mesh`` (local coordinates, ``origin`` (3,)
    added gives licence coordinates) beyond one limit of ``licence``.

    ``vtype`` BOUNDARY: outside the union of the block polygons;
    ABOVE_RANGE / BELOW_RANGE: above z_top / below z_bottom of ``block``.
    ``bbox``: optional (lo, hi) (3,) absolute corners; only the part of the
    mesh inside it counts (one incident's share). A mesh given in absolute
    coordinates (``origin`` zero) is re-centred first: the boolean engine is
    not exact at 1e6 m magnitudes. Returns None when the
    method does not apply (mesh not watertight, or a seam limit, whose
    surfaces are not solids): the caller then uses the shell method.
    """
    import trimesh

    if not mesh.is_watertight or vtype is ViolationType.OUTSIDE_SEAM:
        return None
    centre = mesh.bounds.mean(axis=0)
    if np.abs(centre).max() > 1.0e3:
        # the boolean engine loses precision at CGCS2000 magnitudes (5e5,
        # 2.5e6 m): work about the mesh's own centre
        mesh = mesh.copy()
        mesh.apply_translation(-centre)
        origin = np.asarray(origin, dtype=np.float64) + centre
    lo = mesh.bounds[0] - 1.0
    hi = mesh.bounds[1] + 1.0
    if bbox is not None:
        lo = np.maximum(lo, np.asarray(bbox[0]) - origin)
        hi = np.minimum(hi, np.asarray(bbox[1]) - origin)
        if np.any(hi <= lo):
            return 0.0
    region = _box(lo, hi)
    blk = licence.blocks[block]
    if vtype is ViolationType.ABOVE_RANGE:
        zlo = blk.z_top - origin[2]
        if zlo >= hi[2]:
            return 0.0
        return _intersect_volume(mesh, _box(np.array([lo[0], lo[1], max(lo[2], zlo)]), hi))
    if vtype is ViolationType.BELOW_RANGE:
        zhi = blk.z_bottom - origin[2]
        if zhi <= lo[2]:
            return 0.0
        return _intersect_volume(mesh, _box(lo, np.array([hi[0], hi[1], min(hi[2], zhi)])))
    # boundary: what lies in the region minus what lies in the licence prism
    total = _intersect_volume(mesh, region)
    polys = [shapely.Polygon(b.polygon_en() - origin[:2]) for b in licence.blocks]
    union = shapely.union_all(polys)
    inside = 0.0
    for part in shapely.get_parts(union):
        prism = trimesh.creation.extrude_polygon(part, height=float(hi[2] - lo[2]))
        prism.apply_translation([0.0, 0.0, float(lo[2])])
        inside += _intersect_volume(_intersect_mesh(mesh, region), prism)
    return max(0.0, total - inside)


def _intersect_mesh(a: trimesh.Trimesh, b: trimesh.Trimesh) -> trimesh.Trimesh:
    import trimesh

    return trimesh.boolean.intersection([a, b], engine="manifold")

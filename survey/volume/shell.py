"""Volume of a scanned shell by the section method: :func:`shell_volume`
(see :mod:`survey.volume` for the method and its limits). The sections'
areas are :mod:`survey.volume.sections`; the density and the surface axis
come from :mod:`survey.volume.surface`."""

from __future__ import annotations

import math
import os

import numpy as np

from survey import tolerances as tol
from survey.jit import numba, use_jit
from survey.model import F64
from survey.volume.sections import section_area
from survey.volume.surface import surface_stats


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
    rho, axis = surface_stats(local, jit=jit)
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


if numba is not None:
    from survey.volume.sections import section_area_numba

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
                area += section_area_numba(u[a:b], v[a:b], cluster, min_points) * step
        return area

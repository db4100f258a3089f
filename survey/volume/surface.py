"""What a scanned surface says about itself: its density (points per m2)
and its axis (the direction most parallel to it everywhere), from the
neighbours of a random subset of its points (:mod:`survey.volume.neighbours`)."""

from __future__ import annotations

import numpy as np

from survey import tolerances as tol
from survey.jit import numba, use_jit
from survey.model import F64
from survey.volume.neighbours import KNN_PER_CELL, nearest_distances

if numba is not None:
    from survey.volume.neighbours import normal_scatter_numba


def surface_stats(xyz: F64, *, jit: bool | None = None) -> tuple[float, F64 | None]:
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
        d1, scatter = normal_scatter_numba(sub, q, k, KNN_PER_CELL)
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

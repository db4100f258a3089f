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
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError, cKDTree

from survey import tolerances as tol
from survey.distance import numba
from survey.model import F64, Licence, ViolationType

if TYPE_CHECKING:  # imported where meshes are handled: a scan check never needs it
    import trimesh


def principal_axes(xyz: F64) -> F64:
    """(3, 3) float64 rows = unit axes of ``xyz`` (n, 3), longest first."""
    sample = xyz if len(xyz) <= 200_000 else xyz[:: len(xyz) // 200_000]
    centred = sample - sample.mean(axis=0)
    # SVD of the centred cloud: rows of vt are the principal directions
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return np.asarray(vt, dtype=np.float64)


def shell_volume(
    xyz: F64,
    *,
    slice_m: float = tol.VOLUME_SLICE_M,
    min_points: int = tol.VOLUME_MIN_SECTION_POINTS,
) -> float:
    """Volume (m3) enclosed by the scanned shell points ``xyz`` (n, 3).

    Sections along a principal axis, convex hull area per section times
    slice thickness (see the module doc). A slab cut obliquely through a
    working projects to more than its true section, so every section
    estimate errs high; the estimate is taken along each of the three
    principal axes and the smallest kept (the right axis is not always the
    longest one: a drift 4 m wide that passes 3 m beyond a limit). Returns
    0.0 for fewer than ``min_points`` points or a flat set.
    """
    xyz = np.asarray(xyz, dtype=np.float64)
    if len(xyz) < min_points:
        return 0.0
    if len(xyz) > tol.VOLUME_MAX_POINTS:
        # hulls of a dense scan barely change when it is thinned at random;
        # the slices adapt to the thinner density
        pick = np.random.default_rng(0).choice(len(xyz), tol.VOLUME_MAX_POINTS, replace=False)
        xyz = xyz[pick]
    local = xyz - xyz.mean(axis=0)
    rho = surface_density(xyz)
    # sparse surveys get thicker slices, so each section holds enough points
    # for its hull to reach the section's corners
    slice_m = max(slice_m, tol.VOLUME_SLICE_SPACINGS / math.sqrt(rho))
    candidates = [*principal_axes(local)]
    axis = surface_axis(local)
    if axis is not None:
        candidates.append(axis)
    return min(_sections_volume(local, a, rho, slice_m, min_points) for a in candidates)


def surface_axis(xyz: F64, *, sample: int = 20_000, k: int = 12, seed: int = 0) -> F64 | None:
    """(3,) unit direction most nearly parallel to the scanned surface
    everywhere: the drift axis of a drift however short (its walls' normals
    all lie across it), the long side of a box-shaped chamber (the largest
    faces are normal to the other two directions). Local normals come from
    the k nearest neighbours of a random subset of ``xyz`` (n, 3); the
    direction is the eigenvector of the smallest eigenvalue of their
    scatter matrix. None when there are too few points."""
    n = len(xyz)
    if n < 2 * k:
        return None
    m = min(n, sample)
    sub = xyz if m == n else xyz[np.random.default_rng(seed).choice(n, m, replace=False)]
    _, idx = cKDTree(sub).query(sub, k=k)
    nb = sub[idx]  # (m, k, 3)
    nb = nb - nb.mean(axis=1, keepdims=True)
    cov = np.einsum("mki,mkj->mij", nb, nb)
    _, vecs = np.linalg.eigh(cov)
    normals = vecs[:, :, 0]  # smallest eigenvalue: the local normal
    scatter = normals.T @ normals
    _, axes = np.linalg.eigh(scatter)
    return np.asarray(axes[:, 0], dtype=np.float64)


def _sections_volume(local: F64, axis: F64, rho: float, slice_m: float, min_points: int) -> float:
    """Section method along the unit ``axis`` (3,) for centred points."""
    # any two unit vectors completing the axis to an orthonormal frame
    helper = np.eye(3)[int(np.argmin(np.abs(axis)))]
    across1 = np.cross(axis, helper)
    across1 /= np.linalg.norm(across1)
    across2 = np.cross(axis, across1)
    s = local @ axis
    s0, s1 = float(s.min()), float(s.max())
    length = s1 - s0
    if length <= 0.0:
        return 0.0
    nslices = max(1, int(np.ceil(length / slice_m)))
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
        volume += section_area(sec, min_points=min_points, cluster_m=cluster) * thickness
    return volume


def surface_density(xyz: F64, *, sample: int = 50_000, seed: int = 0) -> float:
    """Points per m2 of a scanned surface ``xyz`` (n, 3), from the mean
    nearest-neighbour distance d of a random subset (for points scattered
    evenly on a surface of density rho, d = 0.5 / sqrt(rho)), corrected for
    the thinning of the subset."""
    n = len(xyz)
    if n < 3:
        return 1.0
    m = min(n, sample)
    sub = xyz if m == n else xyz[np.random.default_rng(seed).choice(n, m, replace=False)]
    # only the distances are used, which do not depend on the tree's shape:
    # an unbalanced tree builds in half the time
    dist, _ = cKDTree(sub, balanced_tree=False).query(sub, k=2)
    d = dist[:, 1]
    d = d[d > 0]  # coincident points say nothing about spacing
    if d.size == 0:
        return 1.0
    return float(0.25 / np.mean(d) ** 2 * (n / m))


def section_area(
    uv: F64,
    *,
    min_points: int = tol.VOLUME_MIN_SECTION_POINTS,
    cluster_m: float = tol.SECTION_CLUSTER_M,
) -> float:
    """Area (m2) of one section's points ``uv`` (k, 2): the points are split
    into groups 8-connected on a ``cluster_m`` grid (two drifts cut by the
    same section are two groups; the rock between them is not excavated)
    and the convex hull areas of the groups are summed."""
    if len(uv) < min_points:
        return 0.0
    keys = np.floor((uv - uv.min(axis=0)) / cluster_m).astype(np.int64)
    dims = keys.max(axis=0) + 1
    if dims[0] * dims[1] > 4_000_000:  # a section kilometres wide: one hull
        return _hull_area(uv, min_points)
    grid = np.zeros((int(dims[0]), int(dims[1])), dtype=bool)
    grid[keys[:, 0], keys[:, 1]] = True
    lab, k = ndimage.label(grid, structure=np.ones((3, 3), dtype=bool))
    if k <= 1:
        return _hull_area(uv, min_points)
    labels = lab[keys[:, 0], keys[:, 1]]
    order = np.argsort(labels, kind="stable")
    cuts = np.searchsorted(labels[order], np.arange(2, k + 1))
    return sum(_hull_area(uv[g], min_points) for g in np.split(order, cuts))


def _hull_area(pts: F64, min_points: int) -> float:
    if len(pts) < min_points:
        return 0.0
    if numba is not None:
        return float(_hull_area_numba(np.ascontiguousarray(pts, dtype=np.float64)))
    try:
        return float(ConvexHull(pts).volume)  # in 2D "volume" is the area
    except QhullError:
        # all points on a line: the section has no area
        return 0.0


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _hull_area_numba(pts):
        # Andrew's monotone chain, then the shoelace formula: the area qhull
        # gives (to rounding) without its per-call set-up, which dominated
        # for the hundreds of small sections of a volume; 0.0 for points
        # on a line, as qhull's refusal gives
        n = pts.shape[0]
        order = np.argsort(pts[:, 0])
        # equal x: by y (insertion sort of each run), for a lexicographic order
        r = 0
        while r < n:
            e = r + 1
            while e < n and pts[order[e], 0] == pts[order[r], 0]:
                e += 1
            for q in range(r + 1, e):
                v = order[q]
                w = q - 1
                while w >= r and pts[order[w], 1] > pts[v, 1]:
                    order[w + 1] = order[w]
                    w -= 1
                order[w + 1] = v
            r = e
        n_lower = 0
        hull = np.empty(2 * n, dtype=np.int64)
        k = 0
        for j in range(2 * n - 1):  # lower chain left to right, upper back
            i = order[j] if j < n else order[2 * n - 2 - j]
            floor = 2 if j < n else n_lower + 1
            while k >= floor:
                a = hull[k - 2]
                b = hull[k - 1]
                cross = (pts[b, 0] - pts[a, 0]) * (pts[i, 1] - pts[a, 1]) - (
                    pts[b, 1] - pts[a, 1]
                ) * (pts[i, 0] - pts[a, 0])
                if cross > 0.0:
                    break
                k -= 1
            hull[k] = i
            k += 1
            if j == n - 1:
                n_lower = k
        k -= 1  # the upper chain ends where the lower one began
        area = 0.0
        for j in range(k):
            a = hull[j]
            b = hull[(j + 1) % k]
            area += pts[a, 0] * pts[b, 1] - pts[b, 0] * pts[a, 1]
        return abs(area) / 2.0


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

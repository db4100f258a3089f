"""Group points beyond a licensed limit into incidents.

Input: the points a check kept (:class:`Beyond`), each with its exceedance
of every limit (positive beyond it). For each violation type separately, the
points beyond that limit (exceedance > 0) are put in voxels of
``tolerances.VOXEL_SIZE_M`` (0.5 m, see there for why; larger for sparse
total-station surveys, :func:`grouping_voxel`) and the occupied
voxels are joined into connected groups with 26-connectivity
(a union-find over the sorted occupied voxels, compiled with numba, so a
scan spread over kilometres never allocates a kilometre-sized grid; without
numba ``scipy.ndimage.label`` on a dense grid when the groups' bounding box
is small, a sparse neighbour graph otherwise; all give the same partition).

A group whose largest exceedance is beyond the tolerance (``Licence
.tolerance_m`` in plan, ``tolerance_z_m`` in height) is an incident ``I1``,
``I2``...; a group entirely within the tolerance is a *within survey
uncertainty* group ``U1``, ``U2``... (``Incident.within_uncertainty``) and
never a violation. An incident keeps all its points beyond the limit,
including those within the tolerance: the volume excavated beyond the licence
is all of it. A point beyond two limits counts in an incident of each type.

A point without a height (NaN: surveyed in plan only) can only be beyond
the boundary. When some are, the boundary groups are formed in plan (every
height taken as 0 for the voxels); an incident's heights (box, centroid)
and its volume come from its points with a height, and are NaN / 0 when it
has none (``Incident.plan_only_points`` counts them).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from survey import tolerances as tol
from survey.classify import Classification, segment_distance
from survey.jit import numba, use_jit
from survey.model import F64, Incident, Licence, ViolationType
from survey.volume.neighbours import nearest_distances
from survey.volume.shell import shell_volume

I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

#: Column order of ``Beyond.exceed``.
TYPE_ORDER: tuple[ViolationType, ...] = (
    ViolationType.BOUNDARY,
    ViolationType.ABOVE_RANGE,
    ViolationType.BELOW_RANGE,
    ViolationType.OUTSIDE_SEAM,
)

#: ``volume_fn(points (k, 3), vtype, block index, source indices (k,))`` -> m3
VolumeFn = Callable[[F64, ViolationType, int, I32], float]


@dataclass
class Beyond:
    """Points beyond at least one limit, gathered over the chunks of a check.

    ``xyz`` (m, 3) float64 E, N, H; ``exceed`` (m, 4) float64 exceedance per
    type in ``TYPE_ORDER`` (positive beyond, NaN where not applicable);
    ``ref_block`` (m,) int32 block index; ``source`` (m,) int32 index of the
    input the point came from.
    """

    xyz: F64 = field(default_factory=lambda: np.empty((0, 3)))
    exceed: F64 = field(default_factory=lambda: np.empty((0, 4)))
    ref_block: I32 = field(default_factory=lambda: np.empty(0, dtype=np.int32))
    source: I32 = field(default_factory=lambda: np.empty(0, dtype=np.int32))

    def __len__(self) -> int:
        return int(self.xyz.shape[0])

    @staticmethod
    def from_classification(
        xyz: F64, c: Classification, source: int = 0, idx: npt.NDArray[np.intp] | None = None
    ) -> Beyond:
        """The points of ``c`` beyond any limit (status > 0); ``idx`` their
        indices when already known."""
        if idx is None:
            idx = np.flatnonzero(c.status > 0)
        return Beyond(
            xyz=xyz[idx].copy(),
            exceed=np.column_stack([c.plan_dist[idx], c.above[idx], c.below[idx], c.seam[idx]]),
            ref_block=c.ref_block[idx].copy(),
            source=np.full(idx.size, source, dtype=np.int32),
        )

    def subset(self, keep: npt.NDArray[np.bool_] | npt.NDArray[np.intp]) -> Beyond:
        """The points selected by a mask or index array."""
        return Beyond(self.xyz[keep], self.exceed[keep], self.ref_block[keep], self.source[keep])

    @staticmethod
    def concat(parts: list[Beyond]) -> Beyond:
        if not parts:
            return Beyond()
        return Beyond(
            xyz=np.concatenate([p.xyz for p in parts]),
            exceed=np.concatenate([p.exceed for p in parts]),
            ref_block=np.concatenate([p.ref_block for p in parts]),
            source=np.concatenate([p.source for p in parts]),
        )


# --------------------------------------------------------------------------
# connected voxels


def label_voxels(
    xyz: F64,
    voxel: float = tol.VOXEL_SIZE_M,
    *,
    dense_max_cells: int | None = None,
    jit: bool | None = None,
) -> tuple[I64, int]:
    """Group points (n, 3) by 26-connected occupied voxels of edge ``voxel``.

    Returns (labels (n,) int64 in 0..k-1, k), groups numbered in the order of
    their first voxel in (E, N, H) raster order. With numba (``jit``, see
    :func:`survey.jit.use_jit`): a union-find over the sorted occupied
    voxels. Without: dense ``ndimage.label`` when the bounding grid has at
    most ``dense_max_cells`` cells (default
    ``tolerances.DENSE_LABEL_MAX_CELLS``), a sparse graph otherwise. All three
    give the same labels.
    """
    n = len(xyz)
    if n == 0:
        return np.empty(0, dtype=np.int64), 0
    limit = tol.DENSE_LABEL_MAX_CELLS if dense_max_cells is None else dense_max_cells
    lo, hi, _ = _extent(xyz)
    keys = np.floor((xyz - lo) / voxel).astype(np.int64)
    dims = np.floor((hi - lo) / voxel).astype(np.int64) + 1
    if use_jit(jit):
        return _label_jit(keys, dims)
    if int(np.prod(dims.astype(np.float64))) <= limit:
        from scipy import ndimage  # the numpy path only: ~0.1 s to import

        grid = np.zeros(tuple(int(d) for d in dims), dtype=bool)
        grid[keys[:, 0], keys[:, 1], keys[:, 2]] = True
        lab, k = ndimage.label(grid, structure=np.ones((3, 3, 3), dtype=bool))
        return lab[keys[:, 0], keys[:, 1], keys[:, 2]].astype(np.int64) - 1, int(k)
    return _label_sparse(keys, dims)


def _voxel_codes(keys: I64, dims: I64) -> tuple[I64, int, int]:
    """Raster-order codes of voxel keys (n, 3), padded by one voxel on every
    side so that the codes of a border voxel's neighbours stay unique; and
    the two inner strides."""
    d1, d2 = int(dims[1]) + 2, int(dims[2]) + 2
    k = keys + 1
    return (k[:, 0] * d1 + k[:, 1]) * d2 + k[:, 2], d1, d2


def _label_jit(keys: I64, dims: I64) -> tuple[I64, int]:
    codes, d1, d2 = _voxel_codes(keys, dims)
    uniq, inverse = np.unique(codes, return_inverse=True)
    # the 13 neighbours that come later in raster order (larger codes)
    deltas = np.array(
        [
            (dx * d1 + dy) * d2 + dz
            for dx in (-1, 0, 1)
            for dy in (-1, 0, 1)
            for dz in (-1, 0, 1)
            if (dx, dy, dz) > (0, 0, 0)
        ],
        dtype=np.int64,
    )
    vlab = np.empty(uniq.size, dtype=np.int64)
    k = int(_union_find_numba(uniq, deltas, vlab))
    return vlab[inverse.ravel()], k


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _union_find_numba(uniq, deltas, out):
        # uniq: sorted voxel codes; joins each voxel with its later
        # neighbours; a root is always the smallest index of its group, so
        # numbering roots in index order numbers groups by first voxel
        u = uniq.size
        parent = np.arange(u)
        for i in range(u):
            for d in deltas:
                nb = uniq[i] + d
                j = np.searchsorted(uniq[i + 1 :], nb) + i + 1
                if j < u and uniq[j] == nb:
                    a = i
                    while parent[a] != a:
                        parent[a] = parent[parent[a]]
                        a = parent[a]
                    b = j
                    while parent[b] != b:
                        parent[b] = parent[parent[b]]
                        b = parent[b]
                    if a < b:
                        parent[b] = a
                    elif b < a:
                        parent[a] = b
        k = 0
        for i in range(u):
            r = i
            while parent[r] != r:
                r = parent[r]
            if r == i:
                out[i] = k
                k += 1
            else:
                out[i] = out[r]
        return k


def _label_sparse(keys: I64, dims: I64) -> tuple[I64, int]:
    from scipy import sparse  # the numpy path only
    from scipy.sparse import csgraph

    codes, d1, d2 = _voxel_codes(keys, dims)

    def encode(k: I64) -> I64:
        return (k[:, 0] * d1 + k[:, 1]) * d2 + k[:, 2]

    uniq, inverse = np.unique(codes, return_inverse=True)
    vox = np.column_stack([uniq // (d1 * d2), (uniq // d2) % d1, uniq % d2])
    rows: list[I64] = []
    cols: list[I64] = []
    # 13 offsets: one of each +/- pair of the 26 neighbours
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            for dz in (-1, 0, 1):
                if (dx, dy, dz) <= (0, 0, 0):
                    continue
                nb = encode(vox + np.array([dx, dy, dz]))
                pos = np.searchsorted(uniq, nb)
                pos = np.minimum(pos, len(uniq) - 1)
                hit = uniq[pos] == nb
                rows.append(np.flatnonzero(hit))
                cols.append(pos[hit])
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    graph = sparse.coo_matrix((np.ones(r.size, dtype=np.int8), (r, c)), shape=(len(uniq),) * 2)
    k, vlab = csgraph.connected_components(graph, directed=False)
    return vlab[inverse.ravel()].astype(np.int64), int(k)


# --------------------------------------------------------------------------


def _nearest_edge(licence: Licence, block: int, e: float, n: float) -> tuple[tuple[str, str], str]:
    corners = licence.blocks[block].corners
    poly = licence.blocks[block].polygon_en() - np.array([e, n])
    nxt = np.roll(poly, -1, axis=0)
    edges = np.column_stack([poly, nxt])
    d = np.array(
        [segment_distance(np.zeros(1), np.zeros(1), edges[i : i + 1])[0] for i in range(len(edges))]
    )
    i = int(np.argmin(d))
    j = (i + 1) % len(corners)
    ci = int(np.argmin(np.hypot(poly[:, 0], poly[:, 1])))
    return (corners[i].number, corners[j].number), corners[ci].number


def grouping_voxel(xyz: F64, base: float = tol.VOXEL_SIZE_M) -> float:
    """Voxel edge (m) for grouping the points ``xyz`` (n, 3): ``base`` for
    scans; for sparse surveys (total-station points 1-2 m apart) it grows to
    ``VOXEL_SPACINGS`` mean nearest-neighbour distances, so that one drift
    surveyed point by point stays one incident, but never past
    ``VOXEL_MAX_M`` (workings separated by a pillar stay apart)."""
    n = len(xyz)
    if n < 2:
        return base
    # the mean spacing of 20 k random points, scaled below, is as good an
    # estimate as that of all of them (a sparse survey has fewer anyway)
    m = min(n, 20_000)
    sub = xyz if m == n else xyz[np.random.default_rng(0).choice(n, m, replace=False)]
    d = nearest_distances(sub)  # a hash grid with numba, cKDTree without
    d = d[d > 0]
    if d.size == 0:
        return base
    # a random subset of points on a surface is sqrt(m / n) times denser-spaced
    spacing = float(np.mean(d)) * math.sqrt(m / n)
    return min(max(base, tol.VOXEL_SPACINGS * spacing), max(base, tol.VOXEL_MAX_M))


def group_incidents(
    licence: Licence,
    beyond: Beyond,
    *,
    voxel: float | None = None,
    volume_fn: VolumeFn | None = None,
    notes: list[str] | None = None,
) -> tuple[list[Incident], list[Incident]]:
    """Incidents (beyond tolerance) and within-uncertainty groups.

    Ids: ``I1``... and ``U1``... in type order (``TYPE_ORDER``), then by
    decreasing maximum exceedance. ``voxel``: grouping voxel edge (m);
    None picks :func:`grouping_voxel` per type (``VOXEL_SIZE_M`` for scans,
    larger for sparse surveys, with a line in ``notes``). ``volume_fn``
    defaults to the shell method on the group's points.
    """
    groups: list[tuple[bool, Incident]] = []
    for col, vtype in enumerate(TYPE_ORDER):
        ex = beyond.exceed[:, col]
        sel = np.flatnonzero(ex > 0.0)  # NaN compares False
        if sel.size == 0:
            continue
        t = licence.tolerance_m if vtype is ViolationType.BOUNDARY else licence.tolerance_z_m
        size = grouping_voxel(_plan_if_no_height(beyond.xyz[sel])) if voxel is None else voxel
        if notes is not None and size > tol.VOXEL_SIZE_M:
            notes.append(
                f"{vtype}: points beyond the limit are sparse; grouped with {size:.2f} m "
                f"voxels instead of {tol.VOXEL_SIZE_M:g} m"
            )
        labels, k = label_voxels(_plan_if_no_height(beyond.xyz[sel]), size)
        # numpy sorts 16-bit integers by radix: several times a 64-bit sort
        order = np.argsort(labels.astype(np.uint16) if k <= 65536 else labels, kind="stable")
        cuts = np.searchsorted(labels[order], np.arange(1, k))
        typed: list[tuple[bool, Incident]] = []
        for members in np.split(sel[order], cuts):
            typed.append(_make(licence, beyond, members, col, vtype, t, volume_fn))
        typed.sort(key=lambda g: -g[1].max_exceedance_m)
        groups.extend(typed)
    incidents = [g for v, g in groups if v]
    uncertain = [g for v, g in groups if not v]
    for i, inc in enumerate(incidents, 1):
        inc.id = f"I{i}"
    for i, inc in enumerate(uncertain, 1):
        inc.id = f"U{i}"
    return incidents, uncertain


def _plan_if_no_height(pts: F64) -> F64:
    """``pts``, or a copy with every height 0 when some are NaN (points
    without a height, only ever beyond the boundary): grouped in plan."""
    if not np.isnan(pts[:, 2]).any():
        return pts
    flat = pts.copy()
    flat[:, 2] = 0.0
    return flat


def _make(
    licence: Licence,
    beyond: Beyond,
    members: I64,
    col: int,
    vtype: ViolationType,
    tolerance: float,
    volume_fn: VolumeFn | None,
) -> tuple[bool, Incident]:
    pts = beyond.xyz[members]
    ex = beyond.exceed[members, col]
    blocks = beyond.ref_block[members]
    block = int(np.bincount(blocks).argmax())
    has_h = ~np.isnan(pts[:, 2])
    plan_only = int(members.size - np.count_nonzero(has_h))
    if plan_only:
        lo, hi, centroid = _extent(_plan_if_no_height(pts))
        if plan_only < members.size:  # the heights of the points that have one
            hs = pts[has_h, 2]
            lo[2], hi[2], centroid[2] = hs.min(), hs.max(), hs.mean()
        else:
            lo[2] = hi[2] = centroid[2] = np.nan
        members, pts = members[has_h], pts[has_h]  # the volume: points with a height
    else:
        lo, hi, centroid = _extent(pts)
    edge, corner = _nearest_edge(licence, block, float(centroid[0]), float(centroid[1]))
    if not len(pts):
        volume = 0.0
    elif volume_fn is None:
        volume = shell_volume(pts)
    else:
        volume = volume_fn(pts, vtype, block, beyond.source[members])
    max_ex = float(ex.max())
    inc = Incident(
        id="",
        type=vtype,
        block=licence.blocks[block].name,
        point_count=int(members.size) + plan_only,
        bbox_min=_t3(lo),
        bbox_max=_t3(hi),
        centroid=_t3(centroid),
        max_exceedance_m=max_ex,
        volume_m3=float(volume),
        nearest_edge=edge,
        nearest_corner=corner,
        within_uncertainty=max_ex <= tolerance,
        plan_only_points=plan_only,
    )
    return max_ex > tolerance, inc


def _extent(pts: F64) -> tuple[F64, F64, F64]:
    """Per-column minimum, maximum and mean of points (n, 3), n > 0: one
    compiled pass (numpy's axis-0 reductions of an (n, 3) array stride
    through memory three times each)."""
    if numba is None:
        return pts.min(axis=0), pts.max(axis=0), pts.mean(axis=0)
    out = np.empty((3, 3), dtype=np.float64)
    _extent_numba(np.ascontiguousarray(pts, dtype=np.float64), out)
    return out[0], out[1], out[2]


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _extent_numba(pts, out):
        n = pts.shape[0]
        for j in range(3):
            out[0, j] = pts[0, j]
            out[1, j] = pts[0, j]
            out[2, j] = 0.0
        # the mean of offsets from the first point: sums of small numbers,
        # not of millions of CGCS2000 coordinates
        for i in range(n):
            for j in range(3):
                v = pts[i, j]
                if v < out[0, j]:
                    out[0, j] = v
                if v > out[1, j]:
                    out[1, j] = v
                out[2, j] += v - pts[0, j]
        for j in range(3):
            out[2, j] = pts[0, j] + out[2, j] / n


def _t3(a: F64) -> tuple[float, float, float]:
    return (float(a[0]), float(a[1]), float(a[2]))

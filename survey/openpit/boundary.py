"""Ground excavated beyond the licence: outside the plan boundary (越界),
below the licensed floor or above the licensed top (超层), as cells and
volumes of the DSM, grouped into incidents of the underground model
(:class:`survey.model.Incident`).

Excavated means lower than the ground before mining by more than the
height tolerance. The ground before mining is the pre-mining surface when
one is given (a DSM of the first flight, a survey of the original terrain),
else the surrounding terrain: a plane fitted (least squares, after
dropping the lowest third) to the DSM's outer rim of cells. The second is
only right for a pit cut into ground that was about flat or evenly sloping
around it; the report says which one was used.

The DSM is processed in strips of STRIP_ROWS rows (a 10,000 x 10,000 DSM
is 1e8 cells: whole float64 arrays of it would take 800 MB each): each
strip's groups are labelled with their sums, and groups touching across
a strip's seam (8-connected, as within a strip) are merged, so the
incidents are the ones a whole-array labelling gives.

Volumes are per cell: (ground before - DSM) x cell area outside the
boundary; max(0, floor - DSM) below the floor; the part of the removed
column above the top. A connected group of cells is a violation when its
largest exceedance (metres beyond the boundary in plan, below the floor or
above the top) passes the licence's tolerance, else it is within survey
uncertainty; its volume is all of the group's volume beyond the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import shapely
from scipy import ndimage

from survey.model import F64, Block, Incident, Licence, SurveyInputError, ViolationType
from survey.openpit.dsm import Dsm, Heights
from survey.openpit.kernels import strip_cells
from survey.progress import ProgressCallback

MIN_AREA_M2 = 1.0  # smaller groups of cells are DSM noise, not excavation
RIM_CELLS = 3  # width of the outer rim that stands for the surrounding terrain
STRIP_ROWS = 256  # rows of the DSM processed at a time


@dataclass
class Excavation:
    """How deep the ground was excavated below the ground before mining,
    strip by strip (:meth:`rows`), and how that ground was known."""

    dsm: Dsm
    tol_z: float
    ground_source: (
        str  # "pre-mining surface <file>" | "surrounding terrain (plane fit to the DSM rim)"
    )
    pre: Dsm | None = None
    plane: tuple[float, float, float, float, float] | None = None  # a, b_e, b_n, e0, n0

    def rows(self, r0: int, r1: int) -> tuple[F64, F64]:
        """(depth, ground) of rows r0 to r1 - 1, float64: depth excavated
        (0 where not excavated or no data), the ground before mining."""
        ground = self.ground_rows(r0, r1)
        depth = np.nan_to_num(ground - self.dsm.z[r0:r1], nan=0.0)
        depth[depth <= self.tol_z] = 0.0
        return depth, ground

    def ground_rows(self, r0: int, r1: int) -> F64:
        """The ground before mining on rows r0 to r1 - 1 (float64)."""
        d = self.dsm
        if self.pre is not None:
            if self.pre.same_grid(d):
                ground = np.asarray(self.pre.z[r0:r1], dtype=np.float64)
            else:
                e, n = np.meshgrid(d.east, d.north[r0:r1])
                ground = self.pre.sample(e.ravel(), n.ravel()).reshape(e.shape)
        else:
            assert self.plane is not None
            a, be, bn, e0, n0 = self.plane
            ground = a + be * (d.east[None, :] - e0) + bn * (d.north[r0:r1, None] - n0)
        return np.asarray(ground, dtype=np.float64)


def _rim(dsm: Dsm) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows and columns of the outer rim's cells (RIM_CELLS wide), row by row."""
    ny, nx = dsm.shape
    k = min(RIM_CELLS, ny, nx)
    all_cols = np.arange(nx)
    side = np.concatenate([np.arange(k), np.arange(max(k, nx - k), nx)])
    rows, cols = [], []
    for r in range(ny):
        c = all_cols if r < k or r >= ny - k else side
        rows.append(np.full(c.size, r))
        cols.append(c)
    return np.concatenate(rows), np.concatenate(cols)


def terrain_fit(dsm: Dsm) -> tuple[float, float, float, float, float]:
    """A plane through the DSM's outer rim (its highest two thirds):
    (height at (e0, n0), dz/dE, dz/dN, e0, n0)."""
    rows, cols = _rim(dsm)
    he = np.asarray(dsm.z[rows, cols], dtype=np.float64)
    ok = np.isfinite(he)
    rows, cols, he = rows[ok], cols[ok], he[ok]
    if he.size < 3 * RIM_CELLS:
        raise SurveyInputError(
            "the DSM has almost no heights on its outer rim, so the terrain around the pit is "
            "unknown; give the ground before mining with --pre-mining",
            path=dsm.source or None,
        )
    ze, ne = dsm.east[cols], dsm.north[rows]
    keep = he >= np.quantile(he, 1 / 3)
    ce, cn = float(dsm.east.mean()), float(dsm.north.mean())
    a = np.column_stack([np.ones(keep.sum()), ze[keep] - ce, ne[keep] - cn])
    coef, *_ = np.linalg.lstsq(a, he[keep], rcond=None)
    return float(coef[0]), float(coef[1]), float(coef[2]), ce, cn


def terrain_plane(dsm: Dsm) -> F64:
    """The plane of :func:`terrain_fit` as (ny, nx) heights (small DSMs: tests, plots)."""
    a, be, bn, e0, n0 = terrain_fit(dsm)
    plane = a + be * (dsm.east[None, :] - e0) + bn * (dsm.north[:, None] - n0)
    return np.asarray(plane, dtype=np.float64)


def excavation(dsm: Dsm, pre: Dsm | None, tol_z: float) -> Excavation:
    if pre is not None:
        return Excavation(dsm, tol_z, f"pre-mining surface {pre.source}", pre=pre)
    return Excavation(
        dsm,
        tol_z,
        "surrounding terrain (a plane fitted to the DSM's outer rim)",
        plane=terrain_fit(dsm),
    )


def _nearest(block: Block, e: float, n: float) -> tuple[tuple[str, str], str]:
    pts = block.polygon_en()
    k = len(pts)
    best, edge = np.inf, 0
    for i in range(k):
        a, b = pts[i], pts[(i + 1) % k]
        ab = b - a
        t = float(np.clip(np.dot([e - a[0], n - a[1]], ab) / max(np.dot(ab, ab), 1e-12), 0, 1))
        d = float(np.hypot(*(a + t * ab - (e, n))))
        if d < best:
            best, edge = d, i
    corner = int(np.argmin(np.hypot(pts[:, 0] - e, pts[:, 1] - n)))
    c = block.corners
    return (c[edge].number, c[(edge + 1) % k].number), c[corner].number


@dataclass
class _Groups:
    """Connected groups of cells of one kind and block, strip by strip:
    per group (global label) its sums, merged across strip seams."""

    kind: ViolationType
    block: Block
    tol: float
    parent: list[int] = field(default_factory=list)
    stats: list[F64] = field(default_factory=list)  # one (NSTAT,) per strip label
    last_row: npt.NDArray[np.int64] | None = None  # previous strip's top row, global labels
    last_r: int = -1

    # count, volume, sum w, sum w e, sum w n, sum w h, max exceed,
    # e min, e max, n min, n max, h min, h max
    NSTAT = 13

    def find(self, a: int) -> int:
        p = self.parent
        while p[a] != a:
            p[a] = p[p[a]]
            a = p[a]
        return a

    def add_strip(
        self,
        dsm: Dsm,
        r0: int,
        mask: npt.NDArray[np.bool_],
        exceed: F64,
        volume: F64,
        heights: Heights,  # float32 or float64
    ) -> None:
        """Rows r0.. of the DSM (``mask`` etc. are the strip's)."""
        nx = mask.shape[1]
        if not mask.any():
            self.last_row, self.last_r = None, r0 + mask.shape[0] - 1
            return
        labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
        base = len(self.parent)
        idx = labels[mask]
        rows, cols = np.nonzero(mask)
        w = volume[mask] + 1e-12
        e = dsm.east[cols]
        nn = dsm.north[r0 + rows]
        h = heights[mask]
        m = n + 1

        def bc(weights: F64 | None = None) -> F64:
            return np.bincount(idx, weights=weights, minlength=m)[1:].astype(np.float64)

        st = np.empty((n, self.NSTAT))
        st[:, 0] = bc()
        st[:, 1] = bc(volume[mask])
        st[:, 2] = bc(w)
        st[:, 3] = bc(w * e)
        st[:, 4] = bc(w * nn)
        st[:, 5] = bc(w * h)
        st[:, 6] = -np.inf
        np.maximum.at(st[:, 6], idx - 1, exceed[mask])
        boxes = ndimage.find_objects(labels)
        for k, box in enumerate(boxes):
            assert box is not None
            st[k, 7] = dsm.east[box[1].start]
            st[k, 8] = dsm.east[box[1].stop - 1]
            st[k, 9] = dsm.north[r0 + box[0].start]
            st[k, 10] = dsm.north[r0 + box[0].stop - 1]
        st[:, 11], st[:, 12] = np.inf, -np.inf
        np.minimum.at(st[:, 11], idx - 1, h)
        np.maximum.at(st[:, 12], idx - 1, h)
        self.parent.extend(range(base, base + n))
        self.stats.extend(st)
        first = np.where(labels[0] > 0, labels[0] - 1 + base, -1)
        if self.last_row is not None and self.last_r == r0 - 1:
            prev = self.last_row
            for shift in (-1, 0, 1):  # 8-connected: the three cells below
                a = first[max(0, -shift) : nx - max(0, shift)]
                b = prev[max(0, shift) : nx - max(0, -shift)]
                pairs = np.unique(np.stack([a, b], axis=1)[(a >= 0) & (b >= 0)], axis=0)
                for x, y in pairs:
                    rx, ry = self.find(int(x)), self.find(int(y))
                    if rx != ry:  # the root is the group's first label (raster order)
                        lo, hi = min(rx, ry), max(rx, ry)
                        self.parent[hi] = lo
        top = labels[-1]
        self.last_row = np.where(top > 0, top - 1 + base, -1)
        self.last_r = r0 + mask.shape[0] - 1

    def incidents(self, area: float) -> list[Incident]:
        merged: dict[int, F64] = {}
        for k, st in enumerate(self.stats):
            root = self.find(k)
            if root not in merged:
                merged[root] = st.copy()
                continue
            m = merged[root]
            m[:6] += st[:6]
            m[[6, 8, 10, 12]] = np.maximum(m[[6, 8, 10, 12]], st[[6, 8, 10, 12]])
            m[[7, 9, 11]] = np.minimum(m[[7, 9, 11]], st[[7, 9, 11]])
        out = []
        for root in sorted(merged):  # raster order of each group's first cell
            st = merged[root]
            if st[0] * area < MIN_AREA_M2:
                continue
            exc = float(st[6])
            centroid = (float(st[3] / st[2]), float(st[4] / st[2]), float(st[5] / st[2]))
            edge, corner = (
                _nearest(self.block, centroid[0], centroid[1])
                if self.kind == ViolationType.BOUNDARY
                else (None, None)
            )
            out.append(
                Incident(
                    id="",
                    type=self.kind,
                    block=self.block.name,
                    point_count=int(st[0]),  # cells
                    bbox_min=(float(st[7]), float(st[9]), float(st[11])),
                    bbox_max=(float(st[8]), float(st[10]), float(st[12])),
                    centroid=centroid,
                    max_exceedance_m=exc,
                    volume_m3=float(st[1] * area),
                    nearest_edge=edge,
                    nearest_corner=corner,
                    within_uncertainty=exc <= self.tol,
                )
            )
        return out


def _strip_cells(
    z: np.ndarray,
    ground: F64,
    tol_z: float,
    insides: list[npt.NDArray[np.bool_]],
    z_bottom: F64,
    z_top: F64,
) -> tuple[F64, npt.NDArray[np.bool_], F64, F64]:
    """numpy twin of :func:`survey.openpit.kernels.strip_cells`."""
    z = np.asarray(z, dtype=np.float64)
    depth = np.nan_to_num(ground - z, nan=0.0)
    depth[depth <= tol_z] = 0.0
    dug = depth > 0
    finite = np.isfinite(z)
    z_or_inf = np.where(finite, z, np.inf)
    outside = dug & ~np.logical_or.reduce(insides)
    below = np.stack(
        [
            np.maximum(np.where(i & finite, zb - z_or_inf, 0.0), 0.0)
            for i, zb in zip(insides, z_bottom, strict=True)
        ]
    )
    above = np.stack(
        [
            np.where(i & dug, np.maximum(ground - np.maximum(z_or_inf, zt), 0.0), 0.0)
            for i, zt in zip(insides, z_top, strict=True)
        ]
    )
    return depth, outside, below, above


def boundary_incidents(
    dsm: Dsm,
    licence: Licence,
    exc: Excavation,
    *,
    strip_rows: int = STRIP_ROWS,
    progress: ProgressCallback | None = None,
) -> list[Incident]:
    """Incidents (ids not yet given) beyond the boundary, below the floor
    and above the top of every block. A cell outside every block counts
    once, against the nearest block. The DSM is read ``strip_rows`` rows at
    a time (the answer does not depend on it)."""
    blocks = licence.blocks
    polys = [shapely.Polygon(b.polygon_en()) for b in blocks]
    rings = [b.polygon_en() for b in blocks]
    beyond = [_Groups(ViolationType.BOUNDARY, b, licence.tolerance_m) for b in blocks]
    below_g = [_Groups(ViolationType.BELOW_RANGE, b, licence.tolerance_z_m) for b in blocks]
    above_g = [_Groups(ViolationType.ABOVE_RANGE, b, licence.tolerance_z_m) for b in blocks]
    z_bottom = np.array([b.z_bottom for b in blocks], dtype=np.float64)
    z_top = np.array([b.z_top for b in blocks], dtype=np.float64)
    for r0, r1 in dsm.strips(strip_rows):
        strip = dsm.rows(r0, r1)
        z = strip.z  # float32 or float64; values taken as float64
        ground = exc.ground_rows(r0, r1)
        insides = [strip.polygon_mask(ring) for ring in rings]
        fast = strip_cells(z, ground, exc.tol_z, insides, z_bottom, z_top)
        if fast is not None:
            depth, outside, below_all, above_all = fast
        else:
            depth, outside, below_all, above_all = _strip_cells(
                z, ground, exc.tol_z, insides, z_bottom, z_top
            )
        dist = np.zeros(z.shape)
        nearest = np.zeros(z.shape, dtype=np.int64)
        if outside.any():
            rows, cols = np.nonzero(outside)
            pts = shapely.points(strip.east[cols], strip.north[rows])
            d_all = np.stack([shapely.distance(p.exterior, pts) for p in polys])
            dist[outside] = d_all.min(axis=0)
            nearest[outside] = d_all.argmin(axis=0)
        for k, groups in enumerate(beyond):
            sel = outside & (nearest == k) if len(blocks) > 1 else outside
            groups.add_strip(dsm, r0, sel, dist, depth, z)
        for k in range(len(blocks)):
            below, above = below_all[k], above_all[k]
            below_g[k].add_strip(dsm, r0, below > 0, below, below, z)
            above_g[k].add_strip(dsm, r0, above > 0, above, above, z)
        if progress is not None:
            progress("beyond the licence (rows)", r1, dsm.shape[0])
    area = dsm.cell_area()
    out: list[Incident] = []
    for g in beyond:
        out += g.incidents(area)
    for b, a in zip(below_g, above_g, strict=True):
        out += b.incidents(area) + a.incidents(area)
    return out

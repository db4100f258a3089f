"""Fast per-point classification of survey points against a licence.

``classify(licence, xyz)`` answers, for every point of an (n, 3) float64
(easting, northing, height) array, where it lies relative to the licensed
extent. All distances are metres and **positive beyond the licensed limit**.

How it is fast (the plan test dominates on big scans):

1. Once per licence (:func:`prepare`), the union of the block polygons is
   rasterised into a mask of at most ``tolerances.MASK_CELLS`` cells a side.
   Each cell is *outside*, *inside far from the boundary* (with a lower bound
   of its depth), *inside near the boundary*, or *boundary* (an edge passes
   through the cell or one of its 8 neighbours). The one-cell band makes the
   mask safe against the rounding of the cell lookup.
2. Per point, the cell is looked up (float64, relative to a local origin at
   the licence centroid). With numba installed this is one compiled loop;
   without it the same arithmetic runs as numpy passes over blocks of
   ``tolerances.CLASSIFY_BLOCK_POINTS`` points.
3. Only points in boundary cells get the exact test, done by
   ``shapely.contains_xy`` on absolute float64 coordinates, so inside/outside
   is **identical to shapely**.
4. The signed plan distance is computed exactly (vectorised point-to-segment
   distance over the few licence edges) only for points outside the licence
   or within ``tolerances.EXACT_INSIDE_BAND_M`` inside it.

Boundary convention: a point exactly on the boundary is *outside* for
``block`` (shapely's ``contains_xy`` excludes the boundary) but its
``plan_dist`` is 0.0, which is not beyond the limit, so it is compliant.

Several blocks: ``block`` is the block whose polygon contains the point; when
polygons overlap (stacked blocks with different elevation ranges) it is the
one whose elevation range the point exceeds least. ``plan_dist`` is measured
to the boundary of the *union* of the blocks. Points outside every block
take the elevation range of the nearest block (``ref_block``), so a point
beyond the boundary and below that block's floor counts as both.

A streaming check needs the details (exceedances, blocks) of the
non-compliant points only: :func:`classify_status` runs the same compiled
per-point code writing one status byte a point (a seam's offsets in one more
pass), and the caller classifies the few non-compliant points in full.

Modules: the masks and :func:`prepare` are in :mod:`survey.plan_mask`, the
plan distances (:func:`segment_distance`, :func:`mask_distance`) in
:mod:`survey.distance`; this module classifies and re-exports them. The
compiled single-block kernel is in :mod:`survey.classify_kernel`, the seam
offsets in :mod:`survey.seams`. This module's ``numba`` (None without
numba) decides, per call, between the compiled and the numpy path for the
whole classification.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely

from survey import tolerances as tol
from survey.classify_kernel import PENDING, KernelOutputs, kernel_licence
from survey.distance import mask_distance, segment_distance
from survey.jit import numba
from survey.model import F64, Licence, ViolationType

if numba is not None:
    from survey.classify_kernel import fused_numba, seam_bits_numba, seam_status_numba
from survey.plan_mask import (
    CELL_EDGE,
    CELL_IN_DEEP,
    CELL_IN_NEAR,
    EdgeGrid,
    PolygonMask,
    PreparedLicence,
    block_polygon,
    contains,
    prepare,
)
from survey.seams import seam_offset

__all__ = [
    "ABOVE_BIT",
    "BELOW_BIT",
    "BOUNDARY_BIT",
    "COMPLIANT",
    "SEAM_BIT",
    "TYPE_BITS",
    "UNCERTAIN",
    "VIOLATION",
    "Classification",
    "EdgeGrid",
    "PolygonMask",
    "PreparedLicence",
    "block_polygon",
    "classify",
    "classify_status",
    "empty_classification",
    "mask_distance",
    "prepare",
    "segment_distance",
]


U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]

#: Bits of ``Classification.violated`` / ``.uncertain``.
BOUNDARY_BIT = 1
ABOVE_BIT = 2
BELOW_BIT = 4
SEAM_BIT = 8
TYPE_BITS: dict[ViolationType, int] = {
    ViolationType.BOUNDARY: BOUNDARY_BIT,
    ViolationType.ABOVE_RANGE: ABOVE_BIT,
    ViolationType.BELOW_RANGE: BELOW_BIT,
    ViolationType.OUTSIDE_SEAM: SEAM_BIT,
}

#: ``Classification.status`` values.
COMPLIANT = 0
UNCERTAIN = 1
VIOLATION = 2


@dataclass
class Classification:
    """Per-point answers for n points; every array has shape (n,).

    * ``block``: int32 index into ``licence.blocks`` of the block containing
      the point in plan, -1 if none (boundary points are in none).
    * ``ref_block``: int32 block the elevation range was taken from: ``block``
      when inside, otherwise the nearest block in plan.
    * ``plan_dist``: float64 m, signed distance to the boundary of the union
      of the blocks, positive outside, negative inside. Exact outside and up to
      ``EXACT_INSIDE_BAND_M`` inside; deeper it is a bound (the point is at
      least ``-plan_dist`` inside).
    * ``above``: float64 m, H - z_top of ``ref_block`` (positive above).
    * ``below``: float64 m, z_bottom - H of ``ref_block`` (positive below).
    * ``seam``: float64 m, signed vertical offset outside the licensed seam:
      H - roof above the roof, floor - H below the floor, negative (distance
      to the nearer of roof/floor) inside; with several seams the smallest;
      NaN where the licence has no seam or no seam surface covers the point.
    * ``violated`` / ``uncertain``: uint8 bitmasks (``BOUNDARY_BIT`` ...) of
      the limits exceeded beyond the tolerance / by at most the tolerance.
    * ``status``: uint8, ``COMPLIANT`` 0, ``UNCERTAIN`` 1, ``VIOLATION`` 2
      (the worst over the limits).
    """

    block: I32
    ref_block: I32
    plan_dist: F64
    above: F64
    below: F64
    seam: F64
    violated: U8
    uncertain: U8
    status: U8

    def __len__(self) -> int:
        return int(self.status.shape[0])

    def exceedance(self, vtype: ViolationType) -> F64:
        """(n,) float64 exceedance of one limit, positive beyond it."""
        if vtype is ViolationType.BOUNDARY:
            return self.plan_dist
        if vtype is ViolationType.ABOVE_RANGE:
            return self.above
        if vtype is ViolationType.BELOW_RANGE:
            return self.below
        return self.seam


def empty_classification(n: int) -> Classification:
    """Uninitialised :class:`Classification` of n points."""
    return Classification(
        block=np.empty(n, dtype=np.int32),
        ref_block=np.empty(n, dtype=np.int32),
        plan_dist=np.empty(n, dtype=np.float64),
        above=np.empty(n, dtype=np.float64),
        below=np.empty(n, dtype=np.float64),
        seam=np.empty(n, dtype=np.float64),
        violated=np.empty(n, dtype=np.uint8),
        uncertain=np.empty(n, dtype=np.uint8),
        status=np.empty(n, dtype=np.uint8),
    )


def _view(c: Classification, s: slice) -> Classification:
    return Classification(
        c.block[s],
        c.ref_block[s],
        c.plan_dist[s],
        c.above[s],
        c.below[s],
        c.seam[s],
        c.violated[s],
        c.uncertain[s],
        c.status[s],
    )


def classify(
    licence: Licence | PreparedLicence, xyz: F64, *, out: Classification | None = None
) -> Classification:
    """Classify points against the licence.

    ``xyz``: (n, 3) float64 (easting, northing, height) in the licence's
    coordinate system (zone prefix removed), finite except that a height
    may be NaN (a point surveyed without one): such a point gets plan-only
    answers (``block``, ``plan_dist`` and the boundary bit as for any height;
    ``above``, ``below`` and ``seam`` NaN, never a level or seam bit). The
    answers for other NaN or infinite coordinates are undefined
    (``survey.check`` refuses such input). Returns a :class:`Classification`
    of n points. Large inputs are processed in blocks of
    ``CLASSIFY_BLOCK_POINTS`` to bound temporary memory. ``out``: optional
    buffers of at least n points to reuse between chunks (the result is then
    a view of its first n entries).
    """
    prep = licence if isinstance(licence, PreparedLicence) else prepare(licence)
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise ValueError(f"xyz must be (n, 3) float64, got shape {xyz.shape}")
    n = xyz.shape[0]
    if out is None or len(out) < n:
        out = empty_classification(n)
    elif len(out) > n:
        out = _view(out, slice(0, n))
    step = tol.CLASSIFY_BLOCK_POINTS
    for s in range(0, n, step):
        sl = slice(s, min(n, s + step))
        _classify_block(prep, xyz[sl], _view(out, sl))
    return out


def classify_status(
    prep: PreparedLicence, xyz: F64, out: U8, *, seam_out: F64 | None = None
) -> tuple[U8, int] | None:
    """Status of each point (0 compliant, 1 within uncertainty, 2 violation:
    the same as ``classify(prep, xyz).status``) without the per-point
    details, for a streaming check that keeps the details of the
    non-compliant points only (it classifies those again: a few per cent of
    a scan). ``out``: a uint8 buffer of at least n points; ``seam_out``: a
    float64 buffer of at least n points for a licence with seams (allocated
    when not given), which then holds every point's seam offset
    (``Classification.seam``). Returns
    (the status view of n points, how many are not compliant), or None where
    this path does not apply (numba missing, several blocks): call
    :func:`classify` then."""
    lic = prep.licence
    if numba is None or len(prep.blocks) != 1:
        return None
    xyz = np.asarray(xyz, dtype=np.float64)
    n = xyz.shape[0]
    status = out[:n]
    u8 = np.empty(0, dtype=np.uint8)
    i32 = np.empty(0, dtype=np.int32)
    f64 = np.empty(0, dtype=np.float64)
    # the details are not written: empty arrays of the same types (the same
    # compiled specialisation as classify's)
    details = KernelOutputs(u8, i32, f64, f64, f64, u8, u8, status, i32, f64)
    bad = int(fused_numba(xyz, kernel_licence(prep), details, True))
    if lic.seams:
        seam = np.empty(n, dtype=np.float64) if seam_out is None else seam_out[:n]
        seam_offset(lic, xyz, seam, jit=True)
        bad = int(seam_status_numba(seam, lic.tolerance_z_m, status))
    if bad:
        pending = np.flatnonzero(status == PENDING)
        if pending.size:  # boundary cells: the exact test, as classify does
            settled = classify(prep, xyz[pending]).status
            status[pending] = settled
            bad -= int(np.count_nonzero(settled == 0))
    return status, bad


def _classify_block(prep: PreparedLicence, xyz: F64, out: Classification) -> None:
    """Fill ``out`` (views of length len(xyz)) for one block of points."""
    lic = prep.licence
    origin = prep.origin
    tp, tz = lic.tolerance_m, lic.tolerance_z_m
    single = len(prep.blocks) == 1
    jit = numba is not None  # read per call: tests switch numba off here
    if single and jit:
        code = np.empty(xyz.shape[0], dtype=np.uint8)
        outputs = KernelOutputs(
            code,
            out.block,
            out.plan_dist,
            out.above,
            out.below,
            out.violated,
            out.uncertain,
            out.status,
            out.ref_block,
            out.seam,
        )
        fused_numba(xyz, kernel_licence(prep), outputs, False)
        todo = np.flatnonzero(code == CELL_EDGE)
        if todo.size:
            _exact_plan(prep, xyz[todo], code[todo], todo, out)
    else:
        inside, code, depth = contains(xyz, origin, prep.union, jit=jit)
        out.plan_dist[:] = -depth  # deep points: a bound; the rest overwritten below
        exact = np.flatnonzero(code != CELL_IN_DEEP)
        if exact.size:
            d = mask_distance(
                prep.union, xyz[exact, 0] - origin[0], xyz[exact, 1] - origin[1], jit=jit
            )
            out.plan_dist[exact] = np.where(inside[exact], -d, d)
        if single:
            out.block[:] = np.where(inside, 0, -1)
            out.ref_block[:] = 0
        else:
            block, ref = _assign_blocks(prep, xyz, inside)
            out.block[:] = block
            out.ref_block[:] = ref
        ref = out.ref_block
        np.subtract(xyz[:, 2], prep.z_top[ref], out=out.above)
        np.subtract(prep.z_bottom[ref], xyz[:, 2], out=out.below)
        out.violated[:] = 0
        out.uncertain[:] = 0
        for arr, bit, t in (
            (out.plan_dist, BOUNDARY_BIT, tp),
            (out.above, ABOVE_BIT, tz),
            (out.below, BELOW_BIT, tz),
        ):
            _set_bits(arr, bit, t, out.violated, out.uncertain)
        out.status[:] = _status(out.violated, out.uncertain)

    if lic.seams:
        seam_offset(lic, xyz, out.seam, jit=jit)
        if jit:
            seam_bits_numba(out.seam, tz, out.violated, out.uncertain, out.status)
        else:
            _set_bits(out.seam, SEAM_BIT, tz, out.violated, out.uncertain)
            out.status[:] = _status(out.violated, out.uncertain)
    elif not (single and jit):
        out.seam.fill(np.nan)


def _status(violated: U8, uncertain: U8) -> U8:
    st = (uncertain > 0).astype(np.uint8)
    st[violated > 0] = VIOLATION
    return st


def _set_bits(arr: F64, bit: int, t: float, violated: U8, uncertain: U8) -> None:
    over = arr > t
    violated[over] |= np.uint8(bit)
    beyond = (arr > 0.0) & ~over
    uncertain[beyond] |= np.uint8(bit)


def _exact_plan(
    prep: PreparedLicence, pts: F64, code: U8, idx: npt.NDArray[np.intp], out: Classification
) -> None:
    """Exact inside test and signed distance for the non-deep points ``idx``
    of a single-block licence (the fused kernel left them provisional)."""
    m = prep.union
    inside = code == CELL_IN_NEAR
    edge = np.flatnonzero(code == CELL_EDGE)
    if edge.size:
        inside[edge] = shapely.contains_xy(m.geometry, pts[edge, 0], pts[edge, 1])
    d = mask_distance(
        m, pts[:, 0] - prep.origin[0], pts[:, 1] - prep.origin[1], jit=numba is not None
    )
    plan = np.where(inside, -d, d)
    out.plan_dist[idx] = plan
    out.block[idx] = np.where(inside, 0, -1)
    viol = out.violated[idx]
    unc = out.uncertain[idx]
    _set_bits(plan, BOUNDARY_BIT, prep.licence.tolerance_m, viol, unc)
    out.violated[idx] = viol
    out.uncertain[idx] = unc
    out.status[idx] = _status(viol, unc)


def _assign_blocks(
    prep: PreparedLicence, xyz: F64, inside_union: npt.NDArray[np.bool_]
) -> tuple[I32, I32]:
    """Block containing each point (least vertical exceedance among
    overlapping ones) and the reference block (nearest one when outside)."""
    n = xyz.shape[0]
    h = xyz[:, 2]
    block = np.full(n, -1, dtype=np.int32)
    best = np.full(n, np.inf)
    for b, m in enumerate(prep.blocks):
        inside_b, _, _ = contains(xyz, prep.origin, m, jit=numba is not None)
        v = np.maximum(h - prep.z_top[b], prep.z_bottom[b] - h)
        # a point without a height (NaN): the first block containing it
        better = inside_b & ((v < best) | (np.isnan(v) & (block < 0)))
        block[better] = b
        best[better] = v[better]
    ref = block.copy()
    out = np.flatnonzero(~inside_union)
    if out.size:
        px = xyz[out, 0] - prep.origin[0]
        py = xyz[out, 1] - prep.origin[1]
        ref[out] = _nearest_block(prep, px, py)
    # inside the union but on a shared edge of two blocks: nearest block
    lost = np.flatnonzero(ref < 0)
    if lost.size:
        px = xyz[lost, 0] - prep.origin[0]
        py = xyz[lost, 1] - prep.origin[1]
        ref[lost] = _nearest_block(prep, px, py)
    return block, ref


def _nearest_block(prep: PreparedLicence, px: F64, py: F64) -> I32:
    """Index of the nearest block to local points (k,); on a tie (within
    ``NEAREST_BLOCK_TIE_M``) the first listed block."""
    jit = numba is not None
    dists = np.stack([segment_distance(px, py, m.edges, jit=jit) for m in prep.blocks])
    near = dists <= dists.min(axis=0) + tol.NEAREST_BLOCK_TIE_M
    return np.argmax(near, axis=0).astype(np.int32)

"""The compiled single-block classification kernel (numba only; the numpy
path is :func:`survey.classify._classify_block`'s other branch) and the
seam status kernels.

:func:`fused_numba` takes its licence as one :class:`KernelLicence` and its
per-point outputs as one :class:`KernelOutputs` (numba passes named tuples
as records: no cost per point). ``status_only`` writes the status alone
(:data:`PENDING` in boundary cells; the other outputs may be empty arrays of
the same types, which keeps one compiled specialisation).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from survey.jit import numba
from survey.model import F64

if TYPE_CHECKING:
    from survey.plan_mask import PreparedLicence

U8 = npt.NDArray[np.uint8]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]

PENDING = 255  # status of a point in a boundary cell before its exact test


class KernelLicence(NamedTuple):
    """A single-block licence as :func:`fused_numba` reads it: local origin,
    the union mask (origin, 1 / cell, codes, depths), its edges and their
    candidate grid (:class:`survey.plan_mask.EdgeGrid`), the
    elevation range and the tolerances."""

    e0: float
    n0: float
    ox: float
    oy: float
    inv: float
    codes: U8
    depth: F64
    edges: F64
    gox: float
    goy: float
    ginv: float
    gnx: int
    gny: int
    edge_start: I64
    edge_index: I64
    ztop: float
    zbot: float
    tp: float
    tz: float


def kernel_licence(prep: PreparedLicence) -> KernelLicence:
    """The :class:`KernelLicence` of a single-block prepared licence."""
    m = prep.union
    g = m.near_edges
    lic = prep.licence
    return KernelLicence(
        float(prep.origin[0]),
        float(prep.origin[1]),
        m.ox,
        m.oy,
        1.0 / m.cell,
        m.codes,
        m.depth,
        m.edges,
        g.ox,
        g.oy,
        1.0 / g.cell,
        g.nx,
        g.ny,
        g.start,
        g.index,
        float(prep.z_top[0]),
        float(prep.z_bottom[0]),
        lic.tolerance_m,
        lic.tolerance_z_m,
    )


class KernelOutputs(NamedTuple):
    """Per-point outputs of :func:`fused_numba`: the mask cell code and the
    fields of :class:`survey.classify.Classification`."""

    code: U8
    block: I32
    plan: F64
    above: F64
    below: F64
    violated: U8
    uncertain: U8
    status: U8
    ref_block: I32
    seam: F64


if numba is not None:
    from survey.distance import near_dist_numba

    @numba.njit(cache=True, nogil=True)
    def fused_numba(xyz, lic, out, status_only):
        # one pass for a single-block licence: cell lookup, plan distance
        # (except in boundary cells, which need shapely's exact test),
        # elevation limits, bits and status. ``status_only``: write the
        # status alone (PENDING in boundary cells; the other outputs may be
        # empty arrays) and return how many points are not compliant or
        # pending
        codes = lic.codes
        depth = lic.depth
        ny, nx = codes.shape
        bad = 0
        for i in range(xyz.shape[0]):
            lx = xyz[i, 0] - lic.e0
            ly = xyz[i, 1] - lic.n0
            ix = math.floor((lx - lic.ox) * lic.inv)
            iy = math.floor((ly - lic.oy) * lic.inv)
            c = 0
            dep = 0.0
            if ix >= 0 and iy >= 0 and ix < nx and iy < ny:
                c = codes[iy, ix]
                dep = depth[iy, ix]
            v = 0
            u = 0
            if c == 1:  # deep inside: a bound is enough
                blk = 0
                plan = -dep
            elif c == 2:  # boundary cell: settled by the caller
                blk = -1
                plan = 0.0
            else:
                d = near_dist_numba(
                    lx,
                    ly,
                    lic.edges,
                    lic.gox,
                    lic.goy,
                    lic.ginv,
                    lic.gnx,
                    lic.gny,
                    lic.edge_start,
                    lic.edge_index,
                )
                if c == 3:
                    blk = 0
                    plan = -d
                else:
                    blk = -1
                    plan = d
                    if d > lic.tp:
                        v |= 1
                    elif d > 0.0:
                        u |= 1
            h = xyz[i, 2]
            a = h - lic.ztop
            b = lic.zbot - h
            if a > lic.tz:
                v |= 2
            elif a > 0.0:
                u |= 2
            if b > lic.tz:
                v |= 4
            elif b > 0.0:
                u |= 4
            st = 2 if v else (1 if u else 0)
            if status_only:
                if c == 2:
                    st = 255  # PENDING
                out.status[i] = st
                if st:
                    bad += 1
                continue
            out.status[i] = st
            out.code[i] = c
            out.block[i] = blk
            out.plan[i] = plan
            out.above[i] = a
            out.below[i] = b
            out.violated[i] = v
            out.uncertain[i] = u
            out.ref_block[i] = 0
            out.seam[i] = np.nan
        return bad

    @numba.njit(cache=True, nogil=True)
    def seam_status_numba(seam, tz, status):
        # the seam's part of the status (as seam_bits_numba sets it) for
        # points not PENDING; returns how many are not compliant or pending
        bad = 0
        for i in range(seam.shape[0]):
            st = status[i]
            if st != 255:
                x = seam[i]
                if x > tz:
                    st = 2
                elif x > 0.0 and st == 0:
                    st = 1
                status[i] = st
            if st:
                bad += 1
        return bad

    @numba.njit(cache=True, nogil=True)
    def seam_bits_numba(seam, tz, violated, uncertain, status):
        # _set_bits(seam, SEAM_BIT, ...) and _status in one pass
        for i in range(seam.shape[0]):
            v = violated[i]
            u = uncertain[i]
            x = seam[i]
            if x > tz:
                v |= 8
            elif x > 0.0:
                u |= 8
            violated[i] = v
            uncertain[i] = u
            status[i] = 2 if v else (1 if u else 0)

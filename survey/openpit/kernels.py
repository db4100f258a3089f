"""Compiled kernels of the open-pit check (numba, optional: see
:mod:`survey.jit`); each has a numpy twin that gives the same numbers.

:func:`profile_samples`: heights and the DSM's gradient along the profiles
in one pass over the sample positions (five bilinear interpolations per
sample: ``map_coordinates`` takes 1.5 s for the 2.5 M samples of a
10,000 x 10,000 DSM, the kernel a tenth of that).
"""

from __future__ import annotations

import math

import numpy as np

from survey.jit import numba, use_jit
from survey.model import F64

if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _bilinear(z, r, c):
        # scipy.ndimage.map_coordinates(order=1, mode="constant", cval=nan)
        # inside the grid; NaN outside it and next to no data
        ny, nx = z.shape
        if not (r >= 0.0 and r <= ny - 1 and c >= 0.0 and c <= nx - 1):
            return math.nan
        r0 = min(math.floor(r), ny - 2)
        c0 = min(math.floor(c), nx - 2)
        fr = r - r0
        fc = c - c0
        a = (1.0 - fc) * z[r0, c0] + fc * z[r0, c0 + 1]
        b = (1.0 - fc) * z[r0 + 1, c0] + fc * z[r0 + 1, c0 + 1]
        return (1.0 - fr) * a + fr * b

    @numba.njit(cache=True, nogil=True)
    def _profile_samples_numba(z, rj, ci, inv2e, inv2n, h, ge, gn):
        for k in range(rj.size):
            r = rj[k]
            c = ci[k]
            h[k] = _bilinear(z, r, c)
            ge[k] = (_bilinear(z, r, c + 1.0) - _bilinear(z, r, c - 1.0)) * inv2e
            gn[k] = (_bilinear(z, r + 1.0, c) - _bilinear(z, r - 1.0, c)) * inv2n


def profile_samples(
    z: np.ndarray, rj: F64, ci: F64, cell_e: float, cell_n: float, *, jit: bool | None = None
) -> tuple[F64, F64, F64] | None:
    """(heights, dz/dE, dz/dN) at fractional rows ``rj`` and columns ``ci``
    of ``z`` (the central differences of ``np.gradient`` interpolated
    bilinearly there); None when numba is not there (the caller then uses
    :meth:`survey.openpit.dsm.Dsm.sample` and ``gradient_at``)."""
    if not use_jit(jit) or z.ndim != 2 or min(z.shape) < 2:
        return None
    rj = np.ascontiguousarray(rj, dtype=np.float64).ravel()
    ci = np.ascontiguousarray(ci, dtype=np.float64).ravel()
    h, ge, gn = (np.empty(rj.size) for _ in range(3))
    _profile_samples_numba(z, rj, ci, 0.5 / cell_e, 0.5 / cell_n, h, ge, gn)
    return h, ge, gn


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _strip_cells_numba(
        z, ground, tol_z, insides, z_bottom, z_top, depth, outside, below, above
    ):
        nb = insides.shape[0]
        for r in range(z.shape[0]):
            for c in range(z.shape[1]):
                h = np.float64(z[r, c])
                g = ground[r, c]
                d = g - h
                if not (d > tol_z):  # NaN (no height or no ground) is not excavated
                    d = 0.0
                depth[r, c] = d
                finite = not math.isnan(h)
                hz = h if finite else math.inf
                any_in = False
                for k in range(nb):
                    inside = insides[k, r, c]
                    any_in = any_in or inside
                    b = 0.0
                    if inside and finite:
                        b = max(z_bottom[k] - hz, 0.0)
                    below[k, r, c] = b
                    a = 0.0
                    if inside and d > 0.0:
                        a = g - max(hz, z_top[k])
                        if not (a > 0.0):
                            a = 0.0
                    above[k, r, c] = a
                outside[r, c] = d > 0.0 and not any_in


def strip_cells(
    z: np.ndarray,
    ground: F64,
    tol_z: float,
    insides: list[np.ndarray],
    z_bottom: F64,
    z_top: F64,
    *,
    jit: bool | None = None,
) -> tuple[F64, np.ndarray, F64, F64] | None:
    """One strip of the boundary check in one compiled pass: (depth
    excavated (0 where not, or within ``tol_z``), excavated outside every
    block, per block the depth below its floor and the excavation above
    its top); None without numba (:func:`survey.openpit.boundary
    .boundary_incidents` then computes the same with numpy)."""
    if not use_jit(jit):
        return None
    shape = z.shape
    nb = len(insides)
    depth = np.empty(shape)
    outside = np.empty(shape, dtype=np.bool_)
    below, above = np.empty((nb, *shape)), np.empty((nb, *shape))
    ins = np.stack(insides) if nb else np.zeros((0, *shape), dtype=np.bool_)
    _strip_cells_numba(
        z, np.ascontiguousarray(ground, dtype=np.float64), float(tol_z), ins,
        np.asarray(z_bottom, dtype=np.float64), np.asarray(z_top, dtype=np.float64),
        depth, outside, below, above,
    )  # fmt: skip
    return depth, outside, below, above

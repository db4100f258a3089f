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

"""The optional numba switch of the survey code.

numba is optional: every compiled kernel has a numpy twin that gives the
same numbers, slower. ``numba`` is the module when installed, else None;
the survey modules import it from here and define their kernels only when
it is there. :func:`use_jit` turns the ``jit`` keyword of their public
functions into a yes/no.

Importing this module also loads numba's numpy support without its BLAS
probe importing ``scipy.linalg`` (:func:`load_numba_without_blas_probe`),
a start-up cost every survey command would otherwise pay.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from typing import Any

__all__ = ["load_numba_without_blas_probe", "numba", "use_jit"]

numba: Any
try:  # numba is optional: the numpy fallback gives identical results, slower
    numba = importlib.import_module("numba")
except ImportError:  # pragma: no cover - depends on the environment
    numba = None


def use_jit(jit: bool | None) -> bool:
    """Whether to run the numba kernels: ``jit`` when given, else whenever
    numba is installed (never when it is not)."""
    return numba is not None and (jit is None or jit)


def _scipy_has_cython_blas() -> bool:
    """Whether scipy's ``linalg.cython_blas`` extension is installed, found
    on disk without importing ``scipy.linalg``."""
    spec = importlib.util.find_spec("scipy")
    if spec is None or not spec.submodule_search_locations:
        return False
    return any(
        any(Path(loc, "linalg").glob("cython_blas*")) for loc in spec.submodule_search_locations
    )


def load_numba_without_blas_probe() -> None:
    """Load numba's numpy support (``numba.np.arraymath``, which its first
    compile or cache load imports anyway) without its BLAS probe importing
    ``scipy.linalg``: with scipy 1.17 that import takes ~0.2 s (its
    array-API layer walks every numpy submodule), a tenth of a whole
    ``minegate survey check``, and none of our kernels calls BLAS (no
    ``np.dot``/``np.linalg`` inside numba). While arraymath is imported, the
    probe (``numba.np.linalg.ensure_blas``) only checks that scipy's
    ``cython_blas`` is installed -- the answer the import would give --
    then numba's own is put back, so a kernel that does use BLAS still
    imports and checks scipy's when it is compiled. Does nothing when
    arraymath is already loaded or numba's layout is not the expected one."""
    if numba is None or "numba.np.arraymath" in sys.modules:
        return
    try:
        nplinalg = importlib.import_module("numba.np.linalg")
    except ImportError:  # pragma: no cover - another numba layout
        return
    original = getattr(nplinalg, "ensure_blas", None)
    if original is None:  # pragma: no cover - another numba layout
        return

    def ensure_blas_installed() -> None:
        if not _scipy_has_cython_blas():
            raise ImportError("scipy 0.16+ is required for linear algebra")

    setattr(nplinalg, "ensure_blas", ensure_blas_installed)  # noqa: B010
    try:
        importlib.import_module("numba.np.arraymath")
    finally:
        setattr(nplinalg, "ensure_blas", original)  # noqa: B010


load_numba_without_blas_probe()

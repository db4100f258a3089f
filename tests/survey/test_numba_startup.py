"""numba start-up as the survey commands load it (survey.jit): its
BLAS probe must not import scipy.linalg (0.2 s), and numba must still see
the BLAS and use it where a kernel calls it. Runs in fresh interpreters:
what is imported depends on the process's history."""

from __future__ import annotations

import subprocess
import sys

import pytest

from survey.jit import numba

pytestmark = pytest.mark.skipif(numba is None, reason="numba is not installed")


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_first_kernel_call_does_not_import_scipy_linalg() -> None:
    out = _run(
        "import sys, numpy as np\n"
        "from survey.distance import segment_distance\n"
        "d = segment_distance(np.zeros(3), np.ones(3), np.array([[0.0, 0.0, 1.0, 0.0]]))\n"
        "assert np.allclose(d, 1.0), d\n"
        "import numba.np.arraymath as am\n"
        "print(am._HAVE_BLAS, 'scipy.linalg' in sys.modules)\n"
    )
    assert out == "True False"


def test_a_kernel_that_uses_blas_still_gets_it() -> None:
    out = _run(
        "import numpy as np\n"
        "import survey.jit\n"
        "import numba\n"
        "@numba.njit\n"
        "def dot(a, b):\n"
        "    return np.dot(a, b)\n"
        "a = np.arange(6.0).reshape(2, 3)\n"
        "print(float(dot(a, a.T).sum()))\n"
    )
    a = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    expected = sum(sum(x * y for x, y in zip(r, s, strict=True)) for r in a for s in a)
    assert float(out) == expected

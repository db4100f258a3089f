"""LZF decompression (Marc Lehmann's liblzf format), for PCL's
``DATA binary_compressed`` PCD files.

The stream is a sequence of runs, each starting with a control byte ``c``:

* ``c < 32``: a literal run, the next ``c + 1`` bytes are copied;
* otherwise a back reference: length ``c >> 5`` (7 means "7 plus the next
  byte"), plus 2; offset ``((c & 31) << 8) + next byte + 1`` bytes back in
  the output, copied byte by byte (the copy may overlap what it writes).

:func:`lzf_decompress` returns the output, or None when the stream is
damaged (a run past the input's end, a reference before the output's
start, or an output longer or shorter than announced). The loop runs
compiled with numba when it is installed and the input is large; the
pure Python loop (about 1.5 MB/s) gives the same bytes.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from survey.jit import numba

U8 = npt.NDArray[np.uint8]


def _decode(src: U8, out: U8) -> int:
    """Decode ``src`` into ``out`` (its announced size); the number of bytes
    written, or -1 when the stream is damaged."""
    ip = 0
    op = 0
    n_in = src.shape[0]
    n_out = out.shape[0]
    while ip < n_in:
        ctrl = int(src[ip])
        ip += 1
        if ctrl < 32:
            run = ctrl + 1
            if ip + run > n_in or op + run > n_out:
                return -1
            out[op : op + run] = src[ip : ip + run]
            ip += run
            op += run
            continue
        length = ctrl >> 5
        if length == 7:
            if ip >= n_in:
                return -1
            length += int(src[ip])
            ip += 1
        if ip >= n_in:
            return -1
        ref = op - ((ctrl & 0x1F) << 8) - int(src[ip]) - 1
        ip += 1
        length += 2
        if ref < 0 or op + length > n_out:
            return -1
        for k in range(length):  # byte by byte: the source may overlap the output
            out[op + k] = out[ref + k]
        op += length
    return op


_decode_jit = numba.njit(cache=True, nogil=True)(_decode) if numba is not None else None

#: below this many compressed bytes the Python loop (under 1 s) is used,
#: saving numba's first compilation (about 4 s)
JIT_FROM_BYTES = 1 << 20


def lzf_decompress(data: bytes, size: int) -> bytes | None:
    """The ``size`` bytes LZF ``data`` decompresses to, or None if damaged."""
    out = np.empty(size, dtype=np.uint8)
    decode = _decode_jit if _decode_jit is not None and len(data) >= JIT_FROM_BYTES else _decode
    written = decode(np.frombuffer(data, dtype=np.uint8), out)
    return out.tobytes() if written == size else None

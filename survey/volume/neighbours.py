"""Exact nearest neighbours of 3-D points: :func:`nearest_distances` and
:func:`knn`, on a hash grid of cells with numba (a k-d tree's answer,
without building one), else with scipy's cKDTree."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from survey.jit import numba, use_jit
from survey.model import F64

I64 = npt.NDArray[np.int64]


#: its 26 neighbours then nearly always hold the nearest 1 / 12).
_NN_PER_CELL = 3.0
KNN_PER_CELL = 6.0


def nearest_distances(pts: F64, *, jit: bool | None = None) -> F64:
    """(n,) distance from each row of ``pts`` (n, 3) to its nearest other
    row (0.0 for a duplicate point; inf when ``pts`` has one row)."""
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    if use_jit(jit):
        dist, _ = _knn_numba(pts, len(pts), 2, _NN_PER_CELL)
        return np.asarray(dist[:, 1])
    from scipy.spatial import cKDTree

    # only the distances are used, which do not depend on the tree's shape:
    # an unbalanced tree builds in half the time
    dist, _ = cKDTree(pts, balanced_tree=False).query(pts, k=2)
    return np.asarray(dist[:, 1], dtype=np.float64)


def knn(pts: F64, nq: int, k: int, *, jit: bool | None = None) -> tuple[F64, I64]:
    """Distances (nq, k) and row indices (nq, k) of the ``k`` nearest rows
    of ``pts`` (n, 3) to each of its first ``nq`` rows, nearest first (a
    row finds itself first, or a duplicate of itself). Needs n >= k."""
    pts = np.ascontiguousarray(pts, dtype=np.float64)
    if use_jit(jit):
        dist, idx = _knn_numba(pts, int(nq), int(k), KNN_PER_CELL)
        return np.asarray(dist), np.asarray(idx)
    from scipy.spatial import cKDTree

    dist, idx = cKDTree(pts).query(pts[:nq], k=k)
    return (
        np.asarray(dist, dtype=np.float64).reshape(nq, k),
        np.asarray(idx, dtype=np.int64).reshape(nq, k),
    )


if numba is not None:
    # -- neighbour search on a hash grid ------------------------------------
    # Cells of side h are keyed by their integer coordinates (each + 1, 21
    # bits, packed in one int64) in an open-addressing table; the points are
    # sorted by cell. A point's k nearest are searched in its cell and the 26
    # around it, and in further shells of cells only while the k-th distance
    # found exceeds the distance to the edge of the cells searched: exact, as
    # a k-d tree's answer (equal distances may come in another order).

    _FIELD = (1 << 21) - 1
    # the 27 cell offsets around a cell, its own first, then faces, edges, corners
    _OFFSETS = np.array(
        sorted(
            ((dx, dy, dz) for dx in (-1, 0, 1) for dy in (-1, 0, 1) for dz in (-1, 0, 1)),
            key=lambda o: abs(o[0]) + abs(o[1]) + abs(o[2]),
        ),
        dtype=np.int64,
    )

    @numba.njit(cache=True, nogil=True)
    def _slot(key, shift, mask):
        return ((key * -7046029254386353131) >> shift) & mask  # Fibonacci hashing

    @numba.njit(cache=True, nogil=True)
    def _lookup(tkey, tid, key, shift, mask):
        slot = _slot(key, shift, mask)
        while True:
            t = tkey[slot]
            if t == key:
                return tid[slot]
            if t == -1:
                return -1
            slot = (slot + 1) & mask

    @numba.njit(cache=True, nogil=True)
    def _cell_coord(x, lo, h):
        return int(np.floor((x - lo) / h)) + 1

    @numba.njit(cache=True, nogil=True)
    def _cell_table(pts, lo, h, size, shift):
        # per point its cell's id (0, 1, ... in order of first occupation);
        # the table of occupied cells; each cell's key
        n = pts.shape[0]
        mask = size - 1
        tkey = np.full(size, -1, dtype=np.int64)
        tid = np.empty(size, dtype=np.int64)
        cell = np.empty(n, dtype=np.int64)
        ckey = np.empty(n, dtype=np.int64)
        ncell = 0
        for i in range(n):
            key = (
                (_cell_coord(pts[i, 0], lo[0], h) << 42)
                | (_cell_coord(pts[i, 1], lo[1], h) << 21)
                | _cell_coord(pts[i, 2], lo[2], h)
            )
            slot = _slot(key, shift, mask)
            while tkey[slot] != -1 and tkey[slot] != key:
                slot = (slot + 1) & mask
            if tkey[slot] == -1:
                tkey[slot] = key
                tid[slot] = ncell
                ckey[ncell] = key
                ncell += 1
            cell[i] = tid[slot]
        return tkey, tid, cell, ckey[:ncell]

    @numba.njit(cache=True, nogil=True, inline="always")
    def _offer(d2, i, bd, bi, k):
        # keep the k smallest (d2, i) in bd, bi (ascending)
        if d2 < bd[k - 1]:
            w = k - 1
            while w > 0 and bd[w - 1] > d2:
                bd[w] = bd[w - 1]
                bi[w] = bi[w - 1]
                w -= 1
            bd[w] = d2
            bi[w] = i

    @numba.njit(cache=True, nogil=True)
    def _knn_grow(q, lo, h, k, bd, bi, tkey, tid, start, order, sp, shift, mask, cmax):
        # k nearest of point q in shells of cells r = 0, 1, 2, ... around its own
        c = np.empty(3, dtype=np.int64)
        edge = np.inf
        rmax = 0
        for d in range(3):
            f = (q[d] - lo[d]) / h
            c[d] = int(np.floor(f)) + 1
            frac = f - (c[d] - 1)
            edge = min(edge, frac, 1.0 - frac)
            rmax = max(rmax, c[d] - 1, cmax[d] - c[d])
        edge = max(edge, 0.0)
        n = sp.shape[0]
        for j in range(k):
            bd[j] = np.inf
            bi[j] = -1
        r = 0
        while True:
            for dx in range(-r, r + 1):
                x = c[0] + dx
                if x < 1 or x > cmax[0]:
                    continue
                for dy in range(-r, r + 1):
                    y = c[1] + dy
                    if y < 1 or y > cmax[1]:
                        continue
                    full = abs(dx) == r or abs(dy) == r
                    dz = -r
                    while dz <= r:
                        z = c[2] + dz
                        if z >= 1 and z <= cmax[2]:
                            cid = _lookup(tkey, tid, (x << 42) | (y << 21) | z, shift, mask)
                            if cid >= 0:
                                for p in range(start[cid], start[cid + 1]):
                                    ex = sp[p, 0] - q[0]
                                    ey = sp[p, 1] - q[1]
                                    ez = sp[p, 2] - q[2]
                                    _offer(ex * ex + ey * ey + ez * ez, order[p], bd, bi, k)
                        # inner rows of the shell: only its two faces
                        dz = dz + 1 if (full or r == 0) else dz + 2 * r
            if r >= rmax:
                return
            reach = (edge + r) * h
            if bd[k - 1] <= reach * reach:
                return
            r += 1
            if (2 * r + 1) ** 3 > n:
                # an outlier far from the rest: the next shells would cost
                # more lookups than there are points; try every point
                for j in range(k):
                    bd[j] = np.inf
                    bi[j] = -1
                for p in range(n):
                    ex = sp[p, 0] - q[0]
                    ey = sp[p, 1] - q[1]
                    ez = sp[p, 2] - q[2]
                    _offer(ex * ex + ey * ey + ez * ez, order[p], bd, bi, k)
                return

    @numba.njit(cache=True, nogil=True)
    def _knn_numba(pts, nq, k, per_cell):
        # the k nearest rows of pts (their distances, their indices) to each
        # of its first nq rows, nearest first
        n = pts.shape[0]
        dist = np.full((nq, k), np.inf)
        idx = np.full((nq, k), -1, dtype=np.int64)
        if n == 0 or nq == 0:
            return dist, idx
        lo = np.empty(3)
        ext = np.empty(3)
        for d in range(3):
            lo[d] = pts[:, d].min()
            ext[d] = pts[:, d].max() - lo[d]
        e = ext.copy()  # ascending (three values)
        for i in range(2):
            for j in range(2 - i):
                if e[j] > e[j + 1]:
                    e[j], e[j + 1] = e[j + 1], e[j]
        # first guess: n points on a surface of the two longer extents;
        # then cells resized for per_cell points in an occupied cell (on a
        # surface the points per cell go as the cell's side squared)
        if e[2] * e[1] > 0.0:
            h = np.sqrt(e[2] * e[1] / n)
        elif e[2] > 0.0:
            h = e[2] / n
        else:
            h = 1.0
        hmin = max(e[2] / (_FIELD - 8), 1e-9)  # cell coordinates within 21 bits
        h = max(h, hmin)
        size = 2
        bits = 1
        while size < 2 * n:
            size *= 2
            bits += 1
        shift = 64 - bits
        mask = size - 1
        for _ in range(4):
            ncell = _cell_table(pts, lo, h, size, shift)[3].shape[0]
            ratio = per_cell * ncell / n
            if 0.8 < ratio < 1.25:
                break
            h = max(h * np.sqrt(ratio), hmin)
        tkey, tid, cell, ckey = _cell_table(pts, lo, h, size, shift)
        ncell = ckey.shape[0]
        start = np.zeros(ncell + 1, dtype=np.int64)
        for i in range(n):
            start[cell[i] + 1] += 1
        for c in range(ncell):
            start[c + 1] += start[c]
        pos = start[:-1].copy()
        order = np.empty(n, dtype=np.int64)
        sp = np.empty((n, 3))
        for i in range(n):
            p = pos[cell[i]]
            pos[cell[i]] += 1
            order[p] = i
            sp[p, 0] = pts[i, 0]
            sp[p, 1] = pts[i, 1]
            sp[p, 2] = pts[i, 2]
        cmax = np.empty(3, dtype=np.int64)
        for d in range(3):
            cmax[d] = int(np.floor(ext[d] / h)) + 1
        bd = np.empty(k)
        bi = np.empty(k, dtype=np.int64)
        rs = np.empty(27, dtype=np.int64)
        re = np.empty(27, dtype=np.int64)
        ro = np.empty((27, 3), dtype=np.int64)
        gap = np.zeros((3, 3))
        h2 = h * h
        for c in range(ncell):
            a = start[c]
            b = start[c + 1]
            wanted = False
            for p in range(a, b):
                if order[p] < nq:
                    wanted = True
                    break
            if not wanted:
                continue
            # the 27 cells around this one (nearest first), looked up once for
            # all its points
            key = ckey[c]
            nr = 0
            for o in range(27):
                dx = _OFFSETS[o, 0]
                dy = _OFFSETS[o, 1]
                dz = _OFFSETS[o, 2]
                c2 = _lookup(tkey, tid, key + (dx << 42) + (dy << 21) + dz, shift, mask)
                if c2 >= 0:
                    rs[nr] = start[c2]
                    re[nr] = start[c2 + 1]
                    ro[nr, 0] = dx + 1
                    ro[nr, 1] = dy + 1
                    ro[nr, 2] = dz + 1
                    nr += 1
            cx = key >> 42
            cy = (key >> 21) & _FIELD
            cz = key & _FIELD
            for p in range(a, b):
                i = order[p]
                if i >= nq:
                    continue
                qx = sp[p, 0]
                qy = sp[p, 1]
                qz = sp[p, 2]
                # squared distance to the neighbouring cells, per axis
                fx = min(max((qx - lo[0]) / h - (cx - 1), 0.0), 1.0)
                fy = min(max((qy - lo[1]) / h - (cy - 1), 0.0), 1.0)
                fz = min(max((qz - lo[2]) / h - (cz - 1), 0.0), 1.0)
                gap[0, 0] = fx * fx * h2
                gap[0, 2] = (1.0 - fx) * (1.0 - fx) * h2
                gap[1, 0] = fy * fy * h2
                gap[1, 2] = (1.0 - fy) * (1.0 - fy) * h2
                gap[2, 0] = fz * fz * h2
                gap[2, 2] = (1.0 - fz) * (1.0 - fz) * h2
                edge = min(min(min(fx, 1.0 - fx), min(fy, 1.0 - fy)), min(fz, 1.0 - fz))
                for j in range(k):
                    bd[j] = np.inf
                    bi[j] = -1
                for r in range(nr):
                    if gap[0, ro[r, 0]] + gap[1, ro[r, 1]] + gap[2, ro[r, 2]] >= bd[k - 1]:
                        continue  # that cell holds nothing nearer
                    for pp in range(rs[r], re[r]):
                        ex = sp[pp, 0] - qx
                        ey = sp[pp, 1] - qy
                        ez = sp[pp, 2] - qz
                        _offer(ex * ex + ey * ey + ez * ez, order[pp], bd, bi, k)
                reach = (edge + 1.0) * h
                if bd[k - 1] > reach * reach:  # the k-th may lie further out
                    _knn_grow(
                        sp[p], lo, h, k, bd, bi, tkey, tid, start, order, sp, shift, mask, cmax
                    )
                for j in range(k):
                    dist[i, j] = np.sqrt(bd[j])
                    idx[i, j] = bi[j]
        return dist, idx

    @numba.njit(cache=True, nogil=True)
    def _smallest_eigvec(a):
        # unit eigenvector of the smallest eigenvalue of the symmetric 3 x 3
        # matrix a: the eigenvalue in closed form (trigonometric), the vector
        # as the longest cross product of two rows of a - lambda I
        p1 = a[0, 1] * a[0, 1] + a[0, 2] * a[0, 2] + a[1, 2] * a[1, 2]
        q = (a[0, 0] + a[1, 1] + a[2, 2]) / 3.0
        b00 = a[0, 0] - q
        b11 = a[1, 1] - q
        b22 = a[2, 2] - q
        p2 = b00 * b00 + b11 * b11 + b22 * b22 + 2.0 * p1
        out = np.zeros(3)
        if not p2 > 0.0:  # a multiple of the identity: any direction
            out[2] = 1.0
            return out
        pp = np.sqrt(p2 / 6.0)
        det = (
            b00 * (b11 * b22 - a[1, 2] * a[1, 2])
            - a[0, 1] * (a[0, 1] * b22 - a[1, 2] * a[0, 2])
            + a[0, 2] * (a[0, 1] * a[1, 2] - b11 * a[0, 2])
        )
        r = min(max(det / (2.0 * pp * pp * pp), -1.0), 1.0)
        lam = q + 2.0 * pp * np.cos(np.arccos(r) / 3.0 + 2.0 * np.pi / 3.0)
        r0 = np.array((a[0, 0] - lam, a[0, 1], a[0, 2]))
        r1 = np.array((a[0, 1], a[1, 1] - lam, a[1, 2]))
        r2 = np.array((a[0, 2], a[1, 2], a[2, 2] - lam))
        best = -1.0
        for u, v in ((r0, r1), (r0, r2), (r1, r2)):
            cx = u[1] * v[2] - u[2] * v[1]
            cy = u[2] * v[0] - u[0] * v[2]
            cz = u[0] * v[1] - u[1] * v[0]
            nn = cx * cx + cy * cy + cz * cz
            if nn > best:
                best = nn
                out[0] = cx
                out[1] = cy
                out[2] = cz
        if not best > 0.0:
            out[:] = 0.0
            out[2] = 1.0
            return out
        out /= np.sqrt(best)
        return out

    @numba.njit(cache=True, nogil=True)
    def normal_scatter_numba(pts, nq, k, per_cell):
        # for the first nq rows of pts: the distance to the nearest other row,
        # and the scatter matrix of their local normals (from their k nearest)
        dist, idx = _knn_numba(pts, nq, k, per_cell)
        scatter = np.zeros((3, 3))
        cov = np.empty((3, 3))
        for i in range(nq):
            m0 = 0.0
            m1 = 0.0
            m2 = 0.0
            for j in range(k):
                t = idx[i, j]
                m0 += pts[t, 0]
                m1 += pts[t, 1]
                m2 += pts[t, 2]
            m0 /= k
            m1 /= k
            m2 /= k
            cov[:, :] = 0.0
            for j in range(k):
                t = idx[i, j]
                a = pts[t, 0] - m0
                b = pts[t, 1] - m1
                c = pts[t, 2] - m2
                cov[0, 0] += a * a
                cov[0, 1] += a * b
                cov[0, 2] += a * c
                cov[1, 1] += b * b
                cov[1, 2] += b * c
                cov[2, 2] += c * c
            cov[1, 0] = cov[0, 1]
            cov[2, 0] = cov[0, 2]
            cov[2, 1] = cov[1, 2]
            nv = _smallest_eigvec(cov)
            for r in range(3):
                for s in range(3):
                    scatter[r, s] += nv[r] * nv[s]
        return dist[:, 1].copy(), scatter

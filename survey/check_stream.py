"""What a check keeps while it streams chunks (:mod:`survey.check`): the
status counts, the points beyond a limit (thinned past
``MAX_BEYOND_POINTS``) and the evenly strided preview samples.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from survey import tolerances as tol
from survey.classify import (
    BOUNDARY_BIT,
    Classification,
    PreparedLicence,
    classify,
    classify_status,
    empty_classification,
)
from survey.incidents import Beyond
from survey.model import F64


class Strided:
    """Keeps every ``stride``-th point of a stream (by position in the
    stream), doubling the stride whenever more than twice ``target`` points
    would be held: deterministic, even along the stream, and it never
    gathers more than it keeps."""

    def __init__(self, target: int) -> None:
        self.target = max(1, target)
        self.stride = 1
        self.seen = 0
        self.rows: list[F64] = []
        self.index: list[npt.NDArray[np.int64]] = []
        self.held = 0

    def add(
        self, xyz: F64, status: npt.NDArray[np.uint8], which: npt.NDArray[np.intp] | None = None
    ) -> None:
        """Offer the next stretch of the stream: ``xyz`` (n, 3) rows with
        their ``status`` (n,), or only the rows ``which`` (indices) of them.
        Without ``which``, rows whose status is not 0 are skipped (a sampler
        of compliant points)."""
        n = len(xyz) if which is None else len(which)
        while self.held + -(-n // self.stride) > 2 * self.target:
            self.stride *= 2
            for i, idx in enumerate(self.index):
                keep = idx % self.stride == 0
                self.rows[i] = self.rows[i][keep]
                self.index[i] = idx[keep]
            self.held = sum(len(i) for i in self.index)
        first = (-self.seen) % self.stride
        if which is None:
            # compliant rows among every stride-th (basic slices: views)
            st = status[first :: self.stride]
            keep = np.flatnonzero(st == 0)
            rows = np.empty((keep.size, 4), dtype=np.float64)
            rows[:, :3] = xyz[first :: self.stride][keep]
            rows[:, 3] = 0.0
            gidx = keep * self.stride + (first + self.seen)
        else:
            pos = np.arange(first, n, self.stride, dtype=np.int64)
            pick = which[pos]
            rows = np.column_stack([xyz[pick], status[pick]])
            gidx = pos + self.seen
        self.rows.append(rows)
        self.index.append(gidx)
        self.seen += n
        self.held += len(gidx)

    def result(self) -> F64:
        if not self.rows:
            return np.empty((0, 4))
        return np.concatenate(self.rows)


@dataclass
class Accumulator:
    """What a check keeps while it streams chunks."""

    prep: PreparedLicence
    beyond: list[Beyond] = field(default_factory=list)
    ok_preview: Strided = field(default_factory=lambda: Strided(tol.PREVIEW_POINTS))
    bad_preview: Strided = field(default_factory=lambda: Strided(tol.PREVIEW_POINTS))
    n_points: int = 0
    per_status: list[int] = field(default_factory=lambda: [0, 0, 0])
    outside_plan: int = 0
    t_classify: float = 0.0
    buffers: Classification | None = None
    status_buffer: npt.NDArray[np.uint8] | None = None
    seam_buffer: F64 | None = None
    # thinning of the kept points when a survey is mostly beyond the licence
    beyond_stride: int = 1
    beyond_seen: int = 0
    beyond_index: list[npt.NDArray[np.int64]] = field(default_factory=list)
    beyond_held: int = 0
    dates: list[str] = field(default_factory=list)  # notes on survey vs licence dates
    no_seam: int = 0  # points no seam surface covers (not checked against a seam)
    plan_only: int = 0  # points without a height (NaN): checked in plan only

    def add(self, xyz: F64, source: int, *, plan_only: bool = False) -> None:
        """Classify and count one chunk of input ``source``. ``plan_only``:
        the chunk may hold points without a height (NaN), which are then
        counted (a pass the formats that never have them are spared)."""
        t0 = time.perf_counter()
        n = len(xyz)
        if plan_only:
            no_height = int(np.count_nonzero(np.isnan(xyz[:, 2])))
            self.plan_only += no_height
            # their seam offset is NaN too: not "where no seam reaches"
            self.no_seam -= no_height if self.prep.licence.seams else 0
        if self.status_buffer is None or len(self.status_buffer) < n:
            self.status_buffer = np.empty(n, dtype=np.uint8)
        seams = bool(self.prep.licence.seams)
        if seams and (self.seam_buffer is None or len(self.seam_buffer) < n):
            self.seam_buffer = np.empty(n, dtype=np.float64)
        fast = classify_status(self.prep, xyz, self.status_buffer, seam_out=self.seam_buffer)
        if fast is not None:
            # the status of every point in one compiled pass; the details
            # (exceedances, blocks) of the non-compliant ones only
            status, n_not_ok = fast
            self.n_points += n
            if seams and self.seam_buffer is not None:
                self.no_seam += int(np.count_nonzero(np.isnan(self.seam_buffer[:n])))
            if n_not_ok:
                bad = np.flatnonzero(status)
                sub = xyz[bad]
                c = classify(self.prep, sub)
                self._count(c)
                self.per_status[0] += n - len(bad)
                self._keep(sub, c, source, np.arange(len(bad)))
                self.bad_preview.add(xyz, status, bad)
            else:
                self.per_status[0] += n
            self.ok_preview.add(xyz, status)
            self.t_classify += time.perf_counter() - t0
            return
        if self.buffers is None or len(self.buffers) < n:
            self.buffers = empty_classification(n)
        c = classify(self.prep, xyz, out=self.buffers)
        ok_before = self.per_status[0]
        self._count(c)
        if self.prep.licence.seams:
            self.no_seam += int(np.count_nonzero(np.isnan(c.seam)))
        self.n_points += n
        if self.per_status[0] - ok_before < n:
            bad = np.flatnonzero(c.status)
            self._keep(xyz, c, source, bad)
            self.bad_preview.add(xyz, c.status, bad)
        self.ok_preview.add(xyz, c.status)
        self.t_classify += time.perf_counter() - t0

    def _count(self, c: Classification) -> None:
        """Add the status counts of the points ``c`` classified (two counting
        passes over the uint8 status: bincount would widen it to int64
        first, ten times slower)."""
        n_unc = int(np.count_nonzero(c.status == 1))
        n_bad = int(np.count_nonzero(c.status == 2))
        self.per_status[0] += len(c) - n_unc - n_bad
        self.per_status[1] += n_unc
        self.per_status[2] += n_bad
        if n_bad:
            self.outside_plan += int(np.count_nonzero(c.violated & BOUNDARY_BIT))

    def _keep(self, xyz: F64, c: Classification, source: int, bad: npt.NDArray[np.intp]) -> None:
        """Keep the points beyond a limit, at most ``MAX_BEYOND_POINTS``:
        past that every other one is dropped (and the stride doubled) so
        memory stays bounded whatever the survey."""
        gidx = np.arange(len(bad), dtype=np.int64) + self.beyond_seen
        self.beyond_seen += len(bad)
        if self.beyond_stride > 1:
            sel = gidx % self.beyond_stride == 0
            bad, gidx = bad[sel], gidx[sel]
        self.beyond.append(Beyond.from_classification(xyz, c, source, bad))
        self.beyond_index.append(gidx)
        self.beyond_held += len(gidx)
        while self.beyond_held > tol.MAX_BEYOND_POINTS:
            self.beyond_stride *= 2
            for i, idx in enumerate(self.beyond_index):
                sel = idx % self.beyond_stride == 0
                self.beyond[i] = self.beyond[i].subset(sel)
                self.beyond_index[i] = idx[sel]
            self.beyond_held = sum(len(i) for i in self.beyond_index)

"""Faces and berms of the pit wall from a DSM: each bench's height, face
angle and berm width along the wall.

Method (docs/survey-openpit.md): profiles radiate from the pit floor every
``Analysis.profile_step_deg``. Along each, ground steeper than
``face_min_deg`` and rising outwards is face, the rest berm or floor. For
each face: toe and crest heights from the ground just beyond it (the
median over 1.5 to 2.5 m below and above; sloping ground extended to the
face), the face angle as the median true slope (the DSM
gradient, whatever the profile's direction) over the middle 60 % of its
height, toe and crest positions on the line with that slope through the
face's centre, and the berm width to the next face up, corrected to the
wall's normal by the cosine between the profile and the dip direction.
Faces of neighbouring profiles that span much the same heights are one
bench (:func:`group_benches`). The violations of the design are in
:mod:`survey.openpit.violations`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from survey.model import F64
from survey.openpit.design import PitDesign, SlopeDesign
from survey.openpit.dsm import Dsm
from survey.openpit.kernels import profile_samples
from survey.progress import ProgressCallback

MIN_OVERLAP = 0.6  # share of the larger height span two faces must share to be one bench
# toe and crest heights are read this far out on the berms (beyond the
# rounding of a mesh's or a cloud's edges)
BERM_OFFSET_M = 1.5
BERM_WINDOW_M = 1.0  # ... as the median over this much more berm
SLOPING_WINDOW_M = 2.0  # ground beyond a face fitted over this length ...
FLAT_DEG = 5.0  # ... and extended to the face when steeper than this
MIN_COS = 0.5  # a profile crossing the wall more obliquely than 60° measures nothing
CENTRE_CELLS = 4_000_000  # the pit floor is found on at most this many cells


@dataclass
class Face:
    ray: int
    index: int  # 0 = lowest face on the profile
    toe_s: float  # metres from the profile's origin
    crest_s: float
    toe_h: float
    crest_h: float
    angle_deg: float
    cos: float  # cosine between the profile and the dip direction
    toe_en: tuple[float, float]
    crest_en: tuple[float, float]
    design: SlopeDesign
    berm_above_m: float | None = None  # to the next face up; None for the top face
    bench: str = ""

    @property
    def height_m(self) -> float:
        return self.crest_h - self.toe_h

    @property
    def mid(self) -> tuple[float, float, float]:
        return (
            (self.toe_en[0] + self.crest_en[0]) / 2,
            (self.toe_en[1] + self.crest_en[1]) / 2,
            (self.toe_h + self.crest_h) / 2,
        )


@dataclass
class Profile:
    ray: int
    theta_deg: float
    origin: tuple[float, float]
    direction: tuple[float, float]
    s: F64  # (m,) distances along the profile
    h: F64  # (m,) heights
    faces: list[Face] = field(default_factory=list)
    overall_deg: float | None = None

    def en(self, s: float) -> tuple[float, float]:
        return (self.origin[0] + s * self.direction[0], self.origin[1] + s * self.direction[1])


@dataclass
class Bench:
    """Faces of neighbouring profiles at the same heights: one bench along
    the wall."""

    id: str
    faces: list[Face]
    length_m: float

    def stat(self, values: list[float]) -> tuple[float, float, float]:
        a = np.asarray(values)
        return float(a.min()), float(np.median(a)), float(a.max())

    @property
    def toe_h(self) -> float:
        return float(np.median([f.toe_h for f in self.faces]))

    @property
    def crest_h(self) -> float:
        return float(np.median([f.crest_h for f in self.faces]))


def pit_centre(dsm: Dsm) -> tuple[float, float]:
    """The centroid of the largest connected low area (the lowest 15 % of
    the height range between the 1st and 99th percentiles): the pit floor.
    A DSM of more than CENTRE_CELLS cells is read every k-th cell in both
    directions (k the smallest that brings it under): the floor is tens of
    metres across, a 10,000 x 10,000 DSM 1e8 cells."""
    step = max(1, math.ceil(math.sqrt(dsm.z.size / CENTRE_CELLS)))
    z = np.asarray(dsm.z[::step, ::step], dtype=np.float64)
    east, north = dsm.east[::step], dsm.north[::step]
    lo, hi = np.nanpercentile(z, [1, 99])
    low = np.nan_to_num(z, nan=np.inf) < lo + 0.15 * (hi - lo)
    labels, n = ndimage.label(low)
    if n == 0:
        return float(dsm.east.mean()), float(dsm.north.mean())
    sizes = ndimage.sum_labels(low, labels, index=np.arange(1, n + 1))
    rows, cols = np.nonzero(labels == int(np.argmax(sizes)) + 1)
    return float(east[cols].mean()), float(north[rows].mean())


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(d == 1), np.flatnonzero(d == -1) - 1, strict=True))


def _med(v: F64) -> float:
    """np.median of a short non-empty array, without its overhead (~10x
    faster on the few dozen values of a face: thousands of calls per DSM)."""
    v = np.sort(v)
    k = v.size
    return float(v[k // 2]) if k % 2 else float((v[k // 2 - 1] + v[k // 2]) / 2)


def _median(values: F64) -> float:
    """Median of the finite values; NaN when there is none (a hole in the DSM)."""
    v = values[np.isfinite(values)]
    return _med(v) if v.size else math.nan


def _meet(p: Profile, window: slice, level: float, b: float, sc: float, hc: float) -> float:
    """The height where the ground in ``window`` (a line fitted to it)
    meets the face's line (slope ``b`` through (sc, hc)); ``level`` when
    that ground is about flat (within FLAT_DEG: noise, not slope)."""
    s, h = p.s[window], p.h[window]
    s, h = s[np.isfinite(h)], h[np.isfinite(h)]
    if s.size < 3:
        return level
    # least-squares line (np.polyfit's, in closed form: thousands of calls)
    sm, hm = float(s.mean()), float(h.mean())
    ds = s - sm
    bb = float(np.dot(ds, h - hm) / np.dot(ds, ds))
    ab = hm - bb * sm
    if abs(bb) < math.tan(math.radians(FLAT_DEG)) or abs(b - bb) < 1e-9:
        return level
    s_meet = (hc - b * sc - ab) / (bb - b)
    return float(ab + bb * s_meet)


def _faces(p: Profile, slope: F64, cosd: F64, design: PitDesign, step: float) -> list[Face]:
    a = design.analysis
    face = (slope >= a.face_min_deg) & (cosd > 0)
    # a hole (no heights) with face on both sides is face: one face, not two
    hole = ~np.isfinite(slope)
    for i0, i1 in _runs(hole):
        if i0 > 0 and i1 + 1 < face.size and face[i0 - 1] and face[i1 + 1]:
            face[i0 : i1 + 1] = True
    runs = _runs(face)
    k = max(1, math.ceil(BERM_OFFSET_M / step))
    k2 = max(1, math.ceil(BERM_WINDOW_M / step))
    out: list[Face] = []
    for j, (i0, i1) in enumerate(runs):
        lo = max(i0 - k, (runs[j - 1][1] + i0) // 2 if j else 0)
        hi = min(i1 + k, (i1 + runs[j + 1][0]) // 2 if j + 1 < len(runs) else p.h.size - 1)
        # the berms' heights: medians over the next metre out (noise)
        lo_bound = (runs[j - 1][1] + i0) // 2 if j else 0
        hi_bound = (i1 + runs[j + 1][0]) // 2 if j + 1 < len(runs) else p.h.size - 1
        toe_h = _median(p.h[max(lo_bound, lo - k2) : lo + 1])
        crest_h = _median(p.h[hi : min(hi_bound, hi + k2) + 1])
        height = crest_h - toe_h
        if not height >= a.min_face_height_m:
            continue
        idx = np.arange(i0, i1 + 1)
        core = idx[(p.h[idx] >= toe_h + 0.2 * height) & (p.h[idx] <= crest_h - 0.2 * height)]
        if core.size == 0:
            core = idx
        core = core[np.isfinite(slope[core]) & np.isfinite(cosd[core]) & np.isfinite(p.h[core])]
        if core.size == 0:  # the face is all hole
            continue
        angle = _med(slope[core])
        c = _med(cosd[core])
        if c < MIN_COS:
            continue
        b = math.tan(math.radians(angle)) * c
        sc, hc = float(p.s[core].mean()), float(p.h[core].mean())
        # on a sloping berm or hillside the ground beyond is not at the
        # crest's height: extend it to where it meets the face's line
        k3 = max(3, math.ceil(SLOPING_WINDOW_M / step))
        toe_h = _meet(p, slice(max(lo_bound, lo - k3), lo + 1), toe_h, b, sc, hc)
        crest_h = _meet(p, slice(hi, min(hi_bound, hi + k3) + 1), crest_h, b, sc, hc)
        if not crest_h - toe_h >= a.min_face_height_m:
            continue
        toe_s, crest_s = sc + (toe_h - hc) / b, sc + (crest_h - hc) / b
        crest_en = p.en(crest_s)
        out.append(
            Face(
                p.ray,
                len(out),
                toe_s,
                crest_s,
                toe_h,
                crest_h,
                angle,
                c,
                p.en(toe_s),
                crest_en,
                design.design_at(*crest_en),
            )
        )
    for lower, upper in itertools.pairwise(out):
        lower.berm_above_m = max(0.0, (upper.toe_s - lower.crest_s) * (lower.cos + upper.cos) / 2)
    return out


def profiles(
    dsm: Dsm,
    design: PitDesign,
    centre: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
) -> list[Profile]:
    """Profiles radiating from ``centre`` (default: :func:`pit_centre`) with their faces."""
    c = centre or pit_centre(dsm)
    step = dsm.cell
    reach = max(
        math.hypot(x - c[0], y - c[1])
        for x in (dsm.east[0], dsm.east[-1])
        for y in (dsm.north[0], dsm.north[-1])
    )
    s = np.arange(0.0, reach, step)
    thetas = np.arange(0.0, 360.0, design.analysis.profile_step_deg)
    ux, uy = np.cos(np.radians(thetas)), np.sin(np.radians(thetas))
    e = c[0] + ux[:, None] * s[None, :]
    n = c[1] + uy[:, None] * s[None, :]
    # heights and the DSM's gradient sampled along the profiles only
    dn_cell = float(dsm.north[1] - dsm.north[0])
    rj = (n - dsm.north[0]) / dn_cell
    ci = (e - dsm.east[0]) / step
    fast = profile_samples(dsm.z, rj, ci, step, dn_cell)
    if fast is not None:
        h, ge, gn = (a.reshape(e.shape) for a in fast)
    else:
        h = dsm.sample(e.ravel(), n.ravel()).reshape(e.shape)
        ge, gn = (g.reshape(e.shape) for g in dsm.gradient_at(e.ravel(), n.ravel()))
    out = []
    for r in range(thetas.size):
        # holes (water, no match) inside the pit are gaps in the profile,
        # not its end: it ends at the DSM's last height along it
        good = np.flatnonzero(np.isfinite(h[r]) & np.isfinite(ge[r]) & np.isfinite(gn[r]))
        m = int(good[-1]) + 1 if good.size else 0
        g = np.hypot(ge[r, :m], gn[r, :m])
        with np.errstate(invalid="ignore", divide="ignore"):
            cosd = np.where(g > 0, (ge[r, :m] * ux[r] + gn[r, :m] * uy[r]) / g, 0.0)
        p = Profile(r, float(thetas[r]), c, (float(ux[r]), float(uy[r])), s[:m], h[r, :m])
        p.faces = _faces(p, np.degrees(np.arctan(g)), cosd, design, step)
        if p.faces:
            lo, hi = p.faces[0], p.faces[-1]
            run = (hi.crest_s - lo.toe_s) * float(np.mean([f.cos for f in p.faces]))
            if run > 0:
                p.overall_deg = math.degrees(math.atan2(hi.crest_h - lo.toe_h, run))
        out.append(p)
        if progress is not None:
            progress("benches (profiles)", r + 1, thetas.size)
    return out


class UnionFind:
    def __init__(self) -> None:
        self.parent: dict[object, object] = {}

    def find(self, a: object) -> object:
        self.parent.setdefault(a, a)
        while self.parent[a] != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def join(self, a: object, b: object) -> None:
        self.parent[self.find(a)] = self.find(b)


def same_bench(f: Face, g: Face) -> bool:
    overlap = min(f.crest_h, g.crest_h) - max(f.toe_h, g.toe_h)
    return overlap >= MIN_OVERLAP * max(f.height_m, g.height_m)


def neighbours(n_rays: int) -> list[tuple[int, int]]:
    return [(r, (r + 1) % n_rays) for r in range(n_rays if n_rays > 2 else n_rays - 1)]


def ordered(rays: list[int], n_rays: int) -> list[int]:
    """Rays of a group in order along the wall (a group may wrap past 0°)."""
    rs = sorted(set(rays))
    if len(rs) < 2:
        return rs
    gaps = [(rs[(i + 1) % len(rs)] - rs[i]) % n_rays for i in range(len(rs))]
    start = (int(np.argmax(gaps)) + 1) % len(rs)
    return rs[start:] + rs[:start]


def wall_length(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    a = np.asarray(points)
    seg = np.hypot(*np.diff(a, axis=0).T)
    return float(seg.sum() + seg.mean())  # n profiles stand for n slices of the wall


def group_benches(profs: list[Profile], min_profiles: int) -> list[Bench]:
    u = UnionFind()
    n = len(profs)
    for a, b in neighbours(n):
        for f in profs[a].faces:
            u.find((a, f.index))
            for g in profs[b].faces:
                if same_bench(f, g):
                    u.join((a, f.index), (b, g.index))
    groups: dict[object, list[Face]] = {}
    for p in profs:
        for f in p.faces:
            groups.setdefault(u.find((p.ray, f.index)), []).append(f)
    kept = [g for g in groups.values() if len({f.ray for f in g}) >= min_profiles]
    kept.sort(key=lambda g: (float(np.median([f.toe_h for f in g])), min(f.ray for f in g)))
    benches = []
    for k, faces in enumerate(kept):
        order = {r: i for i, r in enumerate(ordered([f.ray for f in faces], n))}
        faces.sort(key=lambda f: (order[f.ray], f.index))
        for f in faces:
            f.bench = f"B{k + 1}"
        length = wall_length([f.mid[:2] for f in faces])
        benches.append(Bench(f"B{k + 1}", faces, length))
    return benches

"""Violations of the slope design along the wall, from the faces of
:mod:`survey.openpit.benches`: a violation is a run of at least
``min_profiles`` neighbouring profiles outside the design (one wall, face
too steep, berm too narrow, overall slope too steep), with its worst value,
location and length along the wall.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from survey.openpit.benches import (
    Bench,
    Face,
    Profile,
    UnionFind,
    group_benches,
    neighbours,
    ordered,
    profiles,
    same_bench,
    wall_length,
)
from survey.openpit.design import PitDesign
from survey.openpit.dsm import Dsm
from survey.progress import ProgressCallback


@dataclass
class PitViolation:
    id: str
    kind: str  # one_wall | steep_face | narrow_berm | overall_slope
    bench: str
    design: str
    limit: float
    worst: float
    unit: str  # "m" or "deg"
    location: tuple[float, float, float]  # (E, N, H) of the worst profile's face
    length_m: float
    height_m: float
    profiles: list[int]
    worst_ray: int

    @property
    def exceedance(self) -> float:
        """Positive beyond the design limit."""
        return self.limit - self.worst if self.kind == "narrow_berm" else self.worst - self.limit


@dataclass
class BenchResult:
    centre: tuple[float, float]
    profiles: list[Profile]
    benches: list[Bench]
    violations: list[PitViolation]


KIND_LABEL = {
    "one_wall": "one wall: face higher than the maximum bench height (半边山一面墙)",
    "steep_face": "bench face steeper than the design",
    "narrow_berm": "berm narrower than the design",
    "overall_slope": "overall slope steeper than the design",
}


def _violation_groups(flagged: list[Face], n_rays: int) -> list[list[Face]]:
    u = UnionFind()
    by_ray: dict[int, list[Face]] = {}
    for f in flagged:
        by_ray.setdefault(f.ray, []).append(f)
        u.find(id(f))
    for a, b in neighbours(n_rays):
        for f in by_ray.get(a, []):
            for g in by_ray.get(b, []):
                if f.bench == g.bench and (f.bench or same_bench(f, g)):
                    u.join(id(f), id(g))
    groups: dict[object, list[Face]] = {}
    for f in flagged:
        groups.setdefault(u.find(id(f)), []).append(f)
    return list(groups.values())


def find_violations(profs: list[Profile], design: PitDesign) -> list[PitViolation]:
    n = len(profs)
    min_p = design.analysis.min_profiles
    tests = {
        "one_wall": (lambda f: f.height_m, lambda d: d.max_bench_height_m, "m", max),
        "steep_face": (lambda f: f.angle_deg, lambda d: d.max_face_angle_deg, "deg", max),
        "narrow_berm": (
            lambda f: f.berm_above_m if f.berm_above_m is not None else math.inf,
            lambda d: d.min_berm_width_m,
            "m",
            min,
        ),
    }
    out: list[PitViolation] = []
    for kind, (value, limit, unit, worst_of) in tests.items():
        flagged = [
            f
            for p in profs
            for f in p.faces
            if (value(f) > limit(f.design) if worst_of is max else value(f) < limit(f.design))
        ]
        for group in _violation_groups(flagged, n):
            rays = ordered([f.ray for f in group], n)
            if len(rays) < min_p:
                continue
            order = {r: i for i, r in enumerate(rays)}
            group.sort(key=lambda f: order[f.ray])
            # the worst value; among equal ones (a one wall is 40 m all
            # along) the one nearest the middle of the run
            best = worst_of(round(value(f), 2) for f in group)
            mid = (len(rays) - 1) / 2
            worst = min(
                (f for f in group if round(value(f), 2) == best),
                key=lambda f: abs(order[f.ray] - mid),
            )
            out.append(
                PitViolation(
                    "",
                    kind,
                    worst.bench,
                    worst.design.name,
                    limit(worst.design),
                    value(worst),
                    unit,
                    worst.mid,
                    wall_length([f.mid[:2] for f in group]),
                    max(f.height_m for f in group),
                    rays,
                    worst.ray,
                )
            )
    # overall slope: neighbouring profiles steeper than their design
    steep = [
        p
        for p in profs
        if p.overall_deg is not None and p.overall_deg > p.faces[-1].design.max_overall_slope_deg
    ]
    rays_flagged = {p.ray for p in steep}
    u = UnionFind()
    for p in steep:
        u.find(p.ray)
    for a, b in neighbours(n):
        if a in rays_flagged and b in rays_flagged:
            u.join(a, b)
    groups: dict[object, list[Profile]] = {}
    for p in steep:
        groups.setdefault(u.find(p.ray), []).append(p)
    for group_p in groups.values():
        rays = ordered([p.ray for p in group_p], n)
        if len(rays) < min_p:
            continue
        worst_p = max(group_p, key=lambda p: p.overall_deg or 0.0)
        top, bottom = worst_p.faces[-1], worst_p.faces[0]
        by_ray = {p.ray: p for p in group_p}
        mids = []
        for r in rays:
            q = by_ray[r]
            mids.append(q.en((q.faces[0].toe_s + q.faces[-1].crest_s) / 2))
        loc_s = (bottom.toe_s + top.crest_s) / 2
        out.append(
            PitViolation(
                "",
                "overall_slope",
                "",
                top.design.name,
                top.design.max_overall_slope_deg,
                float(worst_p.overall_deg or 0.0),
                "deg",
                (*worst_p.en(loc_s), (bottom.toe_h + top.crest_h) / 2),
                wall_length(mids),
                top.crest_h - bottom.toe_h,
                rays,
                worst_p.ray,
            )
        )
    rank = {k: i for i, k in enumerate(("one_wall", "steep_face", "narrow_berm", "overall_slope"))}
    out.sort(key=lambda v: (rank[v.kind], -abs(v.exceedance)))
    for k, v in enumerate(out):
        v.id = f"P{k + 1}"
    return out


def analyse_benches(
    dsm: Dsm,
    design: PitDesign,
    centre: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
) -> BenchResult:
    profs = profiles(dsm, design, centre, progress)
    benches = group_benches(profs, design.analysis.min_profiles)
    return BenchResult(
        profs[0].origin if profs else (0.0, 0.0), profs, benches, find_violations(profs, design)
    )

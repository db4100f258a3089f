"""Compare two scans of the same workings taken at different dates.

``compare_scans(licence, old, new, *, d=0.5) -> ComparisonResult``

A point of the newer scan with no point of the older scan within ``d``
metres (``scipy.spatial.cKDTree(old).query(new, distance_upper_bound=d)``)
is *new excavation*. The new points are grouped into excavation areas with
the incident voxels (26-connected, ``tolerances.VOXEL_SIZE_M``), each with a
volume by the section method of :mod:`survey.volume`. The new points are then
checked against the licence: the incidents and within-uncertainty groups of
the result are those of the **new excavation only**, each with
``Incident.new_since`` set to the older scan's date (ISO) or, without a
date, its source name. Workings beyond the licence that were already in the
older scan are not reported again (check the older scan for them).

Why ``d`` = 0.5 m by default (``tolerances.COMPARE_DISTANCE_M``): larger than
the scanners' noise and point spacing (2 cm, 5-10 cm at 100-400 pts/m2), so
unchanged walls find an old neighbour; smaller than a blasting round
(2-3 m), so one round of advance is new. The two scans must be registered in
the same coordinate system. Closed meshes are compared through their
vertices plus surface samples (``MESH_SAMPLE_DENSITY_PER_M2``). Both scans
are held in memory, and the older one in a k-d tree (about 50 bytes a
point): compare scans of a few tens of millions of points at most.

``ComparisonResult`` is a :class:`CheckResult` (the report and findings
treat it as one) with the excavation areas added; its ``preview`` and
``n_points`` cover the whole newer scan.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from survey import tolerances as tol
from survey.check import (
    VERDICT_COMPLIANT,
    VERDICT_UNCERTAIN,
    VERDICT_VIOLATIONS,
    _check_points,
    _mesh_samples,
)
from survey.check_stream import Accumulator
from survey.classify import classify, prepare
from survey.incidents import Beyond, group_incidents, label_voxels
from survey.model import (
    F64,
    CheckResult,
    Incident,
    InputSummary,
    Licence,
    SurveyData,
    SurveyInputError,
)
from survey.progress import ProgressCallback, null_progress
from survey.volume.shell import shell_volume


@dataclass
class ExcavationArea:
    """A connected group of new points: ``id`` "N1", "N2"... by decreasing
    volume; coordinates (E, N, H) metres; ``beyond_licence`` when any of its
    points is beyond a limit by more than the tolerance; ``incident_ids``
    the incidents (or U-groups) that overlap it."""

    id: str
    point_count: int
    bbox_min: tuple[float, float, float]
    bbox_max: tuple[float, float, float]
    centroid: tuple[float, float, float]
    volume_m3: float
    beyond_licence: bool
    incident_ids: list[str] = field(default_factory=list)


@dataclass
class ComparisonResult(CheckResult):
    old_source: str = ""
    new_source: str = ""
    distance_m: float = tol.COMPARE_DISTANCE_M
    new_points: int = 0  # points of the newer scan without an old neighbour
    areas: list[ExcavationArea] = field(default_factory=list)


def _t3(a: F64) -> tuple[float, float, float]:
    return (float(a[0]), float(a[1]), float(a[2]))


def _overlaps(inc: Incident, lo: F64, hi: F64) -> bool:
    return all(inc.bbox_min[i] <= hi[i] and inc.bbox_max[i] >= lo[i] for i in range(3))


def _surface_points(scan: SurveyData, origin: F64) -> F64:
    """The scan's points; for a mesh, its vertices plus even surface samples
    (spaced well under ``d``, so unchanged faces find old neighbours)."""
    if scan.is_mesh:
        return _mesh_samples(scan, origin)[0]
    return np.asarray(scan.xyz, dtype=np.float64)


def _summary(scan: SurveyData, checked: int) -> InputSummary:
    """A scan as read: its points (a mesh's vertices), faces, the surface
    samples compared besides and the reader's notes."""
    faces = len(scan.faces) if scan.faces is not None else None
    return InputSummary(
        scan.source, scan.fmt, len(scan.xyz), faces, checked - len(scan.xyz), list(scan.notes)
    )


def _check_scans(old: SurveyData, new: SurveyData) -> None:
    """Both scans hold points, all finite, heights included (a comparison
    is in 3D: a point without a height has no nearest neighbour)."""
    for scan, label in ((old, "older"), (new, "newer")):
        if len(scan.xyz) == 0:
            raise SurveyInputError(
                f"the {label} scan contains no points; nothing to compare", path=scan.source
            )
        no_height = _check_points(np.asarray(scan.xyz, dtype=np.float64), scan.source)
        if no_height:
            raise SurveyInputError(
                f"the {label} scan has {no_height:,} point(s) without a height: scans are "
                "compared in 3D; check it alone with 'minegate survey check' (points without "
                "a height are checked in plan only there)",
                path=scan.source,
            )


def _without_old_neighbour(
    old_xyz: F64, new_xyz: F64, origin: F64, d: float, prog: ProgressCallback
) -> npt.NDArray[np.bool_]:
    """(n,) True for the points of the newer scan with no point of the
    older one within ``d`` m."""
    # local coordinates: the tree's distances stay exact to well under a mm
    tree = cKDTree(old_xyz - origin)
    is_new = np.zeros(len(new_xyz), dtype=bool)
    step = tol.CHUNK_POINTS
    for s in range(0, len(new_xyz), step):
        dist, _ = tree.query(new_xyz[s : s + step] - origin, k=1, distance_upper_bound=d)
        is_new[s : s + step] = ~np.isfinite(dist)
        prog("compare scans", min(len(new_xyz), s + step), len(new_xyz))
    return is_new


def _excavation_areas(
    fresh: F64, status: npt.NDArray[np.uint8], groups: list[Incident]
) -> list[ExcavationArea]:
    """The new points ``fresh`` in connected areas (the voxels of the
    incidents), largest first, "N1", "N2"...; ``status`` their
    classification, ``groups`` the incidents and U-groups they overlap."""
    areas: list[ExcavationArea] = []
    labels, k = label_voxels(fresh)
    order = np.argsort(labels, kind="stable")
    cuts = np.searchsorted(labels[order], np.arange(1, k))
    for members in np.split(order, cuts):
        pts = fresh[members]
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        areas.append(
            ExcavationArea(
                id="",
                point_count=int(members.size),
                bbox_min=_t3(lo),
                bbox_max=_t3(hi),
                centroid=_t3(pts.mean(axis=0)),
                volume_m3=shell_volume(pts),
                beyond_licence=bool(np.any(status[members] == 2)),
                incident_ids=[i.id for i in groups if _overlaps(i, lo, hi)],
            )
        )
    areas.sort(key=lambda a: -a.volume_m3)
    for i, a in enumerate(areas, 1):
        a.id = f"N{i}"
    return areas


def compare_scans(
    licence: Licence,
    old: SurveyData,
    new: SurveyData,
    *,
    d: float = tol.COMPARE_DISTANCE_M,
    progress: ProgressCallback | None = None,
) -> ComparisonResult:
    """New excavation between ``old`` and ``new`` scans and whether it lies
    beyond the licence. Raises :class:`SurveyInputError` for an empty scan."""
    if d <= 0:
        raise ValueError(f"d must be positive, got {d}")
    prog = progress or null_progress
    t_start = time.perf_counter()
    _check_scans(old, new)
    prep = prepare(licence)
    origin = np.array([prep.origin[0], prep.origin[1], 0.0])
    t0 = time.perf_counter()
    old_xyz = _surface_points(old, origin)
    new_xyz = _surface_points(new, origin)
    is_new = _without_old_neighbour(old_xyz, new_xyz, origin, d, prog)
    t_match = time.perf_counter() - t0
    fresh = new_xyz[is_new]

    t0 = time.perf_counter()
    acc = Accumulator(prep)  # classification of the whole newer scan: preview and counts
    step = tol.CHUNK_POINTS
    for s in range(0, len(new_xyz), step):
        acc.add(new_xyz[s : s + step], 0)
    t_classify = time.perf_counter() - t0

    t0 = time.perf_counter()
    since = old.surveyed_on.isoformat() if old.surveyed_on else old.source
    incidents: list[Incident] = []
    uncertain: list[Incident] = []
    areas: list[ExcavationArea] = []
    if len(fresh):
        c = classify(prep, fresh)
        beyond = Beyond.from_classification(fresh, c)
        incidents, uncertain = group_incidents(licence, beyond)
        for inc in incidents + uncertain:
            inc.new_since = since
        areas = _excavation_areas(fresh, c.status, incidents + uncertain)
    t_group = time.perf_counter() - t0

    verdict = (
        VERDICT_VIOLATIONS if incidents else VERDICT_UNCERTAIN if uncertain else VERDICT_COMPLIANT
    )
    n_beyond = sum(a.beyond_licence for a in areas)
    notes = [
        f"compared {len(new_xyz):,} points of {new.source} with {len(old_xyz):,} points of "
        f"{old.source}: {len(fresh):,} new points (no older point within {d:g} m) in "
        f"{len(areas)} excavation area(s), {sum(a.volume_m3 for a in areas):,.1f} m³ in all; "
        f"{n_beyond} area(s) beyond the licence",
        "incidents cover the new excavation only; workings already in the older scan "
        "are not reported again",
    ]
    return ComparisonResult(
        licence=licence,
        sources=[old.source, new.source],
        n_points=len(new_xyz),
        incidents=incidents,
        uncertain=uncertain,
        verdict=verdict,
        timings_s={
            "prepare": 0.0,
            "match": t_match,
            "classify": t_classify,
            "group": t_group,
            "total": time.perf_counter() - t_start,
        },
        notes=notes,
        preview=np.concatenate([acc.ok_preview.result(), acc.bad_preview.result()]),
        inputs=[_summary(old, len(old_xyz)), _summary(new, len(new_xyz))],
        old_source=old.source,
        new_source=new.source,
        distance_m=d,
        new_points=len(fresh),
        areas=areas,
    )

"""Check surveys against a licence: the entry point of the survey engine.

::

    check_survey(licence, inputs, *, progress=None) -> CheckResult
    check_files(licence, paths, *, chunk_points=5_000_000, progress=None) -> CheckResult

``inputs`` are :class:`SurveyData` (already read) or paths (read with
``survey.readers.read_survey``); ``check_files`` streams point files chunk
by chunk (``survey.readers.iter_chunks``) so 100 M points fit in well under
1.5 GB: per chunk only the points beyond some limit are kept (plus the plot
subsample), everything else is counted and dropped.

Pipeline: :func:`survey.classify.classify` per chunk -> points beyond a
limit (:class:`survey.incidents.Beyond`) -> :func:`survey.incidents
.group_incidents` (26-connected 0.5 m voxels) -> volume per incident
(shell sections for scans, clipping for closed meshes, :mod:`survey.volume`).

Closed meshes (``SurveyData.faces`` set) are classified through their
vertices plus surface samples at ``MESH_SAMPLE_DENSITY_PER_M2``; the volume
of an incident with mesh points is the mesh's volume beyond the limit within
the incident's box (``MESH_CLIP_MARGIN_M`` around it); scan points of the same
incident are then not counted again.

Result fields the report uses:

* ``CheckResult.verdict``: "violations found" if any incident is beyond the
  tolerance, else "within survey uncertainty" if any group is beyond a limit
  by at most the tolerance, else "compliant".
* ``CheckResult.preview``: (m, 4) float64 rows (E, N, H, status) with status
  0 compliant, 1 within uncertainty, 2 violation: an evenly strided subsample
  of the compliant points (about ``PREVIEW_POINTS``) followed by one of the
  non-compliant points (about as many; all of them when fewer). The two
  parts are sampled at different rates: use it for pictures, never counts.
* ``CheckResult.timings_s``: seconds per stage ("prepare", "read",
  "classify", "group", "volume", "total").
* ``CheckResult.inputs``: per source, the points (a mesh's vertices) and
  faces as read, the surface samples checked besides, and what the reader
  noted about the file (``SurveyData.notes``).
* ``CheckResult.notes``: counts per status, and warnings: suspected
  coordinate system error (most points beyond the boundary), sparse survey
  grouped with larger voxels, points beyond a limit thinned past
  ``MAX_BEYOND_POINTS``, survey dated outside the licence's validity,
  points outside the seam surfaces' extent (checked against the boundary
  and the levels there; seam workings among them mean incomplete surfaces).

Points without a height (NaN height, as the GSI reader returns a point
whose height is ``-----``) are checked in plan only: classified against the
boundary, grouped into boundary incidents in plan, left out of volumes and
sections; ``CheckResult.n_plan_only`` counts them and a note says so.

Errors: :class:`SurveyInputError` (naming the file) for an empty survey,
non-finite coordinates (other than a NaN height) or no input at all; reader
errors pass through.

Speed: :func:`survey.classify.prepare` builds the licence masks once
(``prepared=`` reuses them across calls). Classification runs at about
150 M points/s on one core with numba (plan and elevation, reused buffers;
a seam of two grids runs compiled as well, other seam surfaces cost what
their ``height`` costs), about 10 M points/s without it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from survey import tolerances as tol
from survey.check_stream import Accumulator
from survey.classify import (
    PreparedLicence,
    prepare,
)
from survey.incidents import Beyond, group_incidents
from survey.model import (
    F64,
    CheckResult,
    Incident,
    InputSummary,
    Licence,
    PlanTransform,
    SurveyData,
    SurveyInputError,
    ViolationType,
)
from survey.progress import ProgressCallback, null_progress
from survey.volume.mesh import make_mesh, mesh_volume_beyond
from survey.volume.shell import shell_volume

I32 = npt.NDArray[np.int32]

VERDICT_VIOLATIONS = "violations found"
VERDICT_UNCERTAIN = "within survey uncertainty"
VERDICT_COMPLIANT = "compliant"

#: suffixes read whole (they may hold faces) rather than streamed
# formats read whole by check_files: meshes carry faces, E57 scans poses
_WHOLE_FORMATS = {"ply", "obj", "stl", "dxf", "e57"}


def _date_notes(licence: Licence, data: SurveyData) -> list[str]:
    """A survey dated outside the licence's validity: every working it shows
    may be unlicensed, whatever the geometry says."""
    day = data.surveyed_on
    if day is None:
        return []
    if licence.valid_to is not None and day > licence.valid_to:
        return [
            f"{data.source} was surveyed on {day.isoformat()}, after the licence expired "
            f"({licence.valid_to.isoformat()}): any mining since then is unlicensed"
        ]
    if licence.valid_from is not None and day < licence.valid_from:
        return [
            f"{data.source} was surveyed on {day.isoformat()}, before the licence took "
            f"effect ({licence.valid_from.isoformat()})"
        ]
    return []


def _check_points(xyz: F64, source: str, *, finite_known: bool = False) -> int:
    """Shape (n, 3) and, unless ``finite_known`` (the readers already
    refused NaN/inf), finite coordinates, except that a height may be NaN
    (a point surveyed without its height: checked in plan only). Returns
    how many heights are NaN (0 when ``finite_known``)."""
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise SurveyInputError(
            f"points must be an (n, 3) array of easting, northing, height; got shape {xyz.shape}",
            path=source,
        )
    if finite_known or np.isfinite(xyz).all():  # one fast pass in the common case
        return 0
    no_height = np.isnan(xyz[:, 2])
    bad = ~np.isfinite(xyz[:, :2]).all(axis=1) | (~np.isfinite(xyz[:, 2]) & ~no_height)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise SurveyInputError(
            f"{int(bad.sum())} point(s) have non-finite coordinates (first: point {first}); "
            "remove them or fix the export",
            path=source,
        )
    return int(np.count_nonzero(no_height))


def _mesh_samples(data: SurveyData, origin: F64) -> tuple[F64, object]:
    """Every vertex the reader returned plus even surface samples of a mesh,
    and the local trimesh. The vertices come from ``data``, not the trimesh:
    processing drops vertices no face uses (a DXF's polylines beside its
    3DFACEs), and every vertex a reader returns must be checked."""
    assert data.faces is not None
    mesh = make_mesh(data.xyz, data.faces, origin)
    count = int(np.clip(mesh.area * tol.MESH_SAMPLE_DENSITY_PER_M2, 1000, 5_000_000))
    import trimesh

    samples, _ = trimesh.sample.sample_surface(mesh, count, seed=0)
    pts = np.concatenate([np.asarray(data.xyz, dtype=np.float64), np.asarray(samples) + origin])
    return pts, mesh


@dataclass
class _Run:
    """One check in progress, as :func:`check_survey` and :func:`check_files`
    both keep it: the prepared licence and the accumulator, the sources and
    the meshes seen so far, and the clock."""

    licence: Licence
    acc: Accumulator
    t_start: float
    t_prep: float
    t_read: float = 0.0
    sources: list[str] = field(default_factory=list)
    meshes: dict[int, tuple[object, F64]] = field(default_factory=dict)
    inputs: list[InputSummary] = field(default_factory=list)

    @classmethod
    def start(cls, licence: Licence, prepared: PreparedLicence | None) -> _Run:
        t_start = time.perf_counter()
        prep = prepared or prepare(licence)
        return cls(licence, Accumulator(prep), t_start, time.perf_counter() - t_start)

    def mesh_samples(self, idx: int, data: SurveyData) -> F64:
        """The points to classify of mesh input ``idx`` (vertices plus
        surface samples); the mesh is kept for the volumes."""
        prep = self.acc.prep
        origin3 = np.array([prep.origin[0], prep.origin[1], 0.0])
        xyz, mesh = _mesh_samples(data, origin3)
        self.meshes[idx] = (mesh, origin3)
        return xyz

    def add_input(self, data: SurveyData, checked: int) -> None:
        """Summarise input ``data`` as read (``checked``: the points
        classified for it, a mesh's surface samples included)."""
        points = len(data.xyz)
        faces = len(data.faces) if data.faces is not None else None
        samples = checked - points
        self.inputs.append(
            InputSummary(data.source, data.fmt, points, faces, samples, list(data.notes))
        )


def check_survey(
    licence: Licence,
    inputs: Iterable[SurveyData | str | Path],
    *,
    progress: ProgressCallback | None = None,
    prepared: PreparedLicence | None = None,
) -> CheckResult:
    """Check surveys (already read, or paths read whole) against ``licence``.

    Raises :class:`SurveyInputError` for an input without points, with
    non-finite coordinates, or when no input is given.
    """
    run = _Run.start(licence, prepared)
    prog = progress or null_progress
    acc = run.acc
    for idx, item in enumerate(inputs):
        if isinstance(item, SurveyData):
            data = item
        else:
            t0 = time.perf_counter()
            from survey.readers import read_survey

            data = read_survey(item, licence=licence, progress=progress)
            run.t_read += time.perf_counter() - t0
        run.sources.append(data.source)
        acc.dates.extend(_date_notes(licence, data))
        xyz = np.asarray(data.xyz, dtype=np.float64)
        if xyz.size == 0:
            raise SurveyInputError(
                "the survey contains no points; nothing to check", path=data.source
            )
        plan_only = _check_points(xyz, data.source) > 0
        if data.is_mesh:
            xyz = run.mesh_samples(idx, data)
        run.add_input(data, len(xyz))
        stage = f"check {Path(data.source).name}"
        step = tol.CHUNK_POINTS
        for s in range(0, len(xyz), step):
            acc.add(xyz[s : s + step], idx, plan_only=plan_only)
            prog(stage, min(len(xyz), s + step), len(xyz))
    return _finish(run)


def check_files(
    licence: Licence,
    paths: Iterable[str | Path],
    *,
    chunk_points: int = tol.CHUNK_POINTS,
    progress: ProgressCallback | None = None,
    prepared: PreparedLicence | None = None,
    fmt: str | None = None,
    transform: PlanTransform | None = None,
) -> CheckResult:
    """Streaming check of survey files, ``chunk_points`` at a time.

    Point formats are streamed with ``survey.readers.iter_chunks``; meshes and
    E57 are read whole (they may carry faces or poses). Memory: the chunk,
    its classification (about 46 bytes a point) and the points beyond a limit.
    ``fmt`` forces the format of every file (else from its extension);
    ``transform`` maps a mine grid to the licence's system, chunk by chunk.
    """
    from survey.readers import PLAN_ONLY_FORMATS, format_name, iter_chunks, read_survey

    run = _Run.start(licence, prepared)
    prog = progress or null_progress
    for idx, path in enumerate(paths):
        run.sources.append(str(path))
        stage = f"check {Path(path).name}"
        chunks: Iterator[F64]
        name = format_name(fmt, path)
        whole: SurveyData | None = None
        streamed_notes: list[str] = []  # what the reader notes while streaming
        if name in _WHOLE_FORMATS:
            t0 = time.perf_counter()
            data = read_survey(
                path, fmt=fmt, transform=transform, licence=licence, progress=progress
            )
            run.t_read += time.perf_counter() - t0
            xyz = np.asarray(data.xyz, dtype=np.float64)
            if xyz.size and data.is_mesh:
                _check_points(xyz, str(path))
                xyz = run.mesh_samples(idx, data)
            whole = data
            chunks = iter([xyz[s : s + chunk_points] for s in range(0, len(xyz), chunk_points)])
        else:
            chunks = iter_chunks(
                path,
                chunk_points,
                fmt=fmt,
                transform=transform,
                licence=licence,
                progress=progress,
                notes=streamed_notes,
            )
        done = 0
        while True:
            t0 = time.perf_counter()
            chunk = next(chunks, None)
            run.t_read += time.perf_counter() - t0
            if chunk is None:
                break
            chunk = np.asarray(chunk, dtype=np.float64)
            # every reader refuses non-finite coordinates (check_finite),
            # except NaN heights where a format has points without one
            _check_points(chunk, str(path), finite_known=True)
            run.acc.add(chunk, idx, plan_only=name in PLAN_ONLY_FORMATS)
            done += len(chunk)
            prog(stage, done, None)
        if done == 0:
            raise SurveyInputError("the survey contains no points; nothing to check", path=path)
        if whole is not None:
            run.add_input(whole, done)
        else:
            run.inputs.append(InputSummary(str(path), name, done, notes=streamed_notes))
    prog("incidents", 0, None)  # every point classified: grouping those beyond a limit
    return _finish(run)


def _finish(run: _Run) -> CheckResult:
    """Group the points kept beyond a limit into incidents (with their
    volumes), give the verdict and the notes."""
    if not run.sources:
        raise SurveyInputError("no survey given: pass at least one scan or point file")
    licence, acc = run.licence, run.acc
    t0 = time.perf_counter()
    acc.buffers = None  # the chunk buffers are no longer needed: free them first
    beyond = Beyond.concat(acc.beyond)
    acc.beyond = []
    acc.beyond_index = []
    t_volume = [0.0]

    def volume_fn(pts: F64, vtype: ViolationType, block: int, src: I32) -> float:
        tv = time.perf_counter()
        try:
            return _incident_volume(licence, run.meshes, pts, vtype, block, src)
        finally:
            t_volume[0] += time.perf_counter() - tv

    group_notes: list[str] = []
    incidents, uncertain = group_incidents(licence, beyond, volume_fn=volume_fn, notes=group_notes)
    t_group = time.perf_counter() - t0 - t_volume[0]
    if incidents:
        verdict = VERDICT_VIOLATIONS
    elif uncertain:
        verdict = VERDICT_UNCERTAIN
    else:
        verdict = VERDICT_COMPLIANT
    preview = np.concatenate([acc.ok_preview.result(), acc.bad_preview.result()])
    total = time.perf_counter() - run.t_start
    return CheckResult(
        licence=licence,
        sources=run.sources,
        n_points=acc.n_points,
        incidents=incidents,
        uncertain=uncertain,
        verdict=verdict,
        timings_s={
            "prepare": run.t_prep,
            "read": run.t_read,
            "classify": acc.t_classify,
            "group": t_group,
            "volume": t_volume[0],
            "total": total,
        },
        notes=_notes(acc, len(run.meshes), group_notes, uncertain),
        preview=preview,
        inputs=run.inputs,
        n_plan_only=acc.plan_only,
    )


def _counts_note(acc: Accumulator, uncertain: list[Incident]) -> str:
    """The counts per status. Points within survey uncertainty are either
    the fringe of a violating incident (its points beyond the limit by less
    than the tolerance) or in a group of their own (``U1``...): say which,
    so they are not read against "0 groups within uncertainty"."""
    ok, unc, bad = acc.per_status
    text = (
        f"classified {acc.n_points:,} points: {ok:,} compliant, {bad:,} beyond a licensed "
        f"limit by more than the survey tolerance"
    )
    if not unc:
        return text + ", none within survey uncertainty"
    in_groups = min(unc, sum(u.point_count for u in uncertain) * acc.beyond_stride)
    fringe = unc - in_groups
    about = "about " if acc.beyond_stride > 1 else ""
    parts = []
    if fringe:
        parts.append(f"{about}{fringe:,} at the fringe of the violating incidents")
    if uncertain:
        parts.append(
            f"{about}{in_groups:,} in the {len(uncertain)} group(s) within uncertainty (U1...)"
        )
    return text + f"; {unc:,} beyond a limit by at most the tolerance: " + ", ".join(parts)


def _no_seam_note(acc: Accumulator) -> str:
    """The points outside every licensed seam's extent (its roof and floor
    surfaces give no height there), said so that a reader does not take
    them for a gap in the check: a seam bounds the workings where it lies
    (a seam usually covers part of a licence; drifts in the rock outside
    it are bounded by the boundary and the levels). Only when seam workings
    are among them are the surfaces given incomplete."""
    seams = acc.prep.licence.seams
    names = ", ".join(s.name for s in seams)
    with_h = acc.n_points - acc.plan_only
    share = f" ({100 * acc.no_seam / with_h:.0f}%)" if with_h else ""
    return (
        f"{acc.no_seam:,} of the {with_h:,} points{share} lie outside the extent of the "
        f"licensed seam{'s' if len(seams) > 1 else ''} ({names}), where its roof and floor "
        "surfaces give no limit: those points were checked against the boundary and the "
        "elevation range. If seam workings are among them, the seam surfaces given with the "
        "licence do not cover the seam: extend them"
    )


def _notes(
    acc: Accumulator, n_meshes: int, group_notes: list[str], uncertain: list[Incident]
) -> list[str]:
    """The check's notes: the counts, then what the grouping said, then what
    a reviewer should know (seams not covering, survey dates, thinning,
    meshes, a suspect coordinate system)."""
    notes = [_counts_note(acc, uncertain)]
    notes.extend(group_notes)
    if acc.plan_only:
        notes.append(
            f"{acc.plan_only:,} points have no height: checked in plan only (inside or beyond "
            "the boundary), not against the elevation range or seams; they are drawn in the "
            "plan, not in sections, and take no part in volumes"
        )
    if acc.no_seam:
        notes.append(_no_seam_note(acc))
    notes.extend(acc.dates)
    if acc.beyond_stride > 1:
        notes.append(
            f"{acc.beyond_seen:,} points lie beyond a limit; only every {acc.beyond_stride}th was "
            f"kept (memory bound of {tol.MAX_BEYOND_POINTS:,}): incident point counts are "
            "thinned and maxima and volumes approximate"
        )
    if n_meshes:
        notes.append(
            f"{n_meshes} mesh input(s) classified through vertices and surface samples "
            f"({tol.MESH_SAMPLE_DENSITY_PER_M2:g}/m²); their volumes by clipping"
        )
    if acc.n_points and acc.outside_plan / acc.n_points > tol.SUSPECT_CRS_SHARE:
        notes.append(
            f"{100 * acc.outside_plan / acc.n_points:.0f}% of the points lie beyond the plan "
            "boundary: check the coordinate system (X/Y swapped, zone prefix, Xi'an 1980 / "
            "Beijing 1954 vs CGCS2000, a missing mine-grid transform) before acting"
        )
    return notes


def _incident_volume(
    licence: Licence,
    meshes: dict[int, tuple[object, F64]],
    pts: F64,
    vtype: ViolationType,
    block: int,
    src: I32,
) -> float:
    mesh_sources = [int(s) for s in np.unique(src) if int(s) in meshes]
    if mesh_sources:
        margin = tol.MESH_CLIP_MARGIN_M
        box = (pts.min(axis=0) - margin, pts.max(axis=0) + margin)
        total = 0.0
        for s in mesh_sources:
            mesh, origin = meshes[s]
            v = mesh_volume_beyond(licence, mesh, origin, vtype, block=block, bbox=box)  # type: ignore[arg-type]
            if v is None:  # not watertight or a seam limit: sections of the samples
                v = shell_volume(pts[src == s])
            total += v
        return total
    return shell_volume(pts)

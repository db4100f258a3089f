"""Change detection against the mine's previous survey, run by a job after
its check: **every** scan and point file of the new survey, merged as the
check reads them, against every scan and point file of the previous checked
survey of the same mine and licence (``survey.compare``): new excavation
since then, and which of it lies beyond the licence. Meshes count by their
vertices and surface samples (as ``survey compare`` does); points without a
height (plan-only total-station files) cannot be matched in 3D and are left
out, with a note. Its own ``findings.json`` and ``report.html`` go to
``changes/`` beside the check's; the summary names the files compared. It
never fails the check: a comparison that cannot be made is noted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey.model import Licence, SurveyData

#: both surveys are held in memory (and the older one in a k-d tree, about
#: 50 bytes a point): surveys whose files add up to more are not compared
COMPARE_MAX_BYTES = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Previous:
    survey_id: int
    #: its scan and point files: (stored, relative to the uploads directory; client's name)
    files: tuple[tuple[str, str], ...]


def _merged(
    root: Path, licence: Licence, files: list[tuple[str, str]], label: str, notes: list[str]
) -> SurveyData:
    """Every file of one survey read as the check reads it and merged into
    one set of points (a mesh as its vertices and surface samples)."""
    import numpy as np

    from survey.classify import prepare
    from survey.compare import _surface_points
    from survey.readers import read_survey

    origin_en = prepare(licence).origin
    origin = np.array([origin_en[0], origin_en[1], 0.0])
    parts, dates = [], []
    for stored, name in files:
        data = read_survey(root / stored, licence=licence)
        xyz = _surface_points(data, origin)
        keep = np.isfinite(xyz[:, 2])
        if not keep.all():
            notes.append(
                f"{label} survey, {name}: {int((~keep).sum()):,} point(s) without a height "
                "left out (compared in 3D)"
            )
            xyz = xyz[keep]
        parts.append(xyz)
        if data.surveyed_on is not None:
            dates.append(data.surveyed_on)
    xyz = np.concatenate(parts) if parts else np.zeros((0, 3))
    source = " + ".join(name for _, name in files)
    return SurveyData(source, "merged", xyz, surveyed_on=max(dates) if dates else None)


def compare_with_previous(
    root: Path,
    licence: Licence,
    previous: Previous,
    files: list[tuple[str, str]],
    out: Path,
) -> dict[str, Any]:
    """Compare; the summary kept with the survey (``values["changes"]``)."""
    import numpy as np

    from survey.compare import compare_scans
    from survey.findings import new_check_id
    from survey.model import SurveyInputError
    from survey.report import write_report

    summary: dict[str, Any] = {
        "since_survey": previous.survey_id,
        "old_files": [name for _, name in previous.files],
        "new_files": [name for _, name in files],
    }
    old_paths = [root / s for s, _ in previous.files]
    new_paths = [root / s for s, _ in files]
    size = sum(p.stat().st_size for p in old_paths + new_paths)
    if size > COMPARE_MAX_BYTES:
        summary["note"] = (
            f"not compared: the two surveys' files add up to {size / 1e9:.1f} GB, over the "
            f"{COMPARE_MAX_BYTES / 1e9:g} GB the comparison holds in memory; run "
            "`minegate survey compare` where there is room"
        )
        return summary
    notes: list[str] = []
    try:
        old = _merged(root, licence, list(previous.files), "previous", notes)
        new = _merged(root, licence, files, "new", notes)
        result = compare_scans(licence, old, new)
    except SurveyInputError as exc:
        text = str(exc)
        for path, (_, name) in zip(old_paths + new_paths, [*previous.files, *files], strict=True):
            text = text.replace(str(path), name)
        summary["note"] = f"not compared: {text}"
        return summary
    result.old_source, result.new_source = old.source, new.source
    result.notes[:0] = notes
    preview = getattr(result, "preview", None)
    if preview is not None and len(preview):
        xyz, status = np.ascontiguousarray(preview[:, :3]), preview[:, 3].astype(np.int8)
    else:
        xyz, status = np.zeros((0, 3)), np.zeros(0, dtype=np.int8)
    write_report(result, out, xyz=xyz, status=status, check_id=new_check_id(licence))
    summary.update(
        old_points=len(old.xyz),
        new_points_compared=len(new.xyz),
        new_points=int(result.new_points),
        areas=len(result.areas),
        new_volume_m3=round(sum(a.volume_m3 for a in result.areas), 1),
        new_incidents=len(result.incidents),
        **({"notes": notes} if notes else {}),
    )
    return summary

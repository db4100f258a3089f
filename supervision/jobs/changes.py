"""Change detection against the mine's previous survey, run by a job after
its check: the first scan of the new survey against the first scan of the
previous checked survey of the same mine and licence (``survey.compare``):
new excavation since then, and which of it lies beyond the licence. Its own
``findings.json`` and ``report.html`` go to ``changes/`` beside the check's.
It never fails the check: a comparison that cannot be made is noted."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from survey.model import Licence

#: both scans are held in memory (and the older one in a k-d tree): larger
#: scans are not compared
COMPARE_MAX_BYTES = 2_000_000_000


@dataclass(frozen=True, slots=True)
class Previous:
    survey_id: int
    stored: str  # its first scan, relative to the uploads directory
    name: str  # the client's name of it


def compare_with_previous(
    root: Path, licence: Licence, previous: Previous, stored: str, name: str, out: Path
) -> dict[str, Any]:
    """Compare; the summary kept with the survey (``values["changes"]``)."""
    import numpy as np

    from survey.compare import compare_scans
    from survey.findings import new_check_id
    from survey.model import SurveyInputError
    from survey.readers import read_survey
    from survey.report import write_report

    summary: dict[str, Any] = {"since_survey": previous.survey_id, "old_scan": previous.name}
    old_path, new_path = root / previous.stored, root / stored
    too_big = [p for p in (old_path, new_path) if p.stat().st_size > COMPARE_MAX_BYTES]
    if too_big:
        summary["note"] = (
            f"not compared: scans over {COMPARE_MAX_BYTES / 1e9:g} GB are held in memory by the "
            "comparison; run `minegate survey compare` where there is room"
        )
        return summary
    try:
        old = read_survey(old_path, licence=licence)
        new = read_survey(new_path, licence=licence)
        result = compare_scans(licence, old, new)
    except SurveyInputError as exc:
        text = str(exc).replace(str(old_path), previous.name).replace(str(new_path), name)
        summary["note"] = f"not compared: {text}"
        return summary
    result.old_source, result.new_source = previous.name, name
    preview = getattr(result, "preview", None)
    if preview is not None and len(preview):
        xyz, status = np.ascontiguousarray(preview[:, :3]), preview[:, 3].astype(np.int8)
    else:
        xyz, status = np.zeros((0, 3)), np.zeros(0, dtype=np.int8)
    write_report(result, out, xyz=xyz, status=status, check_id=new_check_id(licence))
    summary.update(
        new_points=int(result.new_points),
        areas=len(result.areas),
        new_volume_m3=round(sum(a.volume_m3 for a in result.areas), 1),
        new_incidents=len(result.incidents),
    )
    return summary

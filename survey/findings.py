"""Findings of a survey check as data: the ``findings.json`` document and the
gateway records (kind FINDING) that the sinks deliver to InfluxDB and MQTT.

Coordinates in everything produced here speak the licence's language:
``x_north`` (Chinese X, northing), ``y_east`` (Chinese Y, easting, zone
prefix removed as in the licence) and ``h`` (1985 height datum), metres.
Exceedances are positive beyond the licensed limit.

The schema is versioned (:data:`SCHEMA`); docs/survey.md describes every
field. Add fields freely; rename or remove only with a new schema version.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

from gateway.model import Quality, Record, RecordKind
from survey.model import CheckResult, Incident, InputSummary, Licence

SCHEMA = "minegate.survey.findings/1"

MEASUREMENT_CHECK = "survey_check"
MEASUREMENT_INCIDENT = "survey_incident"


@dataclass(frozen=True)
class SourceInfo:
    """One input file of a check: its path, format and point count (a mesh's
    own vertices), a mesh's faces, the surface samples checked besides its
    vertices, and what the reader noted about the file."""

    path: str
    fmt: str
    points: int | None
    faces: int | None = None
    samples: int = 0
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, item: InputSummary) -> SourceInfo:
        return cls(item.source, item.fmt, item.points, item.faces, item.samples, tuple(item.notes))

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "format": self.fmt,
            "points": self.points,
            "faces": self.faces,
            "surface_samples": self.samples,
            "notes": list(self.notes),
        }


def tool_version() -> str:
    try:
        return metadata.version("minegate")
    except metadata.PackageNotFoundError:
        return "unknown"


def new_check_id(licence: Licence, when: datetime | None = None) -> str:
    """A check id that sorts by time and names the licence, e.g.
    ``C5300002011032120109876-20261125T151600Z``."""
    t = (when or datetime.now(UTC)).astimezone(UTC)
    lic = "".join(ch for ch in licence.licence_no if ch.isalnum() or ch in "-_") or "licence"
    return f"{lic}-{t:%Y%m%dT%H%M%SZ}"


def _r(v: float, nd: int = 3) -> float:
    return round(float(v), nd)


def _r_h(v: float, nd: int = 3) -> float | None:
    """A height, or None where it is unknown (NaN: an incident of points
    surveyed without a height)."""
    return None if math.isnan(v) else _r(v, nd)


def _pt(e: float, n: float, h: float) -> dict[str, float | None]:
    return {"x_north": _r(n), "y_east": _r(e), "h": _r_h(h)}


def height_text(h: float, spec: str = "+.2f") -> str:
    """``H <h>`` for a message, or ``H unknown`` for an incident whose
    points were all surveyed without a height."""
    return "H unknown (no height surveyed)" if math.isnan(h) else f"H {h:{spec}}"


def incident_dict(inc: Incident) -> dict[str, object]:
    """One incident as JSON-able data (X = northing, Y = easting)."""
    size = [inc.bbox_max[i] - inc.bbox_min[i] for i in range(3)]
    return {
        "id": inc.id,
        "type": str(inc.type),
        "block": inc.block,
        "within_uncertainty": inc.within_uncertainty,
        "point_count": int(inc.point_count),
        "plan_only_points": int(inc.plan_only_points),
        "centroid": _pt(*inc.centroid),
        "extent": {
            "min": _pt(*inc.bbox_min),
            "max": _pt(*inc.bbox_max),
            "size_m": {"x_north": _r(size[1]), "y_east": _r(size[0]), "h": _r_h(size[2])},
        },
        "max_exceedance_m": _r(inc.max_exceedance_m),
        "volume_m3": _r(inc.volume_m3, 1),
        "nearest_edge": list(inc.nearest_edge) if inc.nearest_edge else None,
        "nearest_corner": inc.nearest_corner,
        "new_since": inc.new_since,
    }


def licence_dict(lic: Licence) -> dict[str, object]:
    return {
        "licence_no": lic.licence_no,
        "mine_name": lic.mine_name,
        "epsg": lic.epsg,
        "zone_prefix": lic.zone_prefix,
        "valid_from": lic.valid_from.isoformat() if lic.valid_from else None,
        "valid_to": lic.valid_to.isoformat() if lic.valid_to else None,
        "source": lic.source,
        "blocks": [
            {
                "name": b.name,
                "z_top": b.z_top,
                "z_bottom": b.z_bottom,
                "corners": [
                    {"number": c.number, "x_north": c.x_north, "y_east": c.y_east}
                    for c in b.corners
                ],
            }
            for b in lic.blocks
        ],
        "seams": [s.name for s in lic.seams],
    }


def summary(result: CheckResult) -> dict[str, float | int | str]:
    """Verdict and totals over the violations (not the uncertain groups)."""
    return {
        "verdict": result.verdict,
        "incidents": len(result.incidents),
        "within_uncertainty": len(result.uncertain),
        "max_exceedance_m": _r(max((i.max_exceedance_m for i in result.incidents), default=0.0)),
        "volume_m3": _r(sum(i.volume_m3 for i in result.incidents), 1),
        "points_checked": int(result.n_points),
        "points_plan_only": int(result.n_plan_only),
    }


def comparison_dict(result: CheckResult) -> dict[str, object] | None:
    """The ``comparison`` section for a two-scan comparison
    (``survey.compare.ComparisonResult``), else None."""
    areas = getattr(result, "areas", None)
    if areas is None:
        return None
    return {
        "old_source": getattr(result, "old_source", ""),
        "new_source": getattr(result, "new_source", ""),
        "distance_m": getattr(result, "distance_m", None),
        "new_points": getattr(result, "new_points", None),
        "areas": [
            {
                "id": a.id,
                "point_count": int(a.point_count),
                "centroid": _pt(*a.centroid),
                "extent": {"min": _pt(*a.bbox_min), "max": _pt(*a.bbox_max)},
                "volume_m3": _r(a.volume_m3, 1),
                "beyond_licence": bool(a.beyond_licence),
                "incident_ids": list(a.incident_ids),
            }
            for a in areas
        ],
    }


def findings_document(
    result: CheckResult,
    *,
    check_id: str,
    sources: Sequence[SourceInfo] | None = None,
    created: datetime | None = None,
) -> dict[str, object]:
    """The ``findings.json`` document (schema :data:`SCHEMA`)."""
    lic = result.licence
    if sources is None and result.inputs:
        sources = [SourceInfo.of(i) for i in result.inputs]
    elif sources is None:
        sources = [SourceInfo(s, Path(s).suffix.lstrip(".").lower(), None) for s in result.sources]
    doc: dict[str, object] = {
        "schema": SCHEMA,
        "tool": {"name": "minegate", "version": tool_version()},
        "check_id": check_id,
        "created_utc": (created or datetime.now(UTC)).astimezone(UTC).isoformat(),
        "licence": licence_dict(lic),
        "tolerances": {"plan_m": lic.tolerance_m, "height_m": lic.tolerance_z_m},
        "sources": [s.as_dict() for s in sources],
        "summary": summary(result),
        "verdict": result.verdict,
        "incidents": [incident_dict(i) for i in result.incidents],
        "within_uncertainty": [incident_dict(i) for i in result.uncertain],
        "timings_s": {k: round(v, 3) for k, v in result.timings_s.items()},
        "notes": list(result.notes),
    }
    comparison = comparison_dict(result)
    if comparison is not None:
        doc["comparison"] = comparison
    return doc


def write_findings(doc: dict[str, object], path: Path) -> None:
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def findings_records(
    result: CheckResult,
    site: str,
    check_id: str,
    *,
    gateway: str = "",
    ts_ns: int | None = None,
) -> list[Record]:
    """Gateway records (kind FINDING) for one check: one ``survey_check``
    record, then one ``survey_incident`` record per incident (violations
    first, then within-uncertainty groups).

    ``record.device`` is the check id; ``points``/``values`` are the numeric
    fields; ``record.fields`` holds ``measurement``, ``tags`` (str -> str),
    ``alert`` (True on the check record when violations were found) and a
    human ``message``.
    """
    ts = time.time_ns() if ts_ns is None else ts_ns
    lic = result.licence
    base_tags = {
        "site": site,
        "mine": lic.mine_name,
        "licence": lic.licence_no,
        "check_id": check_id,
    }
    if gateway:
        base_tags["gateway"] = gateway
    s = summary(result)
    violations = len(result.incidents) > 0
    check_values: list[tuple[str, float | int | str, str]] = [
        ("verdict", str(s["verdict"]), ""),
        ("incidents", int(s["incidents"]), ""),
        ("within_uncertainty", int(s["within_uncertainty"]), ""),
        ("max_exceedance_m", float(s["max_exceedance_m"]), "m"),
        ("volume_m3", float(s["volume_m3"]), "m3"),
        ("points_checked", int(s["points_checked"]), ""),
    ]
    if violations:
        worst = max(result.incidents, key=lambda i: i.max_exceedance_m)
        message = (
            f"survey check {check_id}: {len(result.incidents)} violation(s) of licence "
            f"{lic.licence_no} ({lic.mine_name}); worst {worst.id} {worst.type} "
            f"{worst.max_exceedance_m:.2f} m at X {worst.centroid[1]:.1f} "
            f"Y {worst.centroid[0]:.1f} {height_text(worst.centroid[2], '.1f')}; "
            f"total {float(s['volume_m3']):.0f} m3 beyond the licence"
        )
    else:
        message = f"survey check {check_id}: {result.verdict} (licence {lic.licence_no})"
    records = [
        _record(
            check_id,
            ts,
            check_values,
            {
                "measurement": MEASUREMENT_CHECK,
                "tags": dict(base_tags),
                "alert": violations,
                "message": message,
                "sources": list(result.sources),
            },
        )
    ]
    for inc in [*result.incidents, *result.uncertain]:
        e, n, h = inc.centroid
        values: list[tuple[str, float | int | str, str]] = [
            ("max_exceedance_m", _r(inc.max_exceedance_m), "m"),
            ("volume_m3", _r(inc.volume_m3, 1), "m3"),
            ("point_count", int(inc.point_count), ""),
            ("x_north", _r(n), "m"),
            ("y_east", _r(e), "m"),
            *([] if math.isnan(h) else [("h", _r(h), "m")]),
            ("nearest_edge", "-".join(inc.nearest_edge) if inc.nearest_edge else "", ""),
            ("nearest_corner", inc.nearest_corner or "", ""),
        ]
        tags = {
            **base_tags,
            "incident": inc.id,
            "type": str(inc.type),
            "block": inc.block,
            "within_uncertainty": "true" if inc.within_uncertainty else "false",
        }
        records.append(
            _record(
                check_id,
                ts,
                values,
                {"measurement": MEASUREMENT_INCIDENT, "tags": tags, "alert": False},
            )
        )
    return records


def _record(
    check_id: str,
    ts: int,
    values: list[tuple[str, float | int | str, str]],
    fields: dict[str, object],
) -> Record:
    return Record(
        kind=RecordKind.FINDING,
        device=check_id,
        ts_ns=ts,
        points=[v[0] for v in values],
        values=[v[1] for v in values],
        units=[v[2] for v in values],
        qualities=[Quality.GOOD] * len(values),
        fields=fields,
    )

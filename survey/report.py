"""The check report: ``findings.json`` (machine-readable) and ``report.html``
(self-contained: pictures embedded as base64 PNG, no external files).

The HTML is for people who need evidence: a contractor surveyor checking a
delivery, a regulator deciding whether a mine mined beyond its licence. It
shows the verdict, the inputs, the licence, a plan view, an elevation
section through every incident and the table of incidents in the licence's
own coordinates (X = northing, Y = easting).
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from importlib import resources
from pathlib import Path
from string import Template

import numpy as np
import numpy.typing as npt

from survey.findings import (
    SourceInfo,
    findings_document,
    incident_dict,
    write_findings,
)
from survey.model import F64, CheckResult, Incident
from survey.plots.plan import plan_view
from survey.plots.section import elevation_section, section_caption

MAX_SECTIONS = 20  # beyond this the report lists incidents without a picture each


@dataclass(frozen=True)
class ReportFiles:
    findings_json: Path
    report_html: Path


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _e(v: object) -> str:
    return html.escape("" if v is None else str(v))


TYPE_LABEL = {
    "boundary": "beyond the boundary (越界)",
    "above_range": "above the elevation range (超层)",
    "below_range": "below the elevation range (超层)",
    "outside_seam": "outside the licensed seam (超层)",
}


def _incident_rows(incidents: Sequence[Incident]) -> str:
    rows = []
    for inc in incidents:
        d = incident_dict(inc)
        c = inc.centroid
        size = d["extent"]["size_m"]  # type: ignore[index]
        edge = "–".join(inc.nearest_edge) if inc.nearest_edge else ""
        rows.append(
            "<tr>"
            f"<td>{_e(inc.id)}</td><td>{_e(TYPE_LABEL.get(str(inc.type), inc.type))}</td>"
            f"<td>{_e(inc.block)}</td>"
            f"<td class=num>{c[1]:,.2f}</td><td class=num>{c[0]:,.2f}</td>"
            f"<td class=num>{'unknown' if math.isnan(c[2]) else f'{c[2]:+.2f}'}</td>"
            f"<td class=num>{size['x_north']:.1f} × {size['y_east']:.1f} × "
            f"{'?' if size['h'] is None else format(size['h'], '.1f')}</td>"
            f"<td class=num><b>{inc.max_exceedance_m:.2f}</b></td>"
            f"<td class=num>{inc.volume_m3:,.1f}</td><td class=num>{inc.point_count:,}</td>"
            f"<td>{_e(edge)}</td><td>{_e(inc.nearest_corner)}</td>"
            f"<td>{_e(inc.new_since or '')}</td>"
            "</tr>"
        )
    return "\n".join(rows)


def _table(incidents: Sequence[Incident], empty: str) -> str:
    if not incidents:
        return f"<p class=muted>{_e(empty)}</p>"
    head = (
        "<tr><th>id</th><th>type</th><th>block</th><th>X (northing)</th><th>Y (easting)</th>"
        "<th>H</th><th>extent X × Y × H (m)</th><th>max exceedance (m)</th>"
        "<th>volume (m³)</th><th>points</th><th>nearest edge</th><th>nearest corner</th>"
        "<th>new since</th></tr>"
    )
    return f"<table>{head}\n{_incident_rows(incidents)}</table>"


def _comparison_html(doc: dict[str, object]) -> str:
    comp = doc.get("comparison")
    if not isinstance(comp, dict):
        return ""
    rows = "".join(
        f"<tr><td>{_e(a['id'])}</td><td class=num>{a['centroid']['x_north']:,.2f}</td>"
        f"<td class=num>{a['centroid']['y_east']:,.2f}</td>"
        f"<td class=num>{a['centroid']['h']:+.2f}</td>"
        f"<td class=num>{a['volume_m3']:,.1f}</td><td class=num>{a['point_count']:,}</td>"
        f"<td>{'<b>yes</b>' if a['beyond_licence'] else 'no'}</td>"
        f"<td>{_e(', '.join(a['incident_ids']))}</td></tr>"
        for a in comp["areas"]
    )
    return (
        "<h2>New excavation between the two scans <span class=zh>两期之间新增采掘</span></h2>"
        f"<p>Older scan <code>{_e(comp['old_source'])}</code>, newer scan "
        f"<code>{_e(comp['new_source'])}</code>: {comp['new_points']:,} points of the newer "
        f"scan have no point of the older one within {comp['distance_m']} m. The incidents "
        "above cover this new excavation only.</p>"
        "<table><tr><th>area</th><th>X (northing)</th><th>Y (easting)</th><th>H</th>"
        "<th>volume (m³)</th><th>points</th><th>beyond the licence</th><th>incidents</th></tr>"
        f"{rows}</table>"
    )


def _licence_html(result: CheckResult) -> str:
    lic = result.licence
    parts = []
    for b in lic.blocks:
        rows = "".join(
            f"<tr><td>{_e(c.number)}</td><td class=num>{c.x_north:,.3f}</td>"
            f"<td class=num>{c.y_east:,.3f}</td></tr>"
            for c in b.corners
        )
        parts.append(
            f"<h3>Block {_e(b.name)}: elevation {b.z_top:+g} m to {b.z_bottom:+g} m</h3>"
            "<table class=narrow><tr><th>corner</th><th>X (northing)</th><th>Y (easting)</th>"
            f"</tr>{rows}</table>"
        )
    if lic.seams:
        parts.append("<p>Licensed seams: " + ", ".join(_e(s.name) for s in lic.seams) + "</p>")
    return "\n".join(parts)


def _validity(valid_from: date | None, valid_to: date | None, source: str) -> str:
    if valid_from is None and valid_to is None:
        return f"validity not given in {source or 'the licence file'}"
    span = f"valid {valid_from or '?'} to {valid_to or '?'}"
    if valid_to is not None and valid_to < datetime.now(UTC).date():
        span += " (EXPIRED: any mining after this date is unlicensed)"
    return span


def _count(v: object) -> str:
    return f"{v:,}" if isinstance(v, int) else ""


def _source_row(src: dict[str, object]) -> str:
    """A file as read: its own points (a mesh's vertices) and faces, and the
    surface samples checked besides a mesh's vertices."""
    points = src["points"]
    samples = src.get("surface_samples")
    return (
        f"<tr><td>{_e(src['path'])}</td><td>{_e(src['format'])}</td>"
        f"<td class=num>{_count(points) or '?'}</td><td class=num>{_count(src.get('faces'))}</td>"
        f"<td class=num>{_count(samples) if samples else ''}</td></tr>"
    )


def _source_notes(sources: Sequence[dict[str, object]]) -> str:
    """What the readers noted about the files (a declared coordinate system
    taken as it is, entities not read, every height 0): where a reader of
    the report sees them, under the files."""
    notes = [str(n) for src in sources for n in src.get("notes") or []]  # type: ignore[attr-defined]
    if not notes:
        return ""
    items = "".join(f"<li>{_e(n)}</li>" for n in dict.fromkeys(notes))
    return (
        "<div class=readnotes><b>Read with remarks 读取说明</b> (check these before relying on "
        f"the verdict):<ul>{items}</ul></div>"
    )


VERDICT_ZH = {
    "compliant": "合规",
    "violations found": "发现超层越界",
    "within survey uncertainty": "在测量误差范围内",
}

VERDICT_CLASS = {
    "compliant": "ok",
    "violations found": "bad",
    "within survey uncertainty": "warn",
}


def render_html(
    result: CheckResult,
    doc: dict[str, object],
    plan_png: bytes,
    sections: Sequence[tuple[Incident, bytes]],
) -> str:
    lic = result.licence
    summary = doc["summary"]
    assert isinstance(summary, dict)
    sources = doc["sources"]
    assert isinstance(sources, list)
    sources_rows = "".join(_source_row(s) for s in sources)
    section_html = "\n".join(
        f"<figure>{_img(png, f'elevation section through {inc.id}')}"
        f"<figcaption>{_e(inc.id)}: {_e(TYPE_LABEL.get(str(inc.type), inc.type))}, max exceedance "
        f"{inc.max_exceedance_m:.2f} m, {inc.volume_m3:,.1f} m³. "
        f"{_e(section_caption(lic, inc))}</figcaption></figure>"
        for inc, png in sections
    )
    groups = [*result.incidents, *result.uncertain]
    flat = [i.id for i in groups if math.isnan(i.centroid[2])]
    if len(groups) - len(flat) > len(sections):
        section_html += (
            f"<p class=muted>Sections are drawn for the first {len(sections)} incidents; "
            "all incidents are in the table and in findings.json.</p>"
        )
    if flat:
        section_html += (
            f"<p class=muted>No section for {_e(', '.join(flat))}: surveyed without heights "
            "(in plan only), shown in the plan.</p>"
        )
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in result.timings_s.items())
    notes = "".join(f"<li>{_e(n)}</li>" for n in result.notes)
    template = Template(
        resources.files("survey").joinpath("templates/report.html").read_text(encoding="utf-8")
    )
    return template.substitute(
        title=_e(f"Survey check {doc['check_id']}"),
        mine=_e(lic.mine_name),
        licence_no=_e(lic.licence_no),
        epsg=_e(lic.epsg),
        validity=_e(_validity(lic.valid_from, lic.valid_to, result.licence.source)),
        verdict=_e(result.verdict),
        verdict_class=VERDICT_CLASS.get(result.verdict, "warn"),
        verdict_zh=VERDICT_ZH.get(result.verdict, ""),
        n_incidents=summary["incidents"],
        n_uncertain=summary["within_uncertainty"],
        max_exc=f"{float(summary['max_exceedance_m']):.2f}",
        volume=f"{float(summary['volume_m3']):,.1f}",
        n_points=f"{result.n_points:,}"
        + (
            f" ({result.n_plan_only:,} without a height: checked in plan only)"
            if result.n_plan_only
            else ""
        ),
        tol_plan=f"{lic.tolerance_m:g}",
        tol_h=f"{lic.tolerance_z_m:g}",
        check_id=_e(doc["check_id"]),
        created=_e(doc["created_utc"]),
        version=_e(doc["tool"]["version"]),  # type: ignore[index]
        sources_rows=sources_rows,
        source_notes=_source_notes(sources),
        licence_html=_licence_html(result),
        plan_img=_img(plan_png, "plan view"),
        incidents_table=_table(result.incidents, "No violations beyond the survey tolerance."),
        uncertain_table=_table(
            result.uncertain, "No exceedances within the survey uncertainty either."
        ),
        comparison=_comparison_html(doc),
        sections=section_html or "<p class=muted>No incidents, no sections.</p>",
        timings=_e(timings),
        notes=f"<ul>{notes}</ul>" if notes else "",
    )


def write_report(
    result: CheckResult,
    out_dir: Path,
    *,
    xyz: F64,
    status: npt.NDArray[np.integer],
    check_id: str,
    sources: Sequence[SourceInfo] | None = None,
    created: datetime | None = None,
) -> ReportFiles:
    """Write ``findings.json`` and ``report.html`` into ``out_dir``.

    ``xyz`` (n, 3) float64 (E, N, H) and ``status`` (n,) are the points to
    draw (all of them or a subsample; the plots thin them further)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    created = created or datetime.now(UTC)
    doc = findings_document(result, check_id=check_id, sources=sources, created=created)
    findings_path = out_dir / "findings.json"
    write_findings(doc, findings_path)
    plan = plan_view(result.licence, xyz, status, result.incidents, result.uncertain)
    with_height = [
        i for i in [*result.incidents, *result.uncertain] if not math.isnan(i.centroid[2])
    ]
    sections = [
        (inc, elevation_section(result.licence, inc, xyz, status))
        for inc in with_height[:MAX_SECTIONS]
    ]
    html_path = out_dir / "report.html"
    html_path.write_text(render_html(result, doc, plan, sections), encoding="utf-8")
    return ReportFiles(findings_path, html_path)

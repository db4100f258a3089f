"""The open-pit report: ``findings.json`` and a self-contained
``report.html`` in the underground report's style (its stylesheet and
helpers from :mod:`survey.report`)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

from survey.findings import SourceInfo, write_findings
from survey.openpit.check import PitCheckResult
from survey.openpit.findings import pit_document
from survey.openpit.plots import plan_png, sections
from survey.openpit.violations import KIND_LABEL, PitViolation
from survey.report import (
    VERDICT_CLASS,
    ReportFiles,
    _e,
    _img,
    _licence_html,
    _source_row,
    _table,
)

MAX_SECTIONS = 20
VERDICT_ZH = {
    "compliant": "合规",
    "violations found": "发现违规",
    "within survey uncertainty": "在测量误差范围内",
}


def _style() -> str:
    text = resources.files("survey").joinpath("templates/report.html").read_text(encoding="utf-8")
    m = re.search(r"<style>.*?</style>", text, re.S)
    return m.group(0) if m else ""


def _num(v: object, fmt: str) -> str:
    return "" if v is None else format(v, fmt)


def _benches_table(doc: dict[str, Any]) -> str:
    rows = []
    for b in doc["open_pit"]["benches"]:
        berm = b["berm_above_m"]
        berm_text = "" if berm is None else f"{berm['min']:.2f} / {berm['median']:.2f}"
        rows.append(
            f"<tr><td>{_e(b['id'])}</td><td class=num>{b['toe_h']:+.1f} to {b['crest_h']:+.1f}</td>"
            f"<td class=num>{b['profiles']}</td><td class=num>{b['length_m']:,.1f}</td>"
            f"<td class=num>{b['height_m']['min']:.2f} / {b['height_m']['median']:.2f} / "
            f"{b['height_m']['max']:.2f}</td>"
            f"<td class=num>{b['face_angle_deg']['median']:.1f} / {b['face_angle_deg']['max']:.1f}</td>"
            f"<td class=num>{berm_text}</td></tr>"
        )
    if not rows:
        return "<p class=muted>No benches found (no faces steeper than the face threshold).</p>"
    return (
        "<table><tr><th>bench</th><th>toe to crest H (m)</th><th>profiles</th>"
        "<th>length along the wall (m)</th><th>height min / median / max (m)</th>"
        "<th>face angle median / max (°)</th><th>berm above min / median (m)</th></tr>"
        + "\n".join(rows)
        + "</table>"
    )


def _violations_table(doc: dict[str, Any]) -> str:
    vs = doc["open_pit"]["violations"]
    if not vs:
        return "<p class=muted>No bench, one-wall or slope violations of the design.</p>"
    rows = "".join(
        f"<tr><td>{_e(v['id'])}</td><td>{_e(KIND_LABEL[v['kind']])}</td><td>{_e(v['bench'] or '')}</td>"
        f"<td class=num><b>{v['worst']:.2f}</b> {_e(v['unit'])}</td>"
        f"<td class=num>{v['limit']:g} {_e(v['unit'])}</td>"
        f"<td class=num>{v['location']['x_north']:,.2f}</td><td class=num>{v['location']['y_east']:,.2f}</td>"
        f"<td class=num>{v['location']['h']:+.1f}</td><td class=num>{v['face_height_m']:.1f}</td>"
        f"<td class=num>{v['length_along_wall_m']:,.1f}</td><td class=num>{v['profiles']}</td></tr>"
        for v in vs
    )
    return (
        "<table><tr><th>id</th><th>kind</th><th>bench</th><th>worst</th><th>design</th>"
        "<th>X (northing)</th><th>Y (easting)</th><th>H</th><th>face height (m)</th>"
        "<th>length along the wall (m)</th><th>profiles</th></tr>"
        f"{rows}</table>"
    )


def _order_html(doc: dict[str, Any]) -> str:
    o = doc["open_pit"]["between_surveys"]
    if o is None:
        return (
            "<p class=muted>One survey only: give an earlier one (--earlier) for the volume "
            "mined between flights and the top-down order.</p>"
        )
    rows = "".join(
        f"<tr><td>{_e(a['id'])}</td><td class=num>{a['centroid']['x_north']:,.2f}</td>"
        f"<td class=num>{a['centroid']['y_east']:,.2f}</td>"
        f"<td class=num>{a['level_bottom_h']:+.1f} to {a['level_top_h']:+.1f}</td>"
        f"<td class=num>{a['volume_m3']:,.1f}</td><td class=num>{a['volume_outside_licence_m3']:,.1f}</td>"
        + (
            f"<td class=num>{100 * a['bench_above_cut_share']:.0f} %</td>"
            if a["bench_above_cells"]
            else "<td>no bench above</td>"
        )
        + f"<td>{'<b>NOT TOP-DOWN</b>' if a['out_of_order'] else 'in order'}</td></tr>"
        for a in o["areas"]
    )
    return (
        f"<p>Earlier survey <code>{_e(o['earlier'])}</code>, later <code>{_e(o['later'])}</code>: "
        f"cut {o['cut_m3']:,.1f} m³ ({o['cut_inside_licence_m3']:,.1f} inside the licence, "
        f"<b>{o['cut_outside_licence_m3']:,.1f} outside</b>), fill {o['fill_m3']:,.1f} m³.</p>"
        "<table><tr><th>area</th><th>X (northing)</th><th>Y (easting)</th><th>H mined (m)</th>"
        "<th>volume (m³)</th><th>outside the licence (m³)</th><th>bench above also mined</th>"
        f"<th>order</th></tr>{rows}</table>"
    )


def render_html(
    pit: PitCheckResult,
    doc: dict[str, Any],
    plan: bytes,
    secs: Sequence[tuple[PitViolation, bytes]],
) -> str:
    r = pit.result
    lic = r.licence
    s = doc["summary"]
    op = doc["open_pit"]
    section_html = "\n".join(
        f"<figure>{_img(png, f'profile through {v.id}')}<figcaption>{_e(v.id)}: "
        f"{_e(KIND_LABEL[v.kind])}; worst {v.worst:.2f} {_e(v.unit)} against {v.limit:g} "
        f"{_e(v.unit)} over {len(v.profiles)} profiles, {v.length_m:,.1f} m along the wall.</figcaption></figure>"
        for v, png in secs
    )
    n_pit = len(op["violations"]) + len(
        op["between_surveys"]["out_of_order"] if op["between_surveys"] else []
    )
    notes = "".join(f"<li>{_e(n)}</li>" for n in r.notes)
    timings = ", ".join(f"{k} {v:.2f} s" for k, v in r.timings_s.items())
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(f"Open-pit check {doc['check_id']}")}</title>
{_style()}
</head><body>
<h1>Open-pit survey check <span class="zh">露天矿无人机测量核查</span></h1>
<p><b>{_e(lic.mine_name)}</b> — licence <b>{_e(lic.licence_no)}</b> — EPSG:{lic.epsg}</p>
<p class="verdict {VERDICT_CLASS.get(r.verdict, "warn")}">Verdict 结论: {_e(r.verdict)} <span class="zh">{VERDICT_ZH.get(r.verdict, "")}</span></p>
<dl class="summary">
 <dt>Beyond the licence 超层越界</dt><dd>{s["incidents"]} incident(s), {s["volume_m3"]:,.1f} m³, largest {s["max_exceedance_m"]:.2f} m</dd>
 <dt>Within survey uncertainty 测量误差内</dt><dd>{s["within_uncertainty"]}</dd>
 <dt>Bench and order violations 台阶/开采顺序</dt><dd>{n_pit}</dd>
 <dt>DSM</dt><dd>{_e(op["dsm"]["source"])}, {op["dsm"]["cell_m"]:g} m cells</dd>
 <dt>Ground before mining</dt><dd>{_e(op["ground_before_mining"])}</dd>
 <dt>Slope design 边坡设计</dt><dd>{_e(op["design"]["source"])}: bench at most {pit.design.default.max_bench_height_m:g} m, face at most {pit.design.default.max_face_angle_deg:g}°, berm at least {pit.design.default.min_berm_width_m:g} m, overall at most {pit.design.default.max_overall_slope_deg:g}°</dd>
 <dt>Check id</dt><dd>{_e(doc["check_id"])}, {_e(doc["created_utc"])}, minegate {_e(doc["tool"]["version"])}</dd>
</dl>
<h2>Survey data checked <span class="zh">测量数据</span></h2>
<table class="narrow"><tr><th>file</th><th>format</th><th>points / cells</th></tr>
{"".join(_source_row(src) for src in doc["sources"])}</table>
<h2>Licence <span class="zh">采矿许可证</span></h2>
{_licence_html(r)}
<h2>Plan <span class="zh">平面图</span></h2>
<p class="muted">{"Orthophoto " + _e(pit.ortho.source) if pit.ortho else "Hillshade of the DSM"}; licence boundary in green; bench crests solid, toes dashed; violations coloured by kind along the wall; X = northing, Y = easting.</p>
<figure>{_img(plan, "plan on the DSM hillshade")}</figure>
<h2>Beyond the boundary and the floor <span class="zh">越界、超层</span></h2>
<p class="muted">Excavated ground (lower than the ground before mining) outside the boundary, below the floor or above the top; coordinates are volume-weighted centroids; "points" are DSM cells.</p>
{_table(r.incidents, "No excavation beyond the licence by more than the tolerance.")}
{_table(r.uncertain, "No excavation beyond the licence within the survey uncertainty either.") if r.uncertain else ""}
<h2>Bench violations and one wall <span class="zh">台阶与"半边山一面墙"</span></h2>
{_violations_table(doc)}
{section_html}
<h2>Benches along the wall <span class="zh">台阶</span></h2>
{_benches_table(doc)}
<h2>Between the two surveys <span class="zh">两期之间：采掘量与自上而下</span></h2>
{_order_html(doc)}
<h2>Notes</h2><ul>{notes}</ul><p class=muted>{_e(timings)}</p>
</body></html>
"""


def write_pit_report(
    pit: PitCheckResult,
    out_dir: Path,
    *,
    check_id: str,
    sources: Sequence[SourceInfo] | None = None,
    created: datetime | None = None,
) -> ReportFiles:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = pit_document(
        pit, check_id=check_id, sources=sources, created=created or datetime.now(UTC)
    )
    findings = out_dir / "findings.json"
    write_findings(doc, findings)
    html_path = out_dir / "report.html"
    html_path.write_text(
        render_html(pit, doc, plan_png(pit), sections(pit, MAX_SECTIONS)), encoding="utf-8"
    )
    return ReportFiles(findings, html_path)

"""findings.json of an open-pit check: the underground document
(:func:`survey.findings.findings_document`, schema unchanged) with an
``open_pit`` section added (docs/survey-openpit.md lists its fields)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from gateway.model import Quality, Record, RecordKind
from survey.findings import SourceInfo, findings_document, findings_records
from survey.openpit.benches import Bench
from survey.openpit.check import PitCheckResult
from survey.openpit.order import CutArea
from survey.openpit.violations import PitViolation


def _r(v: float | None, nd: int = 2) -> float | None:
    return None if v is None else round(float(v), nd)


def _pt(e: float, n: float, h: float) -> dict[str, float | None]:
    return {"x_north": _r(n, 3), "y_east": _r(e, 3), "h": _r(h, 3)}


def bench_dict(b: Bench) -> dict[str, object]:
    hs = b.stat([f.height_m for f in b.faces])
    an = b.stat([f.angle_deg for f in b.faces])
    berms = [f.berm_above_m for f in b.faces if f.berm_above_m is not None]
    bw = b.stat(berms) if berms else None
    return {
        "id": b.id,
        "toe_h": _r(b.toe_h),
        "crest_h": _r(b.crest_h),
        "profiles": len({f.ray for f in b.faces}),
        "length_m": _r(b.length_m, 1),
        "height_m": {"min": _r(hs[0]), "median": _r(hs[1]), "max": _r(hs[2])},
        "face_angle_deg": {"min": _r(an[0], 1), "median": _r(an[1], 1), "max": _r(an[2], 1)},
        "berm_above_m": None
        if bw is None
        else {"min": _r(bw[0]), "median": _r(bw[1]), "max": _r(bw[2])},
    }


def violation_dict(v: PitViolation) -> dict[str, object]:
    return {
        "id": v.id,
        "kind": v.kind,
        "bench": v.bench or None,
        "design_zone": v.design,
        "limit": v.limit,
        "worst": _r(v.worst),
        "unit": v.unit,
        "exceedance": _r(v.exceedance),
        "location": _pt(*v.location),
        "length_along_wall_m": _r(v.length_m, 1),
        "face_height_m": _r(v.height_m),
        "profiles": len(v.profiles),
    }


def cut_dict(a: CutArea) -> dict[str, object]:
    return {
        "id": a.id,
        "cells": a.cells,
        "volume_m3": _r(a.volume_m3, 1),
        "volume_outside_licence_m3": _r(a.volume_outside_m3, 1),
        "centroid": _pt(*a.centroid),
        "level_top_h": _r(a.h_top),
        "level_bottom_h": _r(a.h_bottom),
        "bench_above_cells": a.above_face_cells,
        "bench_above_cut_share": _r(a.above_cut_share, 3),
        "out_of_order": a.out_of_order,
    }


def pit_document(
    pit: PitCheckResult,
    *,
    check_id: str,
    sources: Sequence[SourceInfo] | None = None,
    created: datetime | None = None,
) -> dict[str, object]:
    doc = findings_document(pit.result, check_id=check_id, sources=sources, created=created)
    d = pit.design
    order = pit.order
    doc["open_pit"] = {
        "dsm": {
            "source": pit.dsm.source,
            "cell_m": pit.dsm.cell,
            "cells": [int(pit.dsm.shape[0]), int(pit.dsm.shape[1])],
        },
        "ground_before_mining": pit.ground_source,
        "design": {
            "source": d.source,
            "default": {
                "max_bench_height_m": d.default.max_bench_height_m,
                "max_face_angle_deg": d.default.max_face_angle_deg,
                "min_berm_width_m": d.default.min_berm_width_m,
                "max_overall_slope_deg": d.default.max_overall_slope_deg,
            },
            "zones": [z.design.name for z in d.zones],
        },
        "pit_centre": {
            "x_north": _r(pit.benches.centre[1], 3),
            "y_east": _r(pit.benches.centre[0], 3),
        },
        "violations": [violation_dict(v) for v in pit.benches.violations],
        "benches": [bench_dict(b) for b in pit.benches.benches],
        "between_surveys": None
        if order is None
        else {
            "earlier": order.earlier,
            "later": order.later,
            "cut_m3": _r(order.cut_m3, 1),
            "fill_m3": _r(order.fill_m3, 1),
            "cut_inside_licence_m3": _r(order.cut_inside_m3, 1),
            "cut_outside_licence_m3": _r(order.cut_outside_m3, 1),
            "fill_inside_licence_m3": _r(order.fill_inside_m3, 1),
            "fill_outside_licence_m3": _r(order.fill_outside_m3, 1),
            "areas": [cut_dict(a) for a in order.areas],
            "out_of_order": [a.id for a in order.areas if a.out_of_order],
        },
    }
    return doc


MEASUREMENT_PIT_FINDING = "survey_pit_finding"
MEASUREMENT_PIT_CHANGE = "survey_pit_change"


def pit_records(
    pit: PitCheckResult,
    site: str,
    check_id: str,
    *,
    gateway: str = "",
    ts_ns: int | None = None,
) -> list[Record]:
    """The underground records (:func:`survey.findings.findings_records`:
    ``survey_check``, one ``survey_incident`` per incident), the check
    record alerting on open-pit violations too, then one
    ``survey_pit_finding`` record per bench violation and per cut that is
    not top-down, and one ``survey_pit_change`` record with the volumes
    mined between the flights (when an earlier survey was given)."""
    records = findings_records(pit.result, site, check_id, gateway=gateway, ts_ns=ts_ns)
    check = records[0]
    tags = dict(check.fields["tags"])  # type: ignore[call-overload]
    bad_cuts = pit.out_of_order
    n_pit = len(pit.benches.violations) + len(bad_cuts)
    for name, value in (
        ("pit_violations", len(pit.benches.violations)),
        ("out_of_order", len(bad_cuts)),
    ):
        check.points.append(name)
        check.values.append(value)
        check.units.append("")
        check.qualities.append(Quality.GOOD)
    if n_pit:
        check.fields["alert"] = True
        kinds = sorted(
            {v.kind for v in pit.benches.violations} | ({"out_of_order"} if bad_cuts else set())
        )
        what = f"{n_pit} open-pit violation(s) ({', '.join(kinds)})"
        if pit.result.incidents:
            check.fields["message"] = f"{check.fields['message']}; {what}"
        else:
            lic = pit.result.licence
            check.fields["message"] = (
                f"survey check {check_id}: {what} of licence {lic.licence_no} ({lic.mine_name})"
            )

    def record(
        measurement: str, extra: dict[str, str], values: list[tuple[str, float | int | str, str]]
    ) -> Record:
        return Record(
            kind=RecordKind.FINDING,
            device=check_id,
            ts_ns=check.ts_ns,
            points=[v[0] for v in values],
            values=[v[1] for v in values],
            units=[v[2] for v in values],
            qualities=[Quality.GOOD] * len(values),
            fields={"measurement": measurement, "tags": {**tags, **extra}, "alert": False},
        )

    for v in pit.benches.violations:
        e, n, h = v.location
        records.append(
            record(
                MEASUREMENT_PIT_FINDING,
                {"finding": v.id, "kind": v.kind, "bench": v.bench, "design_zone": v.design},
                [
                    ("worst", round(v.worst, 3), v.unit),
                    ("limit", float(v.limit), v.unit),
                    ("exceedance", round(v.exceedance, 3), v.unit),
                    ("length_along_wall_m", round(v.length_m, 1), "m"),
                    ("face_height_m", round(v.height_m, 2), "m"),
                    ("x_north", round(n, 3), "m"),
                    ("y_east", round(e, 3), "m"),
                    ("h", round(h, 3), "m"),
                ],
            )
        )
    for a in bad_cuts:
        e, n, h = a.centroid
        records.append(
            record(
                MEASUREMENT_PIT_FINDING,
                {"finding": a.id, "kind": "out_of_order", "bench": "", "design_zone": ""},
                [
                    ("volume_m3", round(a.volume_m3, 1), "m3"),
                    ("volume_outside_licence_m3", round(a.volume_outside_m3, 1), "m3"),
                    ("level_top_h", round(a.h_top, 2), "m"),
                    ("level_bottom_h", round(a.h_bottom, 2), "m"),
                    ("bench_above_cut_share", round(a.above_cut_share, 3), ""),
                    ("x_north", round(n, 3), "m"),
                    ("y_east", round(e, 3), "m"),
                    ("h", round(h, 3), "m"),
                ],
            )
        )
    o = pit.order
    if o is not None:
        records.append(
            record(
                MEASUREMENT_PIT_CHANGE,
                {},
                [
                    ("cut_m3", round(o.cut_m3, 1), "m3"),
                    ("fill_m3", round(o.fill_m3, 1), "m3"),
                    ("cut_inside_licence_m3", round(o.cut_inside_m3, 1), "m3"),
                    ("cut_outside_licence_m3", round(o.cut_outside_m3, 1), "m3"),
                    ("fill_inside_licence_m3", round(o.fill_inside_m3, 1), "m3"),
                    ("fill_outside_licence_m3", round(o.fill_outside_m3, 1), "m3"),
                ],
            )
        )
    return records

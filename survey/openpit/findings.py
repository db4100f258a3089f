"""findings.json of an open-pit check: the underground document
(:func:`survey.findings.findings_document`, schema unchanged) with an
``open_pit`` section added (docs/survey-openpit.md lists its fields)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from survey.findings import SourceInfo, findings_document
from survey.openpit.benches import Bench, PitViolation
from survey.openpit.check import PitCheckResult
from survey.openpit.order import CutArea


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

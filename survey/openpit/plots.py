"""Pictures of the open-pit report: the plan on a hillshade of the DSM
(licence boundary, bench crest and toe lines, violations coloured by kind)
and a profile section across each violation with the design slope drawn.
Drawn with the underground report's :class:`survey.plots.drawing.Picture`."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from matplotlib.colors import LightSource

from survey.model import Incident, Licence
from survey.openpit.benches import Profile
from survey.openpit.check import PitCheckResult
from survey.openpit.dsm import Dsm
from survey.openpit.violations import BenchResult, PitViolation
from survey.plots.drawing import (
    FIG_W,
    LICENCE_COLOUR,
    Key,
    Picture,
    fmt_coord,
    fmt_number,
    legend_height,
    legend_ncol,
    nice_ticks,
)
from survey.plots.plan import _draw_blocks

KIND_COLOUR = {
    "one_wall": "#d62728",
    "steep_face": "#ff7f0e",
    "narrow_berm": "#9467bd",
    "overall_slope": "#e377c2",
    "boundary": "#b40426",
    "below_range": "#1f3fbf",
    "above_range": "#17becf",
    "out_of_order": "#8c564b",
}
KIND_SHORT = {
    "one_wall": "one wall",
    "steep_face": "face too steep",
    "narrow_berm": "berm too narrow",
    "overall_slope": "overall slope too steep",
    "boundary": "beyond the boundary",
    "below_range": "below the licensed floor",
    "above_range": "above the licensed top",
    "out_of_order": "not top-down",
}
LINE_WIDTH = {"one_wall": 6.0, "overall_slope": 2.5}  # drawn over each other on a one wall
CREST_COLOUR, TOE_COLOUR = "#333333", "#2c7fb8"
MAX_PLAN_PX = 800  # hillshade thinned to at most this many pixels a side


def _hillshade(dsm: Dsm) -> tuple[np.ndarray, tuple[float, float, float, float]]:
    step = max(1, math.ceil(max(dsm.shape) / MAX_PLAN_PX))
    z = dsm.z[::step, ::step]
    filled = np.where(np.isfinite(z), z, np.nanmin(z) if np.isfinite(z).any() else 0.0)
    shade = LightSource(azdeg=315, altdeg=45).hillshade(
        filled, vert_exag=1.0, dx=dsm.cell * step, dy=dsm.cell * step
    )
    shade = np.where(np.isfinite(z), 0.35 + 0.65 * shade, 1.0)
    half = dsm.cell / 2
    extent = (dsm.east[0] - half, dsm.east[-1] + half, dsm.north[0] - half, dsm.north[-1] + half)
    return shade, extent


def plan_png(pit: PitCheckResult) -> bytes:
    dsm, lic = pit.dsm, pit.result.licence
    shade, extent = _hillshade(dsm)
    backdrop = "DSM hillshade"
    w = extent[1] - extent[0]
    h = extent[3] - extent[2]
    axes_w = FIG_W - 1.3
    axes_h = axes_w * h / w
    kinds = sorted(
        {v.kind for v in pit.benches.violations}
        | {str(i.type) for i in [*pit.result.incidents, *pit.result.uncertain]}
        | ({"out_of_order"} if pit.out_of_order else set())
    )
    keys = [
        Key("line", LICENCE_COLOUR, "licence boundary"),
        Key("line", CREST_COLOUR, "bench crest"),
        Key("dashed", TOE_COLOUR, "bench toe"),
    ] + [Key("patch", KIND_COLOUR[k], KIND_SHORT[k], alpha=0.8) for k in kinds]
    ncol = legend_ncol([k.label for k in keys], 8, 3)
    legend_h = legend_height(len(keys), ncol, 8)
    bottom = 0.75 + legend_h
    pic = Picture(FIG_W, bottom + axes_h + 0.45)
    ax = pic.axes(0.95, bottom, axes_w, axes_h)
    # the hillshade, row 0 at the south
    if pit.ortho is not None:
        ax.imshow(pit.ortho.rgb, origin="upper", extent=pit.ortho.extent, zorder=0)
        backdrop = "orthophoto"
    else:
        ax.imshow(shade, cmap="gray", vmin=0, vmax=1, origin="lower", extent=extent, zorder=0)
    _draw_blocks(pic, ax, lic)
    for bench in pit.benches.benches:
        crest = np.array([f.crest_en for f in bench.faces])
        toe = np.array([f.toe_en for f in bench.faces])
        for line, colour, style in ((crest, CREST_COLOUR, "-"), (toe, TOE_COLOUR, "--")):
            ax.plot(*_broken(line, pit.benches), color=colour, lw=0.7, ls=style, zorder=3)
    data = ax.transData
    for inc in [*pit.result.incidents, *pit.result.uncertain]:
        _incident_box(pic, ax, inc)
    placed: list[tuple[float, float]] = []
    near = 0.03 * max(w, h)

    def label(e: float, n: float, text: str, colour: str) -> None:
        """A boxed label, stacked above labels already at about the same place."""
        below = sum(1 for pe, pn in placed if abs(pe - e) < near and abs(pn - n) < near)
        placed.append((e, n))
        pic.text(data, e, n, text, size=8, box=colour, bold=True, dy=14 * below)

    for v in pit.benches.violations:
        prof = {p.ray: p for p in pit.benches.profiles}
        pts = []
        for r in v.profiles:
            faces = prof[r].faces
            if v.kind == "overall_slope" and faces:
                pts.append(prof[r].en((faces[0].toe_s + faces[-1].crest_s) / 2))
            else:
                match = [f for f in faces if f.bench == v.bench] or faces
                if match:
                    pts.append(match[0].mid[:2])
        if pts:
            arr = np.asarray(pts)
            ax.plot(
                *_broken(arr, pit.benches),
                color=KIND_COLOUR[v.kind],
                lw=LINE_WIDTH.get(v.kind, 4.0),
                alpha=0.85,
                zorder=5 if v.kind != "overall_slope" else 4.5,
            )
        label(v.location[0], v.location[1], v.id, KIND_COLOUR[v.kind])
    for a in pit.out_of_order:
        label(a.centroid[0], a.centroid[1], a.id, KIND_COLOUR["out_of_order"])
    if pit.order is not None:
        cut = np.where(np.nan_to_num(pit.order.d) < -pit.design.analysis.min_cut_m, 1.0, np.nan)
        ax.imshow(
            cut,
            cmap="Oranges",
            vmin=0,
            vmax=1.5,
            alpha=0.45,
            origin="lower",
            extent=(
                pit.earlier.east[0] if pit.earlier else extent[0],
                pit.earlier.east[-1] if pit.earlier else extent[1],
                pit.earlier.north[0] if pit.earlier else extent[2],
                pit.earlier.north[-1] if pit.earlier else extent[3],
            ),
            zorder=1,
        )
        keys.append(Key("patch", "#f16913", "mined between the surveys", alpha=0.45))
    ax.set_xlim(extent[0], extent[1])
    ax.set_ylim(extent[2], extent[3])
    ax.set_aspect("equal")
    pic.axis_labels(
        ax,
        xticks=nice_ticks(extent[0], extent[1], 5),
        yticks=nice_ticks(extent[2], extent[3], 6),
        fmt=fmt_coord,
        xlabel="Y (easting, m)",
        ylabel="X (northing, m)",
        title=f"Plan on the {backdrop}: benches and violations",
        title_size=11,
    )
    ncol = legend_ncol([k.label for k in keys], 8, 3)
    pic.set_legend(keys, ncol, 8, legend_height(len(keys), ncol, 8) - 0.04)
    return pic.png()


def _broken(line: np.ndarray, benches: BenchResult) -> tuple[np.ndarray, np.ndarray]:
    """x, y of a polyline with NaN where neighbouring points are far apart
    (a bench interrupted along the wall)."""
    if len(line) < 2:
        return line[:, 0], line[:, 1]
    seg = np.hypot(*np.diff(line, axis=0).T)
    limit = 4 * float(np.median(seg)) + 1.0
    x, y = [line[0, 0]], [line[0, 1]]
    for k in range(1, len(line)):
        if seg[k - 1] > limit:
            x.append(np.nan)
            y.append(np.nan)
        x.append(line[k, 0])
        y.append(line[k, 1])
    return np.asarray(x), np.asarray(y)


def _incident_box(pic: Picture, ax: object, inc: Incident) -> None:
    from matplotlib.patches import Rectangle

    colour = KIND_COLOUR.get(str(inc.type), "#d62728")
    (e0, n0, _), (e1, n1, _) = inc.bbox_min, inc.bbox_max
    ax.add_patch(  # type: ignore[attr-defined]
        Rectangle((e0, n0), e1 - e0, n1 - n0, fill=False, edgecolor=colour, lw=1.6, zorder=6)
    )
    pic.text(ax.transData, e1, n1, inc.id, size=8, box=colour, bold=True)  # type: ignore[attr-defined]


def section_png(pit: PitCheckResult, v: PitViolation) -> bytes:
    """The profile through the worst place of ``v`` with the design slope
    (maximum face angle from the toe, maximum overall slope from the lowest
    toe), the maximum bench height and the licensed floor."""
    p: Profile = next(q for q in pit.benches.profiles if q.ray == v.worst_ray)
    lic: Licence = pit.result.licence
    faces = p.faces
    s_lo = max(0.0, (faces[0].toe_s if faces else 0.0) - 25.0)
    s_hi = min(float(p.s[-1]), (faces[-1].crest_s if faces else float(p.s[-1])) + 25.0)
    sel = (p.s >= s_lo) & (p.s <= s_hi)
    s, h = p.s[sel], p.h[sel]
    z_floor = min(b.z_bottom for b in lic.blocks)
    h_lo = min(float(np.nanmin(h)), z_floor) - 3
    h_hi = float(np.nanmax(h)) + 5
    width = FIG_W - 1.3
    height = min(4.0, max(2.2, width * (h_hi - h_lo) / (s_hi - s_lo)))
    keys = [
        Key("line", "black", "ground (DSM)"),
        Key("dashed", KIND_COLOUR[v.kind], f"design: {_limit_text(v)}"),
        Key("dashed", "#1f3fbf", f"licensed floor {z_floor:+g} m"),
    ]
    ncol = legend_ncol([k.label for k in keys], 8, 3)
    legend_h = legend_height(len(keys), ncol, 8)
    bottom = 0.7 + legend_h
    pic = Picture(FIG_W, bottom + height + 0.45)
    ax = pic.axes(0.95, bottom, width, height)
    ax.fill_between(s, h, h_lo, color="#d9d0c1", zorder=1)
    ax.plot(s, h, color="black", lw=1.2, zorder=3)
    ax.axhline(z_floor, color="#1f3fbf", ls="--", lw=1, zorder=2)
    d = next((f for f in faces if f.ray == v.worst_ray and f.bench == v.bench), None)
    colour = KIND_COLOUR[v.kind]
    if v.kind in ("steep_face", "one_wall") and d is not None:
        ang = d.design.max_face_angle_deg
        run = d.height_m / math.tan(math.radians(ang)) / d.cos
        ax.plot(
            [d.toe_s, d.toe_s + run], [d.toe_h, d.crest_h], color=colour, ls="--", lw=1.5, zorder=4
        )
        if v.kind == "one_wall":
            top = d.toe_h + d.design.max_bench_height_m
            ax.plot(
                [d.toe_s - 3, d.crest_s + 3], [top, top], color=colour, ls=":", lw=1.2, zorder=4
            )
    elif v.kind == "narrow_berm" and d is not None:
        ax.plot(
            [d.crest_s, d.crest_s + d.design.min_berm_width_m / d.cos],
            [d.crest_h] * 2,
            color=colour,
            ls="--",
            lw=2.5,
            zorder=4,
        )
    elif v.kind == "overall_slope" and faces:
        lo, hi = faces[0], faces[-1]
        ang = hi.design.max_overall_slope_deg
        run = (hi.crest_h - lo.toe_h) / math.tan(math.radians(ang)) / lo.cos
        ax.plot(
            [lo.toe_s, lo.toe_s + run],
            [lo.toe_h, hi.crest_h],
            color=colour,
            ls="--",
            lw=1.5,
            zorder=4,
        )
    ax.set_xlim(s_lo, s_hi)
    ax.set_ylim(h_lo, h_hi)
    if d is not None:
        label_at = (d.crest_s, d.crest_h)
    elif faces:  # overall slope: the middle of the wall
        label_at = (
            (faces[0].toe_s + faces[-1].crest_s) / 2,
            (faces[0].toe_h + faces[-1].crest_h) / 2,
        )
    else:
        label_at = (s_lo, h_hi)
    pic.text(
        ax.transData,
        *label_at,
        v.id,
        size=8,
        box=colour,
        bold=True,
        dy=6,
    )
    pic.axis_labels(
        ax,
        xticks=nice_ticks(s_lo, s_hi, 8),
        yticks=nice_ticks(h_lo, h_hi, 5),
        fmt=fmt_number,
        xlabel=f"distance from the pit floor centre along {p.theta_deg:g}° from east (m)",
        ylabel="H (m)",
        title=f"{v.id}: {KIND_SHORT[v.kind]}, profile at {p.theta_deg:g}°",
    )
    pic.set_legend(keys, ncol, 8, legend_h - 0.04)
    return pic.png()


def _limit_text(v: PitViolation) -> str:
    return {
        "one_wall": f"bench height at most {v.limit:g} m (dotted), steepest face (dashed)",
        "steep_face": f"face angle at most {v.limit:g}°",
        "narrow_berm": f"berm at least {v.limit:g} m",
        "overall_slope": f"overall slope at most {v.limit:g}°",
    }[v.kind]


def sections(pit: PitCheckResult, limit: int) -> Sequence[tuple[PitViolation, bytes]]:
    return [(v, section_png(pit, v)) for v in pit.benches.violations[:limit]]

"""The plan view of the report: licence polygons with corner numbers,
workings coloured by status, each incident boxed and the worst labelled."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.patches import Rectangle

from survey.model import F64, Incident, Licence
from survey.plots.drawing import (
    DPI,
    FIG_W,
    LICENCE_COLOUR,
    MAX_LABELS,
    PLAN_DOT_PX,
    STATUS_LABELS_WORST,
    STATUS_STYLE,
    UNCERTAIN,
    VIOLATION,
    Key,
    Picture,
    draw_points,
    fmt_coord,
    incident_label,
    legend_height,
    legend_ncol,
    nice_ticks,
    plot_text,
    status_keys,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _spread_out(ranked: Sequence[Incident], *, min_gap: float, limit: int) -> set[int]:
    """ids (``id()``) of the incidents to label: in rank order, skipping one
    whose centroid is within ``min_gap`` of an already labelled one."""
    chosen: list[Incident] = []
    for inc in ranked:
        if len(chosen) >= limit:
            break
        c = np.array(inc.centroid[:2])
        if all(np.hypot(*(c - np.array(o.centroid[:2]))) >= min_gap for o in chosen):
            chosen.append(inc)
    return {id(i) for i in chosen}


# plan layout, inches
PLAN_LEFT, PLAN_RIGHT, PLAN_TOP, PLAN_AXIS_BELOW = 1.1, 0.3, 0.45, 0.62
PLAN_ASPECT = (0.55, 1.25)  # axes height / width; a licence beyond is padded out


def _plan_window(
    licence: Licence, xyz: F64, axes_w: float
) -> tuple[tuple[float, float], tuple[float, float], float, float]:
    """x (easting) and y (northing) limits of the plan, equal scale; the
    axes height in inches for ``axes_w`` inches of width; the span of the
    licence and workings (m, the larger of east and north)."""
    es = [b.polygon_en()[:, 0] for b in licence.blocks] + [xyz[:, 0]]
    ns = [b.polygon_en()[:, 1] for b in licence.blocks] + [xyz[:, 1]]
    e_all, n_all = np.concatenate(es), np.concatenate(ns)
    e_all, n_all = e_all[np.isfinite(e_all)], n_all[np.isfinite(n_all)]
    if not len(e_all) or not len(n_all):
        e_all = n_all = np.zeros(1)
    e0, e1, n0, n1 = float(e_all.min()), float(e_all.max()), float(n_all.min()), float(n_all.max())
    span = max(e1 - e0, n1 - n0, 1.0)
    pad = 0.06 * max(span, 10.0)
    e0, e1, n0, n1 = e0 - pad, e1 + pad, n0 - pad, n1 + pad
    ratio = (n1 - n0) / (e1 - e0)
    lo, hi = PLAN_ASPECT
    if ratio > hi:  # tall: widen the window
        grow = 0.5 * ((n1 - n0) / hi - (e1 - e0))
        e0, e1, ratio = e0 - grow, e1 + grow, hi
    elif ratio < lo:  # wide: heighten it
        grow = 0.5 * ((e1 - e0) * lo - (n1 - n0))
        n0, n1, ratio = n0 - grow, n1 + grow, lo
    return (e0, e1), (n0, n1), axes_w * ratio, span


def _draw_blocks(pic: Picture, ax: Axes, licence: Licence) -> None:
    """Each block's polygon, filled lightly, with its corner numbers set
    out from the corners."""
    data = ax.transData
    for block in licence.blocks:
        poly = block.polygon_en()
        ax.add_patch(
            MplPolygon(
                poly,
                closed=True,
                facecolor=LICENCE_COLOUR,
                alpha=0.07,
                edgecolor="none",
                zorder=0,
            )
        )
        ring = np.vstack([poly, poly[:1]])
        ax.plot(ring[:, 0], ring[:, 1], color=LICENCE_COLOUR, lw=1.8, marker="o", ms=4, zorder=6)
        centre = poly.mean(axis=0)
        for k, (corner, (e, n)) in enumerate(zip(block.corners, poly, strict=True)):
            d = np.array([e, n]) - centre
            d = d / (np.hypot(*d) or 1.0)
            pic.text(
                data,
                e,
                n,
                plot_text(corner.number) or str(k + 1),
                dx=d[0] * 12,  # 12 pt out from the corner
                dy=d[1] * 12,
                ha="center",
                va="center",
                size=8,
                colour=LICENCE_COLOUR,
                bold=True,
            )


def _draw_incidents(
    pic: Picture,
    ax: Axes,
    incidents: Sequence[Incident],
    uncertain: Sequence[Incident],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    span: float,
) -> set[int]:
    """Box every incident and group; label the worst ``MAX_LABELS``
    (violations first, one per place) with an arrow towards the middle of
    the picture. Returns the ``id()`` of the labelled ones."""
    data = ax.transData
    centre_en = np.array([0.5 * (xlim[0] + xlim[1]), 0.5 * (ylim[0] + ylim[1])])
    # label the worst MAX_LABELS violations (then uncertain groups); box all
    ranked = sorted(incidents, key=lambda i: -i.max_exceedance_m) + list(uncertain)
    labelled = _spread_out(ranked, min_gap=0.05 * span, limit=MAX_LABELS)
    for k, inc in enumerate([*incidents, *uncertain]):
        colour = STATUS_STYLE[UNCERTAIN if inc.within_uncertainty else VIOLATION][0]
        (e0, n0, _), (e1, n1, _) = inc.bbox_min, inc.bbox_max
        ax.add_patch(
            Rectangle(
                (e0, n0),
                max(e1 - e0, 0.5),
                max(n1 - n0, 0.5),
                fill=False,
                edgecolor=colour,
                lw=1.2,
                ls="--",
                zorder=8,
            )
        )
        if id(inc) not in labelled:
            continue
        # put the label towards the middle of the picture, fanned out a little
        toward = centre_en - np.array(inc.centroid[:2])
        ang = np.arctan2(toward[1], toward[0]) + (k % 3 - 1) * 0.5
        dx, dy = 60 * np.cos(ang), 45 * np.sin(ang)
        ax.annotate(
            "",
            (inc.centroid[0], inc.centroid[1]),
            xytext=(dx, dy),
            textcoords="offset points",
            arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.0, "shrinkA": 0},
            zorder=9,
        )
        pic.text(
            data,
            inc.centroid[0],
            inc.centroid[1],
            incident_label(inc) if not inc.within_uncertainty else f"{inc.id} (within unc.)",
            dx=dx,
            dy=dy,
            ha="left" if dx >= 0 else "right",
            va="center",
            size=8,
            box=colour,
        )
    return labelled


def _draw_notes(pic: Picture, ax: Axes, licence: Licence, n_all_inc: int, n_labelled: int) -> None:
    """The note that not every incident is labelled, and the EPSG code and
    north arrow."""
    if n_all_inc > n_labelled:
        pic.text(
            ax.transAxes,
            0.01,
            0.99,
            f"{n_all_inc} incidents and groups, all boxed; {n_labelled} labelled "
            "(the largest, one per place); see the table",
            va="top",
            size=8,
            box="#999999",
            dx=3,
            dy=-3,
        )
    pic.text(
        ax.transAxes,
        0.99,
        0.01,
        f"EPSG:{licence.epsg}   N ↑",
        ha="right",
        va="bottom",
        size=8,
        colour="#444444",
    )


def plan_view(
    licence: Licence,
    xyz: F64,
    status: npt.NDArray[np.integer],
    incidents: Sequence[Incident],
    uncertain: Sequence[Incident] = (),
    *,
    title: str = "",
) -> bytes:
    """Plan: licence polygons with corner numbers, workings coloured by
    status, each incident labelled. Returns PNG bytes."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    axes_w = FIG_W - PLAN_LEFT - PLAN_RIGHT
    xlim, ylim, axes_h, span = _plan_window(licence, xyz, axes_w)
    block_keys = [
        Key(
            "line",
            LICENCE_COLOUR,
            f"block {plot_text(b.name) or j + 1}, {b.z_top:+g} to {b.z_bottom:+g} m",
        )
        for j, b in enumerate(licence.blocks)
    ]
    ncol = legend_ncol([k.label for k in block_keys] + STATUS_LABELS_WORST, 8, 2)
    legend_h = legend_height(len(block_keys) + len(STATUS_STYLE), ncol, 8)
    bottom = PLAN_AXIS_BELOW + legend_h
    pic = Picture(FIG_W, bottom + axes_h + PLAN_TOP)
    ax = pic.axes(PLAN_LEFT, bottom, axes_w, axes_h)

    keys = list(block_keys)
    _draw_blocks(pic, ax, licence)
    counts = draw_points(
        ax,
        xyz[:, 0],
        xyz[:, 1],
        status,
        xlim,
        ylim,
        (round(axes_w * DPI), round(axes_h * DPI)),
        PLAN_DOT_PX,
    )
    keys += status_keys(counts)
    labelled = _draw_incidents(pic, ax, incidents, uncertain, xlim, ylim, span)
    _draw_notes(pic, ax, licence, len(incidents) + len(uncertain), len(labelled))
    pic.axis_labels(
        ax,
        xticks=nice_ticks(*xlim, 5),
        yticks=nice_ticks(*ylim, 6),
        fmt=fmt_coord,
        xlabel="Y (easting, m)",
        ylabel="X (northing, m)",
        title=title or f"Licence {plot_text(licence.licence_no)}: plan view",
        title_size=11,
    )
    pic.set_legend(keys, ncol, 8, legend_h - 0.04)
    return pic.png()

"""The plan view of the report: licence polygons with corner numbers,
workings coloured by status, each incident boxed and labelled on a leader
line (incidents close together on the picture share a label; labels never
overlap: :mod:`survey.plots.labels`)."""

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
    PX_PER_PT,
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
    text_height_px,
    text_width_px,
)
from survey.plots.labels import group_nearby, place_labels

if TYPE_CHECKING:
    from matplotlib.axes import Axes


# plan layout, inches
PLAN_LEFT, PLAN_RIGHT, PLAN_TOP, PLAN_AXIS_BELOW = 1.1, 0.3, 0.45, 0.62
PLAN_ASPECT = (0.55, 1.25)  # axes height / width; a licence beyond is padded out


def _plan_window(
    licence: Licence, xyz: F64, axes_w: float
) -> tuple[tuple[float, float], tuple[float, float], float]:
    """x (easting) and y (northing) limits of the plan, equal scale, and the
    axes height in inches for ``axes_w`` inches of width."""
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
    return (e0, e1), (n0, n1), axes_w * ratio


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


#: incidents closer than this on the picture share a label (pixels)
GROUP_RADIUS_PX = 28.0
REGROUP_TRIES = 4
LABEL_SIZE_PT = 8.0
LABEL_PAD_PX = 0.25 * LABEL_SIZE_PT * PX_PER_PT + 1  # as drawing._draw_label pads a box


def _id_key(inc: Incident) -> tuple[str, int]:
    digits = "".join(ch for ch in inc.id if ch.isdigit())
    return inc.id.rstrip("0123456789"), int(digits or 0)


def _group_text(group: Sequence[Incident], *, full: bool = False) -> str:
    """A label as short as the table makes possible: the incident's id and
    largest exceedance; for a shared label the worst incident's (the leader
    points at it) and how many more the dotted box holds. ``full``: one
    incident's type and volume as well."""
    head = group[0]
    if full and len(group) == 1:
        if head.within_uncertainty:
            return f"{head.id} (within unc.) {head.max_exceedance_m:.1f} m"
        return incident_label(head)
    text = f"{head.id} {head.max_exceedance_m:.1f} m"
    if head.within_uncertainty and len(group) == 1:
        text += " (within unc.)"
    return text + (f" +{len(group) - 1} more" if len(group) > 1 else "")


def _label_box_px(text: str) -> tuple[float, float]:
    """A boxed label's width and height in pixels (as ``_draw_label``
    draws it: the text plus a quarter of the font size around it)."""
    pad = LABEL_PAD_PX
    return text_width_px(text, LABEL_SIZE_PT) + 2 * pad, text_height_px(LABEL_SIZE_PT) + 2 * pad


def _corner_label_points(ax: Axes, licence: Licence) -> F64:
    """Pixels of the corner numbers (as :func:`_draw_blocks` sets them out
    12 pt from their corners) and of the corners: labels leave them free."""
    pts = []
    for block in licence.blocks:
        poly = block.polygon_en()
        px = ax.transData.transform(poly)
        out = px - ax.transData.transform(poly.mean(axis=0))
        out /= np.maximum(np.hypot(out[:, 0], out[:, 1]), 1e-9)[:, None]
        pts += [px, px + out * 12 * PX_PER_PT]
    return np.concatenate(pts)


def _note_boxes(ax: Axes, note: str) -> list[tuple[float, float, float, float]]:
    """Pixel boxes of the corner notes (the count note at the top left, the
    EPSG code at the bottom right) that labels must leave free."""
    x0, y0, x1, y1 = ax.bbox.extents
    w, h = _label_box_px(note) if note else (0.0, 0.0)
    top_left = (x0, y1 - h - 10, x0 + w + 12, y1)
    epsg_w, epsg_h = _label_box_px("EPSG:45450   N ↑")
    return [top_left, (x1 - epsg_w - 4, y0, x1, y0 + epsg_h + 2)]


def _draw_incidents(
    pic: Picture,
    ax: Axes,
    licence: Licence,
    incidents: Sequence[Incident],
    uncertain: Sequence[Incident],
) -> str:
    """Box every incident and group; label the worst (violations first),
    incidents near one another on the picture sharing one label, each label
    on a leader line where it covers no other label or incident and
    crosses no other leader. Returns the note on what is labelled (empty
    when every incident has a label of its own)."""
    data = ax.transData
    every = [*incidents, *uncertain]
    for inc in every:
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
    if not every:
        return ""
    ranked = sorted(incidents, key=lambda i: -i.max_exceedance_m) + sorted(
        uncertain, key=lambda i: -i.max_exceedance_m
    )
    anchors = data.transform([(i.centroid[0], i.centroid[1]) for i in ranked])
    centre = data.transform(np.concatenate([b.polygon_en() for b in licence.blocks]).mean(axis=0))
    x0, y0, x1, y1 = ax.bbox.extents
    radius = GROUP_RADIUS_PX
    for _ in range(REGROUP_TRIES):  # where a label finds no room, share labels more widely
        groups = [[ranked[k] for k in g] for g in group_nearby(anchors, radius, MAX_LABELS)]
        # the full label (type and volume) when each incident has its own
        # and they all fit, else the short one (the table has the rest)
        wordings = (
            [[_group_text(g, full=True) for g in groups]] if len(groups) == len(every) else []
        )
        for texts in [*wordings, [_group_text(g) for g in groups]]:
            offsets = place_labels(
                data.transform([(g[0].centroid[0], g[0].centroid[1]) for g in groups]),
                [_label_box_px(t) for t in texts],
                px_per_pt=PX_PER_PT,
                frame=(x0 + 2, y0 + 2, x1 - 2, y1 - 2),
                avoid=_note_boxes(ax, _note(len(every), len(every))),
                keep_clear=np.concatenate([anchors, _corner_label_points(ax, licence)]),
                outward_from=(float(centre[0]), float(centre[1])),
                pad_px=LABEL_PAD_PX,
            )
            if all(off is not None for off in offsets):
                break
        if all(off is not None for off in offsets):
            break
        radius *= 1.6
    shared = any(len(g) > 1 for g in groups)
    unplaced = 0
    for group, text, off in zip(groups, texts, offsets, strict=True):
        head = group[0]
        colour = STATUS_STYLE[UNCERTAIN if head.within_uncertainty else VIOLATION][0]
        if len(group) > 1:
            lo = np.min([i.bbox_min[:2] for i in group], axis=0) - 1.0
            hi = np.max([i.bbox_max[:2] for i in group], axis=0) + 1.0
            ax.add_patch(
                Rectangle(
                    (lo[0], lo[1]),
                    hi[0] - lo[0],
                    hi[1] - lo[1],
                    fill=False,
                    edgecolor=colour,
                    lw=0.9,
                    ls=":",
                    zorder=8,
                )
            )
        if off is None:
            unplaced += len(group)
            continue
        ax.annotate(
            "",
            (head.centroid[0], head.centroid[1]),
            xytext=(off.dx, off.dy),
            textcoords="offset points",
            arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.0, "shrinkA": 0},
            zorder=9,
        )
        pic.text(
            data,
            head.centroid[0],
            head.centroid[1],
            text,
            dx=off.dx,
            dy=off.dy,
            ha=off.ha,
            va=off.va,
            size=LABEL_SIZE_PT,
            box=colour,
        )
    return _note(len(every), unplaced) if shared or unplaced else ""


def _note(n_all: int, unplaced: int) -> str:
    """What the labels leave out, for the top left corner."""
    text = f"{n_all} incidents and groups: nearby ones share a label (dotted box)"
    if unplaced:
        text += f", {unplaced} have none (no room)"
    return text + "; all in the table"


def _draw_notes(pic: Picture, ax: Axes, licence: Licence, note: str) -> None:
    """The note on what is labelled, and the EPSG code and north arrow."""
    if note:
        pic.text(
            ax.transAxes,
            0.01,
            0.99,
            note,
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
    return plan_picture(licence, xyz, status, incidents, uncertain, title=title).png()


def plan_picture(
    licence: Licence,
    xyz: F64,
    status: npt.NDArray[np.integer],
    incidents: Sequence[Incident],
    uncertain: Sequence[Incident] = (),
    *,
    title: str = "",
) -> Picture:
    """The plan view before it is rendered (its labels can be inspected)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    axes_w = FIG_W - PLAN_LEFT - PLAN_RIGHT
    xlim, ylim, axes_h = _plan_window(licence, xyz, axes_w)
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
    note = _draw_incidents(pic, ax, licence, incidents, uncertain)
    _draw_notes(pic, ax, licence, note)
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
    return pic

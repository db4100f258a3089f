"""The elevation section through one incident: where the section line
runs (:func:`section_geometry`), and the picture with the licensed limits
drawn in (:func:`elevation_section`)."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from matplotlib.patches import Rectangle
from shapely import Polygon, contains_xy

from survey.model import F64, Block, Incident, Licence, ViolationType
from survey.plots.drawing import (
    DPI,
    FIG_W,
    LICENCE_COLOUR,
    SEAM_COLOUR,
    SECTION_DOT_PX,
    STATUS_LABELS_WORST,
    STATUS_STYLE,
    UNCERTAIN,
    Key,
    Picture,
    draw_points,
    fmt_number,
    incident_label,
    legend_height,
    legend_ncol,
    nice_ticks,
    plot_text,
    status_keys,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _find_block(licence: Licence, name: str) -> Block:
    for b in licence.blocks:
        if b.name == name:
            return b
    return licence.blocks[0]


def _nearest_edge_index(block: Block, e: float, n: float) -> int:
    poly = block.polygon_en()
    a, b = poly, np.roll(poly, -1, axis=0)
    ab = b - a
    t = np.clip(((e - a[:, 0]) * ab[:, 0] + (n - a[:, 1]) * ab[:, 1]) / (ab**2).sum(1), 0, 1)
    d = np.hypot(a[:, 0] + t * ab[:, 0] - e, a[:, 1] + t * ab[:, 1] - n)
    return int(np.argmin(d))


def section_geometry(licence: Licence, inc: Incident) -> tuple[F64, F64, str]:
    """Origin (E, N) and unit direction of the section line through an
    incident, and a caption. Boundary incidents are cut perpendicular to the
    nearest edge with the origin on that edge (so the horizontal axis reads
    as distance beyond the boundary); level and seam incidents are cut along
    their longest horizontal extent through the centroid."""
    block = _find_block(licence, inc.block)
    ce, cn = inc.centroid[0], inc.centroid[1]
    if inc.type is ViolationType.BOUNDARY:
        k = None
        numbers = [c.number for c in block.corners]
        if inc.nearest_edge and inc.nearest_edge[0] in numbers:
            i0 = numbers.index(inc.nearest_edge[0])
            i1 = (i0 + 1) % len(numbers)
            if numbers[i1] == inc.nearest_edge[1]:
                k = i0
            elif numbers[(i0 - 1) % len(numbers)] == inc.nearest_edge[1]:
                k = (i0 - 1) % len(numbers)
        if k is None:
            k = _nearest_edge_index(block, ce, cn)
        poly = block.polygon_en()
        a, b = poly[k], poly[(k + 1) % len(poly)]
        ab = b - a
        t = float(np.clip(np.dot([ce, cn] - a, ab) / np.dot(ab, ab), 0, 1))
        foot = a + t * ab
        normal = np.array([ab[1], -ab[0]]) / np.hypot(*ab)
        # point the axis outwards: towards the incident's centroid
        if np.dot([ce - foot[0], cn - foot[1]], normal) < 0:
            normal = -normal
        edge = f"{block.corners[k].number}–{block.corners[(k + 1) % len(poly)].number}"
        return foot, normal, f"perpendicular to boundary edge {edge}"
    span_e = inc.bbox_max[0] - inc.bbox_min[0]
    span_n = inc.bbox_max[1] - inc.bbox_min[1]
    d = np.array([1.0, 0.0]) if span_e >= span_n else np.array([0.0, 1.0])
    return np.array([ce, cn]), d, "along the incident's longest extent, through its centroid"


def _line_crossings(block: Block, origin: F64, d: F64) -> list[tuple[float, str]]:
    """Distances along the section line where it crosses the block's
    boundary, with the crossed edge's corner numbers."""
    poly = block.polygon_en()
    out: list[tuple[float, str]] = []
    m = len(poly)
    for k in range(m):
        a, b = poly[k], poly[(k + 1) % m]
        ab = b - a
        den = d[0] * (-ab[1]) - d[1] * (-ab[0])
        if abs(den) < 1e-12:
            continue
        rhs = a - origin
        s = (rhs[0] * (-ab[1]) - rhs[1] * (-ab[0])) / den
        u = (d[0] * rhs[1] - d[1] * rhs[0]) / den
        if 0 <= u <= 1:
            out.append((float(s), f"{block.corners[k].number}–{block.corners[(k + 1) % m].number}"))
    return sorted(out)


def _edge_text(edge: str) -> str:
    """An edge's corner numbers ("14–15") if the plot font can draw them."""
    return edge if edge.replace("–", "-").isascii() else ""


def section_frame(
    licence: Licence, inc: Incident
) -> tuple[F64, F64, str, float, tuple[float, float]]:
    """Section line (origin, direction, caption as in :func:`section_geometry`),
    half width of the slab of points drawn (m) and the range along the line
    (the incident with 30 m before and 15 m after it, and for a boundary
    incident the boundary itself at 0)."""
    origin, d, how = section_geometry(licence, inc)
    perp = np.array([-d[1], d[0]])
    bb_rel = (
        np.array(
            [
                [inc.bbox_min[0], inc.bbox_min[1]],
                [inc.bbox_max[0], inc.bbox_min[1]],
                [inc.bbox_min[0], inc.bbox_max[1]],
                [inc.bbox_max[0], inc.bbox_max[1]],
            ]
        )
        - origin
    )
    t_span = float(np.ptp(bb_rel @ perp))
    half_w = float(np.clip(0.5 * t_span + 1.0, 2.0, 10.0))
    s_inc = bb_rel @ d
    s_lo, s_hi = float(s_inc.min()) - 30.0, float(s_inc.max()) + 15.0
    if inc.type is ViolationType.BOUNDARY:
        # the boundary the exceedance is measured from (at 0) is in the
        # picture, with room inside it, however far out the incident lies
        margin = max(10.0, 0.1 * (s_hi - min(s_lo, 0.0)))
        s_lo, s_hi = min(s_lo, -margin), max(s_hi, margin)
    return origin, d, how, half_w, (s_lo, s_hi)


def section_caption(licence: Licence, inc: Incident) -> str:
    """Where the section through ``inc`` runs, for the report's caption
    (the picture's own title stays short)."""
    _, _, how, half_w, _ = section_frame(licence, inc)
    return (
        f"Section {how}, through X {inc.centroid[1]:,.1f}, Y {inc.centroid[0]:,.1f}; "
        f"points within ±{half_w:.1f} m of the section line."
    )


# section layout, inches
SEC_LEFT, SEC_RIGHT, SEC_TOP, SEC_AXIS_BELOW, SEC_AXES_H = 0.85, 0.25, 0.4, 0.6, 3.3


def _seam_name(name: str, k: int) -> str:
    name = plot_text(name) or f"#{k + 1}"
    return name if "seam" in name.lower() else f"seam {name}"


def _slab(
    xyz: F64,
    status: npt.NDArray[np.integer],
    origin: F64,
    d: F64,
    half_w: float,
    s_range: tuple[float, float],
) -> tuple[F64, F64, npt.NDArray[np.integer]]:
    """Distance along the line, height and status of the points within
    ``half_w`` of the section line between ``s_range`` (those with a
    height)."""
    s_lo, s_hi = s_range
    perp = np.array([-d[1], d[0]])
    # points in the slab: a cheap box test first, then the exact one
    ends = np.array([origin + d * s_lo, origin + d * s_hi])
    e_lo, n_lo = ends.min(axis=0) - half_w
    e_hi, n_hi = ends.max(axis=0) + half_w
    near = np.flatnonzero(
        (xyz[:, 0] >= e_lo) & (xyz[:, 0] <= e_hi) & (xyz[:, 1] >= n_lo) & (xyz[:, 1] <= n_hi)
    )
    rel = xyz[near, :2] - origin
    s, t = rel @ d, rel @ perp
    keep = (np.abs(t) <= half_w) & (s >= s_lo) & (s <= s_hi)
    keep &= ~np.isnan(xyz[near, 2])  # points without a height: in the plan only
    ss, hh, st = s[keep], xyz[near[keep], 2], status[near[keep]]
    return ss, hh, st


SeamLine = tuple[str, F64, F64]


def _seam_lines(
    licence: Licence, origin: F64, d: F64, s_range: tuple[float, float]
) -> tuple[F64, list[SeamLine]]:
    """Distances along the line (200 stations) and each seam's name, roof
    and floor heights at them (seams that do not reach the line left out)."""
    s_lo, s_hi = s_range
    line_s = np.linspace(s_lo, s_hi, 200)
    line_en = origin + line_s[:, None] * d
    seam_lines = [
        (_seam_name(seam.name, k), seam.roof.height(line_en), seam.floor.height(line_en))
        for k, seam in enumerate(licence.seams)
    ]
    seam_lines = [sl for sl in seam_lines if np.isfinite(sl[1]).any() or np.isfinite(sl[2]).any()]
    return line_s, seam_lines


def _height_window(
    inc: Incident, block: Block, hh: F64, seam_lines: Sequence[SeamLine]
) -> tuple[float, float]:
    """Vertical window of the picture: the workings plus the limit this
    incident breaks."""
    # vertical window: the workings plus the limit this incident breaks
    h_lo = float(hh.min()) if len(hh) else inc.bbox_min[2]
    h_hi = float(hh.max()) if len(hh) else inc.bbox_max[2]
    if np.isnan(h_lo) or np.isnan(h_hi):  # no height surveyed: the block's range
        h_lo, h_hi = block.z_bottom, block.z_top
    if inc.type is ViolationType.ABOVE_RANGE:
        h_lo = min(h_lo, block.z_top)
    elif inc.type is ViolationType.BELOW_RANGE:
        h_hi = max(h_hi, block.z_bottom)
    if inc.type is ViolationType.OUTSIDE_SEAM:
        for _, roof_z, floor_z in seam_lines:
            zs = np.concatenate([roof_z, floor_z])
            zs = zs[np.isfinite(zs)]
            if len(zs):
                h_lo, h_hi = min(h_lo, float(zs.min())), max(h_hi, float(zs.max()))
    for z in (block.z_top, block.z_bottom):
        if h_lo - 15 <= z <= h_hi + 15:
            h_lo, h_hi = min(h_lo, z), max(h_hi, z)
    pad = max(3.0, 0.1 * (h_hi - h_lo))
    y0, y1 = h_lo - pad, h_hi + pad
    return y0, y1


def _draw_licensed_region(
    ax: Axes,
    block: Block,
    shp: Polygon,
    origin: F64,
    d: F64,
    crossings: Sequence[tuple[float, str]],
    s_range: tuple[float, float],
) -> None:
    """The licensed region in this section: the stretches of the line inside
    the polygon times the elevation range."""
    s_lo, s_hi = s_range
    # licensed region in this section: inside-polygon intervals x elevation range
    bounds = [s_lo] + [c[0] for c in crossings] + [s_hi]
    for a, b in itertools.pairwise(bounds):
        lo, hi = max(a, s_lo), min(b, s_hi)
        if hi <= lo:
            continue
        mid = origin + d * 0.5 * (lo + hi)
        if contains_xy(shp, mid[0], mid[1]):
            ax.add_patch(
                Rectangle(
                    (lo, block.z_bottom),
                    hi - lo,
                    block.z_top - block.z_bottom,
                    facecolor=LICENCE_COLOUR,
                    alpha=0.08,
                    edgecolor="none",
                    zorder=0,
                )
            )


def _draw_levels(
    pic: Picture,
    ax: Axes,
    block: Block,
    tz: float,
    s_range: tuple[float, float],
    y_range: tuple[float, float],
    crossings: Sequence[tuple[float, str]],
) -> None:
    """Licensed top and bottom with their labels (or a note when outside the
    window, on the right when a boundary's label stands at the left), and
    the height tolerance bands."""
    s_lo, s_hi = s_range
    y0, y1 = y_range
    left_edge = any(s_lo <= sc <= s_lo + 0.3 * (s_hi - s_lo) for sc, _ in crossings)
    note_x, note_ha = (0.99, "right") if left_edge else (0.01, "left")
    tol_colour = STATUS_STYLE[UNCERTAIN][0]
    for z, name in ((block.z_top, "licensed top"), (block.z_bottom, "licensed bottom")):
        ax.axhline(z, color=LICENCE_COLOUR, lw=1.6, zorder=3)
        if y0 <= z <= y1:
            low = z < y0 + 0.85 * (y1 - y0)
            pic.text(
                ax.transData,
                s_lo,
                z,
                f"{name} {z:+g} m",
                va="bottom" if low else "top",
                size=8,
                colour=LICENCE_COLOUR,
                dx=3,
                dy=1 if low else -2,
            )
        else:
            where = "above" if z > y1 else "below"
            pic.text(
                ax.transAxes,
                note_x,
                0.98 if z > y1 else 0.02,
                f"{name} {z:+g} m ({where} this window)",
                ha=note_ha,
                va="top" if z > y1 else "bottom",
                size=8,
                colour=LICENCE_COLOUR,
            )
    ax.axhspan(block.z_top, block.z_top + tz, color=tol_colour, alpha=0.12, zorder=1)
    ax.axhspan(block.z_bottom - tz, block.z_bottom, color=tol_colour, alpha=0.12, zorder=1)


def _draw_crossings(
    pic: Picture,
    ax: Axes,
    licence: Licence,
    shp: Polygon,
    origin: F64,
    d: F64,
    crossings: Sequence[tuple[float, str]],
    s_range: tuple[float, float],
) -> None:
    """Where the line crosses the boundary: the edge, its plan tolerance band
    (outwards) and its corner numbers."""
    s_lo, s_hi = s_range
    tol_colour = STATUS_STYLE[UNCERTAIN][0]
    for sc, edge in crossings:
        if s_lo <= sc <= s_hi:
            ax.axvline(sc, color=LICENCE_COLOUR, lw=1.6, zorder=3)
            probe = origin + d * (sc + 0.25)
            outward = -1.0 if contains_xy(shp, probe[0], probe[1]) else 1.0
            ax.axvspan(
                sc, sc + outward * licence.tolerance_m, alpha=0.12, color=tol_colour, zorder=1
            )
            pic.text(
                ax.get_xaxis_transform(),
                sc,
                0.98,
                f"boundary {_edge_text(edge)}",
                vertical=True,
                va="top",
                ha="right",
                size=8,
                colour=LICENCE_COLOUR,
                dx=-2,
            )


def _draw_seams(
    pic: Picture,
    ax: Axes,
    line_s: F64,
    seam_lines: Sequence[SeamLine],
    y_range: tuple[float, float],
) -> None:
    """Each licensed seam's roof (solid) and floor (dashed), filled between,
    labelled at the end of the line."""
    y0, y1 = y_range
    for name, roof_z, floor_z in seam_lines:
        ax.plot(line_s, roof_z, color=SEAM_COLOUR, lw=1.4, zorder=3)
        ax.plot(line_s, floor_z, color=SEAM_COLOUR, ls="--", lw=1.4, zorder=3)
        ax.fill_between(line_s, floor_z, roof_z, color=SEAM_COLOUR, alpha=0.12, zorder=1)
        for zs, what, va, up in ((roof_z, "roof", "bottom", 3), (floor_z, "floor", "top", -3)):
            ok = np.flatnonzero(np.isfinite(zs))
            if not len(ok):
                continue
            i = ok[-1]
            if y0 <= zs[i] <= y1:
                pic.text(
                    ax.transData,
                    line_s[i],
                    zs[i],
                    f"{name} {what}",
                    ha="right",
                    va=va,
                    size=8,
                    colour=SEAM_COLOUR,
                    dx=-3,
                    dy=up,
                )


def elevation_section(
    licence: Licence,
    inc: Incident,
    xyz: F64,
    status: npt.NDArray[np.integer],
) -> bytes:
    """Vertical section through one incident with the licensed limits drawn
    in: elevation range (top/bottom and the tolerance band), boundary
    crossings, seam roof/floor. Returns PNG bytes."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    status = np.asarray(status)
    origin, d, how, half_w, (s_lo, s_hi) = section_frame(licence, inc)
    ss, hh, st = _slab(xyz, status, origin, d, half_w, (s_lo, s_hi))
    block = _find_block(licence, inc.block)
    crossings = _line_crossings(block, origin, d)
    line_s, seam_lines = _seam_lines(licence, origin, d, (s_lo, s_hi))
    y0, y1 = _height_window(inc, block, hh, seam_lines)

    tz, tol_colour = licence.tolerance_z_m, STATUS_STYLE[UNCERTAIN][0]
    keys = [
        Key("patch", LICENCE_COLOUR, "licensed extent", 0.15),
        Key("patch", tol_colour, f"tolerance ±{licence.tolerance_m:g} m / ±{tz:g} m", 0.25),
    ]
    if seam_lines:
        keys.append(Key("patch", SEAM_COLOUR, "licensed seam", 0.2))
    ncol = legend_ncol([k.label for k in keys] + STATUS_LABELS_WORST, 8, 3)
    legend_h = legend_height(len(keys) + len(STATUS_STYLE), ncol, 8)
    bottom = SEC_AXIS_BELOW + legend_h
    axes_w = FIG_W - SEC_LEFT - SEC_RIGHT
    pic = Picture(FIG_W, bottom + SEC_AXES_H + SEC_TOP)
    ax = pic.axes(SEC_LEFT, bottom, axes_w, SEC_AXES_H)

    shp = Polygon(block.polygon_en())
    _draw_licensed_region(ax, block, shp, origin, d, crossings, (s_lo, s_hi))
    _draw_levels(pic, ax, block, tz, (s_lo, s_hi), (y0, y1), crossings)
    _draw_crossings(pic, ax, licence, shp, origin, d, crossings, (s_lo, s_hi))
    _draw_seams(pic, ax, line_s, seam_lines, (y0, y1))
    counts = draw_points(
        ax,
        ss,
        hh,
        st,
        (s_lo, s_hi),
        (y0, y1),
        (round(axes_w * DPI), round(SEC_AXES_H * DPI)),
        SECTION_DOT_PX,
    )

    where = (
        f"across edge {_edge_text(how.rsplit(' ', 1)[-1])}"
        if inc.type is ViolationType.BOUNDARY
        else "along its longest extent"
    )
    pic.axis_labels(
        ax,
        xticks=nice_ticks(s_lo, s_hi, 7),
        yticks=nice_ticks(y0, y1, 6),
        fmt=fmt_number,
        xlabel=(
            "distance beyond the boundary along the section (m; negative = inside)"
            if inc.type is ViolationType.BOUNDARY
            else "distance along the section from the incident centroid (m)"
        ),
        ylabel="H (elevation, m, 1985 datum)",
        title=f"{incident_label(inc)}: section {where}",
    )
    pic.set_legend(keys + status_keys(counts), ncol, 8, legend_h - 0.04)
    return pic.png()

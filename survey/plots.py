"""Pictures for the survey report: a plan view and an elevation section
through each incident. Each function returns PNG bytes.

Inputs are the licence, the incidents and a set of surveyed points with a
status per point:

* ``xyz``: (n, 3) float64 (easting, northing, height);
* ``status``: (n,) integer, :data:`COMPLIANT`, :data:`UNCERTAIN` (beyond a
  limit but within survey uncertainty) or :data:`VIOLATION`.

Axes follow the Chinese survey convention the licence uses: the plan's
horizontal axis is Y (easting), the vertical axis X (northing), equal scale.
Matplotlib is used through its object API (no pyplot state), so the
functions are safe to call from any thread.
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator
from shapely import Polygon, contains_xy

from survey.model import F64, Block, Incident, Licence, ViolationType

COMPLIANT = 0
UNCERTAIN = 1
VIOLATION = 2

STATUS_STYLE: dict[int, tuple[str, str]] = {
    COMPLIANT: ("#7f8fa6", "compliant"),
    UNCERTAIN: ("#f39c12", "within survey uncertainty"),
    VIOLATION: ("#d62728", "violation"),
}
LICENCE_COLOUR = "#1a7f37"
SEAM_COLOUR = "#8c564b"
MAX_PLOT_POINTS = 60_000
MAX_LABELS = 12  # incident labels on the plan; more would hide the workings

_coord_fmt = FuncFormatter(lambda v, _pos: f"{v:,.0f}".replace(",", " "))


def plot_text(text: str) -> str:
    """``text`` if the plot font can draw it, else "" (no CJK font is
    assumed on the machine; the HTML report carries the full names)."""
    return text if text.isascii() else ""


def _png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _thin(n: int, limit: int, seed: int = 0) -> npt.NDArray[np.intp]:
    """Indices of at most ``limit`` of ``n`` items (a stable random subset)."""
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=limit, replace=False))


def _scatter_by_status(
    ax: object, u: F64, v: F64, status: npt.NDArray[np.integer], size: float
) -> None:
    for code in (COMPLIANT, UNCERTAIN, VIOLATION):
        sel = status == code
        colour, label = STATUS_STYLE[code]
        n = int(sel.sum())
        ax.scatter(  # type: ignore[attr-defined]
            u[sel],
            v[sel],
            s=size if code == COMPLIANT else size * 2.5,
            c=colour,
            label=f"{label} ({n:,} pts shown)" if n else f"{label} (none)",
            linewidths=0,
            rasterized=True,
            zorder=2 + code,
        )


def _incident_label(inc: Incident) -> str:
    kind = {
        ViolationType.BOUNDARY: "beyond boundary",
        ViolationType.ABOVE_RANGE: "above range",
        ViolationType.BELOW_RANGE: "below range",
        ViolationType.OUTSIDE_SEAM: "outside seam",
    }[inc.type]
    return f"{inc.id} {kind} {inc.max_exceedance_m:.1f} m, {inc.volume_m3:,.0f} m³"


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
    fig = Figure(figsize=(9, 8.5))
    ax = fig.add_subplot(1, 1, 1)
    idx = _thin(len(xyz), MAX_PLOT_POINTS)
    # keep every violating point visible even when thinning
    if len(idx) < len(xyz):
        extra = np.flatnonzero(status != COMPLIANT)
        extra = extra[_thin(len(extra), MAX_PLOT_POINTS // 2, seed=1)]
        idx = np.union1d(idx, extra)
    pts, st = xyz[idx], np.asarray(status)[idx]

    all_e: list[F64] = [pts[:, 0]]
    all_n: list[F64] = [pts[:, 1]]
    for block in licence.blocks:
        poly = block.polygon_en()
        all_e.append(poly[:, 0])
        all_n.append(poly[:, 1])
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
        ax.plot(
            ring[:, 0],
            ring[:, 1],
            color=LICENCE_COLOUR,
            lw=1.8,
            zorder=1,
            label=f"licence block {block.name} ({block.z_top:+g} m to {block.z_bottom:+g} m)",
        )
        centre = poly.mean(axis=0)
        for corner, (e, n) in zip(block.corners, poly, strict=True):
            d = np.array([e, n]) - centre
            d = d / (np.hypot(*d) or 1.0)
            ax.plot([e], [n], "o", color=LICENCE_COLOUR, ms=4, zorder=6)
            ax.annotate(
                corner.number,
                (e, n),
                xytext=(d[0] * 12, d[1] * 12),
                textcoords="offset points",
                ha="center",
                va="center",
                fontsize=8,
                color=LICENCE_COLOUR,
                fontweight="bold",
                zorder=7,
            )
    _scatter_by_status(ax, pts[:, 0], pts[:, 1], st, size=1.5)

    e_all, n_all = np.concatenate(all_e), np.concatenate(all_n)
    centre_en = np.array([e_all.mean(), n_all.mean()]) if len(e_all) else np.zeros(2)
    # label the worst MAX_LABELS violations (then uncertain groups); box all
    ranked = sorted(incidents, key=lambda i: -i.max_exceedance_m) + list(uncertain)
    span = max(float(np.ptp(np.concatenate(all_e))), float(np.ptp(np.concatenate(all_n))), 1.0)
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
            _incident_label(inc) if not inc.within_uncertainty else f"{inc.id} (within unc.)",
            (inc.centroid[0], inc.centroid[1]),
            xytext=(dx, dy),
            textcoords="offset points",
            ha="left" if dx >= 0 else "right",
            fontsize=8,
            color="black",
            bbox={"boxstyle": "round,pad=0.25", "fc": "white", "ec": colour, "alpha": 0.9},
            arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.0},
            zorder=9,
        )

    if len(e_all):
        pad = 0.06 * max(np.ptp(e_all), np.ptp(n_all), 10.0)
        ax.set_xlim(e_all.min() - pad, e_all.max() + pad)
        ax.set_ylim(n_all.min() - pad, n_all.max() + pad)
    n_all_inc = len(incidents) + len(uncertain)
    if n_all_inc > len(labelled):
        ax.text(
            0.01,
            0.99,
            f"{n_all_inc} incidents and groups, all boxed; {len(labelled)} labelled "
            "(the largest, one per place); see the table",
            transform=ax.transAxes,
            va="top",
            fontsize=8,
            bbox={"fc": "white", "ec": "#999", "alpha": 0.9},
        )
    ax.set_aspect("equal", adjustable="box")
    ax.set_xlabel("Y (easting, m)")
    ax.set_ylabel("X (northing, m)")
    ax.xaxis.set_major_formatter(_coord_fmt)
    ax.yaxis.set_major_formatter(_coord_fmt)
    ax.xaxis.set_major_locator(MaxNLocator(6))
    ax.tick_params(axis="x", labelrotation=20)
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.set_title(
        title or f"{plot_text(licence.mine_name)} licence {licence.licence_no} — plan view"
    )
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.1),
        ncol=2,
        fontsize=8,
        markerscale=4,
        frameon=False,
    )
    ax.text(
        0.99,
        0.01,
        f"EPSG:{licence.epsg}   N ↑",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        fontsize=8,
        color="#444",
    )
    return _png(fig)


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


def elevation_section(
    licence: Licence,
    inc: Incident,
    xyz: F64,
    status: npt.NDArray[np.integer],
) -> bytes:
    """Vertical section through one incident with the licensed limits drawn
    in: elevation range (top/bottom and the tolerance band), boundary
    crossings, seam roof/floor. Returns PNG bytes."""
    origin, d, how = section_geometry(licence, inc)
    perp = np.array([-d[1], d[0]])
    rel = xyz[:, :2] - origin
    s = rel @ d
    t = rel @ perp
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
    sel = (np.abs(t) <= half_w) & (s >= s_lo) & (s <= s_hi)
    idx = np.flatnonzero(sel)
    idx = idx[_thin(len(idx), MAX_PLOT_POINTS)]
    ss, hh, st = s[idx], xyz[idx, 2], np.asarray(status)[idx]

    fig = Figure(figsize=(9, 5))
    ax = fig.add_subplot(1, 1, 1)
    block = _find_block(licence, inc.block)
    crossings = _line_crossings(block, origin, d)
    # licensed region in this section: inside-polygon intervals x elevation range
    bounds = [s_lo] + [c[0] for c in crossings] + [s_hi]
    shp = Polygon(block.polygon_en())
    first = True
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
                    label="licensed extent" if first else None,
                    zorder=0,
                )
            )
            first = False
    line_s = np.linspace(s_lo, s_hi, 200)
    line_en = origin + line_s[:, None] * d
    seam_lines = [
        (seam.name, seam.roof.height(line_en), seam.floor.height(line_en)) for seam in licence.seams
    ]
    seam_lines = [sl for sl in seam_lines if np.isfinite(sl[1]).any() or np.isfinite(sl[2]).any()]
    # vertical window: the workings plus the limit this incident breaks
    h_lo = float(hh.min()) if len(hh) else inc.bbox_min[2]
    h_hi = float(hh.max()) if len(hh) else inc.bbox_max[2]
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
    ax.set_ylim(h_lo - pad, h_hi + pad)
    ax.set_autoscaley_on(False)
    ax.set_xlim(s_lo, s_hi)
    tz = licence.tolerance_z_m
    y0, y1 = ax.get_ylim()
    for z, name in ((block.z_top, "licensed top"), (block.z_bottom, "licensed bottom")):
        ax.axhline(z, color=LICENCE_COLOUR, lw=1.6, zorder=1)
        if y0 <= z <= y1:
            ax.text(s_lo, z, f" {name} {z:+g} m", va="bottom", fontsize=8, color=LICENCE_COLOUR)
        else:
            where = "above" if z > y1 else "below"
            ax.text(
                0.01,
                0.98 if z > y1 else 0.02,
                f"{name} {z:+g} m ({where} this window)",
                transform=ax.transAxes,
                va="top" if z > y1 else "bottom",
                fontsize=8,
                color=LICENCE_COLOUR,
            )
    ax.axhspan(block.z_top, block.z_top + tz, color=STATUS_STYLE[UNCERTAIN][0], alpha=0.12)
    ax.axhspan(block.z_bottom - tz, block.z_bottom, color=STATUS_STYLE[UNCERTAIN][0], alpha=0.12)
    for sc, edge in crossings:
        if s_lo <= sc <= s_hi:
            ax.axvline(sc, color=LICENCE_COLOUR, lw=1.6, ls="-", zorder=1)
            probe = origin + d * (sc + 0.25)
            outward = -1.0 if contains_xy(shp, probe[0], probe[1]) else 1.0
            ax.axvspan(
                sc, sc + outward * licence.tolerance_m, alpha=0.12, color=STATUS_STYLE[UNCERTAIN][0]
            )
            ax.text(
                sc,
                1.0,
                f"boundary {edge}",
                rotation=90,
                va="top",
                ha="right",
                fontsize=8,
                color=LICENCE_COLOUR,
                transform=ax.get_xaxis_transform(),
            )
    for seam, roof_z, floor_z in seam_lines:
        ax.plot(line_s, roof_z, color=SEAM_COLOUR, lw=1.4, label=f"seam {seam} roof")
        ax.plot(line_s, floor_z, color=SEAM_COLOUR, ls="--", lw=1.4, label=f"seam {seam} floor")
        ax.fill_between(
            line_s, floor_z, roof_z, color=SEAM_COLOUR, alpha=0.12, label=f"seam {seam} (licensed)"
        )
    _scatter_by_status(ax, ss, hh, st, size=3)

    if inc.type is ViolationType.BOUNDARY:
        ax.set_xlabel("distance beyond the boundary along the section (m; negative = inside)")
    else:
        ax.set_xlabel("distance along the section from the incident centroid (m)")
    ax.set_ylabel("H (elevation, m, 1985 datum)")
    ax.grid(True, lw=0.4, alpha=0.5)
    ax.set_title(
        f"{_incident_label(inc)}\nsection {how}; "
        f"through X {inc.centroid[1]:,.1f}, Y {inc.centroid[0]:,.1f}; "
        f"points within ±{half_w:.1f} m",
        fontsize=9,
    )
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.14),
        ncol=3,
        fontsize=7,
        markerscale=3,
        frameon=False,
    )
    return _png(fig)

"""Pictures for the survey report: a plan view and an elevation section
through each incident. Each function returns PNG bytes.

Inputs are the licence, the incidents and a set of surveyed points with a
status per point:

* ``xyz``: (n, 3) float64 (easting, northing, height);
* ``status``: (n,) integer, :data:`COMPLIANT`, :data:`UNCERTAIN` (beyond a
  limit but within survey uncertainty) or :data:`VIOLATION`.

Axes follow the Chinese survey convention the licence uses: the plan's
horizontal axis is Y (easting), the vertical axis X (northing), equal scale.

Drawing is kept cheap (the report must not cost much next to the check;
about 30-40 ms a picture):

* the points are not drawn as markers but binned into an RGBA image with
  one cell per output pixel (a violating point wins its pixel over an
  uncertain one, an uncertain one over a compliant one), put 1:1 into the
  axes (no resampling); every point given is shown;
* each figure's layout (margins, legend strip, plan aspect) is computed up
  front in inches, so the figure is drawn once, on the Agg canvas;
* matplotlib draws the geometry only (polygons, lines, spans, arrows, grid
  and tick marks as line collections, no Tick objects); all text (tick
  labels, titles, corner numbers, incident labels, legend) is drawn by PIL
  over the finished drawing, in the same DejaVu font: matplotlib 3.11 lays
  out and rasterises text glyph by glyph in Python, ~0.1 ms a character;
* the PNG is written here (no row filters, zlib level 3): PIL tries every
  filter on every row, 2-3x the time for these flat-coloured pictures.

Only :class:`matplotlib.figure.Figure` and the Agg canvas are used (no
pyplot state, no backend selection), so the functions are safe to call from
any thread (the PIL font objects are shared under a lock) and importing
this module does not import pyplot. Output is deterministic: same inputs,
same bytes.
"""

from __future__ import annotations

import functools
import itertools
import math
import struct
import threading
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib.artist import Artist
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.patches import Polygon as MplPolygon
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import IdentityTransform
from PIL import Image, ImageColor, ImageDraw, ImageFont
from shapely import Polygon, contains_xy

from survey.model import F64, Block, Incident, Licence, ViolationType

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.transforms import Transform

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
GRID_COLOUR = "#d8d8d8"  # matplotlib's #b0b0b0 at alpha 0.5
MAX_LABELS = 12  # incident labels on the plan; more would hide the workings

DPI = 100
FIG_W = 8.2  # inches: 820 px wide pictures
PNG_COMPRESS_LEVEL = 3  # zlib level: 6 costs twice the time for ~15 % less
# size of the square drawn per point, in pixels, by status: a violating
# point stays visible next to compliant ones
PLAN_DOT_PX = {COMPLIANT: 2, UNCERTAIN: 3, VIOLATION: 3}
SECTION_DOT_PX = {COMPLIANT: 2, UNCERTAIN: 3, VIOLATION: 4}


def plot_text(text: str) -> str:
    """``text`` if the plot font can draw it, else "" (no CJK font is
    assumed on the machine; the HTML report carries the full names)."""
    return text if text.isascii() else ""


def _dilate(mask: npt.NDArray[np.bool_], size: int) -> npt.NDArray[np.bool_]:
    """``mask`` grown to a ``size`` x ``size`` square around every set cell."""
    lo = -((size - 1) // 2)
    out = mask
    for axis in (0, 1):
        src, out = out, out.copy()
        n = src.shape[axis]
        for k in range(lo, lo + size):
            if k == 0 or abs(k) >= n:
                continue
            dst_sl = [slice(None), slice(None)]
            src_sl = [slice(None), slice(None)]
            if k > 0:
                dst_sl[axis], src_sl[axis] = slice(k, None), slice(None, n - k)
            else:
                dst_sl[axis], src_sl[axis] = slice(None, n + k), slice(-k, None)
            out[tuple(dst_sl)] |= src[tuple(src_sl)]
    return out


def _status_image(
    u: F64,
    v: F64,
    status: npt.NDArray[np.integer],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    shape: tuple[int, int],
    dot_px: dict[int, int],
) -> tuple[npt.NDArray[np.uint8], dict[int, int]]:
    """RGBA image (rows upwards) of the points binned into ``shape``
    (rows, cols) cells over ``xlim`` x ``ylim``, coloured by status (the
    worse status wins a cell), transparent elsewhere; and the number of
    points of each status inside the window."""
    h, w = shape
    img = np.zeros((h, w, 4), dtype=np.uint8)
    counts = dict.fromkeys(STATUS_STYLE, 0)
    if len(u) == 0 or h <= 0 or w <= 0:
        return img, counts
    col = np.floor((u - xlim[0]) * (w / (xlim[1] - xlim[0])))
    row = np.floor((v - ylim[0]) * (h / (ylim[1] - ylim[0])))
    ok = (col >= 0) & (col < w) & (row >= 0) & (row < h)
    cell = row[ok].astype(np.intp) * w + col[ok].astype(np.intp)
    st = np.asarray(status)[ok]
    for code in (COMPLIANT, UNCERTAIN, VIOLATION):  # worse statuses painted last
        cells = cell[st == code]
        counts[code] = len(cells)
        if not len(cells):
            continue
        hit = np.zeros(h * w, dtype=bool)
        hit[cells] = True
        rgba = np.array([*_rgb(STATUS_STYLE[code][0]), 255], dtype=np.uint8)
        img[_dilate(hit.reshape(h, w), dot_px[code])] = rgba
    return img, counts


class _Raster(Artist):
    """An RGBA image (rows upwards) made at its axes' size in pixels, put
    1:1 at the axes' lower left corner (no resampling, unlike ``imshow``)."""

    def __init__(self, ax: Axes, rgba: npt.NDArray[np.uint8]) -> None:
        super().__init__()
        self._box = ax.bbox
        self._rgba = np.ascontiguousarray(rgba)  # Agg takes rows upwards too

    def draw(self, renderer: RendererBase) -> None:
        if not self.get_visible():
            return
        gc = renderer.new_gc()
        gc.set_clip_rectangle(self._box)
        renderer.draw_image(gc, round(self._box.x0), round(self._box.y0), self._rgba)
        gc.restore()
        self.stale = False


def _draw_points(
    ax: Axes,
    u: F64,
    v: F64,
    status: npt.NDArray[np.integer],
    xlim: tuple[float, float],
    ylim: tuple[float, float],
    size_px: tuple[int, int],
    dot_px: dict[int, int],
) -> dict[int, int]:
    """The points as one image filling the axes (``size_px`` = its
    (width, height) in pixels: one cell is one output pixel); sets the
    axes' limits to ``xlim`` and ``ylim``."""
    img, counts = _status_image(u, v, status, xlim, ylim, (size_px[1], size_px[0]), dot_px)
    raster = _Raster(ax, img)
    raster.set_zorder(2)
    ax.add_artist(raster)
    ax.set_xlim(*xlim)
    ax.set_ylim(*ylim)
    return counts


_STATUS_LABELS_WORST = [f"{label} (none)" for _, label in STATUS_STYLE.values()]


def _status_keys(counts: dict[int, int]) -> list[_Key]:
    return [
        _Key("square", colour, label if counts[code] else f"{label} (none)")
        for code, (colour, label) in STATUS_STYLE.items()
    ]


LEGEND_SWATCH_PX, LEGEND_GAP_PX, LEGEND_SPACING_PX = 18, 6, 22


def _legend_ncol(labels: Sequence[str], size: float, max_ncol: int) -> int:
    """The most columns (up to ``max_ncol``) in which a legend with these
    labels fits across the picture."""
    widths = [LEGEND_SWATCH_PX + LEGEND_GAP_PX + _text_width_px(t, size) for t in labels]
    for ncol in range(max(1, min(max_ncol, len(widths))), 1, -1):
        cols = [max(widths[c::ncol]) for c in range(ncol)]
        if sum(cols) + LEGEND_SPACING_PX * (ncol - 1) <= FIG_W * DPI - 20:
            return ncol
    return 1


def _legend_height(n_entries: int, ncol: int, fontsize: float) -> float:
    """Inches a legend of ``n_entries`` in ``ncol`` columns needs."""
    rows = math.ceil(n_entries / ncol)
    return 0.12 + rows * fontsize * 1.75 / 72


# --- text ------------------------------------------------------------------
# Matplotlib 3.11 lays out and rasterises text glyph by glyph in Python
# (~0.1 ms per character here, most of a figure's drawing time), so the
# labels are drawn by PIL (one C call per string, same DejaVu font) over the
# finished Agg drawing; matplotlib draws the geometry only. Text positions
# are given in any matplotlib transform and resolved after the layout is
# final (fixed axes boxes and limits: nothing moves at draw time).

PX_PER_PT = DPI / 72
TICK_GAP_PT = 7.0  # tick length 3.5 pt + label pad 3.5 pt (matplotlib's defaults)
_H_ANCHOR = {"left": "l", "center": "m", "right": "r"}
_V_ANCHOR = {"top": "a", "center": "m", "bottom": "d", "baseline": "s"}
_text_lock = threading.Lock()  # PIL font objects are shared between threads


@functools.lru_cache(maxsize=16)
def _font(size_pt: float, bold: bool = False) -> ImageFont.FreeTypeFont:
    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    path = Path(matplotlib.get_data_path(), "fonts", "ttf", name)
    return ImageFont.truetype(str(path), size_pt * PX_PER_PT, layout_engine=ImageFont.Layout.BASIC)


def _text_width_px(text: str, size_pt: float, bold: bool = False) -> float:
    with _text_lock:
        return float(_font(size_pt, bold).getlength(text))


def _text_height_px(size_pt: float) -> float:
    with _text_lock:
        ascent, descent = _font(size_pt).getmetrics()
    return float(ascent + descent)


def _rgb(colour: str) -> tuple[int, int, int]:
    r, g, b = ImageColor.getrgb(colour)[:3]
    return r, g, b


def _over_white(colour: str, alpha: float) -> tuple[int, int, int]:
    r, g, b = _rgb(colour)
    return tuple(round(255 + alpha * (c - 255)) for c in (r, g, b))  # type: ignore[return-value]


@dataclass(frozen=True)
class _Label:
    transform: Transform | None  # None: figure pixels from the lower left
    x: float
    y: float
    text: str
    size: float = 8.0  # points
    colour: str = "black"
    ha: str = "left"
    va: str = "baseline"
    bold: bool = False
    vertical: bool = False  # rotated 90°, reading upwards
    box: str | None = None  # edge colour of a white box behind the text
    dx: float = 0.0  # offset in points
    dy: float = 0.0


@dataclass(frozen=True)
class _Key:
    """A legend entry: ``kind`` "square" (a status), "patch" (an area,
    ``alpha`` over white), "line" or "dashed"."""

    kind: str
    colour: str
    label: str
    alpha: float = 1.0


class _Picture:
    """A figure whose labels are drawn by PIL; :meth:`png` renders it."""

    def __init__(self, width_in: float, height_in: float) -> None:
        self.fig = Figure(figsize=(width_in, height_in), dpi=DPI)
        self.labels: list[_Label] = []
        self.legend: tuple[list[_Key], int, float, float] | None = None

    def axes(self, left: float, bottom: float, width: float, height: float) -> Axes:
        """Axes placed in inches from the figure's lower left corner; tick
        labels are left to :meth:`axis_labels`."""
        fw, fh = self.fig.get_size_inches()
        ax = self.fig.add_axes((left / fw, bottom / fh, width / fw, height / fh))
        ax.tick_params(labelbottom=False, labelleft=False)
        return ax

    def text(self, transform: Transform | None, x: float, y: float, text: str, **kw: Any) -> None:
        if text:
            self.labels.append(_Label(transform, x, y, text, **kw))

    def axis_labels(
        self,
        ax: Axes,
        *,
        xticks: Sequence[float],
        yticks: Sequence[float],
        fmt: Callable[[float], str],
        xlabel: str,
        ylabel: str,
        title: str,
        title_size: float = 10,
        tick_size: float = 9,
    ) -> None:
        """Ticks at ``xticks``/``yticks`` (within the limits) with labels,
        axis labels and a title, where matplotlib would put them."""
        (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
        xs = [v for v in xticks if x0 <= v <= x1]
        ys = [v for v in yticks if y0 <= v <= y1]
        # grid lines and tick marks as two line collections: matplotlib's
        # Tick objects cost ~1 ms each to make
        ax.set_xticks([])
        ax.set_yticks([])
        grid = [((v, y0), (v, y1)) for v in xs] + [((x0, v), (x1, v)) for v in ys]
        ax.add_collection(
            LineCollection(grid, colors=GRID_COLOUR, linewidths=0.4, zorder=1.5), autolim=False
        )
        (bx, by), _ = ax.bbox.get_points()
        tick = 3.5 * PX_PER_PT
        marks = [
            ((c, by), (c, by - tick))
            for c in (
                math.floor(p) + 0.5 for p in ax.transData.transform([(v, y0) for v in xs])[:, 0]
            )
        ] + [
            ((bx, r), (bx - tick, r))
            for r in (
                math.floor(p) + 0.5 for p in ax.transData.transform([(x0, v) for v in ys])[:, 1]
            )
        ]
        self.fig.add_artist(
            LineCollection(marks, colors="black", linewidths=0.8, transform=IdentityTransform())
        )
        xt, yt = ax.get_xaxis_transform(), ax.get_yaxis_transform()
        for v in xs:
            self.text(xt, v, 0, fmt(v), size=tick_size, ha="center", va="top", dy=-TICK_GAP_PT)
        widths = [0.0]
        for v in ys:
            s = fmt(v)
            widths.append(_text_width_px(s, tick_size))
            self.text(yt, 0, v, s, size=tick_size, ha="right", va="center", dx=-TICK_GAP_PT)
        below = TICK_GAP_PT + _text_height_px(tick_size) / PX_PER_PT + 4
        self.text(ax.transAxes, 0.5, 0, xlabel, size=10, ha="center", va="top", dy=-below)
        beside = TICK_GAP_PT + max(widths) / PX_PER_PT + 4
        self.text(
            ax.transAxes,
            0,
            0.5,
            ylabel,
            size=10,
            ha="right",
            va="center",
            vertical=True,
            dx=-beside,
        )
        self.text(ax.transAxes, 0.5, 1, title, size=title_size, ha="center", va="bottom", dy=6)

    def set_legend(self, keys: list[_Key], ncol: int, size: float, top_in: float) -> None:
        """A legend centred under the axes, its top ``top_in`` inches above
        the bottom of the figure."""
        self.legend = (keys, ncol, size, top_in)

    def png(self) -> bytes:
        """Draw once on an Agg canvas, the labels over it; RGB PNG bytes
        (deterministic: no metadata, fixed compression)."""
        canvas = FigureCanvasAgg(self.fig)
        canvas.draw()
        w, h = canvas.get_width_height()
        rgba = Image.frombuffer("RGBA", (w, h), canvas.buffer_rgba(), "raw", "RGBA", 0, 1)
        img = rgba.convert("RGB")
        with _text_lock:
            draw = ImageDraw.Draw(img)
            for lab in self.labels:
                x, y = (lab.x, lab.y)
                if lab.transform is not None:
                    x, y = lab.transform.transform((x, y))
                _draw_label(img, draw, x + lab.dx * PX_PER_PT, h - y - lab.dy * PX_PER_PT, lab)
            if self.legend is not None:
                _draw_legend(draw, w, h, *self.legend)
        return _encode_png(np.asarray(img))


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _encode_png(rgb: npt.NDArray[np.uint8]) -> bytes:
    """8-bit RGB PNG of an (h, w, 3) array: no row filters, zlib level
    :data:`PNG_COMPRESS_LEVEL`, no metadata. (PIL tries every row filter,
    which costs 2-3x the time for these flat-coloured pictures.)"""
    h, w, _ = rgb.shape
    raw = np.zeros((h, 3 * w + 1), dtype=np.uint8)  # each row: filter type 0, then pixels
    raw[:, 1:] = rgb.reshape(h, 3 * w)
    header = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", zlib.compress(raw.tobytes(), PNG_COMPRESS_LEVEL))
        + _png_chunk(b"IEND", b"")
    )


def _draw_label(
    img: Image.Image, draw: ImageDraw.ImageDraw, x: float, y: float, lab: _Label
) -> None:
    """``lab`` at (x, y) in image pixels (y downwards)."""
    font = _font(lab.size, lab.bold)
    if not lab.vertical:
        anchor = _H_ANCHOR[lab.ha] + _V_ANCHOR[lab.va]
        if lab.box is not None:
            left, top, right, bottom = draw.textbbox((x, y), lab.text, font=font, anchor=anchor)
            pad = 0.25 * lab.size * PX_PER_PT + 1
            draw.rounded_rectangle(
                (left - pad, top - pad, right + pad, bottom + pad),
                radius=pad,
                fill=(255, 255, 255),
                outline=_rgb(lab.box),
                width=1,
            )
        draw.text((x, y), lab.text, fill=_rgb(lab.colour), font=font, anchor=anchor)
        return
    ascent, descent = font.getmetrics()
    mask = Image.new("L", (math.ceil(font.getlength(lab.text)) + 2, ascent + descent))
    ImageDraw.Draw(mask).text((1, ascent), lab.text, fill=255, font=font, anchor="ls")
    mask = mask.transpose(Image.Transpose.ROTATE_90)
    bw, bh = mask.size
    x0 = round(x - {"left": 0.0, "center": bw / 2, "right": float(bw)}[lab.ha])
    y0 = round(y - {"top": 0.0, "center": bh / 2}.get(lab.va, float(bh)))
    img.paste(_rgb(lab.colour), (x0, y0, x0 + bw, y0 + bh), mask)


def _draw_legend(
    draw: ImageDraw.ImageDraw,
    w: int,
    h: int,
    keys: list[_Key],
    ncol: int,
    size: float,
    top_in: float,
) -> None:
    font = _font(size)
    swatch, gap, spacing = LEGEND_SWATCH_PX, LEGEND_GAP_PX, LEGEND_SPACING_PX
    ncol = max(1, min(ncol, len(keys)))
    col_w = [
        max(swatch + gap + font.getlength(k.label) for k in keys[c::ncol]) for c in range(ncol)
    ]
    row_h = size * 1.75 * PX_PER_PT
    x = (w - sum(col_w) - spacing * (ncol - 1)) / 2
    col_x = [x + sum(col_w[:c]) + spacing * c for c in range(ncol)]
    top = h - top_in * DPI
    for i, key in enumerate(keys):
        x0 = col_x[i % ncol]
        yc = top + (i // ncol + 0.5) * row_h
        rgb = _over_white(key.colour, key.alpha)
        if key.kind == "square":
            draw.rectangle((x0 + 5, yc - 4, x0 + 12, yc + 3), fill=rgb)
        elif key.kind == "patch":
            draw.rectangle((x0, yc - 5, x0 + swatch - 1, yc + 4), fill=rgb)
        elif key.kind == "dashed":
            for s in range(0, swatch, 6):
                draw.line((x0 + s, yc, x0 + min(s + 3, swatch - 1), yc), fill=rgb, width=2)
        else:
            draw.line((x0, yc, x0 + swatch - 1, yc), fill=rgb, width=2)
        draw.text((x0 + swatch + gap, yc), key.label, fill=(0, 0, 0), font=font, anchor="lm")


def _fmt_number(v: float) -> str:
    s = f"{v:.6g}"
    return "0" if s in ("-0", "0") else s.replace("-", "−")


def _fmt_coord(v: float) -> str:
    return f"{v:,.0f}".replace(",", " ")


def _ticks(lo: float, hi: float, n: int) -> list[float]:
    return [float(v) for v in MaxNLocator(n, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)]


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
        _Key(
            "line",
            LICENCE_COLOUR,
            f"block {plot_text(b.name) or j + 1}, {b.z_top:+g} to {b.z_bottom:+g} m",
        )
        for j, b in enumerate(licence.blocks)
    ]
    ncol = _legend_ncol([k.label for k in block_keys] + _STATUS_LABELS_WORST, 8, 2)
    legend_h = _legend_height(len(block_keys) + len(STATUS_STYLE), ncol, 8)
    bottom = PLAN_AXIS_BELOW + legend_h
    pic = _Picture(FIG_W, bottom + axes_h + PLAN_TOP)
    ax = pic.axes(PLAN_LEFT, bottom, axes_w, axes_h)
    data = ax.transData

    keys = list(block_keys)
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
    counts = _draw_points(
        ax,
        xyz[:, 0],
        xyz[:, 1],
        status,
        xlim,
        ylim,
        (round(axes_w * DPI), round(axes_h * DPI)),
        PLAN_DOT_PX,
    )
    keys += _status_keys(counts)

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
            _incident_label(inc) if not inc.within_uncertainty else f"{inc.id} (within unc.)",
            dx=dx,
            dy=dy,
            ha="left" if dx >= 0 else "right",
            va="center",
            size=8,
            box=colour,
        )

    n_all_inc = len(incidents) + len(uncertain)
    if n_all_inc > len(labelled):
        pic.text(
            ax.transAxes,
            0.01,
            0.99,
            f"{n_all_inc} incidents and groups, all boxed; {len(labelled)} labelled "
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
    pic.axis_labels(
        ax,
        xticks=_ticks(*xlim, 5),
        yticks=_ticks(*ylim, 6),
        fmt=_fmt_coord,
        xlabel="Y (easting, m)",
        ylabel="X (northing, m)",
        title=title or f"Licence {plot_text(licence.licence_no)}: plan view",
        title_size=11,
    )
    pic.set_legend(keys, ncol, 8, legend_h - 0.04)
    return pic.png()


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


def _section_frame(
    licence: Licence, inc: Incident
) -> tuple[F64, F64, str, float, tuple[float, float]]:
    """Section line (origin, direction, caption as in :func:`section_geometry`),
    half width of the slab of points drawn (m) and the range along the line."""
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
    return origin, d, how, half_w, (float(s_inc.min()) - 30.0, float(s_inc.max()) + 15.0)


def section_caption(licence: Licence, inc: Incident) -> str:
    """Where the section through ``inc`` runs, for the report's caption
    (the picture's own title stays short)."""
    _, _, how, half_w, _ = _section_frame(licence, inc)
    return (
        f"Section {how}, through X {inc.centroid[1]:,.1f}, Y {inc.centroid[0]:,.1f}; "
        f"points within ±{half_w:.1f} m of the section line."
    )


# section layout, inches
SEC_LEFT, SEC_RIGHT, SEC_TOP, SEC_AXIS_BELOW, SEC_AXES_H = 0.85, 0.25, 0.4, 0.6, 3.3


def _seam_name(name: str, k: int) -> str:
    name = plot_text(name) or f"#{k + 1}"
    return name if "seam" in name.lower() else f"seam {name}"


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
    origin, d, how, half_w, (s_lo, s_hi) = _section_frame(licence, inc)
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
    ss, hh, st = s[keep], xyz[near[keep], 2], status[near[keep]]

    block = _find_block(licence, inc.block)
    crossings = _line_crossings(block, origin, d)
    line_s = np.linspace(s_lo, s_hi, 200)
    line_en = origin + line_s[:, None] * d
    seam_lines = [
        (_seam_name(seam.name, k), seam.roof.height(line_en), seam.floor.height(line_en))
        for k, seam in enumerate(licence.seams)
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
    y0, y1 = h_lo - pad, h_hi + pad

    tz, tol_colour = licence.tolerance_z_m, STATUS_STYLE[UNCERTAIN][0]
    keys = [
        _Key("patch", LICENCE_COLOUR, "licensed extent", 0.15),
        _Key("patch", tol_colour, f"tolerance ±{licence.tolerance_m:g} m / ±{tz:g} m", 0.25),
    ]
    if seam_lines:
        keys.append(_Key("patch", SEAM_COLOUR, "licensed seam", 0.2))
    ncol = _legend_ncol([k.label for k in keys] + _STATUS_LABELS_WORST, 8, 3)
    legend_h = _legend_height(len(keys) + len(STATUS_STYLE), ncol, 8)
    bottom = SEC_AXIS_BELOW + legend_h
    axes_w = FIG_W - SEC_LEFT - SEC_RIGHT
    pic = _Picture(FIG_W, bottom + SEC_AXES_H + SEC_TOP)
    ax = pic.axes(SEC_LEFT, bottom, axes_w, SEC_AXES_H)

    # licensed region in this section: inside-polygon intervals x elevation range
    bounds = [s_lo] + [c[0] for c in crossings] + [s_hi]
    shp = Polygon(block.polygon_en())
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
                0.01,
                0.98 if z > y1 else 0.02,
                f"{name} {z:+g} m ({where} this window)",
                va="top" if z > y1 else "bottom",
                size=8,
                colour=LICENCE_COLOUR,
            )
    ax.axhspan(block.z_top, block.z_top + tz, color=tol_colour, alpha=0.12, zorder=1)
    ax.axhspan(block.z_bottom - tz, block.z_bottom, color=tol_colour, alpha=0.12, zorder=1)
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
    counts = _draw_points(
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
        xticks=_ticks(s_lo, s_hi, 7),
        yticks=_ticks(y0, y1, 6),
        fmt=_fmt_number,
        xlabel=(
            "distance beyond the boundary along the section (m; negative = inside)"
            if inc.type is ViolationType.BOUNDARY
            else "distance along the section from the incident centroid (m)"
        ),
        ylabel="H (elevation, m, 1985 datum)",
        title=f"{_incident_label(inc)}: section {where}",
    )
    pic.set_legend(keys + _status_keys(counts), ncol, 8, legend_h - 0.04)
    return pic.png()

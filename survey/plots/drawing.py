"""Shared drawing of the report's pictures (:mod:`survey.plots`): point
statuses and their colours, the points binned into one image, the
:class:`Picture` (figure layout, text by PIL, legend, PNG encoding) and the
number formats."""

from __future__ import annotations

import functools
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
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import IdentityTransform
from PIL import Image, ImageColor, ImageDraw, ImageFont

from survey.model import F64, Incident, ViolationType

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


def draw_points(
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


STATUS_LABELS_WORST = [f"{label} (none)" for _, label in STATUS_STYLE.values()]


def status_keys(counts: dict[int, int]) -> list[Key]:
    return [
        Key("square", colour, label if counts[code] else f"{label} (none)")
        for code, (colour, label) in STATUS_STYLE.items()
    ]


LEGEND_SWATCH_PX, LEGEND_GAP_PX, LEGEND_SPACING_PX = 18, 6, 22


def legend_ncol(labels: Sequence[str], size: float, max_ncol: int) -> int:
    """The most columns (up to ``max_ncol``) in which a legend with these
    labels fits across the picture."""
    widths = [LEGEND_SWATCH_PX + LEGEND_GAP_PX + text_width_px(t, size) for t in labels]
    for ncol in range(max(1, min(max_ncol, len(widths))), 1, -1):
        cols = [max(widths[c::ncol]) for c in range(ncol)]
        if sum(cols) + LEGEND_SPACING_PX * (ncol - 1) <= FIG_W * DPI - 20:
            return ncol
    return 1


def legend_height(n_entries: int, ncol: int, fontsize: float) -> float:
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


def text_width_px(text: str, size_pt: float, bold: bool = False) -> float:
    with _text_lock:
        return float(_font(size_pt, bold).getlength(text))


def text_height_px(size_pt: float) -> float:
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
class Key:
    """A legend entry: ``kind`` "square" (a status), "patch" (an area,
    ``alpha`` over white), "line" or "dashed"."""

    kind: str
    colour: str
    label: str
    alpha: float = 1.0


class Picture:
    """A figure whose labels are drawn by PIL; :meth:`png` renders it."""

    def __init__(self, width_in: float, height_in: float) -> None:
        self.fig = Figure(figsize=(width_in, height_in), dpi=DPI)
        self.labels: list[_Label] = []
        self.legend: tuple[list[Key], int, float, float] | None = None

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
            widths.append(text_width_px(s, tick_size))
            self.text(yt, 0, v, s, size=tick_size, ha="right", va="center", dx=-TICK_GAP_PT)
        below = TICK_GAP_PT + text_height_px(tick_size) / PX_PER_PT + 4
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

    def set_legend(self, keys: list[Key], ncol: int, size: float, top_in: float) -> None:
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
    keys: list[Key],
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


def fmt_number(v: float) -> str:
    s = f"{v:.6g}"
    return "0" if s in ("-0", "0") else s.replace("-", "−")


def fmt_coord(v: float) -> str:
    return f"{v:,.0f}".replace(",", " ")


def nice_ticks(lo: float, hi: float, n: int) -> list[float]:
    return [float(v) for v in MaxNLocator(n, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)]


def incident_label(inc: Incident) -> str:
    kind = {
        ViolationType.BOUNDARY: "beyond boundary",
        ViolationType.ABOVE_RANGE: "above range",
        ViolationType.BELOW_RANGE: "below range",
        ViolationType.OUTSIDE_SEAM: "outside seam",
    }[inc.type]
    return f"{inc.id} {kind} {inc.max_exceedance_m:.1f} m, {inc.volume_m3:,.0f} m³"

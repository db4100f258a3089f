"""A point's history as an inline SVG line chart, drawn on the server (no
JavaScript, nothing from the internet). Buckets without a value break the
line: a gap in the data shows as a gap, never bridged."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from html import escape

from supervision.history import NS, Series

W, H = 600, 180
LEFT, RIGHT, TOP, BOTTOM = 60, 10, 10, 26


def _num(v: float) -> str:
    """A value label: 4 significant digits, no exponent for ordinary values."""
    if v == 0:
        return "0"
    if abs(v) >= 1e6 or abs(v) < 1e-3:
        return f"{v:.3g}"
    digits = max(0, 3 - math.floor(math.log10(abs(v))))
    return f"{v:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{v:.0f}"


def _clock(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS, UTC).strftime("%H:%M")


def segments(series: Series) -> list[list[tuple[int, float]]]:
    """The points in runs without a missing bucket between neighbours."""
    runs: list[list[tuple[int, float]]] = []
    gap = int(series.step_s * NS * 1.5)
    for p in series.points:
        if runs and p[0] - runs[-1][-1][0] <= gap:
            runs[-1].append(p)
        else:
            runs.append([p])
    return runs


def chart_svg(series: Series, title: str, unit: str) -> str:
    """The chart's markup: time across (UTC), value up, min/max and the
    window's ends labelled; one polyline per run of buckets, a lone bucket
    as a dot."""
    t0, t1 = series.start_ns, series.end_ns
    values = [v for _, v in series.points]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - max(abs(lo) * 0.05, 0.5), hi + max(abs(hi) * 0.05, 0.5)
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def x(ts: int) -> float:
        return LEFT + pw * (ts - t0) / max(t1 - t0, 1)

    def y(v: float) -> float:
        return TOP + ph * (hi - v) / (hi - lo)

    label = f"{title} ({unit})" if unit else title
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
        f'viewBox="0 0 {W} {H}" preserveAspectRatio="xMidYMid meet">',
        f"<title>{escape(label)}, {_clock(t0)} to {_clock(t1)} UTC</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fff" stroke="#ccc"/>',
        f'<text x="{LEFT - 4}" y="{TOP + 10}" text-anchor="end" font-size="13">{_num(hi)}</text>',
        f'<text x="{LEFT - 4}" y="{TOP + ph}" text-anchor="end" font-size="13">{_num(lo)}</text>',
        f'<text x="{LEFT}" y="{H - 6}" font-size="13">{_clock(t0)}</text>',
        f'<text x="{W - RIGHT}" y="{H - 6}" text-anchor="end" font-size="13">{_clock(t1)} UTC</text>',
    ]
    if not values:
        parts.append(
            f'<text x="{LEFT + pw / 2}" y="{TOP + ph / 2}" text-anchor="middle" '
            f'font-size="13" fill="#666">no history in this window</text>'
        )
    for run in segments(series):
        if len(run) == 1:
            ts, v = run[0]
            parts.append(f'<circle cx="{x(ts):.1f}" cy="{y(v):.1f}" r="2" fill="#1864ab"/>')
        else:
            pts = " ".join(f"{x(ts):.1f},{y(v):.1f}" for ts, v in run)
            parts.append(
                f'<polyline points="{pts}" fill="none" stroke="#1864ab" stroke-width="1.5"/>'
            )
    parts.append("</svg>")
    return "".join(parts)

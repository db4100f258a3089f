"""A licence's boundary as inline SVG, in the licence's own coordinates
(easting to the right, northing up); no map tiles. The licence file is read
by the survey package's reader, the same one the survey checks use."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from html import escape


@dataclass(frozen=True)
class LicenceDrawing:
    svg: str | None  # markup, or None when the file cannot be drawn
    error: str | None
    licence_no: str = ""
    epsg: int | None = None


def licence_drawing(path: str) -> LicenceDrawing:
    try:
        mtime = os.stat(path).st_mtime_ns
    except OSError as exc:
        return LicenceDrawing(None, f"licence file {path}: {exc.strerror or exc}")
    return _drawing(path, mtime)


@lru_cache(maxsize=128)
def _drawing(path: str, _mtime: int) -> LicenceDrawing:
    from survey.model import SurveyInputError
    from survey.readers.licence_files import load_licence

    try:
        lic = load_licence(path)
    except SurveyInputError as exc:
        return LicenceDrawing(None, str(exc))
    xs = [c.y_east for b in lic.blocks for c in b.corners]
    ys = [-c.x_north for b in lic.blocks for c in b.corners]
    span = max(max(xs) - min(xs), max(ys) - min(ys), 1.0)
    pad = span * 0.08
    x0, y0 = min(xs) - pad, min(ys) - pad
    w, h = max(xs) - min(xs) + 2 * pad, max(ys) - min(ys) + 2 * pad
    font = span / 30
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="licence" role="img" '
        f'viewBox="{x0:.3f} {y0:.3f} {w:.3f} {h:.3f}" preserveAspectRatio="xMidYMid meet">',
        f"<title>licence {escape(lic.licence_no)} (EPSG:{lic.epsg})</title>",
    ]
    for b in lic.blocks:
        pts = " ".join(f"{c.y_east:.3f},{-c.x_north:.3f}" for c in b.corners)
        parts.append(
            f'<polygon points="{pts}" fill="#2a7" fill-opacity="0.15" stroke="#176" '
            f'stroke-width="2" vector-effect="non-scaling-stroke"><title>{escape(b.name)} '
            f"{b.z_bottom:g}..{b.z_top:g} m</title></polygon>"
        )
        for c in b.corners:
            parts.append(
                f'<text x="{c.y_east:.3f}" y="{-c.x_north:.3f}" font-size="{font:.3f}" '
                f'fill="#333">{escape(c.number)}</text>'
            )
    parts.append("</svg>")
    return LicenceDrawing("".join(parts), None, lic.licence_no, lic.epsg)

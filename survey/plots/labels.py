"""Labels of the plan view that never overlap: incidents near one another
on the picture share one label, and each label is set out on a leader line
where it covers no other label, no other incident and crosses no other
leader.

Everything here works in figure pixels (origin lower left, as matplotlib's
display coordinates), so what is checked is what the PNG shows.

::

    group_nearby(anchors, radius_px, limit) -> list[list[int]]
    place_labels(anchors, sizes, *, frame, avoid, keep_clear) -> list[Offset | None]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from survey.model import F64

#: leader lengths tried (points), shortest first
RADII_PT = (22.0, 34.0, 50.0, 70.0, 95.0, 125.0, 160.0)
#: directions tried at each length
N_DIRECTIONS = 16
#: room kept around another incident's mark (pixels): at least, and if
#: possible
MARK_CLEARANCE_PX = 5.0
LABEL_ROOM_PX = 30.0

#: (left, bottom, right, top) in figure pixels
Box = tuple[float, float, float, float]


@dataclass(frozen=True)
class Offset:
    """Where a label goes relative to its anchor: ``dx``/``dy`` in points,
    the text's alignment at that point (``ha``, ``va``) and its box in
    pixels."""

    dx: float
    dy: float
    ha: str
    va: str
    box: Box


def _box_at(ref: F64, w: float, h: float, dx: float, dy: float, pad: float) -> tuple[Box, str, str]:
    """The box of a ``w`` x ``h`` label (``pad`` of it around the text)
    whose text is aligned at ``ref``: beside the leader's end when it runs
    sideways, centred above or below it when it runs (nearly) up or down."""
    if abs(dx) < 0.4 * abs(dy):
        x0 = ref[0] - w / 2
        if dy > 0:
            return (x0, ref[1] - pad, x0 + w, ref[1] + h - pad), "center", "bottom"
        return (x0, ref[1] - h + pad, x0 + w, ref[1] + pad), "center", "top"
    x0 = ref[0] - pad if dx >= 0 else ref[0] - w + pad
    return (x0, ref[1] - h / 2, x0 + w, ref[1] + h / 2), "left" if dx >= 0 else "right", "center"


def _inside(box: Box, frame: Box) -> bool:
    return frame[0] <= box[0] and box[2] <= frame[2] and frame[1] <= box[1] and box[3] <= frame[3]


def group_nearby(anchors: F64, radius_px: float, limit: int) -> list[list[int]]:
    """Indices of ``anchors`` ((n, 2) pixels, in rank order) grouped so each
    group's members lie within ``radius`` of its first (best ranked) member;
    the radius grows by half until there are at most ``limit`` groups.
    Groups keep the rank order of their first members."""
    n = len(anchors)
    radius = radius_px
    while True:
        seeds: list[int] = []
        groups: list[list[int]] = []
        for i in range(n):
            if seeds:
                d = np.hypot(*(anchors[seeds] - anchors[i]).T)
                k = int(np.argmin(d))
                if d[k] <= radius:
                    groups[k].append(i)
                    continue
            seeds.append(i)
            groups.append([i])
        if len(groups) <= limit or n == 0:
            return groups
        radius *= 1.5


def _overlaps(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _segments_cross(p1: F64, p2: F64, q1: F64, q2: F64) -> bool:
    def side(a: F64, b: F64, c: F64) -> float:
        return float((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))

    d1, d2 = side(q1, q2, p1), side(q1, q2, p2)
    d3, d4 = side(p1, p2, q1), side(p1, p2, q2)
    return d1 * d2 < 0 and d3 * d4 < 0


def _segment_hits_box(p: F64, q: F64, box: Box) -> bool:
    """Whether the segment p-q passes through ``box`` (sampled finely)."""
    for t in np.linspace(0.0, 1.0, 24):
        x, y = p + t * (q - p)
        if box[0] <= x <= box[2] and box[1] <= y <= box[3]:
            return True
    return False


def _near_box(point: F64, box: Box, clearance: float) -> bool:
    x, y = point
    return bool(
        box[0] - clearance <= x <= box[2] + clearance
        and box[1] - clearance <= y <= box[3] + clearance
    )


def place_labels(
    anchors: F64,
    sizes: Sequence[tuple[float, float]],
    *,
    px_per_pt: float,
    frame: Box,
    avoid: Sequence[Box] = (),
    keep_clear: F64 | None = None,
    outward_from: tuple[float, float] | None = None,
    pad_px: float = 0.0,
) -> list[Offset | None]:
    """An offset for each label (in order: earlier labels choose first), or
    None where no place is free.

    ``anchors`` (n, 2) pixels: where each leader ends; ``sizes``: each
    label's box (width, height) in pixels, padding included; ``frame``: the
    box labels must stay inside; ``avoid``: boxes no label may cover (notes
    already on the picture); ``keep_clear`` (m, 2) pixels: marks of
    incidents no label or leader may cover (besides its own anchor);
    ``outward_from``: a point labels point away from first (the licence's
    middle, so labels fall on the open ground beyond it); ``pad_px``: the
    part of each size that is padding around the text (the box reaches that
    far past the text's aligned edge)."""
    marks = np.zeros((0, 2)) if keep_clear is None else np.asarray(keep_clear, dtype=np.float64)
    placed: list[Box] = list(avoid)
    leaders: list[tuple[F64, F64]] = []
    out: list[Offset | None] = []
    angles = np.linspace(0.0, 2 * np.pi, N_DIRECTIONS, endpoint=False)
    for anchor, (w, h) in zip(np.asarray(anchors, dtype=np.float64), sizes, strict=True):
        if outward_from is not None:
            away = np.arctan2(anchor[1] - outward_from[1], anchor[0] - outward_from[0])
            order = np.argsort(np.abs(np.angle(np.exp(1j * (angles - away)))))
        else:
            order = np.arange(N_DIRECTIONS)
        near_marks = marks[np.hypot(*(marks - anchor).T) > 0.5] if len(marks) else marks
        choice: Offset | None = None
        # first keep well away from the other incidents (a label just beside
        # one would wall its neighbours' leaders in), then only clear of them
        for clearance in (LABEL_ROOM_PX, MARK_CLEARANCE_PX):
            choice = _first_free(
                anchor,
                w,
                h,
                angles[order],
                px_per_pt,
                frame,
                placed,
                leaders,
                near_marks,
                clearance,
                pad_px,
            )
            if choice is not None:
                break
        if choice is not None:
            placed.append(choice.box)
            leaders.append((anchor, anchor + np.array([choice.dx, choice.dy]) * px_per_pt))
        out.append(choice)
    return out


def _first_free(
    anchor: F64,
    w: float,
    h: float,
    angles: F64,
    px_per_pt: float,
    frame: Box,
    placed: Sequence[Box],
    leaders: Sequence[tuple[F64, F64]],
    marks: F64,
    clearance: float,
    pad: float,
) -> Offset | None:
    """The first candidate (shortest leader first, then ``angles`` in
    order) whose box and leader are free: inside ``frame``, over no placed
    box, no other leader crossed, at least ``clearance`` from ``marks``."""
    for r in RADII_PT:
        for a in angles:
            dx, dy = r * np.cos(a), r * np.sin(a)
            ref = anchor + np.array([dx, dy]) * px_per_pt
            box, ha, va = _box_at(ref, w, h, dx, dy, pad)
            if not _inside(box, frame) or any(_overlaps(box, b) for b in placed):
                continue
            if _near_box(anchor, box, MARK_CLEARANCE_PX):
                continue
            if any(_near_box(m, box, clearance) for m in marks):
                continue
            if any(_segments_cross(anchor, ref, p, q) for p, q in leaders):
                continue
            if any(_segment_hits_box(anchor, ref, b) for b in placed):
                continue
            if any(_segment_hits_box(p, q, box) for p, q in leaders):
                continue
            return Offset(float(dx), float(dy), ha, va, box)
    return None

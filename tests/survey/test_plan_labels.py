"""The report's pictures with many incidents and far ones (issue 10 items
10, 11): plan labels never overlap, nearby incidents share one, every
incident is labelled or counted in a shared label; a section through a far
boundary incident shows the boundary it is measured from."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from survey.model import Block, Corner, Incident, Licence, ViolationType
from survey.plots.drawing import MAX_LABELS, PX_PER_PT, text_height_px, text_width_px
from survey.plots.labels import group_nearby, place_labels
from survey.plots.plan import plan_picture
from survey.plots.section import elevation_section, section_frame

N0, E0 = 2_520_000.0, 612_000.0


def _licence() -> Licence:
    corners = tuple(
        Corner(f"J{i + 1}", N0 + dn, E0 + de)
        for i, (dn, de) in enumerate([(0, 0), (0, 400), (300, 400), (300, 0)])
    )
    return Licence("Demo mine", "C450000", 4545, None, (Block("1", corners, 120.0, -80.0),))


def _incident(iid: str, e: float, n: float, exceedance: float, size: float = 0.3) -> Incident:
    h = -55.0
    return Incident(
        iid,
        ViolationType.BOUNDARY,
        "1",
        1,
        (e - size, n - size, h),
        (e + size, n + size, h),
        (e, n, h),
        exceedance,
        0.0,
        ("J2", "J3"),
        "J2",
    )


Box = tuple[float, float, float, float]


def _label_boxes(pic: object) -> list[tuple[str, Box]]:
    """The incident labels of a plan picture (boxed, in data coordinates)
    as the PNG draws them: text and pixel box (y up)."""
    out = []
    for lab in pic.labels:  # type: ignore[attr-defined]
        if lab.box is None or lab.transform is None or lab.box == "#999999":
            continue
        x, y = lab.transform.transform((lab.x, lab.y))
        x, y = x + lab.dx * PX_PER_PT, y + lab.dy * PX_PER_PT
        pad = 0.25 * lab.size * PX_PER_PT + 1
        w = text_width_px(lab.text, lab.size) + 2 * pad
        h = text_height_px(lab.size) + 2 * pad
        x0 = {"left": x - pad, "right": x - w + pad, "center": x - w / 2}[lab.ha]
        y0 = {"center": y - h / 2, "top": y - h + pad, "bottom": y - pad}[lab.va]
        out.append((lab.text, (x0, y0, x0 + w, y0 + h)))
    return out


def _overlap(a: Box, b: Box) -> bool:
    return a[0] < b[2] - 1 and b[0] < a[2] - 1 and a[1] < b[3] - 1 and b[1] < a[3] - 1


def test_many_small_incidents_get_labels_that_never_overlap() -> None:
    lic = _licence()
    # 146 single-point incidents 2 m apart just beyond the eastern edge (a
    # total-station file), two side by side west of the licence, one far out
    edge = [_incident(f"I{k + 4}", E0 + 403, N0 + 5 + 2 * k, 3.0 + k % 5) for k in range(146)]
    pair = [_incident("I2", E0 - 6, N0 + 150, 6.0), _incident("I3", E0 - 6, N0 + 153, 6.0)]
    far = [_incident("I1", E0 + 560, N0 + 140, 160.0, size=20.0)]
    incidents = far + pair + edge
    xyz = np.array([[i.centroid[0], i.centroid[1], -55.0] for i in incidents])
    status = np.full(len(xyz), 2, dtype=np.int8)
    labels = _label_boxes(plan_picture(lic, xyz, status, incidents))
    assert 0 < len(labels) <= MAX_LABELS
    for (ta, a), (tb, b) in itertools.combinations(labels, 2):
        assert not _overlap(a, b), f"{ta!r} overlaps {tb!r}"
    # every incident has a label or is counted in a shared one
    covered = sum(1 + int(t.split("+")[1].split()[0]) if "+" in t else 1 for t, _ in labels)
    assert covered == len(incidents)
    # the two side by side share a label: they cannot be read swapped
    (pair_label,) = [t for t, _ in labels if t.startswith(("I2 ", "I3 "))]
    assert pair_label.endswith("+1 more")
    assert any(t.startswith("I1 ") and "+" not in t for t, _ in labels)


def test_few_incidents_keep_full_labels() -> None:
    lic = _licence()
    incidents = [_incident("I1", E0 + 420, N0 + 100, 20.0), _incident("I2", E0 - 30, N0, 30.0)]
    xyz = np.array([[i.centroid[0], i.centroid[1], -55.0] for i in incidents])
    labels = _label_boxes(plan_picture(lic, xyz, np.full(2, 2, np.int8), incidents))
    assert sorted(t for t, _ in labels) == [
        "I1 beyond boundary 20.0 m, 0 m³",
        "I2 beyond boundary 30.0 m, 0 m³",
    ]


def test_grouping_keeps_members_near_the_first_and_respects_the_limit() -> None:
    anchors = np.array([[0.0, 0.0], [10.0, 0.0], [100.0, 0.0], [105.0, 0.0], [300.0, 0.0]])
    assert group_nearby(anchors, 20.0, 10) == [[0, 1], [2, 3], [4]]
    assert len(group_nearby(anchors, 20.0, 2)) <= 2


def test_placed_labels_avoid_each_other_the_marks_and_crossing_leaders() -> None:
    anchors = np.array([[200.0 + 8 * k, 200.0] for k in range(8)])
    offsets = place_labels(
        anchors,
        [(60.0, 20.0)] * len(anchors),
        px_per_pt=PX_PER_PT,
        frame=(0.0, 0.0, 600.0, 400.0),
        keep_clear=anchors,
    )
    boxes = [o.box for o in offsets if o is not None]
    assert len(boxes) == len(anchors)
    for a, b in itertools.combinations(boxes, 2):
        assert not _overlap(a, b)
    for box in boxes:
        assert not any(box[0] <= x <= box[2] and box[1] <= y <= box[3] for x, y in anchors)


@pytest.mark.parametrize("beyond", [(160.0, 205.0), (2.0, 14.0)])
def test_section_window_includes_the_boundary(beyond: tuple[float, float]) -> None:
    """A 190 m exceedance was drawn 160-205 m from the edge, the edge off
    the picture."""
    lic = _licence()
    rng = np.random.default_rng(2)
    k = 400
    xyz = np.column_stack(
        [
            E0 + 400 + rng.uniform(*beyond, k),
            N0 + rng.uniform(140, 150, k),
            rng.uniform(-56, -54, k),
        ]
    )
    inc = Incident(
        "I1",
        ViolationType.BOUNDARY,
        "1",
        k,
        tuple(xyz.min(0)),
        tuple(xyz.max(0)),
        tuple(xyz.mean(0)),
        float(xyz[:, 0].max() - E0 - 400),
        0.0,
        ("J2", "J3"),
        "J2",
    )
    *_, (s_lo, s_hi) = section_frame(lic, inc)
    assert s_lo < -5.0 and s_hi > beyond[1]  # the edge (at 0) with room inside it
    assert elevation_section(lic, inc, xyz, np.full(k, 2, np.int8)).startswith(b"\x89PNG")

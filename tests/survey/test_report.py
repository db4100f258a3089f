"""The report's pictures and HTML, on a scene whose answer is known by
construction: one drift crossing the eastern boundary and one drift below
the licensed floor."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from matplotlib.image import imread

from survey.model import Block, CheckResult, Corner, Incident, Licence, ViolationType
from survey.plots.drawing import COMPLIANT, STATUS_STYLE, UNCERTAIN, VIOLATION
from survey.plots.plan import plan_view
from survey.plots.section import elevation_section, section_geometry
from survey.report import write_report

N0, E0 = 2_520_000.0, 612_000.0
TOL = 1.5


def _licence() -> Licence:
    corners = tuple(
        Corner(f"J{i + 1}", N0 + dn, E0 + de)
        for i, (dn, de) in enumerate([(0, 0), (0, 400), (300, 400), (300, 0)])
    )
    return Licence("Demo mine", "C450000", 4545, None, (Block("1", corners, 120.0, -80.0),))


def _drift(
    rng: np.random.Generator, e0: float, e1: float, n: float, h: float, k: int
) -> npt.NDArray[np.float64]:
    e = rng.uniform(e0, e1, k)
    a = rng.uniform(0, 2 * np.pi, k)
    return np.column_stack([e, n + 2 * np.cos(a), h + 1.5 * np.sin(a)])


def _scene() -> tuple[Licence, npt.NDArray[np.float64], npt.NDArray[np.int8], CheckResult]:
    rng = np.random.default_rng(0)
    lic = _licence()
    east = _drift(rng, E0 + 50, E0 + 410, N0 + 150, -60.0, 20_000)  # 10 m beyond J2-J3
    low = _drift(rng, E0 + 100, E0 + 200, N0 + 50, -83.0, 8_000)  # 1.5-4.5 m below -80
    xyz = np.vstack([east, low])
    beyond_e = xyz[:, 0] - (E0 + 400)
    beyond_h = -80.0 - xyz[:, 2]
    exc = np.maximum(beyond_e, beyond_h)
    status = np.full(len(xyz), COMPLIANT, dtype=np.int8)
    status[exc > 0] = UNCERTAIN
    status[(beyond_e > TOL) | (beyond_h > lic.tolerance_z_m)] = VIOLATION

    def incident(iid: str, typ: ViolationType, mask: npt.NDArray[np.bool_], e: float) -> Incident:
        q = xyz[mask]
        return Incident(
            iid,
            typ,
            "1",
            int(mask.sum()),
            tuple(q.min(0)),
            tuple(q.max(0)),
            tuple(q.mean(0)),
            e,
            100.0,
            ("J2", "J3"),
            "J2",
        )

    incs = [
        incident("I1", ViolationType.BOUNDARY, beyond_e > TOL, float(beyond_e.max())),
        incident("I2", ViolationType.BELOW_RANGE, beyond_h > 0.5, float(beyond_h.max())),
    ]
    res = CheckResult(lic, ["scan.las"], len(xyz), incs, [], "violations found", {"read": 1.0})
    return lic, xyz, status, res


def _rgb(png: bytes) -> npt.NDArray[np.float32]:
    img = imread(io.BytesIO(png), format="png")
    return np.asarray(img[..., :3], dtype=np.float32)


def _count_colour(img: npt.NDArray[np.float32], hex_colour: str, tol: float = 0.06) -> int:
    rgb = np.array([int(hex_colour[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype=np.float32)
    return int((np.abs(img - rgb).max(axis=-1) < tol).sum())


def test_plan_view_shows_violations_in_red_and_workings_in_grey() -> None:
    lic, xyz, status, res = _scene()
    img = _rgb(plan_view(lic, xyz, status, res.incidents))
    assert img.shape[0] > 500 and img.shape[1] > 500
    assert _count_colour(img, STATUS_STYLE[VIOLATION][0]) > 200
    assert _count_colour(img, STATUS_STYLE[COMPLIANT][0]) > 200
    # mostly white background but not blank
    assert 0.3 < (img.min(axis=-1) > 0.95).mean() < 0.99


def test_plan_view_of_a_compliant_scan_has_no_red() -> None:
    lic, xyz, status, res = _scene()
    keep = status == COMPLIANT
    img = _rgb(plan_view(lic, xyz[keep], status[keep], []))
    red = STATUS_STYLE[VIOLATION][0]
    with_violations = _count_colour(_rgb(plan_view(lic, xyz, status, res.incidents)), red)
    # only the legend's marker ("violation (none)") may be red
    assert _count_colour(img, red) < min(150, with_violations // 5)
    assert _count_colour(img, STATUS_STYLE[COMPLIANT][0]) > 200


def test_boundary_section_is_perpendicular_to_the_broken_edge() -> None:
    lic, _, _, res = _scene()
    origin, d, caption = section_geometry(lic, res.incidents[0])
    # edge J2-J3 runs north at E0+400: the section runs east, starting on the edge
    assert d == pytest.approx([1.0, 0.0])
    assert origin[0] == pytest.approx(E0 + 400)
    assert "J2–J3" in caption


@pytest.mark.parametrize("which", [0, 1])
def test_sections_show_the_incident(which: int) -> None:
    lic, xyz, status, res = _scene()
    img = _rgb(elevation_section(lic, res.incidents[which], xyz, status))
    assert _count_colour(img, STATUS_STYLE[VIOLATION][0]) > 100
    assert img.shape[1] > 600 and img.shape[0] < 2000  # no runaway label stretching it


def test_report_is_self_contained_with_pictures_and_table(tmp_path: Path) -> None:
    _lic, xyz, status, res = _scene()
    files = write_report(res, tmp_path / "out", xyz=xyz, status=status, check_id="c1")
    html = files.report_html.read_text(encoding="utf-8")
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 1 + len(res.incidents)  # plan + one section per incident
    for b64 in images:
        assert base64.b64decode(b64).startswith(b"\x89PNG")
    assert not re.search(r'src="(?!data:)', html)  # nothing fetched from outside
    for inc in res.incidents:
        assert f"<td>{inc.id}</td>" in html
    assert "violations found" in html and "C450000" in html
    doc = json.loads(files.findings_json.read_text(encoding="utf-8"))
    assert [i["id"] for i in doc["incidents"]] == ["I1", "I2"]


def test_an_expired_licence_is_flagged_in_the_report(tmp_path: Path) -> None:
    from dataclasses import replace
    from datetime import date

    _, xyz, status, res = _scene()
    res.licence = replace(res.licence, valid_from=date(2015, 1, 1), valid_to=date(2020, 1, 1))
    files = write_report(res, tmp_path, xyz=xyz, status=status, check_id="c2")
    html = files.report_html.read_text(encoding="utf-8")
    assert "valid 2015-01-01 to 2020-01-01" in html and "EXPIRED" in html
    doc = json.loads(files.findings_json.read_text(encoding="utf-8"))
    assert doc["licence"]["valid_to"] == "2020-01-01"


def test_two_block_licence_is_drawn_with_each_block(tmp_path: Path) -> None:
    from dataclasses import replace

    lic, xyz, status, res = _scene()
    deeper = tuple(
        Corner(f"K{i + 1}", N0 + dn, E0 + de)
        for i, (dn, de) in enumerate([(-200, 0), (-200, 400), (0, 400), (0, 0)])
    )
    res.licence = replace(lic, blocks=(*lic.blocks, Block("2", deeper, 0.0, -300.0)))
    files = write_report(res, tmp_path, xyz=xyz, status=status, check_id="c3")
    html = files.report_html.read_text(encoding="utf-8")
    assert "Block 1: elevation +120 m to -80 m" in html
    assert "Block 2: elevation +0 m to -300 m" in html
    assert "K3" in html
    img = _rgb(plan_view(res.licence, xyz, status, res.incidents))
    assert _count_colour(img, STATUS_STYLE[VIOLATION][0]) > 200


def _png_size(png: bytes) -> tuple[int, int]:
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and png[12:16] == b"IHDR"
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def test_report_embeds_a_plan_and_one_section_per_incident_as_sensible_pngs(
    tmp_path: Path,
) -> None:
    _lic, xyz, status, res = _scene()
    files = write_report(res, tmp_path, xyz=xyz, status=status, check_id="c4")
    html = files.report_html.read_text(encoding="utf-8")
    imgs = re.findall(r'<img alt="([^"]*)" src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert [alt for alt, _ in imgs] == ["plan view"] + [
        f"elevation section through {i.id}" for i in res.incidents
    ]
    for _alt, b64 in imgs:
        png = base64.b64decode(b64)
        w, h = _png_size(png)
        assert 600 <= w <= 1200 and 300 <= h <= 1200
        assert 5_000 < len(png) < 400_000
        assert _rgb(png).shape == (h, w, 3)  # decodes
    # where each section runs is in its caption
    assert "Section perpendicular to boundary edge J2–J3" in html


def test_pictures_are_deterministic() -> None:
    lic, xyz, status, res = _scene()
    assert plan_view(lic, xyz, status, res.incidents) == plan_view(lic, xyz, status, res.incidents)
    inc = res.incidents[1]
    assert elevation_section(lic, inc, xyz, status) == elevation_section(lic, inc, xyz, status)


def _axes_box(img: npt.NDArray[np.float32]) -> tuple[int, int, int, int]:
    """Rows and columns (top, bottom, left, right) of the axes frame: the
    longest dark horizontal and vertical lines."""
    dark = img.max(axis=-1) < 0.25
    rows = np.flatnonzero(dark.sum(axis=1) > 0.6 * img.shape[1])
    cols = np.flatnonzero(dark.sum(axis=0) > 0.4 * img.shape[0])
    return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())


def test_plan_is_drawn_north_up_east_right() -> None:
    lic, xyz, status, _ = _scene()
    # only the violating points of the low drift: N0 + 50, E0 + 100 to E0 + 200
    keep = (status == VIOLATION) & (xyz[:, 0] < E0 + 300)
    img = _rgb(plan_view(lic, xyz[keep], status[keep], []))
    top, bottom, left, right = _axes_box(img)
    red = np.argwhere(
        np.abs(img - np.array([0xD6, 0x27, 0x28], dtype=np.float32) / 255).max(axis=-1) < 0.06
    )
    red = red[(red[:, 0] > top) & (red[:, 0] < bottom)]  # not the legend
    row, col = red.mean(axis=0)
    # the window spans the licence, E0..E0 + 400 and N0..N0 + 300, padded by 24 m
    assert left + 0.2 * (right - left) < col < left + 0.5 * (right - left)
    assert top + 0.7 * (bottom - top) < row < bottom


@pytest.mark.parametrize("which", [0, 1])
def test_sections_draw_the_broken_limit(which: int) -> None:
    lic, xyz, status, res = _scene()
    inc = res.incidents[which]
    img = _rgb(elevation_section(lic, inc, xyz, status))
    top, bottom, left, right = _axes_box(img)
    green = np.abs(img - np.array([0x1A, 0x7F, 0x37], dtype=np.float32) / 255).max(axis=-1) < 0.08
    red = np.abs(img - np.array([0xD6, 0x27, 0x28], dtype=np.float32) / 255).max(axis=-1) < 0.06
    red_rows, red_cols = np.nonzero(red[top:bottom, left:right])
    if inc.type is ViolationType.BOUNDARY:
        # the boundary: a vertical green line through the axes, the violation east of it
        cols = np.flatnonzero(green[top:bottom].sum(axis=0) > 0.8 * (bottom - top))
        assert len(cols)
        assert np.median(red_cols) + left > cols.max()
    else:
        # the licensed bottom (-80 m): a horizontal green line, the violation below it
        rows = np.flatnonzero(green[:, left:right].sum(axis=1) > 0.9 * (right - left))
        assert len(rows)
        assert np.median(red_rows) + top > rows.max()


def test_seam_section_draws_roof_and_floor() -> None:
    from dataclasses import replace

    from survey.model import Seam
    from survey.plots.drawing import SEAM_COLOUR

    class Flat:
        def __init__(self, h: float) -> None:
            self.h = h

        def height(self, en: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
            return np.full(len(en), self.h)

    lic, xyz, status, res = _scene()
    lic = replace(lic, seams=(Seam("No. 2", Flat(-50.0), Flat(-55.0)),))
    inc = replace(res.incidents[1], type=ViolationType.OUTSIDE_SEAM)
    img = _rgb(elevation_section(lic, inc, xyz, status))
    top, bottom, left, right = _axes_box(img)
    seam = np.array([int(SEAM_COLOUR[i : i + 2], 16) / 255 for i in (1, 3, 5)], dtype=np.float32)
    brown = np.abs(img[top:bottom, left:right] - seam).max(axis=-1) < 0.08
    per_row = brown.sum(axis=1)
    width = right - left
    assert (per_row > 0.9 * width).any()  # the roof, solid
    assert ((per_row > 0.3 * width) & (per_row < 0.8 * width)).any()  # the floor, dashed


def test_importing_the_report_does_not_import_pyplot() -> None:
    import subprocess
    import sys

    code = (
        "import sys, survey.report, survey.plots.plan, survey.plots.section; "
        "bad = [m for m in ('matplotlib.pyplot', 'matplotlib.backends.backend_tkagg') "
        "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr

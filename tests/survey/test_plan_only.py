"""Points surveyed without a height (issue 10 item 8): a Leica GSI point
whose height is ``-----`` is checked in plan only: inside or beyond the
boundary (the distance beyond it as shapely measures it), never above or
below a level, grouped into boundary incidents, drawn in the plan but not in
sections, left out of volumes, and counted in the notes, findings.json and
the report."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import shapely

from survey.check import check_files, check_survey
from survey.cli import EXIT_VIOLATIONS, main
from survey.model import Block, Corner, Licence, SurveyData, SurveyInputError, ViolationType
from survey.readers import read_survey
from survey.writers import write_licence_toml

# an L-shaped block (E, N), levels -80..+120 m
POLY_EN = [
    (400000.0, 2421000.0),
    (401000.0, 2421000.0),
    (401000.0, 2421600.0),
    (400500.0, 2421600.0),
    (400500.0, 2422000.0),
    (400000.0, 2422000.0),
]
DASHES = "-" * 16


def _licence() -> Licence:
    corners = tuple(Corner(str(i + 1), n, e) for i, (e, n) in enumerate(POLY_EN))
    return Licence(
        mine_name="test mine",
        licence_no="T-8",
        epsg=4545,
        zone_prefix=None,
        blocks=(Block("main", corners, 120.0, -80.0),),
        tolerance_m=1.5,
        tolerance_z_m=0.5,
    )


def _points() -> list[tuple[str, float, float, float]]:
    """(id, E, N, H or NaN) of the survey: known answers by construction."""
    pts: list[tuple[str, float, float, float]] = []
    # A: 16 points without a height, 5..20 m east of the east edge (E 401000)
    pts += [(f"A{k}", 401005.0 + k, 2421300.0, math.nan) for k in range(16)]
    # B: inside, without a height (compliant however deep or high they are)
    pts += [(f"B{k}", 400300.0 + 7.0 * k, 2421500.0 + 3.0 * k, math.nan) for k in range(10)]
    # C: inside, with heights, within the levels
    pts += [(f"C{k}", 400200.0 + 5.0 * k, 2421200.0, -50.0 + k) for k in range(10)]
    # D: a drift 4..12 m north of the inner edge N 2421600 (E 400700), measured
    # with heights, and three of its points without one
    pts += [(f"D{k}", 400700.0, 2421604.0 + k, -40.0 - 0.1 * k) for k in range(9)]
    pts += [(f"Dn{k}", 400700.5, 2421605.0 + 4 * k, math.nan) for k in range(3)]
    # E: inside, 6 m below the floor (-80): a level is still checked where known
    pts += [(f"E{k}", 400100.0 + k, 2421100.0, -86.0) for k in range(5)]
    return pts


def _gsi_word(wi: str, value: float | None, *, units: str = "8") -> str:
    """A GSI-16 word (units 8: metres, 1/100 mm), or ``-----`` data."""
    if value is None:
        return f"{wi}..4{units}+{DASHES}"  # sign column then dashes, as Leica writes
    sign = "-" if value < 0 else "+"
    data = f"{round(abs(value) * 1e5):016d}"
    return f"{wi}..4{units}{sign}{data}"


def _write_gsi(path: Path, pts: list[tuple[str, float, float, float]]) -> Path:
    lines = []
    for pid, e, n, h in pts:
        words = [
            f"11....+{pid:>016}",
            _gsi_word("81", e),
            _gsi_word("82", n),
            _gsi_word("83", None if math.isnan(h) else h),
        ]
        lines.append("*" + " ".join(words) + " ")
    path.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
    return path


def _shapely_beyond(pts: list[tuple[str, float, float, float]]) -> dict[str, float]:
    """Independent answer: distance beyond the boundary of every point
    outside the polygon (shapely), by id."""
    poly = shapely.Polygon(POLY_EN)
    out = {}
    for pid, e, n, _h in pts:
        p = shapely.Point(e, n)
        if not poly.covers(p):
            out[pid] = float(poly.exterior.distance(p))
    return out


@pytest.fixture
def gsi(tmp_path: Path) -> Path:
    return _write_gsi(tmp_path / "plan_only.gsi", _points())


def test_gsi_points_without_height_are_read_with_nan_height(gsi: Path) -> None:
    data = read_survey(gsi)
    pts = _points()
    assert data.point_ids == [p[0] for p in pts]
    want = np.array([[e, n, h] for _, e, n, h in pts])
    np.testing.assert_allclose(data.xyz, want, atol=1e-6)  # NaN == NaN here
    notes = " | ".join(data.notes)
    assert "29 GSI point(s) have no height" in notes and "checked in plan only" in notes


def test_check_classifies_points_without_height_in_plan_only(gsi: Path) -> None:
    pts = _points()
    beyond = _shapely_beyond(pts)
    assert set(beyond) == {p[0] for p in pts if p[0][0] in "AD"}  # the construction
    result = check_files(_licence(), [gsi])
    assert result.n_points == len(pts)
    assert result.n_plan_only == 29
    by_type = {(i.type, i.point_count) for i in result.incidents}
    # A (16, all without height), D (9 with + 3 without), E below the floor;
    # no level incident for the points without a height
    assert by_type == {
        (ViolationType.BOUNDARY, 16),
        (ViolationType.BOUNDARY, 12),
        (ViolationType.BELOW_RANGE, 5),
    }
    assert not result.uncertain
    a = next(i for i in result.incidents if i.point_count == 16)
    d = next(i for i in result.incidents if i.point_count == 12)
    assert a.max_exceedance_m == pytest.approx(max(beyond[f"A{k}"] for k in range(16)), abs=1e-6)
    assert a.max_exceedance_m == pytest.approx(20.0, abs=1e-6)
    dmax = max(v for k, v in beyond.items() if k.startswith("D"))
    assert d.max_exceedance_m == pytest.approx(dmax, abs=1e-6)
    # heights: unknown for A, from D's measured points for D; plan extent of all
    assert a.plan_only_points == 16 and math.isnan(a.centroid[2])
    assert math.isnan(a.bbox_min[2]) and math.isnan(a.bbox_max[2])
    assert (a.bbox_min[0], a.bbox_max[0]) == pytest.approx((401005.0, 401020.0), abs=1e-6)
    assert a.volume_m3 == 0.0  # no height: no volume
    assert d.plan_only_points == 3
    assert (d.bbox_min[2], d.bbox_max[2]) == pytest.approx((-40.8, -40.0), abs=1e-6)
    assert d.bbox_max[1] == pytest.approx(2421613.0, abs=1e-6)  # a point without height
    assert any("29 points have no height: checked in plan only" in n for n in result.notes)


def test_check_survey_accepts_nan_heights_but_not_infinite_ones() -> None:
    lic = _licence()
    xyz = np.array([[400100.0, 2421100.0, np.nan], [401010.0, 2421300.0, np.nan]])
    result = check_survey(lic, [SurveyData("mem", "xyz", xyz)])
    assert result.n_plan_only == 2
    assert [(i.type, i.point_count) for i in result.incidents] == [(ViolationType.BOUNDARY, 1)]
    assert result.incidents[0].max_exceedance_m == pytest.approx(10.0)
    for bad in ([np.inf, 2421100.0, -50.0], [400100.0, np.nan, -50.0], [400100, 2421100, np.inf]):
        with pytest.raises(SurveyInputError, match="non-finite"):
            check_survey(lic, [SurveyData("mem", "xyz", np.array([bad], dtype=np.float64))])


def test_points_without_height_are_not_counted_outside_the_seam() -> None:
    """A point without a height has no seam offset either: it is counted
    once, as checked in plan only, not as lying where no seam reaches."""
    from simulators.tunnels import make_licence

    lic = make_licence()
    seam = lic.seams[0]
    # a point the seam surfaces cover, with and without its height
    probe = np.array([[512000.0, 2523300.0]])
    for e in np.linspace(511950, 512300, 15):
        for n in np.linspace(2523150, 2523550, 15):
            if np.isfinite(seam.roof.height(np.array([[e, n]]))[0]):
                probe = np.array([[e, n]])
                break
        else:
            continue
        break
    assert np.isfinite(seam.roof.height(probe)).all(), "no covered point found"
    h = float(seam.floor.height(probe)[0]) + 1.0
    xyz = np.array([[*probe[0], h], [*probe[0], np.nan]])
    result = check_survey(lic, [SurveyData("mem", "xyz", xyz)])
    assert result.verdict == "compliant" and result.n_plan_only == 1
    assert not any("no licensed seam" in n for n in result.notes), result.notes


def test_report_and_findings_say_how_many_were_checked_in_plan_only(
    gsi: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lic = write_licence_toml(tmp_path / "licence.toml", replace(_licence()))
    out = tmp_path / "out"
    code = main(["survey", "check", "--licence", str(lic), "--scan", str(gsi), "--out", str(out)])
    printed, err = capsys.readouterr()
    assert code == EXIT_VIOLATIONS and "Traceback" not in err
    assert "H unknown" in printed  # incident A has no height
    doc = json.loads((out / "findings.json").read_text(encoding="utf-8"))
    assert doc["summary"]["points_plan_only"] == 29
    assert doc["summary"]["points_checked"] == len(_points())
    incs = {i["point_count"]: i for i in doc["incidents"]}
    assert incs[16]["plan_only_points"] == 16 and incs[16]["centroid"]["h"] is None
    assert incs[16]["extent"]["size_m"]["h"] is None and incs[16]["volume_m3"] == 0.0
    assert incs[12]["plan_only_points"] == 3 and incs[12]["centroid"]["h"] < -40.0
    assert any("checked in plan only" in n for n in doc["notes"])
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "29 points have no height: checked in plan only" in html
    assert "53 (29 without a height: checked in plan only)" in html  # points checked
    assert "surveyed without heights" in html  # no section for incident A
    # sections drawn: the incidents with heights only (D and E)
    assert html.count("elevation section through") == 2


@pytest.mark.parametrize("jit", [True, False])
def test_classify_gives_plan_only_answers_for_a_nan_height(
    jit: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Against shapely, on the compiled and the numpy path, one block and
    two: inside/outside and the distance beyond the union as for a point
    with a height; no level or seam bit."""
    import survey.classify as fast

    if not jit:
        monkeypatch.setattr(fast, "numba", None)
    one = _licence()
    east = tuple(
        Corner(str(i + 7), n, e)
        for i, (e, n) in enumerate(
            [
                (401000.0, 2421000.0),
                (401300.0, 2421000.0),
                (401300.0, 2421300.0),
                (401000.0, 2421300.0),
            ]
        )
    )
    two = replace(one, blocks=(*one.blocks, Block("east", east, 0.0, -200.0)))
    rng = np.random.default_rng(8)
    xyz = np.column_stack(
        [
            rng.uniform(399900, 401400, 4000),
            rng.uniform(2420900, 2422100, 4000),
            np.full(4000, np.nan),
        ]
    )
    for lic in (one, two):
        union = shapely.union_all([shapely.Polygon(b.polygon_en()) for b in lic.blocks])
        c = fast.classify(lic, xyz)
        inside = shapely.contains_xy(union, xyz[:, 0], xyz[:, 1])
        dist = shapely.distance(union.boundary, shapely.points(xyz[:, :2]))
        outside = ~inside
        np.testing.assert_allclose(c.plan_dist[outside], dist[outside], atol=1e-6)
        assert (c.plan_dist[inside] < 0).all()
        assert ((c.block >= 0) == inside).all()
        want = np.where(dist > lic.tolerance_m, 2, np.where(dist > 0, 1, 0))
        np.testing.assert_array_equal(c.status, np.where(outside, want, 0))
        assert not (c.violated & ~np.uint8(fast.BOUNDARY_BIT)).any()
        assert np.isnan(c.above).all() and np.isnan(c.below).all()


def test_compare_refuses_a_scan_with_points_without_height(gsi: Path) -> None:
    """A comparison finds the newer points with no older point near them,
    in 3D: a point without a height cannot take part; said, not crashed."""
    from survey.compare import compare_scans

    new = read_survey(gsi)
    old = replace(new, xyz=np.nan_to_num(new.xyz, nan=-50.0), source="old.xyz")
    with pytest.raises(SurveyInputError, match=r"newer scan has 29 point\(s\) without a height"):
        compare_scans(_licence(), old, new)


@pytest.mark.parametrize("header", ["点号,X,Y,H\n", ""])
def test_total_station_csv_with_an_empty_height_is_checked_in_plan_only(
    tmp_path: Path, header: str
) -> None:
    """A total-station table whose H field is empty for some points (with a
    header, X = northing; and without one, columns told by magnitude)."""
    pts = _points()
    rows = "".join(
        f"{pid},{n:.3f},{e:.3f},{'' if math.isnan(h) else f'{h:.3f}'}\n" for pid, e, n, h in pts
    )
    p = tmp_path / "points.csv"
    p.write_text(header + rows, encoding="utf-8")
    data = read_survey(p)
    np.testing.assert_allclose(data.xyz, [[e, n, h] for _, e, n, h in pts], atol=1e-9)
    assert any("29 point(s) have no height (empty or NaN H field)" in n for n in data.notes)
    result = check_files(_licence(), [p])
    assert result.n_plan_only == 29
    beyond = _shapely_beyond(pts)
    counts = sorted((i.type, i.point_count, i.plan_only_points) for i in result.incidents)
    assert counts == sorted(
        [
            (ViolationType.BOUNDARY, 16, 16),
            (ViolationType.BOUNDARY, 12, 3),
            (ViolationType.BELOW_RANGE, 5, 0),
        ]
    )
    worst = max(i.max_exceedance_m for i in result.incidents)
    assert worst == pytest.approx(max(beyond.values()), abs=1e-6)

"""Known-answer checks: the engine must find what simulators.tunnels built."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from simulators.tunnels import DRIFT_SECTION, Scene, drift_crossing_scene
from survey.check import (
    VERDICT_COMPLIANT,
    VERDICT_UNCERTAIN,
    VERDICT_VIOLATIONS,
    check_files,
    check_survey,
)
from survey.classify import prepare
from survey.model import CheckResult, Incident, SurveyData, SurveyInputError, ViolationType


def _match(result: CheckResult, vtype: ViolationType) -> Incident:
    found = [i for i in result.incidents if i.type is vtype]
    assert len(found) == 1, f"expected one {vtype} incident, got {found}"
    return found[0]


def _assert_expected(scene: Scene, result: CheckResult, *, volume_rel: float = 0.10) -> None:
    assert result.verdict == VERDICT_VIOLATIONS
    assert len(result.incidents) == len(scene.expected)
    for exp in scene.expected:
        inc = _match(result, exp.type)
        assert inc.max_exceedance_m == pytest.approx(exp.max_exceedance_m, abs=0.1)
        assert inc.volume_m3 == pytest.approx(exp.volume_m3, rel=volume_rel)
        assert not inc.within_uncertainty
        assert inc.block == "main"


def test_violation_scene_points(violation: Scene) -> None:
    result = check_survey(violation.licence, [violation.survey()])
    _assert_expected(violation, result)
    boundary = _match(result, ViolationType.BOUNDARY)
    # the drift crosses the straight east edge between corners 4 and 5
    assert boundary.nearest_edge == ("4", "5")
    assert boundary.point_count > 0
    lo, hi = np.array(boundary.bbox_min), np.array(boundary.bbox_max)
    assert np.all(lo <= boundary.centroid) and np.all(np.array(boundary.centroid) <= hi)
    assert result.uncertain == []
    assert [i.id for i in result.incidents] == ["I1", "I2", "I3"]
    assert set(result.timings_s) >= {"prepare", "classify", "group", "volume", "total"}


def test_violation_scene_mesh_volumes_by_clipping(violation: Scene) -> None:
    result = check_survey(violation.licence, [violation.mesh])
    # clipping a closed mesh is exact up to the 32-segment arch polygon
    _assert_expected(violation, result, volume_rel=0.02)


def test_compliant_scene(compliant: Scene) -> None:
    result = check_survey(compliant.licence, [compliant.survey()])
    assert result.verdict == VERDICT_COMPLIANT
    assert result.incidents == [] and result.uncertain == []
    assert result.n_points == len(compliant.points)


def test_exceedance_just_under_tolerance_is_uncertain() -> None:
    scene = drift_crossing_scene(1.2, density=60.0)
    assert scene.licence.tolerance_m == 1.5
    result = check_survey(scene.licence, [scene.survey()])
    assert result.verdict == VERDICT_UNCERTAIN
    assert result.incidents == []
    assert len(result.uncertain) == 1
    group = result.uncertain[0]
    assert group.id == "U1" and group.within_uncertainty
    assert group.type is ViolationType.BOUNDARY
    assert group.max_exceedance_m == pytest.approx(1.2, abs=0.05)
    assert group.volume_m3 == pytest.approx(DRIFT_SECTION.area * 1.2, rel=0.25)


def test_exceedance_just_over_tolerance_is_violation() -> None:
    scene = drift_crossing_scene(1.8, density=60.0)
    result = check_survey(scene.licence, [scene.survey()])
    assert result.verdict == VERDICT_VIOLATIONS
    assert [i.type for i in result.incidents] == [ViolationType.BOUNDARY]
    assert result.incidents[0].max_exceedance_m == pytest.approx(1.8, abs=0.05)


def test_preview_subsample(violation: Scene) -> None:
    result = check_survey(violation.licence, [violation.survey()])
    assert result.preview is not None
    assert result.preview.ndim == 2 and result.preview.shape[1] == 4
    status = result.preview[:, 3]
    assert set(np.unique(status)) <= {0.0, 1.0, 2.0}
    assert (status == 2).any() and (status == 0).any()
    assert len(result.preview) <= 4 * 100_000 + 10


def test_empty_scan_is_an_input_error(violation: Scene) -> None:
    empty = SurveyData(source="empty.las", fmt="las", xyz=np.zeros((0, 3)))
    with pytest.raises(SurveyInputError, match=r"empty\.las.*no points"):
        check_survey(violation.licence, [empty])
    with pytest.raises(SurveyInputError, match="no survey"):
        check_survey(violation.licence, [])


def test_non_finite_coordinates_are_an_input_error(violation: Scene) -> None:
    # (a NaN height is a point checked in plan only: tests/survey/test_plan_only.py)
    xyz = violation.points[:100].copy()
    xyz[7, 1] = np.nan
    bad = SurveyData(source="bad.xyz", fmt="xyz", xyz=xyz)
    with pytest.raises(SurveyInputError, match=r"bad\.xyz.*non-finite.*point 7"):
        check_survey(violation.licence, [bad])


def test_check_files_streams_like_check_survey(tmp_path: Path) -> None:
    scene = drift_crossing_scene(6.0, density=40.0)
    path = tmp_path / "scan.xyz"
    np.savetxt(path, scene.points, fmt="%.4f")
    whole = check_survey(scene.licence, [SurveyData(str(path), "xyz", np.loadtxt(path))])
    streamed = check_files(scene.licence, [path], chunk_points=20_000)
    assert streamed.n_points == whole.n_points == len(scene.points)
    assert streamed.verdict == whole.verdict == VERDICT_VIOLATIONS
    assert len(streamed.incidents) == len(whole.incidents) == 1
    a, b = streamed.incidents[0], whole.incidents[0]
    assert a.point_count == b.point_count
    assert a.max_exceedance_m == pytest.approx(b.max_exceedance_m)
    assert a.volume_m3 == pytest.approx(b.volume_m3)
    assert a.volume_m3 == pytest.approx(DRIFT_SECTION.area * 6.0, rel=0.1)


def test_check_files_empty_file(tmp_path: Path, violation: Scene) -> None:
    path = tmp_path / "empty.xyz"
    path.write_text("")
    with pytest.raises(SurveyInputError):
        check_files(violation.licence, [path])


def test_suspected_coordinate_system_note(violation: Scene) -> None:
    swapped = violation.points[::50][:, [1, 0, 2]]  # X/Y swapped on export
    result = check_survey(violation.licence, [SurveyData("swapped.xyz", "xyz", swapped)])
    assert result.verdict == VERDICT_VIOLATIONS
    assert any("coordinate system" in n for n in result.notes)


def test_kept_points_are_thinned_past_the_memory_bound(
    violation: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    from survey import tolerances

    monkeypatch.setattr(tolerances, "MAX_BEYOND_POINTS", 20_000)
    result = check_survey(violation.licence, [violation.survey()])
    assert any("kept" in n and "thinned" in n for n in result.notes)
    assert {i.type for i in result.incidents} == {e.type for e in violation.expected}
    for exp in violation.expected:
        inc = _match(result, exp.type)
        assert inc.max_exceedance_m == pytest.approx(exp.max_exceedance_m, abs=0.3)


def test_streaming_memory_stays_bounded(tmp_path: Path, compliant: Scene) -> None:
    """Compliant points are counted and dropped chunk by chunk: the peak of
    a streamed check is a fraction of what holding the scan would take."""
    import tracemalloc

    from survey.writers import write_las

    pts = np.concatenate([compliant.points] * 3)
    path = write_las(tmp_path / "big.las", pts)
    held = pts.nbytes + len(pts) * 46  # coordinates + a whole-scan classification
    del pts
    prepared = prepare(compliant.licence)  # the licence masks are a fixed cost
    tracemalloc.start()
    try:
        result = check_files(compliant.licence, [path], chunk_points=100_000, prepared=prepared)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.verdict == VERDICT_COMPLIANT
    assert result.n_points == 3 * len(compliant.points)
    assert peak < held / 3, f"peak {peak / 1e6:.0f} MB vs {held / 1e6:.0f} MB held"


def test_ramp_through_the_top_of_the_range(licence_factory) -> None:  # type: ignore[no-untyped-def]
    """An inclined ramp climbing through z_top: the max exceedance is the
    highest point of its end face, and the volume above the limit found from
    the scan points agrees with clipping the ramp's closed mesh."""
    import math

    from simulators.tunnels import Drift

    e0, n0 = 512_000.0, 2_523_000.0
    lic = licence_factory(
        [(e0 - 500, n0 - 500), (e0 + 500, n0 - 500), (e0 + 500, n0 + 500), (e0 - 500, n0 + 500)],
        120.0,
        -80.0,
    )
    ramp = Drift("ramp", (e0 - 100, n0, 100.0), (e0 + 60, n0 + 40, 130.0))
    rng = np.random.default_rng(12)
    pts = ramp.sample(int(ramp.surface_area * 80), rng)
    axis, _, up, length = ramp.frame()
    top = 130.0 + DRIFT_SECTION.height * up[2]  # crown of the end face
    # each axis-parallel line of the prism rises linearly, so the volume above
    # the plane is the area times the length above of the centroid's line
    sec = DRIFT_SECTION
    wall_area = sec.width * sec.wall
    arch_area = math.pi * sec.radius**2 / 2
    v_bar = (
        wall_area * sec.wall / 2 + arch_area * (sec.wall + 4 * sec.radius / (3 * math.pi))
    ) / sec.area
    expected = sec.area * (length - (120.0 - 100.0 - v_bar * up[2]) / axis[2])
    mesh = ramp.mesh()
    clip = check_survey(
        lic,
        [SurveyData("ramp.ply", "ply", np.asarray(mesh.vertices), faces=np.asarray(mesh.faces))],
    )
    scan = check_survey(lic, [SurveyData("ramp.xyz", "xyz", pts)])
    assert [i.type for i in scan.incidents] == [ViolationType.ABOVE_RANGE]
    (inc,) = scan.incidents
    assert inc.max_exceedance_m == pytest.approx(top - 120.0, abs=0.05)
    (ref,) = clip.incidents
    assert ref.type is ViolationType.ABOVE_RANGE
    assert ref.volume_m3 == pytest.approx(expected, rel=0.01)  # 32-segment arch
    assert inc.volume_m3 == pytest.approx(expected, rel=0.10)


def test_sparse_total_station_survey_is_one_incident() -> None:
    """About one point per 2 m2 (total-station spacing ~1.4 m): the drift
    beyond the boundary is one incident, not one per point."""
    scene = drift_crossing_scene(12.0, density=0.5, seed=4)
    result = check_survey(scene.licence, [scene.survey()])
    assert [i.type for i in result.incidents] == [ViolationType.BOUNDARY]
    inc = result.incidents[0]
    assert 10.0 < inc.max_exceedance_m <= 12.0 + 0.03
    assert any("sparse" in n for n in result.notes)
    # a dense scan of the same drift keeps the 0.5 m voxels (no such note)
    dense = check_survey(scene.licence, [drift_crossing_scene(12.0, density=40.0).survey()])
    assert not any("sparse" in n for n in dense.notes)


def test_survey_after_licence_expiry_is_noted(violation: Scene) -> None:
    from dataclasses import replace
    from datetime import date

    lic = replace(violation.licence, valid_from=date(2020, 1, 1), valid_to=date(2025, 12, 31))
    late = replace(violation.survey(), surveyed_on=date(2026, 6, 1))
    result = check_survey(lic, [late])
    assert any("after the licence expired (2025-12-31)" in n for n in result.notes)
    early = replace(violation.survey(), surveyed_on=date(2019, 6, 1))
    assert any("before the licence took effect" in n for n in check_survey(lic, [early]).notes)
    ok = replace(violation.survey(), surveyed_on=date(2024, 6, 1))
    assert not any("licence expired" in n for n in check_survey(lic, [ok]).notes)


def test_points_beyond_seam_coverage_are_noted(violation: Scene) -> None:
    """The seam surfaces cover only the western part of the scene, where the
    seam drifts run; the other workings lie outside the seam's extent. The
    note counts them (against the surfaces themselves), names the seam and
    says what it means and when it is a problem, not only that the
    surfaces do not reach (issue 10 follow-up: the sample's note confused)."""
    result = check_survey(violation.licence, [violation.survey()])
    seam = violation.licence.seams[0]
    en = violation.points[:, :2]
    outside = np.isnan(seam.roof.height(en)) | np.isnan(seam.floor.height(en))
    n, total = int(outside.sum()), len(en)
    assert 0 < n < total
    note = next(x for x in result.notes if "extent of the licensed seam" in x)
    assert note.startswith(
        f"{n:,} of the {total:,} points ({100 * n / total:.0f}%) lie outside the extent of the "
        "licensed seam (No. 2 seam), where its roof and floor surfaces give no limit"
    )
    assert "checked against the boundary and the elevation range" in note
    assert "seam workings are among them" in note and "extend them" in note


def test_two_block_licence() -> None:
    """Two blocks side by side with different elevation ranges: a drift
    passing from one into the other is fine, one that dips below the
    eastern block's floor is a below_range incident of that block, named."""
    from simulators.tunnels import Drift
    from survey.model import Block, Corner, Licence

    e0, n0 = 512_000.0, 2_523_000.0

    def block(name: str, e_lo: float, e_hi: float, top: float, bottom: float) -> Block:
        ring = [(e_lo, n0), (e_hi, n0), (e_hi, n0 + 200), (e_lo, n0 + 200)]
        return Block(
            name,
            tuple(Corner(f"{name}{i + 1}", n, e) for i, (e, n) in enumerate(ring)),
            top,
            bottom,
        )

    lic = Licence(
        "m",
        "T-2",
        4545,
        None,
        (block("W", e0, e0 + 200, 100.0, -50.0), block("E", e0 + 200, e0 + 400, 100.0, -20.0)),
    )
    rng = np.random.default_rng(3)
    through = Drift("through", (e0 + 150, n0 + 100, -10.0), (e0 + 260, n0 + 100, -10.0))
    deep = Drift("deep", (e0 + 300, n0 + 50, -30.0), (e0 + 340, n0 + 50, -30.0))
    pts = np.concatenate([w.sample(int(w.surface_area * 40), rng) for w in (through, deep)])
    result = check_survey(lic, [SurveyData("two.xyz", "xyz", pts)])
    assert [(i.type, i.block) for i in result.incidents] == [(ViolationType.BELOW_RANGE, "E")]
    inc = result.incidents[0]
    assert inc.max_exceedance_m == pytest.approx(10.0, abs=0.05)  # floor -30 vs -20
    # its roof (-26.5 m) is under the floor of -20 m too: the whole drift is beyond
    assert inc.volume_m3 == pytest.approx(deep.volume, rel=0.1)


@pytest.mark.parametrize("with_seam", [True, False])
def test_streaming_status_pass_gives_the_same_findings_as_full_classification(
    violation: Scene, monkeypatch: pytest.MonkeyPatch, with_seam: bool
) -> None:
    """check_files classifies every point for its status only and the
    non-compliant ones in full; switching that off (every point in full)
    must not change a number of the result."""
    from dataclasses import replace

    import survey.check as check_mod
    import survey.check_stream as stream_mod

    licence = violation.licence if with_seam else replace(violation.licence, seams=())
    assert bool(licence.seams) == with_seam
    used = []
    real = stream_mod.classify_status

    def spy(*args: object, **kwargs: object) -> object:
        got = real(*args, **kwargs)  # type: ignore[arg-type]
        used.append(got is not None)
        return got

    monkeypatch.setattr(stream_mod, "classify_status", spy)
    fast_result = check_mod.check_survey(licence, [violation.survey()])
    assert used and all(used)
    monkeypatch.setattr(stream_mod, "classify_status", lambda *a, **k: None)
    full_result = check_mod.check_survey(licence, [violation.survey()])
    assert fast_result.n_points == full_result.n_points
    assert fast_result.notes == full_result.notes
    assert len(fast_result.uncertain) == len(full_result.uncertain)
    assert len(fast_result.incidents) == len(full_result.incidents) > 0
    for f, g in zip(fast_result.incidents, full_result.incidents, strict=True):
        assert (f.id, f.type, f.point_count) == (g.id, g.type, g.point_count)
        assert f.max_exceedance_m == g.max_exceedance_m
        assert f.volume_m3 == pytest.approx(g.volume_m3, rel=1e-12)
    assert fast_result.preview is not None and full_result.preview is not None
    np.testing.assert_array_equal(fast_result.preview, full_result.preview)


def test_mesh_files_checked_by_clipping_whatever_the_format(
    violation: Scene, tmp_path: Path
) -> None:
    """`minegate survey check` on a closed tunnel mesh exported as OBJ or
    as DXF 3DFACEs: both are read whole (faces kept) and give the same
    incidents with clipping volumes as the in-memory mesh."""
    from survey.check import check_files
    from survey.writers import write_dxf, write_mesh

    mesh = violation.mesh
    assert mesh.faces is not None
    ref = check_survey(violation.licence, [mesh])
    for path in (
        write_mesh(tmp_path / "tunnel.obj", mesh.xyz, mesh.faces),
        write_dxf(tmp_path / "tunnel.dxf", mesh.xyz, mesh.faces),
    ):
        got = check_files(violation.licence, [path])
        assert [(i.type, i.block) for i in got.incidents] == [
            (i.type, i.block) for i in ref.incidents
        ], path.name
        for g, r in zip(got.incidents, ref.incidents, strict=True):
            assert g.max_exceedance_m == pytest.approx(r.max_exceedance_m, abs=0.01), path.name
            assert g.volume_m3 == pytest.approx(r.volume_m3, rel=0.01), path.name

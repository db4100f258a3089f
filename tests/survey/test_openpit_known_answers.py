"""The open-pit check against the synthetic pit of ``survey sample
--open-pit``: answers from the geometry that built the files (expected.json),
within bench heights 0.2 m, angles 2°, volumes 5 %."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from survey.openpit.check import PitCheckResult, check_pit
from survey.openpit.design import load_design
from survey.openpit.geometry import PitGeometry
from survey.openpit.sample import write_pit_sample
from survey.readers.licence_files import load_licence

G = PitGeometry()


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pit")
    write_pit_sample(out)
    return out


@pytest.fixture(scope="module")
def expected(sample: Path) -> dict:  # type: ignore[type-arg]
    data: dict = json.loads((sample / "expected.json").read_text())  # type: ignore[type-arg]
    return data


def _check(sample: Path, name: str, **kw: str) -> PitCheckResult:
    return check_pit(
        load_licence(sample / "licence.toml"),
        sample / name,
        design=load_design(sample / "design.toml"),
        **{k: str(sample / v) for k, v in kw.items()},  # type: ignore[arg-type]
    )


@pytest.fixture(scope="module")
def first(sample: Path) -> PitCheckResult:
    return _check(sample, "dsm_2026-03-01.tif")


@pytest.fixture(scope="module")
def second(sample: Path) -> PitCheckResult:
    return _check(
        sample, "dsm_2026-09-01.tif", earlier_path="dsm_2026-03-01.tif", pre_path="pre_mining.tif"
    )


def _in_sector(theta: float, sector: list[float], margin: float = 0.0) -> bool:
    lo, hi = sector[0] - margin, sector[1] + margin
    return any(lo <= t <= hi for t in (theta, theta + 360, theta - 360))


def _theta(e: float, n: float) -> float:
    return math.degrees(math.atan2(n - G.centre_en[1], e - G.centre_en[0])) % 360


def _normal_faces(pit: PitCheckResult, exp: dict) -> list:  # type: ignore[type-arg]
    """Faces of profiles away from every special sector (and their blends)."""
    special = [
        exp["steep_face"]["sector_deg"],
        exp["one_wall"]["sector_deg"],
        [-21.0, 21.0],
        [259.0, 301.0],
    ]
    return [
        f
        for p in pit.benches.profiles
        if not any(_in_sector(p.theta_deg, s, G.ramp_deg + 1) for s in special)
        for f in p.faces
        if f.toe_h >= G.floor_m - 0.5  # not the sump
    ]


def _assert_benches(pit: PitCheckResult, exp: dict, angle_tol: float = 2.0) -> None:  # type: ignore[type-arg]
    faces = _normal_faces(pit, exp)
    assert len(faces) > 200
    for f in faces:
        assert f.height_m == pytest.approx(exp["bench_height_m"], abs=0.2), f
        assert f.angle_deg == pytest.approx(exp["face_angle_deg"], abs=angle_tol), f
        if f.berm_above_m is not None:
            assert f.berm_above_m == pytest.approx(exp["berm_width_m"], abs=0.3), f


def test_benches_measured_as_built(first: PitCheckResult, expected: dict) -> None:  # type: ignore[type-arg]
    _assert_benches(first, expected)
    levels = sorted(round(b.toe_h) for b in first.benches.benches)
    assert {160, 170, 180, 190} <= set(levels)


def test_steep_face_found_where_built(first: PitCheckResult, expected: dict) -> None:  # type: ignore[type-arg]
    exp = expected["steep_face"]
    steep = [v for v in first.benches.violations if v.kind == "steep_face"]
    assert len(steep) == 1
    v = steep[0]
    assert v.worst == pytest.approx(exp["angle_deg"], abs=2.0)
    assert _in_sector(_theta(*v.location[:2]), exp["sector_deg"], G.ramp_deg)
    assert v.location[2] == pytest.approx(exp["toe_h"] + G.bench_height_m / 2, abs=0.5)
    # every profile in the sector's core sees the steep face at its angle
    for p in first.benches.profiles:
        if _in_sector(p.theta_deg, exp["sector_deg"], -1):
            face = next(f for f in p.faces if abs(f.toe_h - exp["toe_h"]) < 0.5)
            assert face.angle_deg == pytest.approx(exp["angle_deg"], abs=2.0)
            assert face.height_m == pytest.approx(G.bench_height_m, abs=0.2)


def test_one_wall_found_with_height_location_length(first: PitCheckResult, expected: dict) -> None:  # type: ignore[type-arg]
    exp = expected["one_wall"]
    walls = [v for v in first.benches.violations if v.kind == "one_wall"]
    assert len(walls) == 1
    v = walls[0]
    assert v.worst == pytest.approx(exp["height_m"], abs=0.2)
    assert v.height_m == pytest.approx(exp["height_m"], abs=0.2)
    assert _in_sector(_theta(*v.location[:2]), exp["sector_deg"], G.ramp_deg)
    step = first.design.analysis.profile_step_deg
    r_mid = math.dist(exp["centre_en"], G.centre_en)
    slack = 2 * r_mid * math.radians(step)
    assert exp["length_core_m"] - slack <= v.length_m <= exp["length_with_ramps_m"] + slack
    for p in first.benches.profiles:
        if _in_sector(p.theta_deg, exp["sector_deg"], -1):
            (face,) = p.faces[-1:]
            assert face.height_m == pytest.approx(exp["height_m"], abs=0.2)
            assert face.angle_deg == pytest.approx(exp["angle_deg"], abs=2.0)
    assert any(x.kind == "overall_slope" for x in first.benches.violations)


def test_beyond_boundary_and_below_floor_volumes(first: PitCheckResult, expected: dict) -> None:  # type: ignore[type-arg]
    by_type = {str(i.type): i for i in first.result.incidents}
    assert set(by_type) == {"boundary", "below_range"}
    b, f = by_type["boundary"], by_type["below_range"]
    assert b.volume_m3 == pytest.approx(expected["beyond_boundary"]["volume_m3"], rel=0.05)
    assert b.max_exceedance_m == pytest.approx(expected["beyond_boundary"]["max_beyond_m"], abs=0.5)
    assert b.nearest_edge == ("2", "3")
    assert f.volume_m3 == pytest.approx(expected["below_floor"]["volume_m3"], rel=0.05)
    assert f.max_exceedance_m == pytest.approx(expected["below_floor"]["max_below_m"], abs=0.2)
    assert first.ground_source.startswith("surrounding terrain")
    assert first.result.verdict == "violations found"


def test_two_surveys_cut_volumes_and_order(second: PitCheckResult, expected: dict) -> None:  # type: ignore[type-arg]
    exp = expected["between_surveys"]
    o = second.order
    assert o is not None
    assert o.cut_inside_m3 == pytest.approx(exp["cut_inside_m3"], rel=0.05)
    assert o.cut_outside_m3 == pytest.approx(exp["cut_outside_m3"], rel=0.05)
    assert o.fill_m3 == pytest.approx(0.0, abs=1.0)
    bad = [a for a in o.areas if a.out_of_order]
    assert len(bad) == 1
    a = bad[0]
    assert _in_sector(_theta(*a.centroid[:2]), exp["out_of_order"]["sector_deg"], G.ramp_deg)
    assert a.h_top == pytest.approx(exp["out_of_order"]["level_m"][1], abs=0.2)
    assert a.h_bottom == pytest.approx(exp["out_of_order"]["level_m"][0], abs=0.2)
    # the east pushback took both upper benches: in order
    east = [x for x in o.areas if _in_sector(_theta(*x.centroid[:2]), [-20.0, 20.0])]
    assert len(east) == 2 and not any(x.out_of_order for x in east)
    # the berm left above the lone pushback is too narrow
    narrow = [v for v in second.benches.violations if v.kind == "narrow_berm"]
    assert narrow and min(v.worst for v in narrow) == pytest.approx(exp["berm_left_m"], abs=0.3)
    # against the pre-mining surface, everything beyond the east edge, both flights
    b = next(i for i in second.result.incidents if str(i.type) == "boundary")
    total = expected["beyond_boundary"]["volume_m3"] + exp["cut_outside_m3"]
    assert b.volume_m3 == pytest.approx(total, rel=0.05)
    assert second.ground_source.startswith("pre-mining surface")


@pytest.mark.parametrize("name", ["cloud_2026-03-01.las", "mesh_2026-03-01.obj"])
def test_cloud_and_mesh_give_the_dsm_answers(sample: Path, expected: dict, name: str) -> None:  # type: ignore[type-arg]
    pit = _check(sample, name)
    _assert_benches(pit, expected)
    by_type = {str(i.type): i for i in pit.result.incidents}
    assert by_type["boundary"].volume_m3 == pytest.approx(
        expected["beyond_boundary"]["volume_m3"], rel=0.05
    )
    assert by_type["below_range"].volume_m3 == pytest.approx(
        expected["below_floor"]["volume_m3"], rel=0.05
    )
    kinds = {v.kind for v in pit.benches.violations}
    assert {"one_wall", "steep_face"} <= kinds


def test_photogrammetric_noise_does_not_move_the_answers(expected: dict) -> None:  # type: ignore[type-arg]
    """5 cm of height noise, about what dense matching leaves on rock."""
    import numpy as np

    from survey.openpit.check import check_pit_dsm
    from survey.openpit.design import PitDesign
    from survey.openpit.dsm import Dsm

    e, n = G.axes(0.25)
    E, N = np.meshgrid(e, n)
    z = G.height(E, N) + np.random.default_rng(1).normal(0.0, 0.05, E.shape)
    pit = check_pit_dsm(G.licence(), Dsm(e, n, z, "noisy"), PitDesign())
    _assert_benches(pit, expected)
    # noise may split a run of steep profiles where the blend into the
    # normal wall is itself near the limit, but finds nothing new
    assert {v.kind for v in pit.benches.violations} == {"one_wall", "overall_slope", "steep_face"}
    steep = max(
        (v for v in pit.benches.violations if v.kind == "steep_face"), key=lambda v: v.length_m
    )
    assert steep.worst == pytest.approx(expected["steep_face"]["angle_deg"], abs=2.0)
    assert _in_sector(_theta(*steep.location[:2]), expected["steep_face"]["sector_deg"], G.ramp_deg)
    volumes = {str(i.type): i.volume_m3 for i in pit.result.incidents}
    assert volumes["boundary"] == pytest.approx(expected["beyond_boundary"]["volume_m3"], rel=0.05)
    assert volumes["below_range"] == pytest.approx(expected["below_floor"]["volume_m3"], rel=0.05)
    assert len(pit.result.incidents) == 2 and not pit.result.uncertain


def test_hillside_quarry_one_wall_height_against_the_hill() -> None:
    """半边山一面墙 as it is usually found: a quarry floor cut into a hill
    rising north at 0.4 (21.8°), ending in one face at 70° that meets the
    hillside. The face height is to where it meets the hill (the ground
    above the crest is not flat), from the geometry: the face rises from
    the floor (+100 at 50 m north) until 100 + t tan 70° = 100 + 0.4 (50 + t)."""
    import numpy as np

    from survey.openpit.check import check_pit_dsm
    from survey.openpit.design import PitDesign
    from survey.openpit.dsm import Dsm

    e0, n0 = 561_000.0, 2_431_000.0
    tan_face = math.tan(math.radians(70.0))
    t = 0.4 * 50 / (tan_face - 0.4)
    height = t * tan_face
    e = e0 - 100 + 0.25 * (np.arange(800) + 0.5)
    n = n0 - 60 + 0.25 * (np.arange(640) + 0.5)
    E, N = np.meshgrid(e, n)
    hill = 100 + 0.4 * (N - n0)
    cut = 100 + tan_face * np.maximum.reduce(
        [np.zeros_like(E), N - (n0 + 50), np.abs(E - e0) - 40, n0 - N]
    )
    dsm = Dsm(e, n, np.minimum(hill, cut), "hill quarry")
    pit = check_pit_dsm(G.licence(), dsm, PitDesign())
    walls = [v for v in pit.benches.violations if v.kind == "one_wall"]
    assert len(walls) == 1
    w = walls[0]
    assert w.worst == pytest.approx(height, abs=0.2)
    assert w.location[1] == pytest.approx(n0 + 50 + t / 2, abs=1.0)  # the face's middle
    assert w.location[2] == pytest.approx(100 + height / 2, abs=0.3)
    assert not any(v.kind == "steep_face" for v in pit.benches.violations)


def test_holes_in_the_dsm_are_gaps_not_the_end_of_the_wall(expected: dict) -> None:  # type: ignore[type-arg]
    """A pond with no heights in the middle of the floor (every profile
    starts in it) and scattered 1 m holes where dense matching failed."""
    import numpy as np

    from survey.openpit.check import check_pit_dsm
    from survey.openpit.design import PitDesign
    from survey.openpit.dsm import Dsm

    e, n = G.axes(0.25)
    E, N = np.meshgrid(e, n)
    z = G.height(E, N)
    z[np.hypot(E - G.centre_en[0], N - G.centre_en[1]) < 20.0] = np.nan
    rng = np.random.default_rng(3)
    for i, j in zip(
        rng.integers(0, z.shape[0] - 4, 300), rng.integers(0, z.shape[1] - 4, 300), strict=True
    ):
        z[i : i + 4, j : j + 4] = np.nan
    pit = check_pit_dsm(G.licence(), Dsm(e, n, z, "holes"), PitDesign())
    assert math.dist(pit.benches.centre, G.centre_en) < 1.0  # found around the pond
    faces = _normal_faces(pit, expected)
    assert len(faces) > 200
    for f in faces:
        assert f.height_m == pytest.approx(expected["bench_height_m"], abs=0.2), f
        assert f.angle_deg == pytest.approx(expected["face_angle_deg"], abs=2.0), f
    assert {"one_wall", "steep_face"} <= {v.kind for v in pit.benches.violations}

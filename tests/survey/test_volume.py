"""Volumes beyond a limit: section method on shells, clipping of meshes."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest
import trimesh
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.transform import Rotation

from simulators.tunnels import Drift, Section, Stope
from survey.check import check_survey
from survey.model import F64, Licence, SurveyData, ViolationType
from survey.volume import mesh_volume_beyond, shell_volume

E0, N0 = 512_000.0, 2_523_000.0


def _place(uvh: F64, seed: int) -> F64:
    """Rotate arbitrarily (also out of the horizontal) and move to CGCS2000."""
    rot = Rotation.random(random_state=seed).as_matrix()
    return uvh @ rot.T + np.array([E0, N0, -40.0])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_closed_box_shell(seed: int) -> None:
    stope = Stope("box", (0.0, 0.0, 0.0), (20.0, 9.0, 6.0))
    rng = np.random.default_rng(seed)
    pts = _place(stope.sample(int(stope.surface_area * 100), rng), seed)
    assert shell_volume(pts) == pytest.approx(stope.volume, rel=0.03)


@pytest.mark.parametrize("arched", [True, False])
def test_drift_shell(arched: bool) -> None:
    drift = Drift("d", (0.0, 0.0, 0.0), (25.0, 8.0, 3.0), section=Section(4.0, 3.5, arched))
    rng = np.random.default_rng(4)
    pts = _place(drift.sample(int(drift.surface_area * 100), rng), 7)
    pts += rng.normal(0.0, 0.01, pts.shape)
    assert shell_volume(pts) == pytest.approx(drift.volume, rel=0.03)


def test_open_shell_cut_at_a_limit() -> None:
    """Bottom and walls of a chamber below a limit plane (no lid)."""
    stope = Stope("box", (0.0, 0.0, -6.0), (30.0, 15.0, 20.0))
    rng = np.random.default_rng(3)
    pts = stope.sample(int(stope.surface_area * 100), rng)
    below = pts[pts[:, 2] < 0.0]
    assert shell_volume(below) == pytest.approx(30 * 15 * 6, rel=0.03)


def test_degenerate_shells() -> None:
    assert shell_volume(np.zeros((3, 3))) == 0.0
    line = np.column_stack([np.linspace(0, 10, 50), np.zeros(50), np.zeros(50)])
    assert shell_volume(line) == 0.0


def _square(factory: Callable[..., Licence]) -> Licence:
    return factory([(E0, N0), (E0 + 100, N0), (E0 + 100, N0 + 100), (E0, N0 + 100)], 50.0, -100.0)


def _box_mesh(lo: tuple[float, float, float], hi: tuple[float, float, float]) -> trimesh.Trimesh:
    return trimesh.creation.box(bounds=np.array([lo, hi]))


def test_mesh_clipping_known_volumes(licence_factory: Callable[..., Licence]) -> None:
    lic = _square(licence_factory)
    origin = np.array([E0 + 50, N0 + 50, 0.0])
    # 4 m x 3 m drift-like box from 40 m inside to 12 m beyond the east edge,
    # its floor 2 m below the licensed floor of -100 m
    mesh = _box_mesh((40.0, -2.0, -102.0), (62.0, 2.0, -99.0))  # local coordinates
    beyond = mesh_volume_beyond(lic, mesh, origin, ViolationType.BOUNDARY)
    assert beyond == pytest.approx(12.0 * 4.0 * 3.0, rel=1e-6)
    below = mesh_volume_beyond(lic, mesh, origin, ViolationType.BELOW_RANGE)
    assert below == pytest.approx(22.0 * 4.0 * 2.0, rel=1e-6)
    assert mesh_volume_beyond(lic, mesh, origin, ViolationType.ABOVE_RANGE) == 0.0
    assert mesh_volume_beyond(lic, mesh, origin, ViolationType.OUTSIDE_SEAM) is None
    # only the part in a box around one incident counts
    box = (origin + np.array([55.0, -10.0, -110.0]), origin + np.array([60.0, 10.0, -90.0]))
    part = mesh_volume_beyond(lic, mesh, origin, ViolationType.BOUNDARY, bbox=box)
    assert part == pytest.approx(5.0 * 4.0 * 3.0, rel=1e-6)


def test_open_mesh_is_not_clipped(licence_factory: Callable[..., Licence]) -> None:
    mesh = _box_mesh((40.0, -2.0, -50.0), (62.0, 2.0, -47.0))
    mesh.update_faces(np.arange(len(mesh.faces) - 2))  # knock out one side
    assert not mesh.is_watertight
    lic = _square(licence_factory)
    assert mesh_volume_beyond(lic, mesh, np.array([E0, N0, 0.0]), ViolationType.BOUNDARY) is None


def test_check_of_a_closed_mesh_crossing_the_boundary(
    licence_factory: Callable[..., Licence],
) -> None:
    lic = _square(licence_factory)
    mesh = _box_mesh((E0 + 60, N0 + 40, -60.0), (E0 + 100 + 12.0, N0 + 44, -56.5))
    data = SurveyData(
        "box.stl", "stl", np.asarray(mesh.vertices), faces=np.asarray(mesh.faces, np.int64)
    )
    result = check_survey(lic, [data])
    assert result.verdict == "violations found"
    assert len(result.incidents) == 1
    inc = result.incidents[0]
    assert inc.type is ViolationType.BOUNDARY
    assert inc.max_exceedance_m == pytest.approx(12.0, abs=1e-6)
    assert inc.volume_m3 == pytest.approx(12.0 * 4.0 * 3.5, rel=1e-6)
    assert math.isfinite(inc.volume_m3)


def test_two_drifts_in_one_section_are_not_bridged() -> None:
    """Two parallel drifts 10 m apart joined by a cross-cut: the rock
    pillar between them is not excavated volume."""
    sec = Section(4.0, 3.5, arched=True)
    a = Drift("a", (0.0, 0.0, 0.0), (40.0, 0.0, 0.0), section=sec, caps=(True, True))
    b = Drift("b", (0.0, 14.0, 0.0), (40.0, 14.0, 0.0), section=sec, caps=(True, True))
    cross = Drift("x", (38.0, 2.0, 0.0), (38.0, 12.0, 0.0), section=sec, caps=(False, False))
    rng = np.random.default_rng(8)
    pts = np.concatenate([w.sample(int(w.surface_area * 100), rng) for w in (a, b, cross)])
    truth = a.volume + b.volume + cross.volume
    assert shell_volume(_place(pts, 3)) == pytest.approx(truth, rel=0.10)


@pytest.mark.parametrize("density", [3.0, 8.0])
def test_sparse_surveys(density: float) -> None:
    """A sparse total-station-like survey of an open chamber and a drift:
    the slices and opening grid adapt to the point spacing."""
    from survey.volume import surface_density

    rng = np.random.default_rng(int(density))
    stope = Stope("box", (0.0, 0.0, -6.0), (30.0, 15.0, 20.0))
    pts = stope.sample(int(stope.surface_area * density), rng)
    assert surface_density(pts) == pytest.approx(density, rel=0.1)
    below = _place(pts[pts[:, 2] < 0.0], 5)
    assert shell_volume(below) == pytest.approx(30 * 15 * 6, rel=0.10)
    drift = Drift("d", (0.0, 0.0, 0.0), (15.0, 0.0, 0.0))
    dp = _place(drift.sample(int(drift.surface_area * density), rng), 6)
    assert shell_volume(dp) == pytest.approx(drift.volume, rel=0.10)


@settings(max_examples=12, deadline=None)
@given(
    angle=st.floats(-60.0, 60.0),
    beyond=st.floats(4.0, 30.0),
    rise=st.floats(-0.15, 0.15),
    arched=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_oblique_crossings_scan_vs_mesh(
    licence_factory: Callable[..., Licence],
    angle: float,
    beyond: float,
    rise: float,
    arched: bool,
    seed: int,
) -> None:
    """Drifts crossing the east edge at an angle, level or inclined: the
    section method on scan points agrees with clipping the closed mesh."""
    lic = _square(licence_factory)
    a = math.radians(angle)
    direction = np.array([math.cos(a), math.sin(a), rise])
    start = np.array([E0 + 60.0, N0 + 50.0, -50.0])
    # the floor centre line leaves the licence (E = E0 + 100) by `beyond`
    length = (40.0 + beyond) / math.cos(a)
    end = start + direction * length
    drift = Drift("d", tuple(start), tuple(end), section=Section(4.0, 3.5, arched))
    rng = np.random.default_rng(seed)
    pts = drift.sample(int(drift.surface_area * 60), rng)
    mesh = drift.mesh()
    origin = np.zeros(3)
    expected = mesh_volume_beyond(lic, mesh, origin, ViolationType.BOUNDARY)
    assert expected is not None and expected > 0
    result = check_survey(lic, [SurveyData("d.xyz", "xyz", pts)])
    (inc,) = result.incidents
    assert inc.type is ViolationType.BOUNDARY
    assert inc.volume_m3 == pytest.approx(expected, rel=0.10)


def test_large_shells_are_thinned_for_volume(monkeypatch: pytest.MonkeyPatch) -> None:
    from survey import tolerances

    stope = Stope("box", (0.0, 0.0, 0.0), (20.0, 9.0, 6.0))
    pts = _place(stope.sample(int(stope.surface_area * 150), np.random.default_rng(1)), 2)
    full = shell_volume(pts)
    monkeypatch.setattr(tolerances, "VOLUME_MAX_POINTS", 20_000)
    thinned = shell_volume(pts)
    assert len(pts) > 20_000
    assert thinned == pytest.approx(full, rel=0.03)
    assert thinned == pytest.approx(stope.volume, rel=0.05)

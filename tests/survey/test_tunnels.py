"""The known-answer generator itself: geometry, answers, speed."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import shapely

from simulators.tunnels import (
    DRIFT_SECTION,
    Drift,
    Scene,
    Section,
    Stope,
    generate_scan,
)
from survey.check import check_survey
from survey.model import ViolationType


def test_section_geometry() -> None:
    arched = Section(4.0, 3.5, arched=True)
    assert arched.area == pytest.approx(4.0 * 1.5 + math.pi * 2.0**2 / 2)
    assert arched.perimeter == pytest.approx(4.0 + 2 * 1.5 + math.pi * 2.0)
    outline = shapely.Polygon(arched.outline(arc_segments=256))
    assert outline.area == pytest.approx(arched.area, rel=1e-3)
    rect = Section(3.0, 2.8, arched=False)
    assert rect.area == pytest.approx(8.4)
    for sec in (arched, rect):
        t = np.linspace(0, sec.perimeter, 1000, endpoint=False)
        u, v = sec.boundary_points(t)
        ring = shapely.Polygon(sec.outline(arc_segments=256)).boundary
        d = shapely.distance(shapely.points(u, v), ring)
        assert d.max() < 1e-3
        iu, iv = sec.inside_points(500, np.random.default_rng(0))
        assert shapely.contains_xy(shapely.Polygon(sec.outline(256)).buffer(1e-9), iu, iv).all()


def test_drift_points_and_mesh() -> None:
    ramp = Drift("ramp", (0.0, 0.0, -40.0), (100.0, 30.0, -20.0), section=DRIFT_SECTION)
    axis, side, up, length = ramp.frame()
    assert length == pytest.approx(math.sqrt(100**2 + 30**2 + 20**2))
    assert np.dot(axis, side) == pytest.approx(0.0, abs=1e-12)
    assert np.dot(axis, up) == pytest.approx(0.0, abs=1e-12)
    pts = ramp.sample(20_000, np.random.default_rng(1))
    rel = pts - np.array(ramp.start)
    s, u, v = rel @ axis, rel @ side, rel @ up
    assert s.min() >= -1e-9 and s.max() <= length + 1e-9
    assert np.all(np.abs(u) <= 2.0 + 1e-9) and v.min() >= -1e-9 and v.max() <= 3.5 + 1e-9
    mesh = ramp.mesh()
    assert mesh.is_watertight
    assert mesh.volume == pytest.approx(ramp.volume, rel=0.005)


def test_stope_points_on_faces() -> None:
    stope = Stope("s", (0.0, 0.0, -10.0), (30.0, 15.0, 10.0))
    pts = stope.sample(10_000, np.random.default_rng(2))
    lo, hi = np.array(stope.lo), np.array(stope.hi)
    on_face = np.isclose(pts, lo) | np.isclose(pts, hi)
    assert on_face.any(axis=1).all()
    assert stope.mesh().volume == pytest.approx(stope.volume)


def test_scene_placement_and_answers(violation: Scene) -> None:
    pts = violation.points
    assert pts.dtype == np.float64 and pts.shape[1] == 3
    # CGCS2000 zone 36 without prefix (EPSG 4545) near Qinzhou
    assert 5.0e5 < pts[:, 0].min() and pts[:, 0].max() < 5.3e5
    assert 2.5e6 < pts[:, 1].min() and pts[:, 1].max() < 2.55e6
    lic = violation.licence
    assert lic.epsg == 4545 and 8 <= len(lic.blocks[0].corners) <= 32
    assert shapely.Polygon(lic.blocks[0].polygon_en()).is_valid
    assert len(lic.seams) == 1
    types = {e.type for e in violation.expected}
    assert types == {
        ViolationType.BOUNDARY,
        ViolationType.BELOW_RANGE,
        ViolationType.OUTSIDE_SEAM,
    }
    boundary = next(e for e in violation.expected if e.type is ViolationType.BOUNDARY)
    assert boundary.volume_m3 == pytest.approx(DRIFT_SECTION.area * 12.0)
    assert violation.mesh.is_mesh and violation.mesh.faces is not None


def test_seam_surface_coverage(violation: Scene) -> None:
    seam = violation.licence.seams[0]
    e, n, h = seam.roof.grid(step=20.0)  # type: ignore[attr-defined]
    assert h.shape == (len(n), len(e))
    assert np.isnan(h).any() and np.isfinite(h).any()
    roof = seam.roof.height(violation.points[:1000, :2])
    floor = seam.floor.height(violation.points[:1000, :2])
    both = np.isfinite(roof)
    np.testing.assert_allclose(roof[both] - floor[both], 4.0)


def test_generate_scan_size_speed_and_answers() -> None:
    t0 = time.perf_counter()
    scene = generate_scan(2_000_000, seed=5)
    elapsed = time.perf_counter() - t0
    assert len(scene.points) == 2_000_000
    assert elapsed < 20.0  # about 1-2 s per 10 M points on one free core
    again = generate_scan(1000, seed=5)
    np.testing.assert_array_equal(again.points, generate_scan(1000, seed=5).points)
    assert not np.array_equal(again.points, generate_scan(1000, seed=6).points)
    result = check_survey(scene.licence, [scene.survey()])
    assert {i.type for i in result.incidents} == {e.type for e in scene.expected}
    assert len(result.incidents) == len(scene.expected)
    for exp in scene.expected:
        inc = next(i for i in result.incidents if i.type is exp.type)
        assert inc.max_exceedance_m == pytest.approx(exp.max_exceedance_m, abs=0.1)
        assert inc.volume_m3 == pytest.approx(exp.volume_m3, rel=0.15)


def test_zone_prefix_variant(violation: Scene) -> None:
    from simulators.tunnels import with_zone_prefix

    prefixed = with_zone_prefix(violation)
    assert prefixed.licence.epsg == 4524 and prefixed.licence.zone_prefix == 36
    assert prefixed.points is violation.points
    assert prefixed.licence.blocks == violation.licence.blocks

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
from survey.volume import neighbours, sections, shell
from survey.volume.mesh import mesh_volume_beyond
from survey.volume.shell import shell_volume

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
    from survey.volume.surface import surface_density

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


# --------------------------------------------------------------------------
# compiled kernels against the numpy / scipy path

needs_numba = pytest.mark.skipif(shell.numba is None, reason="numba not installed")


def _point_sets() -> list[F64]:
    rng = np.random.default_rng(11)
    stope = Stope("box", (0.0, 0.0, 0.0), (20.0, 9.0, 6.0))
    on_surface = _place(stope.sample(6_000, rng), 1)
    cube = rng.uniform(-5.0, 5.0, (3_000, 3))
    clustered = np.concatenate([rng.normal(c, 0.05, (500, 3)) for c in ([0, 0, 0], [3, 0, 0])])
    # duplicates and points on a grid (many equal distances)
    grid = np.stack(np.meshgrid(*[np.arange(8.0)] * 3), axis=-1).reshape(-1, 3)
    dups = np.concatenate([cube[:200], cube[:50]])
    line = np.column_stack([np.linspace(0, 10, 300), np.zeros(300), np.zeros(300)])
    return [on_surface, cube, clustered, grid, dups, line]


@needs_numba
def test_hash_grid_neighbours_match_kdtree() -> None:
    from scipy.spatial import cKDTree

    for pts in _point_sets():
        expected, _ = cKDTree(pts).query(pts, k=2)
        got = neighbours.nearest_distances(pts, jit=True)
        np.testing.assert_allclose(got, expected[:, 1], rtol=0, atol=1e-12)
        k = 12
        nq = min(len(pts), 700)
        d_ref, _ = cKDTree(pts).query(pts[:nq], k=k)
        d_got, i_got = neighbours.knn(pts, nq, k, jit=True)
        np.testing.assert_allclose(d_got, d_ref, rtol=0, atol=1e-12)
        # the indices name points at those distances (equal distances may
        # come in another order than the tree's)
        again = np.linalg.norm(pts[i_got] - pts[:nq, None, :], axis=2)
        np.testing.assert_allclose(again, d_got, rtol=0, atol=1e-12)
        np.testing.assert_array_equal(
            neighbours.knn(pts, nq, k, jit=False)[0].shape,
            neighbours.knn(pts, nq, k, jit=True)[0].shape,
        )


@needs_numba
def test_hull_areas_match_qhull() -> None:
    rng = np.random.default_rng(5)
    sets = [rng.normal(0.0, 3.0, (n, 2)) for n in (3, 4, 10, 100, 5_000)]
    sets.append(np.round(rng.uniform(0, 5, (400, 2))))  # many ties and collinear runs
    ring = rng.uniform(0, 2 * np.pi, 3_000)
    sets.append(
        np.column_stack([np.cos(ring), np.sin(ring)]) * 2.0 + rng.normal(0, 0.01, (3_000, 2))
    )
    sets.append(np.column_stack([np.full(50, 2.0), np.arange(50.0)]))  # on a line
    sets.append(np.column_stack([np.arange(50.0), 3.0 - np.arange(50.0)]))  # on the diagonal
    sets.append(np.zeros((20, 2)))
    # crowded buckets of the sort: a tight cluster and two far points
    sets.append(
        np.concatenate([rng.normal(0.0, 1e-3, (2_000, 2)), [[100.0, 100.0], [100.0, -50.0]]])
    )
    for uv in sets:
        got = sections.hull_area(uv, jit=True)
        assert got == pytest.approx(sections.hull_area(uv, jit=False), rel=1e-9, abs=1e-12)


@needs_numba
def test_smallest_eigenvector_matches_eigh() -> None:
    rng = np.random.default_rng(2)
    for _ in range(200):
        a = rng.normal(size=(3, 3))
        a = a @ a.T * rng.uniform(1e-4, 1e4)
        a[:, 2] *= 0.05  # a flat neighbourhood, as of surface points
        a[2, :] *= 0.05
        _, vecs = np.linalg.eigh(a)
        got = neighbours._smallest_eigvec(a.copy())
        assert abs(float(got @ vecs[:, 0])) == pytest.approx(1.0, abs=1e-8)


def _two_drifts() -> F64:
    sec = Section(4.0, 3.5, arched=True)
    a = Drift("a", (0.0, 0.0, 0.0), (40.0, 0.0, 0.0), section=sec, caps=(True, True))
    b = Drift("b", (0.0, 14.0, 0.0), (40.0, 14.0, 0.0), section=sec, caps=(True, True))
    rng = np.random.default_rng(8)
    return _place(np.concatenate([w.sample(int(w.surface_area * 80), rng) for w in (a, b)]), 3)


@needs_numba
def test_batched_sections_equal_per_section_areas() -> None:
    """One compiled call for all sections of an axis gives the sum of the
    per-section areas (numba and qhull/ndimage), two openings per section."""
    pts = _two_drifts()
    local = pts - pts.mean(axis=0)
    rho, slice_m = 80.0, 0.5
    for axis in shell.principal_axes(local):
        batched = shell._sections_volume(local, axis, rho, slice_m, 6, jit=True)
        per_section = shell._sections_volume(local, axis, rho, slice_m, 6, jit=False)
        assert batched == pytest.approx(per_section, rel=1e-9)
    # along the drifts every section holds two openings, summed not bridged
    axis = shell.principal_axes(local)[0]
    a, across1, across2 = shell._frame(axis)
    s = local @ a
    mid = local[np.abs(s - np.median(s)) < 0.25]
    uv = np.column_stack([mid @ across1, mid @ across2])
    two = sections.section_area(uv, jit=True)
    assert two == pytest.approx(sections.section_area(uv, jit=False), rel=1e-9)
    assert two < 0.6 * sections.hull_area(uv)


@needs_numba
@pytest.mark.parametrize("scene", ["box", "drift", "two drifts", "sparse"])
def test_numpy_fallback_gives_the_numba_volume(scene: str) -> None:
    rng = np.random.default_rng(21)
    if scene == "box":
        stope = Stope("box", (0.0, 0.0, 0.0), (20.0, 9.0, 6.0))
        pts = _place(stope.sample(int(stope.surface_area * 100), rng), 0)
    elif scene == "drift":
        drift = Drift("d", (0.0, 0.0, 0.0), (25.0, 8.0, 3.0), section=Section(4.0, 3.5, True))
        pts = _place(drift.sample(int(drift.surface_area * 100), rng), 7)
        pts += rng.normal(0.0, 0.01, pts.shape)
    elif scene == "two drifts":
        pts = _two_drifts()
    else:
        stope = Stope("box", (0.0, 0.0, -6.0), (30.0, 15.0, 20.0))
        pts = stope.sample(int(stope.surface_area * 4), rng)
        pts = _place(pts[pts[:, 2] < 0.0], 5)
    fast = shell_volume(pts, jit=True)
    slow = shell_volume(pts, jit=False)
    assert fast > 0.0
    assert fast == pytest.approx(slow, rel=1e-6)


_NO_SCIPY_SCRIPT = """
import sys
import numpy as np
{setup}
bad = sorted(m for m in ("scipy.spatial", "scipy.ndimage") if m in sys.modules)
print(",".join(bad))
"""

_BOX_POINTS = """
def box_points(lo, size, n, seed):
    # points on the faces of a box (simulators.tunnels imports scipy.spatial)
    rng = np.random.default_rng(seed)
    size = np.asarray(size, dtype=float)
    areas = np.array([size[1] * size[2], size[0] * size[2], size[0] * size[1]] * 2)
    face = rng.choice(6, n, p=areas / areas.sum())
    pts = rng.uniform(0.0, 1.0, (n, 3)) * size
    axis = face % 3
    pts[np.arange(n), axis] = np.where(face < 3, 0.0, size[axis])
    return pts + np.asarray(lo, dtype=float)
"""

_VOLUME_ONLY = (
    _BOX_POINTS
    + """
from survey.volume.shell import shell_volume
pts = box_points((0.0, 0.0, 0.0), (20.0, 9.0, 6.0), 30_000, 0)
assert abs(shell_volume(pts) - 1080.0) < 0.05 * 1080.0
"""
)

_SCAN_CHECK = (
    _BOX_POINTS
    + """
from survey.check import check_survey
from survey.model import Block, Corner, Licence, SurveyData
e0, n0 = 512_000.0, 2_523_000.0
corners = [(e0, n0), (e0 + 100, n0), (e0 + 100, n0 + 100), (e0, n0 + 100)]
lic = Licence(
    mine_name="m", licence_no="T-1", epsg=4545, zone_prefix=None,
    blocks=(Block("main", tuple(Corner(str(i + 1), n, e) for i, (e, n) in enumerate(corners)),
                  50.0, -100.0),),
    tolerance_m=1.5, tolerance_z_m=0.5,
)
pts = box_points((e0 + 90.0, n0 + 40.0, -60.0), (20.0, 9.0, 6.0), 30_000, 0)
result = check_survey(lic, [SurveyData("s.xyz", "xyz", pts)])
assert result.incidents and result.incidents[0].volume_m3 > 0
"""
)


def _scipy_modules_after(setup: str) -> list[str]:
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", _NO_SCIPY_SCRIPT.format(setup=setup)],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    return [m for m in out.split(",") if m]


@needs_numba
def test_shell_volume_does_not_import_scipy_spatial_or_ndimage() -> None:
    assert _scipy_modules_after(_VOLUME_ONLY) == []


@needs_numba
def test_scan_check_does_not_import_scipy_spatial_or_ndimage() -> None:
    assert _scipy_modules_after(_SCAN_CHECK) == []


@needs_numba
def test_hash_grid_neighbours_of_far_outliers() -> None:
    """Lone points and small clusters far from a dense surface (stray
    returns): exact neighbours, without searching the empty space between
    cell by cell."""
    import time

    from scipy.spatial import cKDTree

    rng = np.random.default_rng(3)
    stope = Stope("box", (0.0, 0.0, 0.0), (20.0, 9.0, 6.0))
    dense = stope.sample(20_000, rng)
    far = np.concatenate(
        [rng.normal(c, 0.02, (3, 3)) for c in ([400.0, 0, 0], [0, -300.0, 50.0], [900.0, 900, 0])]
    )
    pts = np.concatenate([dense, far, [[-500.0, 0.0, 0.0]]])
    neighbours.knn(pts, 10, 12, jit=True)  # compiled before timing
    start = time.perf_counter()
    got = neighbours.nearest_distances(pts, jit=True)
    d12, _ = neighbours.knn(pts[::-1].copy(), 2_000, 12, jit=True)
    assert time.perf_counter() - start < 2.0
    np.testing.assert_allclose(got, cKDTree(pts).query(pts, k=2)[0][:, 1], rtol=0, atol=1e-12)
    ref, _ = cKDTree(pts).query(pts[::-1][:2_000], k=12)
    np.testing.assert_allclose(d12, ref, rtol=0, atol=1e-12)
    with_nan = np.concatenate([dense, [[np.nan, 0.0, 0.0]]])
    assert shell_volume(with_nan) == pytest.approx(shell_volume(dense), rel=1e-9)


def test_shell_volume_without_numba() -> None:
    """numba is optional: with it missing the numpy / scipy path runs (and
    gives the compiled path's volume, see above)."""
    import subprocess
    import sys
    from pathlib import Path

    script = (
        "import survey.jit as d\n"
        "d.numba = None\n"
        "import numpy as np\n"
        "from survey.volume import shell as volume\n"
        "assert not hasattr(volume, '_sections_numba')\n"
        + _BOX_POINTS
        + "pts = box_points((0.0, 0.0, 0.0), (20.0, 9.0, 6.0), 20_000, 1)\n"
        "print(volume.shell_volume(pts))\n"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=root, capture_output=True, text=True, check=True
    )
    assert float(out.stdout) == pytest.approx(20.0 * 9.0 * 6.0, rel=0.05)

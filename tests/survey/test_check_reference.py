"""Fast classification (raster mask + exact edge cells) against the slow
per-point shapely reference, on random valid (possibly concave) licences
at CGCS2000 magnitudes, with points on and near edges and vertices."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import survey.classify as fast
from survey import tolerances as tol
from survey.classify import Classification, classify, prepare
from survey.model import F64, Block, Corner, Licence, Seam
from survey.reference import classify_reference
from survey.surfaces import GridSurface


def _star_polygon(rng: np.random.Generator, k: int, centre: tuple[float, float]) -> F64:
    """k corners of a star-shaped (so simple) polygon, often concave."""
    ang = np.sort(rng.uniform(0.0, 2 * math.pi, k))
    # keep corners apart so that the ring never folds onto itself
    ang = np.linspace(0, 2 * math.pi, k, endpoint=False) * 0.5 + ang * 0.5
    ang = np.sort(ang)
    r = rng.uniform(80.0, 600.0, k)
    return np.column_stack([centre[0] + r * np.cos(ang), centre[1] + r * np.sin(ang)])


def _licence(
    polys: list[F64], zr: list[tuple[float, float]], seams: tuple[Seam, ...] = ()
) -> Licence:
    blocks = tuple(
        Block(
            f"b{j}",
            tuple(Corner(f"{j}.{i + 1}", float(p[1]), float(p[0])) for i, p in enumerate(poly)),
            top,
            bottom,
        )
        for j, (poly, (top, bottom)) in enumerate(zip(polys, zr, strict=True))
    )
    return Licence("m", "1", 4545, None, blocks, seams=seams, tolerance_m=1.5, tolerance_z_m=0.5)


def _points(rng: np.random.Generator, polys: list[F64], z: tuple[float, float]) -> F64:
    """Uniform points, every vertex, points on edges and near them (both
    sides, 1e-9 m to 20 m), heights across and exactly at the limits."""
    allp = np.concatenate(polys)
    lo, hi = allp.min(axis=0) - 50, allp.max(axis=0) + 50
    parts = [rng.uniform(lo, hi, (300, 2)), allp]
    for poly in polys:
        a, b = poly, np.roll(poly, -1, axis=0)
        t = rng.uniform(0, 1, (len(a), 1))
        on = a + t * (b - a)
        d = b - a
        normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.hypot(d[:, 0], d[:, 1])[:, None]
        parts.append(on)
        for eps in (1e-9, 1e-6, 1e-3, 0.3, 1.49, 1.51, 4.9, 5.1, 20.0):
            parts.append(on + eps * normal)
            parts.append(on - eps * normal)
    en = np.concatenate(parts)
    h = rng.uniform(z[1] - 10.0, z[0] + 10.0, len(en))
    h[::7] = z[0]
    h[1::7] = z[1]
    return np.column_stack([en, h])


def _compare(f: Classification, r: Classification, *, exact_all: bool = False) -> None:
    np.testing.assert_array_equal(f.block, r.block)
    np.testing.assert_array_equal(f.ref_block, r.ref_block)
    np.testing.assert_array_equal(f.above, r.above)
    np.testing.assert_array_equal(f.below, r.below)
    np.testing.assert_allclose(f.seam, r.seam, rtol=0, atol=1e-9, equal_nan=True)
    allow = tol.DIST_ABS_TOL_M + tol.DIST_REL_TOL * np.abs(r.plan_dist)
    exact = r.plan_dist > -tol.EXACT_INSIDE_BAND_M
    if exact_all:
        exact[:] = True
    assert np.all(np.abs(f.plan_dist[exact] - r.plan_dist[exact]) <= allow[exact])
    # deeper inside the fast path gives a bound: never deeper than the truth
    assert np.all(f.plan_dist[~exact] >= r.plan_dist[~exact] - allow[~exact])
    assert np.all(f.plan_dist[~exact] < 0)
    # statuses agree except where the distance sits on a threshold
    clear = (np.abs(r.plan_dist) > 1e-6) & (np.abs(r.plan_dist - 1.5) > 1e-6)
    np.testing.assert_array_equal(f.status[clear], r.status[clear])
    np.testing.assert_array_equal(f.violated[clear], r.violated[clear])
    np.testing.assert_array_equal(f.uncertain[clear], r.uncertain[clear])


SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(3, 32),
    cells=st.sampled_from([8, 16, 64, 256]),
    east=st.floats(4.0e5, 6.0e5),
    north=st.floats(2.3e6, 2.9e6),
)
def test_single_block_matches_reference(
    seed: int, k: int, cells: int, east: float, north: float
) -> None:
    rng = np.random.default_rng(seed)
    poly = _star_polygon(rng, k, (east, north))
    top = float(rng.uniform(-50, 200))
    bottom = top - float(rng.uniform(10, 300))
    lic = _licence([poly], [(top, bottom)])
    xyz = _points(rng, [poly], (top, bottom))
    f = classify(prepare(lic, mask_cells=cells), xyz)
    r = classify_reference(lic, xyz)
    _compare(f, r)
    import shapely

    inside = shapely.contains_xy(shapely.Polygon(poly), xyz[:, 0], xyz[:, 1])
    np.testing.assert_array_equal(f.block >= 0, inside)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cells=st.sampled_from([16, 128]))
def test_several_blocks_match_reference(seed: int, cells: int) -> None:
    """Stacked blocks (same polygon, two elevation ranges) beside a block
    sharing an edge, and one overlapping both."""
    rng = np.random.default_rng(seed)
    e0, n0 = 512_000.0 + rng.uniform(-1e3, 1e3), 2_523_000.0 + rng.uniform(-1e3, 1e3)
    a = np.array([[e0, n0], [e0 + 300, n0], [e0 + 300, n0 + 200], [e0, n0 + 200]])
    b = a + np.array([300.0, 0.0])
    c = _star_polygon(rng, int(rng.integers(3, 12)), (e0 + 300, n0 + 200))
    polys = [a, a, b, c]
    zr = [(0.0, -100.0), (-100.0, -250.0), (50.0, -50.0), (20.0, -30.0)]
    lic = _licence(polys, zr)
    xyz = _points(rng, polys, (50.0, -250.0))
    f = classify(prepare(lic, mask_cells=cells), xyz)
    r = classify_reference(lic, xyz)
    _compare(f, r)


class _PlaneSeam:
    """h = h0 + g * (e - e0) inside a disc of 200 m about (e0, n0), else NaN."""

    def __init__(self, e0: float, n0: float, h0: float, g: float) -> None:
        self.e0, self.n0, self.h0, self.g = e0, n0, h0, g

    def height(self, en: F64) -> F64:
        de, dn = en[:, 0] - self.e0, en[:, 1] - self.n0
        h = self.h0 + self.g * de
        return np.where(de * de + dn * dn <= 200.0**2, h, np.nan)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_seams_match_reference(seed: int) -> None:
    rng = np.random.default_rng(seed)
    e0, n0 = 512_300.0, 2_523_400.0
    poly = _star_polygon(rng, 12, (e0, n0))
    seams = (
        Seam("s1", roof=_PlaneSeam(e0, n0, -20.0, 0.05), floor=_PlaneSeam(e0, n0, -24.0, 0.05)),
        Seam(
            "s2",
            roof=_PlaneSeam(e0 + 100, n0, -50.0, 0.0),
            floor=_PlaneSeam(e0 + 100, n0, -53.0, 0.0),
        ),
    )
    lic = _licence([poly], [(0.0, -80.0)], seams)
    xyz = _points(rng, [poly], (0.0, -80.0))
    f = classify(lic, xyz)
    r = classify_reference(lic, xyz)
    _compare(f, r)
    assert np.isnan(f.seam).any() and np.isfinite(f.seam).any()


def _grid_seam(rng: np.random.Generator, e0: float, n0: float, base: float) -> GridSurface:
    """A bumpy grid over part of the licence, with a no-data node."""
    e = e0 - 150.0 + 7.5 * np.arange(30)
    n = n0 - 120.0 + 6.0 * np.arange(35)
    z = base + rng.normal(0.0, 2.0, (n.size, e.size))
    z[rng.integers(0, n.size), rng.integers(0, e.size)] = np.nan
    return GridSurface(e, n, z)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_grid_seams_match_reference_and_numpy_path(seed: int) -> None:
    """Seams of ESRI-style grids: the compiled seam loop (numba), the numpy
    path (scipy's interpolator) and the reference agree."""
    import survey.surfaces as surfaces

    rng = np.random.default_rng(seed)
    e0, n0 = 512_300.0, 2_523_400.0
    poly = _star_polygon(rng, 12, (e0, n0))
    seam = Seam("g", roof=_grid_seam(rng, e0, n0, -20.0), floor=_grid_seam(rng, e0 + 30, n0, -26.0))
    lic = _licence([poly], [(0.0, -80.0)], (seam,))
    xyz = _points(rng, [poly], (0.0, -80.0))
    f = classify(lic, xyz)
    _compare(f, classify_reference(lic, xyz))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast, "numba", None)
        mp.setattr(surfaces, "numba", None)
        slow = classify(lic, xyz)
    for name in ("seam", "violated", "uncertain", "status"):
        np.testing.assert_array_equal(getattr(f, name), getattr(slow, name), err_msg=name)
    assert np.isnan(f.seam).any() and np.isfinite(f.seam).any()


def test_numpy_fallback_equals_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(5)
    poly = _star_polygon(rng, 20, (512_000.0, 2_523_000.0))
    lic = _licence([poly], [(100.0, -80.0)])
    xyz = _points(rng, [poly], (100.0, -80.0))
    prep = prepare(lic, mask_cells=64)
    a = classify(prep, xyz)
    monkeypatch.setattr(fast, "numba", None)
    b = classify(prep, xyz)
    for name in ("block", "ref_block", "status", "violated", "uncertain", "above", "below"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    np.testing.assert_allclose(a.plan_dist, b.plan_dist, rtol=1e-12, atol=1e-9)


def test_points_on_the_boundary_are_outside_but_compliant() -> None:
    e0, n0 = 512_000.0, 2_523_000.0
    sq = np.array([[e0, n0], [e0 + 100, n0], [e0 + 100, n0 + 100], [e0, n0 + 100]])
    lic = _licence([sq], [(10.0, -10.0)])
    xyz = np.array(
        [[e0, n0, 0.0], [e0 + 50, n0, 0.0], [e0 + 100, n0 + 50, 0.0], [e0 + 50, n0 + 50, 10.0]]
    )
    c = classify(lic, xyz)
    np.testing.assert_array_equal(
        c.block, [-1, -1, -1, 0]
    )  # shapely contains_xy excludes the boundary
    np.testing.assert_array_equal(c.plan_dist[:3], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(c.status, [0, 0, 0, 0])  # on a limit is not beyond it


def test_large_input_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inputs longer than one classification block give the same answers."""
    rng = np.random.default_rng(9)
    poly = _star_polygon(rng, 8, (512_000.0, 2_523_000.0))
    lic = _licence([poly], [(100.0, -80.0)])
    xyz = _points(rng, [poly], (100.0, -80.0))
    prep = prepare(lic)
    whole = classify(prep, xyz)
    monkeypatch.setattr(tol, "CLASSIFY_BLOCK_POINTS", 97)
    parts = classify(prep, xyz)
    for name in ("block", "status", "plan_dist", "above", "seam"):
        a: npt.NDArray[np.generic] = getattr(whole, name)
        np.testing.assert_array_equal(a, getattr(parts, name), err_msg=name)


def test_candidate_edge_grid_distances_equal_all_edges() -> None:
    """Near, far and off-grid points: the candidate edges of a coarse cell
    always contain the nearest edge, so the distances are identical."""
    rng = np.random.default_rng(11)
    poly = _star_polygon(rng, 32, (512_000.0, 2_523_000.0))
    prep = prepare(_licence([poly], [(100.0, -80.0)]))
    px = rng.uniform(-5_000, 5_000, 20_000)
    py = rng.uniform(-5_000, 5_000, 20_000)
    px[:10_000] /= 10.0  # many inside the grid, near the polygon
    py[:10_000] /= 10.0
    grid = fast.mask_distance(prep.union, px, py)
    every = fast.segment_distance(px, py, prep.union.edges)
    np.testing.assert_array_equal(grid, every)


@pytest.mark.skipif(fast.numba is None, reason="compares the numba mask build with shapely's")
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(3, 40),
    blocks=st.integers(1, 3),
    cells=st.sampled_from([8, 64, 1024]),
)
def test_mask_build_by_crossings_equals_shapely_containment(
    seed: int, k: int, blocks: int, cells: int
) -> None:
    """The mask's inside cells found by even-odd crossings (numba) and their
    depth bounds from the candidate-edge grid equal those from
    shapely.contains_xy and all edges (the numpy path), for one polygon or
    a union of overlapping ones."""
    import survey.plan_mask as pm

    rng = np.random.default_rng(seed)
    polys = [
        _star_polygon(rng, k, (512_000.0 + 300.0 * j, 2_523_000.0 + 150.0 * j))
        for j in range(blocks)
    ]
    lic = _licence(polys, [(100.0, -80.0)] * blocks)
    fast_prep = prepare(lic, mask_cells=cells)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(pm, "use_jit", lambda jit: False)
        slow_prep = prepare(lic, mask_cells=cells)
    for a, b in zip(
        (fast_prep.union, *fast_prep.blocks), (slow_prep.union, *slow_prep.blocks), strict=True
    ):
        np.testing.assert_array_equal(a.codes, b.codes)
        np.testing.assert_allclose(a.depth, b.depth, rtol=0, atol=1e-9)


@pytest.mark.skipif(fast.numba is None, reason="the status-only pass is compiled")
@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    k=st.integers(3, 32),
    cells=st.sampled_from([8, 64, 1024]),
)
def test_status_only_pass_equals_classify(seed: int, k: int, cells: int) -> None:
    """classify_status (what a streaming check runs on every point) gives
    classify's status, boundary cells included, and counts the rest."""
    from survey.classify import classify_status

    rng = np.random.default_rng(seed)
    poly = _star_polygon(rng, k, (512_000.0, 2_523_000.0))
    lic = _licence([poly], [(100.0, -80.0)])
    xyz = _points(rng, [poly], (100.0, -80.0))
    prep = prepare(lic, mask_cells=cells)
    got = classify_status(prep, xyz, np.empty(len(xyz) + 5, dtype=np.uint8))
    assert got is not None
    status, not_ok = got
    want = classify(prep, xyz).status
    np.testing.assert_array_equal(status, want)
    assert not_ok == int(np.count_nonzero(want))


def test_status_only_pass_declines_several_blocks() -> None:
    from survey.classify import classify_status

    rng = np.random.default_rng(2)
    a = _star_polygon(rng, 8, (512_000.0, 2_523_000.0))
    b = _star_polygon(rng, 8, (513_000.0, 2_523_000.0))
    two = _licence([a, b], [(100.0, -80.0), (50.0, -20.0)])
    assert classify_status(prepare(two), np.zeros((3, 3)), np.empty(3, np.uint8)) is None


@pytest.mark.skipif(fast.numba is None, reason="compiled seam kernels")
@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), same_nodes=st.booleans())
def test_status_only_pass_with_seams_equals_classify(seed: int, same_nodes: bool) -> None:
    """With a grid seam (roof and floor on the same nodes, which takes the
    one-search kernel, or on different ones) the status pass gives
    classify's status and leaves every point's seam offset; the seam offsets
    equal the numpy path (scipy's interpolator) bit for bit."""
    import survey.surfaces as surfaces
    from survey.classify import classify_status

    rng = np.random.default_rng(seed)
    e0, n0 = 512_300.0, 2_523_400.0
    poly = _star_polygon(rng, 12, (e0, n0))
    roof = _grid_seam(rng, e0, n0, -20.0)
    floor = (
        GridSurface(roof.east, roof.north, roof.heights - rng.uniform(4.0, 8.0))
        if same_nodes
        else _grid_seam(rng, e0 + 30, n0, -26.0)
    )
    lic = _licence([poly], [(0.0, -80.0)], (Seam("g", roof=roof, floor=floor),))
    xyz = _points(rng, [poly], (0.0, -80.0))
    prep = prepare(lic)
    seam = np.empty(len(xyz))
    got = classify_status(prep, xyz, np.empty(len(xyz), dtype=np.uint8), seam_out=seam)
    assert got is not None
    full = classify(prep, xyz)
    np.testing.assert_array_equal(got[0], full.status)
    assert got[1] == int(np.count_nonzero(full.status))
    np.testing.assert_array_equal(seam, full.seam)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast, "numba", None)
        mp.setattr(surfaces, "numba", None)
        slow = classify(lic, xyz)
    np.testing.assert_array_equal(full.seam, slow.seam)
    assert np.isfinite(full.seam).any()

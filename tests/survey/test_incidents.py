"""Grouping points beyond a limit into incidents."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from survey.incidents import Beyond, group_incidents, label_voxels
from survey.jit import numba
from survey.model import F64, Licence, ViolationType

E0, N0 = 512_000.0, 2_523_000.0


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    pairs = len(set(zip(a.tolist(), b.tolist(), strict=True)))
    return pairs == len(set(a.tolist())) == len(set(b.tolist()))


def _brute_force_labels(xyz: F64, voxel: float) -> np.ndarray:
    """Union-find over occupied voxels, 26 neighbours, plain Python."""
    keys = [tuple(k) for k in np.floor((xyz - xyz.min(axis=0)) / voxel).astype(int).tolist()]
    parent = {k: k for k in keys}

    def find(k: tuple[int, ...]) -> tuple[int, ...]:
        while parent[k] != k:
            k = parent[k]
        return k

    for k in set(keys):
        for d in itertools.product((-1, 0, 1), repeat=3):
            nb = (k[0] + d[0], k[1] + d[1], k[2] + d[2])
            if nb in parent:
                parent[find(nb)] = find(k)
    roots = [find(k) for k in keys]
    ids = {r: i for i, r in enumerate(dict.fromkeys(roots))}
    return np.array([ids[r] for r in roots])


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 400), spread=st.floats(1.0, 30.0))
def test_jit_dense_and_sparse_labelling_match_brute_force(seed: int, n: int, spread: float) -> None:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, spread, (max(1, n // 40), 3))
    xyz = centres[rng.integers(0, len(centres), n)] + rng.normal(0, 0.6, (n, 3))
    xyz += [E0, N0, -50.0]
    dense, kd = label_voxels(xyz, 0.5, dense_max_cells=10**9, jit=False)
    sparse, ks = label_voxels(xyz, 0.5, dense_max_cells=0, jit=False)
    brute = _brute_force_labels(xyz, 0.5)
    assert kd == ks == len(set(brute.tolist()))
    assert _same_partition(dense, brute)
    assert _same_partition(sparse, brute)
    if numba is not None:
        jitted, kj = label_voxels(xyz, 0.5)
        assert kj == kd
        # numbered by first voxel in raster order, as ndimage.label numbers them
        assert np.array_equal(jitted, dense)


def test_26_connectivity() -> None:
    base = np.array([E0, N0, 0.0])
    diagonal = base + np.array([[0.1, 0.1, 0.1], [0.6, 0.6, 0.6]])  # corner-touching voxels
    labels, k = label_voxels(diagonal, 0.5)
    assert k == 1 and labels[0] == labels[1]
    gap = base + np.array([[0.1, 0.1, 0.1], [1.1, 0.1, 0.1]])  # one empty voxel between
    labels, k = label_voxels(gap, 0.5)
    assert k == 2 and labels[0] != labels[1]


def test_sparse_extent_does_not_allocate_the_bounding_grid() -> None:
    # two tight clusters 80 km apart: a dense 0.5 m grid would need ~1e16 cells
    a = np.random.default_rng(1).normal(0, 0.3, (500, 3)) + np.array([E0, N0, 0.0])
    b = a + np.array([80_000.0, 50_000.0, 900.0])
    labels, k = label_voxels(np.concatenate([a, b]), 0.5)
    assert k == 2
    assert len(set(labels[:500].tolist())) == 1 and labels[0] != labels[-1]


def _square_licence(factory: Callable[..., Licence]) -> Licence:
    return factory([(E0, N0), (E0 + 100, N0), (E0 + 100, N0 + 100), (E0, N0 + 100)], 0.0, -100.0)


def _blob(centre: tuple[float, float, float], n: int, r: float, seed: int) -> F64:
    return np.asarray(centre) + np.random.default_rng(seed).uniform(-r, r, (n, 3))


def test_group_incidents_types_ids_and_tolerance(licence_factory: Callable[..., Licence]) -> None:
    lic = _square_licence(licence_factory)
    # east of edge 2-3 by 2..4 m (violation), north of edge 3-4 by 0.2..1.0 m (uncertain)
    east = _blob((E0 + 103.0, N0 + 50.0, -50.0), 300, 1.0, 1)
    north = _blob((E0 + 50.0, N0 + 100.6, -50.0), 300, 0.4, 2)
    # below the floor (-100) by 1..3 m, also east of the boundary: counts in both types
    deep = _blob((E0 + 103.0, N0 + 10.0, -102.0), 300, 1.0, 3)
    xyz = np.concatenate([east, north, deep])
    nan = np.full(len(xyz), np.nan)
    plan = np.concatenate(
        [east[:, 0] - (E0 + 100), north[:, 1] - (N0 + 100), deep[:, 0] - (E0 + 100)]
    )
    below = -100.0 - xyz[:, 2]
    beyond = Beyond(
        xyz=xyz,
        exceed=np.column_stack([plan, xyz[:, 2] - 0.0, below, nan]),
        ref_block=np.zeros(len(xyz), dtype=np.int32),
        source=np.zeros(len(xyz), dtype=np.int32),
    )
    incidents, uncertain = group_incidents(lic, beyond, volume_fn=lambda p, t, b, s: float(len(p)))
    kinds = [(i.id, i.type) for i in incidents]
    assert kinds == [
        ("I1", ViolationType.BOUNDARY),
        ("I2", ViolationType.BOUNDARY),
        ("I3", ViolationType.BELOW_RANGE),
    ]
    # boundary incidents by decreasing exceedance: both blobs reach about 4 m
    for inc in incidents[:2]:
        assert inc.max_exceedance_m == pytest.approx(4.0, abs=0.05)
        assert inc.nearest_edge == ("2", "3")
    assert incidents[2].max_exceedance_m == pytest.approx(3.0, abs=0.05)
    assert incidents[2].point_count == int(np.count_nonzero(below > 0))
    assert len(uncertain) == 1
    u = uncertain[0]
    assert u.id == "U1" and u.within_uncertainty and u.type is ViolationType.BOUNDARY
    assert u.nearest_edge == ("3", "4")
    assert u.max_exceedance_m == pytest.approx(1.0, abs=0.05)
    pts = north[north[:, 1] > N0 + 100]
    assert u.point_count == len(pts) and u.volume_m3 == float(len(pts))
    np.testing.assert_allclose(u.centroid, pts.mean(axis=0))
    np.testing.assert_allclose(u.bbox_min, pts.min(axis=0))
    np.testing.assert_allclose(u.bbox_max, pts.max(axis=0))
    assert u.block == "main"


def test_group_incidents_empty(licence_factory: Callable[..., Licence]) -> None:
    incidents, uncertain = group_incidents(_square_licence(licence_factory), Beyond())
    assert incidents == [] and uncertain == []


def test_extent_equals_numpy_reductions() -> None:
    from survey.incidents import _extent

    rng = np.random.default_rng(7)
    pts = rng.normal(0.0, 30.0, (100_003, 3)) + np.array([E0, N0, -120.0])
    lo, hi, mean = _extent(pts)
    np.testing.assert_array_equal(lo, pts.min(axis=0))
    np.testing.assert_array_equal(hi, pts.max(axis=0))
    exact = [math.fsum(pts[:, j]) / len(pts) for j in range(3)]
    np.testing.assert_allclose(mean, exact, rtol=0, atol=1e-7)  # micrometres
    one = pts[:1]
    for a in _extent(one):
        np.testing.assert_array_equal(a, one[0])

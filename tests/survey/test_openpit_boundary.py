"""Excavation beyond the licence on DSMs built cell by cell: above the
licensed top (a hill quarry), within the survey tolerance of the boundary,
and the terrain plane standing in for the ground before mining."""

from __future__ import annotations

import numpy as np
import pytest

from survey.model import Block, Corner, Licence
from survey.openpit.boundary import boundary_incidents, excavation, terrain_plane
from survey.openpit.check import check_pit_dsm
from survey.openpit.design import PitDesign
from survey.openpit.dsm import Dsm

E0, N0 = 561_000.0, 2_431_000.0
CELL = 0.5


def _grid(ground: float = 120.0) -> Dsm:
    e = E0 + CELL * (np.arange(200) + 0.5)  # 100 m x 100 m
    n = N0 + CELL * (np.arange(200) + 0.5)
    return Dsm(e, n, np.full((200, 200), ground), "test")


def _licence(east_edge: float, z_top: float = 130.0, z_bottom: float = 50.0) -> Licence:
    corners = tuple(
        Corner(str(i + 1), N0 + dn, E0 + de)
        for i, (de, dn) in enumerate([(10, 10), (east_edge, 10), (east_edge, 90), (10, 90)])
    )
    return Licence("t", "T-1", 4545, None, (Block("1", corners, z_top, z_bottom),))


def _cut(dsm: Dsm, e0: float, e1: float, n0: float, n1: float, floor: float) -> Dsm:
    z = dsm.z.copy()
    cols = (dsm.east > E0 + e0) & (dsm.east < E0 + e1)
    rows = (dsm.north > N0 + n0) & (dsm.north < N0 + n1)
    z[np.ix_(rows, cols)] = floor
    return Dsm(dsm.east, dsm.north, z, dsm.source)


def test_excavation_above_the_licensed_top() -> None:
    """A 20 x 20 m box cut from +120 to +100 in a licence whose top is +110:
    10 m of it (4,000 m³) was above the licensed range."""
    dsm = _cut(_grid(), 40, 60, 40, 60, 100.0)
    lic = _licence(90.0, z_top=110.0)
    inc = boundary_incidents(dsm, lic, excavation(dsm, _grid(), lic.tolerance_z_m))
    (above,) = inc
    assert str(above.type) == "above_range"
    assert above.volume_m3 == pytest.approx(20 * 20 * 10.0, rel=1e-9)
    assert above.max_exceedance_m == pytest.approx(10.0)


def test_a_cut_within_the_plan_tolerance_is_uncertain_not_a_violation() -> None:
    """The licence edge at 70 m, the cut to 71 m: 1 m beyond, the
    tolerance is 1.5 m. A 1 m deep cut: no face for the bench check."""
    dsm = _cut(_grid(), 40, 71, 40, 60, 119.0)
    pit = check_pit_dsm(_licence(70.0), dsm, PitDesign(), pre=_grid())
    assert pit.result.incidents == []
    (u,) = pit.result.uncertain
    assert u.id == "U1" and str(u.type) == "boundary"
    assert u.max_exceedance_m == pytest.approx(0.75)  # the last cell centre, 70.75 m
    assert u.volume_m3 == pytest.approx(1.0 * 20 * 1.0)
    assert pit.benches.violations == []
    assert pit.result.verdict == "within survey uncertainty"
    assert u.nearest_edge == ("2", "3")


def test_terrain_plane_follows_a_sloping_rim() -> None:
    dsm = _grid()
    slope = 100.0 + 0.2 * (dsm.east[None, :] - E0) - 0.1 * (dsm.north[:, None] - N0)
    pit_cut = _cut(Dsm(dsm.east, dsm.north, slope, "s"), 30, 70, 30, 70, 90.0)
    np.testing.assert_allclose(terrain_plane(pit_cut), slope, atol=1e-6)

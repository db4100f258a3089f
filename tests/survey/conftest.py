"""Shared survey fixtures: known-answer scenes (built once per session at a
test density) and a small licence builder."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from simulators.tunnels import Scene, compliant_scene, violation_scene
from survey.model import Block, Corner, Licence

#: points per m2 of the test scenes: sparse enough to keep the suite fast,
#: dense enough (about 13 cm spacing) for the section volumes
TEST_DENSITY = 60.0


def make_licence(
    corners_en: Sequence[tuple[float, float]],
    z_top: float = 120.0,
    z_bottom: float = -80.0,
    *,
    tolerance_m: float = 1.5,
    tolerance_z_m: float = 0.5,
) -> Licence:
    """A one-block licence from (easting, northing) corners."""
    corners = tuple(Corner(str(i + 1), n, e) for i, (e, n) in enumerate(corners_en))
    return Licence(
        mine_name="test mine",
        licence_no="T-1",
        epsg=4545,
        zone_prefix=None,
        blocks=(Block("main", corners, z_top, z_bottom),),
        tolerance_m=tolerance_m,
        tolerance_z_m=tolerance_z_m,
    )


@pytest.fixture(scope="session")
def violation() -> Scene:
    return violation_scene(density=TEST_DENSITY)


@pytest.fixture(scope="session")
def compliant() -> Scene:
    return compliant_scene(density=TEST_DENSITY)


@pytest.fixture(scope="session")
def licence_factory():  # type: ignore[no-untyped-def]
    """The :func:`make_licence` builder (importlib mode cannot import conftest)."""
    return make_licence

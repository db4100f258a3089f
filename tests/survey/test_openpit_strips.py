"""The DSM is checked in strips of rows (survey.openpit.boundary): groups of
cells crossing a strip's seam -- straight across, touching only at a
corner, a U whose two arms meet only in a later strip -- are the same
incidents, with the same sums, as when the whole DSM is one strip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from survey.model import Block, Corner, Incident, Licence
from survey.openpit.boundary import boundary_incidents, excavation
from survey.openpit.dsm import Dsm, read_dsm, write_geotiff

E0, N0 = 561_000.0, 2_431_000.0
CELL = 0.5
SIZE = 160  # 80 m x 80 m


def _licence() -> Licence:
    corners = tuple(
        Corner(str(i + 1), N0 + dn, E0 + de)
        for i, (de, dn) in enumerate([(20, 20), (60, 20), (60, 60), (20, 60)])
    )
    return Licence("t", "T-1", 4545, None, (Block("1", corners, 130.0, 110.0),), 1.5, 0.5)


def _features() -> Dsm:
    """Flat ground at +120 (the rim is the terrain), and dug into it:
    outside the licence a U opening south (its arms join only at its top
    row), a diagonal trench of cells touching at corners, a wide pit
    across many rows; inside, a sump below the floor (+110) straddling
    rows and a few single-cell holes (noise, under MIN_AREA_M2)."""
    z = np.full((SIZE, SIZE), 120.0)
    rng = np.random.default_rng(14)
    z += rng.normal(0.0, 0.01, z.shape)
    # the U, west of the licence: arms at columns 8-11 and 20-23, rows 10-60, joined at rows 58-60
    z[10:61, 8:12] -= 4.0
    z[10:61, 20:24] -= 6.0
    z[58:61, 8:24] -= 3.0
    # a diagonal trench east of the licence: one cell per row, corner to corner
    for k in range(38):
        z[20 + k, 121 + k] -= 2.0 + 0.05 * k
    # a wide pit north of the licence, sloping floor
    z[125:150, 30:110] = np.linspace(118.0, 112.0, 80)[None, :]
    # a sump below the licensed floor, inside the licence
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    r = np.hypot(yy - 80.5, xx - 79.5)
    z = np.where(r < 12, np.minimum(z, 104.0 + r * 0.4), z)
    z[5, 5] = z[150, 150] = 118.0  # single cells: below MIN_AREA_M2
    z[0:2, 100:104] = np.nan  # a hole in the rim
    e = E0 + CELL * (np.arange(SIZE) + 0.5)
    n = N0 + CELL * (np.arange(SIZE) + 0.5)
    return Dsm(e, n, z.astype(np.float32), "features")


def _key(i: Incident) -> tuple[object, ...]:
    return (str(i.type), i.block, i.point_count, i.within_uncertainty, i.nearest_edge)


def _same(a: list[Incident], b: list[Incident]) -> None:
    assert [_key(i) for i in a] == [_key(i) for i in b]
    for x, y in zip(a, b, strict=True):
        assert x.volume_m3 == pytest.approx(y.volume_m3, rel=1e-9)
        assert x.max_exceedance_m == pytest.approx(y.max_exceedance_m, rel=1e-12)
        assert x.centroid == pytest.approx(y.centroid, rel=1e-12)
        assert x.bbox_min == pytest.approx(y.bbox_min, rel=1e-12)
        assert x.bbox_max == pytest.approx(y.bbox_max, rel=1e-12)


@pytest.mark.parametrize("rows", [1, 2, 7, 33])
def test_strips_give_the_whole_array_findings(rows: int) -> None:
    dsm, lic = _features(), _licence()
    exc = excavation(dsm, None, lic.tolerance_z_m)
    whole = boundary_incidents(dsm, lic, exc, strip_rows=SIZE)
    kinds = sorted(str(i.type) for i in whole)
    # the U is one group, the diagonal trench one, the northern pit one;
    # the sump one below the floor; the single cells nothing
    assert kinds == ["below_range", "boundary", "boundary", "boundary"], kinds
    u = min((i for i in whole if str(i.type) == "boundary"), key=lambda i: i.centroid[0])
    assert u.point_count == 51 * 8 + 3 * 8  # the arms and the cells between them
    diag = max((i for i in whole if str(i.type) == "boundary"), key=lambda i: i.centroid[0])
    assert diag.point_count == 38
    _same(boundary_incidents(dsm, lic, exc, strip_rows=rows), whole)


def test_big_geotiff_read_in_windows_is_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GeoTIFF read a few rows at a time into float32 (no-data NaN) is
    the raster as written, south row first, and checks as the in-memory DSM."""
    import survey.openpit.dsm as dsm_mod

    dsm = _features()
    path = write_geotiff(tmp_path / "f.tif", dsm, epsg=4545)
    monkeypatch.setattr(dsm_mod, "READ_ROWS", 7)
    back = read_dsm(path)
    assert back.z.dtype == np.float32
    np.testing.assert_array_equal(back.z, dsm.z)
    np.testing.assert_allclose(back.north, dsm.north)
    lic = _licence()
    a = boundary_incidents(back, lic, excavation(back, None, 0.5), strip_rows=5)
    b = boundary_incidents(dsm, lic, excavation(dsm, None, 0.5), strip_rows=SIZE)
    _same(a, b)


def test_compiled_strip_pass_is_its_numpy_twin() -> None:
    from survey.openpit.boundary import _strip_cells
    from survey.openpit.kernels import strip_cells

    dsm, lic = _features(), _licence()
    exc = excavation(dsm, None, lic.tolerance_z_m)
    ground = exc.ground_rows(0, SIZE)
    ground[3, 3] = np.nan  # no ground known there
    insides = [dsm.polygon_mask(b.polygon_en()) for b in lic.blocks]
    zb = np.array([b.z_bottom for b in lic.blocks])
    zt = np.array([111.0])  # a top low enough for excavation above it
    fast = strip_cells(dsm.z, ground, 0.5, insides, zb, zt, jit=True)
    if fast is None:
        pytest.skip("numba not installed")
    for a, b in zip(fast, _strip_cells(dsm.z, ground, 0.5, insides, zb, zt), strict=True):
        np.testing.assert_array_equal(a, b)
    assert fast[3].any() and fast[2].any() and fast[1].any()

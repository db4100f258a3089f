"""Open-pit inputs: ESRI ASCII grids read like GeoTIFFs, a rotated raster
refused, the slope design's zones applied where they lie."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from survey.model import SurveyInputError
from survey.openpit.check import check_pit_dsm
from survey.openpit.design import PitDesign, load_design
from survey.openpit.dsm import Dsm, read_dsm, write_geotiff
from survey.openpit.geometry import PitGeometry
from survey.openpit.ortho import read_ortho, write_ortho
from survey.writers import write_esri_grid

G = PitGeometry(half_extent_m=100.0)


@pytest.fixture(scope="module")
def dsm() -> Dsm:
    e, n = G.axes(0.5)
    E, N = np.meshgrid(e, n)
    return Dsm(e, n, G.height(E, N), "pit")


def test_esri_ascii_grid_reads_as_the_geotiff(tmp_path: Path, dsm: Dsm) -> None:
    asc = write_esri_grid(tmp_path / "pit.asc", dsm.east, dsm.north, dsm.z)
    tif = write_geotiff(tmp_path / "pit.tif", dsm, epsg=4545)
    a, t = read_dsm(asc, licence=G.licence()), read_dsm(tif, licence=G.licence())
    assert a.same_grid(t) and a.same_grid(dsm)
    np.testing.assert_allclose(a.z, dsm.z, atol=1e-4)
    np.testing.assert_allclose(t.z, dsm.z, atol=1e-4)  # float32 heights


def test_rotated_raster_refused(tmp_path: Path) -> None:
    import rasterio
    from affine import Affine

    path = tmp_path / "rotated.tif"
    t = Affine.translation(561_000.0, 2_432_000.0) @ Affine.rotation(10) @ Affine.scale(1, -1)
    with rasterio.open(
        path, "w", driver="GTiff", width=8, height=8, count=1, dtype="float32", transform=t
    ) as dst:
        dst.write(np.zeros((8, 8), dtype=np.float32), 1)
    with pytest.raises(SurveyInputError, match=r"rotated.tif.*north-up"):
        read_dsm(path)


def test_zone_design_applies_only_inside_its_polygon(tmp_path: Path, dsm: Dsm) -> None:
    """A zone around the west wall allowing 45 m faces: no "one wall"
    there, while the steep face in the north stays a violation."""
    ce, cn = G.centre_en
    pts = [(ce, cn)] + [
        (ce + 120 * math.cos(math.radians(a)), cn + 120 * math.sin(math.radians(a)))
        for a in range(150, 251, 10)
    ]
    corners = ", ".join(f"{{ x = {n:.3f}, y = {e:.3f} }}" for e, n in pts)
    path = tmp_path / "design.toml"
    path.write_text(
        "[design]\nmax_face_angle_deg = 75\n\n[[zones]]\nname = 'west wall'\n"
        f"corners = [{corners}]\nmax_bench_height_m = 45\nmax_overall_slope_deg = 75\n"
    )
    design = load_design(path)
    assert design.zones[0].design.max_face_angle_deg == 75  # zone inherits the default
    kinds = {v.kind for v in check_pit_dsm(G.licence(), dsm, design).benches.violations}
    assert "one_wall" not in kinds and "steep_face" in kinds
    default = {v.kind for v in check_pit_dsm(G.licence(), dsm, PitDesign()).benches.violations}
    assert "one_wall" in default


def test_dsm_without_heights_refused(tmp_path: Path, dsm: Dsm) -> None:
    empty = Dsm(dsm.east, dsm.north, np.full(dsm.shape, np.nan))
    path = write_geotiff(tmp_path / "empty.tif", empty, epsg=4545)
    with pytest.raises(SurveyInputError, match=r"empty.tif.*no height"):
        read_dsm(path)


def test_no_terrain_around_and_no_pre_mining_surface_refused(dsm: Dsm) -> None:
    z = dsm.z.copy()
    z[:4], z[-4:], z[:, :4], z[:, -4:] = np.nan, np.nan, np.nan, np.nan
    cropped = Dsm(dsm.east, dsm.north, z, "cropped.tif")
    with pytest.raises(SurveyInputError, match=r"cropped.tif.*--pre-mining"):
        check_pit_dsm(G.licence(), cropped, PitDesign())


def test_surveys_that_do_not_overlap_refused(dsm: Dsm) -> None:
    far = Dsm(dsm.east + 10_000.0, dsm.north, dsm.z, "far.tif")
    with pytest.raises(SurveyInputError, match=r"far.tif.*do not overlap"):
        check_pit_dsm(G.licence(), far, PitDesign(), earlier=dsm)


def test_orthophoto_read_north_up_and_thinned(tmp_path: Path, dsm: Dsm) -> None:
    ny, nx = dsm.shape
    rgb = np.zeros((ny, nx, 3), dtype=np.uint8)
    rgb[ny // 2 :, :, 0] = 255  # the northern half red (row 0 is the south)
    path = write_ortho(tmp_path / "ortho.tif", rgb, dsm, epsg=4545)
    ortho = read_ortho(path, licence=G.licence(), max_px=100)
    assert max(ortho.rgb.shape[:2]) <= 100
    assert ortho.rgb[0, :, 0].min() == 255 and ortho.rgb[-1, :, 0].max() == 0  # north first
    west, east, south, north = ortho.extent
    half = dsm.cell / 2
    assert (west, east) == pytest.approx((dsm.east[0] - half, dsm.east[-1] + half))
    assert (south, north) == pytest.approx((dsm.north[0] - half, dsm.north[-1] + half))
    with pytest.raises(SurveyInputError, match=r"missing.tif.*not found"):
        read_ortho(tmp_path / "missing.tif")


def test_polygon_mask_agrees_with_shapely_on_a_concave_polygon() -> None:
    """The scanline mask (used on DSMs of 1e8 cells) against shapely's
    point-in-polygon on every cell centre."""
    import shapely

    e = 500_000.0 + 0.7 * (np.arange(300) + 0.5)
    n = 2_400_000.0 + 0.7 * (np.arange(260) + 0.5)
    grid = Dsm(e, n, np.zeros((n.size, e.size)))
    poly = np.array(
        [(500_010.3, 2_400_005.1), (500_200.0, 2_400_020.0), (500_120.0, 2_400_090.7),
         (500_190.0, 2_400_170.0), (500_020.0, 2_400_150.2), (500_080.0, 2_400_080.0)]
    )  # fmt: skip
    E, N = np.meshgrid(e, n)
    expected = shapely.contains_xy(shapely.Polygon(poly), E, N)
    got = grid.polygon_mask(poly)
    assert got.sum() > 10_000
    np.testing.assert_array_equal(got, expected)


def test_mesh_that_is_not_a_surface_refused(tmp_path: Path) -> None:
    """Two triangles lying over each other in plan (a closed or undercut
    model), as a tunnel mesh would."""
    from survey.writers import write_mesh

    v = np.array(
        [[561_000.0, 2_431_000.0, 100.0], [561_010.0, 2_431_000.0, 100.0],
         [561_000.0, 2_431_010.0, 100.0], [561_000.0, 2_431_000.0, 90.0],
         [561_010.0, 2_431_000.0, 90.0], [561_000.0, 2_431_010.0, 90.0]]
    )  # fmt: skip
    path = write_mesh(tmp_path / "closed.obj", v, np.array([[0, 1, 2], [3, 4, 5]]))
    with pytest.raises(SurveyInputError, match=r"closed.obj.*not a surface seen from above"):
        read_dsm(path)


def test_cloud_streamed_in_chunks_gives_the_whole_cloud_dsm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A LAS read chunk by chunk (memory bounded by the area) makes the
    same DSM as the whole cloud at once, across tile edges."""
    from survey.openpit import dsm as dsm_module
    from survey.openpit.dsm import CellSums, rasterise_points
    from survey.readers import read_survey
    from survey.writers import write_las

    rng = np.random.default_rng(7)
    ce, cn = G.centre_en
    e = rng.uniform(ce - 90, ce + 90, 200_000)
    n = rng.uniform(cn - 90, cn + 90, 200_000)
    path = write_las(tmp_path / "cloud.las", np.column_stack([e, n, G.height(e, n)]), epsg=4545)
    monkeypatch.setattr(dsm_module, "CLOUD_CHUNK_POINTS", 7_777)
    notes: list[str] = []
    streamed = read_dsm(path, licence=G.licence(), cell=0.5, notes=notes)
    whole = rasterise_points(read_survey(path, licence=G.licence()).xyz, 0.5)
    assert streamed.points == 200_000 and streamed.shape[0] > CellSums.TILE  # several tiles
    assert streamed.same_grid(whole)
    np.testing.assert_allclose(streamed.z, whole.z, atol=1e-6, equal_nan=True)


def test_las_in_another_zone_refused_before_streaming(tmp_path: Path) -> None:
    from survey.writers import write_las

    ce, cn = G.centre_en
    xyz = np.array([[ce, cn, 100.0], [ce + 1, cn, 100.0], [ce, cn + 1, 100.0]])
    path = write_las(tmp_path / "zone37.las", xyz, epsg=4546)
    with pytest.raises(SurveyInputError, match=r"zone37.las.*LAS header declares EPSG 4546"):
        read_dsm(path, licence=G.licence())

"""Point-cloud readers: LAS/LAZ (with large offsets, streaming), XYZ/PTS."""

from __future__ import annotations

from pathlib import Path

import laspy
import numpy as np
import pytest

from survey.model import Block, Corner, Licence, PlanTransform, SurveyInputError
from survey.readers import SUPPORTED_FORMATS, iter_chunks, read_survey
from survey.writers import write_las, write_xyz

ZONE = 36


def guangxi_licence(epsg: int = 4524) -> Licence:
    corners = (
        Corner("1", 2421000.0, 400000.0),
        Corner("2", 2421000.0, 401000.0),
        Corner("3", 2422000.0, 401000.0),
        Corner("4", 2422000.0, 400000.0),
    )
    return Licence(
        "m", "n", epsg, ZONE if epsg == 4524 else None, (Block("b", corners, 120.0, -80.0),)
    )


def survey_points(n: int = 2000, seed: int = 1) -> np.ndarray:
    """(n, 3) E, N, H without prefix, at mm."""
    rng = np.random.default_rng(seed)
    xyz = np.column_stack(
        [
            rng.uniform(400100.0, 400900.0, n),
            rng.uniform(2421100.0, 2421900.0, n),
            rng.uniform(-90.0, 130.0, n),
        ]
    )
    return np.round(xyz, 3)


def with_prefix(xyz: np.ndarray) -> np.ndarray:
    out = xyz.copy()
    out[:, 0] += ZONE * 1e6
    return out


def test_las_large_offsets_reads_exactly(tmp_path: Path) -> None:
    xyz = survey_points()
    p = write_las(tmp_path / "scan.las", with_prefix(xyz))
    with laspy.open(str(p)) as r:
        assert r.header.offsets[0] > 3.6e7  # the point of the exercise
    data = read_survey(p, licence=guangxi_licence())
    assert data.fmt == "las" and data.xyz.dtype == np.float64
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-6, rtol=0)
    # without a licence nothing is stripped
    raw = read_survey(p)
    np.testing.assert_allclose(raw.xyz, with_prefix(xyz), atol=1e-6, rtol=0)


def test_laz_roundtrip(tmp_path: Path) -> None:
    xyz = survey_points()
    p = write_las(tmp_path / "scan.laz", xyz, compress=True)
    data = read_survey(p, licence=guangxi_licence(4545))
    assert data.fmt == "laz"
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-6, rtol=0)


def test_las_streaming_equals_full_read(tmp_path: Path) -> None:
    xyz = survey_points(5000)
    p = write_las(tmp_path / "scan.las", with_prefix(xyz))
    calls: list[tuple[str, int, int | None]] = []
    chunks = list(
        iter_chunks(
            p,
            1234,
            licence=guangxi_licence(),
            progress=lambda s, d, t: calls.append((s, d, t)),
        )
    )
    assert [len(c) for c in chunks] == [1234, 1234, 1234, 1234, 64]
    full = read_survey(p, licence=guangxi_licence()).xyz
    np.testing.assert_array_equal(np.concatenate(chunks), full)
    assert calls[-1][1:] == (5000, 5000) and len(calls) == 5


@pytest.mark.parametrize("jit", [True, False])
@pytest.mark.parametrize("prefix", [True, False])
def test_las_fast_path_equals_laspy_then_reference_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, jit: bool, prefix: str
) -> None:
    """The one-pass LAS scaling (numba or numpy) and the extent shortcuts of
    to_licence_frame give bit for bit what laspy's x/y/z followed by the
    plain steps (strip_zone_prefix on a copy) give."""
    from survey.readers import common
    from survey.readers.common import strip_zone_prefix

    if not jit:
        monkeypatch.setattr(common, "numba", None)
    xyz = survey_points(3000)
    if prefix:
        xyz = with_prefix(xyz)
    p = write_las(tmp_path / "scan.las", xyz)
    las = laspy.read(str(p))
    ref = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
    ref[:, 0] = strip_zone_prefix(ref[:, 0], zone=ZONE, path=p)
    got = np.concatenate(list(iter_chunks(p, 1000, licence=guangxi_licence())))
    np.testing.assert_array_equal(got, ref)


def test_truncated_las(tmp_path: Path) -> None:
    p = write_las(tmp_path / "scan.las", survey_points(3000))
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) - 30 * 500])  # point format 6 records are 30 bytes
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    msg = str(info.value)
    assert str(p) in msg and "truncated" in msg and "3,000" in msg


def test_wrong_zone_prefix_in_data(tmp_path: Path) -> None:
    xyz = survey_points(100)
    xyz[:, 0] += 37e6
    p = write_las(tmp_path / "scan.las", xyz)
    with pytest.raises(SurveyInputError, match="zone prefix 37"):
        read_survey(p, licence=guangxi_licence())


def test_swapped_columns_in_las(tmp_path: Path) -> None:
    xyz = survey_points(100)[:, [1, 0, 2]]
    p = write_las(tmp_path / "scan.las", xyz)
    with pytest.raises(SurveyInputError, match="look swapped"):
        read_survey(p, licence=guangxi_licence())


@pytest.mark.parametrize(("pts", "delimiter"), [(False, " "), (False, ","), (True, " ")])
def test_xyz_pts_roundtrip_ignores_extra_columns(tmp_path: Path, pts: bool, delimiter: str) -> None:
    xyz = survey_points(500)
    extra = np.random.default_rng(2).uniform(0, 255, (500, 4))
    p = write_xyz(
        tmp_path / ("s.pts" if pts else "s.xyz"),
        with_prefix(xyz),
        pts=pts,
        delimiter=delimiter,
        extra=extra,
    )
    data = read_survey(p, licence=guangxi_licence())
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-6, rtol=0)


def test_xyz_nan_names_line(tmp_path: Path) -> None:
    xyz = survey_points(20)
    p = write_xyz(tmp_path / "s.xyz", xyz)
    lines = p.read_text().splitlines()
    lines[6] = "400200.000 nan 10.0"
    lines[9] = "inf 2421200.0 10.0"
    p.write_text("# comment\n" + "\n".join(lines) + "\n")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 8 and "2 point(s)" in str(info.value)


def test_xyz_unparsable_line(tmp_path: Path) -> None:
    p = write_xyz(tmp_path / "s.xyz", survey_points(20))
    lines = p.read_text().splitlines()
    lines[11] = "400200.000 2421200.000 ten"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 12 and str(p) in str(info.value)


def test_pts_count_mismatch(tmp_path: Path) -> None:
    p = write_xyz(tmp_path / "s.pts", survey_points(20), pts=True)
    p.write_text("\n".join(p.read_text().splitlines()[:-3]) + "\n")
    with pytest.raises(SurveyInputError, match="truncated"):
        read_survey(p)


@pytest.mark.parametrize("name", ["empty.las", "empty.xyz", "blank.xyz"])
def test_empty_files(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_text("\n\n" if name.startswith("blank") else "")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert str(p) in str(info.value)


def test_unknown_extension_lists_supported(tmp_path: Path) -> None:
    p = tmp_path / "scan.foo"
    p.write_text("1 2 3\n")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    for ext in SUPPORTED_FORMATS:
        assert ext in str(info.value)


def test_plan_transform_and_height_offset(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    local = np.column_stack(
        [rng.uniform(0, 500, 300), rng.uniform(0, 500, 300), rng.uniform(-5, 5, 300)]
    )
    t = PlanTransform(d_east=400100.0, d_north=2421100.0, rotation_rad=0.3, scale=1.0001)
    p = write_xyz(tmp_path / "local.xyz", local, decimals=6)
    data = read_survey(p, transform=t, height_offset=-12.5, licence=guangxi_licence())
    c, s = np.cos(0.3), np.sin(0.3)
    e = 400100.0 + 1.0001 * (c * local[:, 0] - s * local[:, 1])
    n = 2421100.0 + 1.0001 * (s * local[:, 0] + c * local[:, 1])
    np.testing.assert_allclose(data.xyz, np.column_stack([e, n, local[:, 2] - 12.5]), atol=1e-5)


def test_las_crs_tag_checked_against_licence(tmp_path: Path) -> None:
    xyz = survey_points(100)
    lic = guangxi_licence(4545)
    same_zone = write_las(tmp_path / "a.las", with_prefix(xyz), epsg=4524)
    np.testing.assert_allclose(read_survey(same_zone, licence=lic).xyz, xyz, atol=1e-6)
    other_zone = write_las(tmp_path / "b.las", xyz, epsg=4546)
    with pytest.raises(SurveyInputError, match="EPSG 4546"):
        read_survey(other_zone, licence=lic)


def test_las_wkt_crs_other_code_is_a_note(tmp_path: Path) -> None:
    from laspy.vlrs.known import WktCoordinateSystemVlr

    xyz = survey_points(50)
    p = write_las(tmp_path / "a.las", xyz)
    las = laspy.read(str(p))
    las.header.vlrs.append(
        WktCoordinateSystemVlr('PROJCS["local",GEOGCS["x"],AUTHORITY["EPSG","2383"]]')
    )
    las.write(str(p))
    data = read_survey(p, licence=guangxi_licence(4545))
    assert any("EPSG 2383" in note for note in data.notes)


def test_xyz_streaming_equals_full_read(tmp_path: Path) -> None:
    xyz = survey_points(2500)
    p = write_xyz(tmp_path / "s.pts", with_prefix(xyz), pts=True)
    chunks = list(iter_chunks(p, 1000, licence=guangxi_licence()))
    assert [len(c) for c in chunks] == [1000, 1000, 500]
    np.testing.assert_array_equal(
        np.concatenate(chunks), read_survey(p, licence=guangxi_licence()).xyz
    )
    np.testing.assert_allclose(np.concatenate(chunks), xyz, atol=1e-6, rtol=0)


def test_xyz_bad_line_in_a_later_batch(tmp_path: Path) -> None:
    p = write_xyz(tmp_path / "s.xyz", survey_points(2500))
    lines = p.read_text().splitlines()
    lines[2100] = "400200.000;;2421200.000"
    p.write_text("X Y Z\n" + "\n".join(lines) + "\n")
    with pytest.raises(SurveyInputError) as info:
        list(iter_chunks(p, 1000))
    assert info.value.line == 2102


@pytest.mark.parametrize(
    ("version", "point_format", "compress"),
    [("1.2", 0, False), ("1.2", 3, True), ("1.3", 1, False), ("1.4", 6, True), ("1.4", 7, False)],
)
def test_las_versions_and_point_formats(
    tmp_path: Path, version: str, point_format: int, compress: bool
) -> None:
    xyz = survey_points(700)
    p = write_las(
        tmp_path / ("s.laz" if compress else "s.las"),
        with_prefix(xyz),
        version=version,
        point_format=point_format,
        compress=compress,
    )
    with laspy.open(str(p)) as r:
        assert str(r.header.version) == version and r.header.point_format.id == point_format
    np.testing.assert_allclose(read_survey(p, licence=guangxi_licence()).xyz, xyz, atol=1e-6)


def test_las_crs_same_central_meridian_other_numbering_is_fine(tmp_path: Path) -> None:
    xyz = survey_points(50)
    p = write_las(tmp_path / "a.las", xyz, epsg=4508)  # 6-degree CM 111E, no prefix
    lic = guangxi_licence(4546)  # 3-degree CM 111E, no prefix
    np.testing.assert_allclose(read_survey(p, licence=lic).xyz, xyz, atol=1e-6)


def test_survey_far_from_the_licence_is_refused(tmp_path: Path) -> None:
    local = survey_points(100) - [400000.0, 2421000.0, 0.0]  # a mine grid, no transform given
    p = write_las(tmp_path / "local.las", local)
    with pytest.raises(SurveyInputError) as info:
        read_survey(p, licence=guangxi_licence())
    assert "km from the licensed area" in str(info.value) and "--transform" in str(info.value)
    t = PlanTransform(400000.0, 2421000.0, 0.0)
    assert read_survey(p, licence=guangxi_licence(), transform=t).xyz.shape == (100, 3)

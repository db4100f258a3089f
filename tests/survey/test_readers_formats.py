"""Round trips and refusals for the total-station, GSI, CASS, E57 and mesh
readers. The same survey goes through every writer and comes back within the
format's precision."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from survey.model import Block, Corner, Licence, PlanTransform, SurveyInputError
from survey.readers import read_survey
from survey.writers import (
    write_cass,
    write_csv_points,
    write_e57,
    write_gsi,
    write_gsi16,
    write_mesh,
    write_ply,
)

ZONE = 36
MM = 0.0005 + 1e-9  # rounding to the millimetre
ORIGIN = np.array([400000.0, 2421000.0, 0.0])  # a local origin for mine-grid data


def licence(epsg: int = 4524) -> Licence:
    corners = (
        Corner("1", 2421000.0, 400000.0),
        Corner("2", 2421000.0, 401000.0),
        Corner("3", 2422000.0, 401000.0),
    )
    return Licence(
        "m", "n", epsg, ZONE if epsg == 4524 else None, (Block("b", corners, 120.0, -80.0),)
    )


def points(n: int = 300, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack(
        [
            rng.uniform(400100.0, 400900.0, n),
            rng.uniform(2421100.0, 2421900.0, n),
            rng.uniform(-90.0, 130.0, n),
        ]
    )


# ---------------------------------------------------------------- total station


@pytest.mark.parametrize(
    ("header", "northing_first", "prefix", "encoding"),
    [
        (("点号", "X", "Y", "H"), True, ZONE, "utf-8"),
        (("点号", "北坐标", "东坐标", "高程"), True, None, "gb18030"),
        (("name", "easting", "northing", "elevation"), False, None, "utf-8"),
        (("Point", "Y(m)", "X(m)", "Z(m)"), False, ZONE, "utf-8"),
        (None, True, ZONE, "utf-8"),
        (None, False, None, "utf-8"),
    ],
)
def test_csv_roundtrip(
    tmp_path: Path,
    header: tuple[str, ...] | None,
    northing_first: bool,
    prefix: int | None,
    encoding: str,
) -> None:
    xyz = points()
    ids = [f"P{i}" for i in range(len(xyz))]
    p = write_csv_points(
        tmp_path / "ts.csv",
        xyz,
        ids=ids,
        header=header,
        northing_first=northing_first,
        zone_prefix=prefix,
        encoding=encoding,
    )
    data = read_survey(p, licence=licence())
    assert data.point_ids == ids
    np.testing.assert_allclose(data.xyz, xyz, atol=MM, rtol=0)


def test_csv_column_map_for_local_coordinates(tmp_path: Path) -> None:
    local = points() - ORIGIN  # magnitude cannot tell X from Y here
    p = write_csv_points(tmp_path / "ts.csv", local, header=None, northing_first=False)
    with pytest.raises(SurveyInputError, match="column_map"):
        read_survey(p)
    t = PlanTransform(400000.0, 2421000.0, 0.0)
    data = read_survey(p, column_map={"id": 0, "y": 1, "x": 2, "h": 3}, transform=t)
    np.testing.assert_allclose(data.xyz, local + ORIGIN, atol=MM, rtol=0)


def test_csv_nan_and_bad_line_are_named(tmp_path: Path) -> None:
    p = write_csv_points(tmp_path / "ts.csv", points(10))
    lines = p.read_text(encoding="utf-8").splitlines()
    lines[4] = "P4,nan,401000.000,1.0"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 5 and "NaN" in str(info.value)
    lines[4] = "P4,2421200.0,abc,1.0"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 5 and str(p) in str(info.value)


def test_cass_roundtrip_easting_first(tmp_path: Path) -> None:
    xyz = points()
    p = write_cass(tmp_path / "pts.dat", xyz, zone_prefix=ZONE)
    first = p.read_text().splitlines()[0].split(",")
    assert first[1] == "" and float(first[2]) > 3.6e7  # name,,Y(E with prefix),X,H
    data = read_survey(p, licence=licence())
    assert data.fmt == "cass" and data.point_ids is not None
    np.testing.assert_allclose(data.xyz, xyz, atol=MM, rtol=0)


def test_cass_with_northing_first_is_refused(tmp_path: Path) -> None:
    p = tmp_path / "pts.dat"
    p.write_text("1,,2815193.253,408261.305,4.952\n2,ctrl,2815194.000,408262.000,5.000\n")
    with pytest.raises(SurveyInputError, match="easting first"):
        read_survey(p)


def test_cass_example_line(tmp_path: Path) -> None:
    p = tmp_path / "pts.dat"
    p.write_text("1,,408261.305,2815193.253,4.952\n")
    data = read_survey(p)
    np.testing.assert_allclose(data.xyz, [[408261.305, 2815193.253, 4.952]])
    p.write_text("1,,408261.305,2815193.253\n")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 1


# ---------------------------------------------------------------- Leica GSI


def test_gsi16_example_word_layout(tmp_path: Path) -> None:
    p = tmp_path / "a.gsi"
    p.write_text(
        "*110001+0000000000000A01 81..00+0000000408261305 82..00+0000002815193253 "
        "83..00+0000000004952000 \n"
    )
    data = read_survey(p)
    assert data.point_ids == ["A01"]
    np.testing.assert_allclose(data.xyz, [[408261.305, 2815193.253, 4952.000]])


@pytest.mark.parametrize(("units", "tol"), [(0, MM), (6, 0.00005 + 1e-9), (8, 0.000005 + 1e-9)])
def test_gsi16_roundtrip(tmp_path: Path, units: int, tol: float) -> None:
    xyz = points()
    ids = [f"A{i:03d}" for i in range(len(xyz))]
    p = write_gsi16(tmp_path / "pts.gsi", xyz, ids=ids, units=units, zone_prefix=ZONE)
    assert len(p.read_text().splitlines()[0].split()[1]) == 23  # 16-character data
    data = read_survey(p, licence=licence())
    assert data.point_ids == ids
    np.testing.assert_allclose(data.xyz, xyz, atol=tol, rtol=0)


def test_gsi8_truncated_northing_is_refused(tmp_path: Path) -> None:
    p = write_gsi(tmp_path / "pts.gsi", points(5), gsi8=True)
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert "GSI-8" in str(info.value) and info.value.line == 1


def test_gsi8_local_grid_with_transform(tmp_path: Path) -> None:
    local = np.round(points(20) - ORIGIN, 3)
    p = write_gsi(tmp_path / "pts.gsi", local, gsi8=True)
    t = PlanTransform(400000.0, 2421000.0, 0.0)
    data = read_survey(p, transform=t)
    np.testing.assert_allclose(data.xyz, local + ORIGIN, atol=MM, rtol=0)


# ---------------------------------------------------------------- E57


def _quat(axis: np.ndarray, angle: float) -> np.ndarray:
    axis = axis / np.linalg.norm(axis)
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * axis])


def _rot(q: np.ndarray) -> np.ndarray:
    # Rodrigues from axis-angle, independent of the writer's quaternion code
    angle = 2 * np.arccos(q[0])
    axis = q[1:] / np.sin(angle / 2)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def test_e57_two_scans_with_poses(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    scans = []
    expected = []
    for axis, angle, t in [
        (np.array([0.0, 0.0, 1.0]), 0.7, np.array([400300.0, 2421400.0, -20.0])),
        (np.array([0.2, -0.1, 1.0]), -1.9, np.array([36400600.0, 2421700.0, 35.0])),
    ]:
        local = rng.uniform(-30.0, 30.0, (400, 3))
        q = _quat(axis, angle)
        scans.append((local, (q, t)))
        g = local @ _rot(q).T + t
        g[:, 0] -= ZONE * 1e6 if g[0, 0] > 1e7 else 0.0
        expected.append(g)
    p = write_e57(tmp_path / "scan.e57", scans)
    data = read_survey(p, licence=licence())
    # pye57 stores local points as float32: 30 m * 2**-24 ~ 2e-6 m
    np.testing.assert_allclose(data.xyz, np.concatenate(expected), atol=1e-4, rtol=0)


def test_e57_without_pose_stores_local_origin(tmp_path: Path) -> None:
    xyz = points()
    p = write_e57(tmp_path / "scan.e57", [(xyz, None)])
    np.testing.assert_allclose(read_survey(p).xyz, xyz, atol=1e-3, rtol=0)


def test_e57_absolute_float32_is_refused(tmp_path: Path) -> None:
    xyz = points()
    p = write_e57(tmp_path / "scan.e57", [(xyz, ([1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0]))])
    with pytest.raises(SurveyInputError, match="float32"):
        read_survey(p)


def test_e57_truncated(tmp_path: Path) -> None:
    p = write_e57(tmp_path / "scan.e57", [(points(), None)])
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert str(p) in str(info.value)


# ---------------------------------------------------------------- PLY / OBJ / STL


def _tunnel_mesh() -> tuple[np.ndarray, np.ndarray]:
    """A small closed box in absolute coordinates: (8, 3) vertices, 12 faces."""
    lo = np.array([400500.0, 2421500.0, -10.0])
    corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
    v = lo + corners * [4.0, 30.0, 3.5]
    f = np.array(
        [
            [0, 1, 3], [0, 3, 2], [4, 6, 7], [4, 7, 5], [0, 4, 5], [0, 5, 1],
            [2, 3, 7], [2, 7, 6], [0, 2, 6], [0, 6, 4], [1, 5, 7], [1, 7, 3],
        ]
    )  # fmt: skip
    return v, f


@pytest.mark.parametrize("binary", [True, False])
def test_ply_points_and_mesh_float64(tmp_path: Path, binary: bool) -> None:
    xyz = points()
    data = read_survey(write_ply(tmp_path / "p.ply", xyz, binary=binary), licence=licence())
    assert data.faces is None
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-6 if binary else 1e-6 + 5e-7, rtol=0)
    v, f = _tunnel_mesh()
    mesh = read_survey(write_ply(tmp_path / "m.ply", v, f, binary=binary))
    assert mesh.is_mesh and mesh.faces is not None
    np.testing.assert_array_equal(mesh.faces, f)
    np.testing.assert_allclose(mesh.xyz, v, atol=1e-6, rtol=0)


def test_ply_float32_absolute_is_refused_local_is_fine(tmp_path: Path) -> None:
    xyz = points()
    p = write_ply(tmp_path / "p.ply", xyz, float64=False)
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert "float32" in str(info.value) and "float64" in str(info.value)
    local = xyz - ORIGIN
    t = PlanTransform(400000.0, 2421000.0, 0.0)
    p = write_ply(tmp_path / "local.ply", local, float64=False)
    data = read_survey(p, transform=t)
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-3, rtol=0)


def test_ply_truncated(tmp_path: Path) -> None:
    p = write_ply(tmp_path / "p.ply", points())
    blob = p.read_bytes()
    p.write_bytes(blob[:-100])
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert str(p) in str(info.value)


def test_obj_mesh_roundtrip(tmp_path: Path) -> None:
    v, f = _tunnel_mesh()
    v = v.copy()
    v[:, 0] += ZONE * 1e6
    data = read_survey(write_mesh(tmp_path / "t.obj", v, f), licence=licence())
    assert data.faces is not None and data.faces.shape == (12, 3)
    # same triangles in space, whatever the vertex order
    got = np.sort(data.xyz[data.faces].reshape(12, -1), axis=0)
    want = v[f].copy()
    want[..., 0] -= ZONE * 1e6
    np.testing.assert_allclose(got, np.sort(want.reshape(12, -1), axis=0), atol=1e-4)


def test_stl_absolute_refused_local_with_transform_ok(tmp_path: Path) -> None:
    v, f = _tunnel_mesh()
    p = write_mesh(tmp_path / "abs.stl", v, f, allow_float32_absolute=True)
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert "float32" in str(info.value) and "4 m at 3.6e7" in str(info.value)
    origin = np.array(ORIGIN)
    p = write_mesh(tmp_path / "local.stl", v - origin, f)
    data = read_survey(p, transform=PlanTransform(origin[0], origin[1], 0.0))
    assert data.faces is not None and data.faces.shape == (12, 3) and data.xyz.shape == (8, 3)
    got = np.sort(data.xyz[data.faces].reshape(12, -1), axis=0)
    np.testing.assert_allclose(got, np.sort(v[f].reshape(12, -1), axis=0), atol=1e-4)


def test_stl_truncated(tmp_path: Path) -> None:
    v, f = _tunnel_mesh()
    p = write_mesh(tmp_path / "t.stl", v - ORIGIN, f)
    p.write_bytes(p.read_bytes()[:-20])
    with pytest.raises(SurveyInputError, match="truncated"):
        read_survey(p)


# ---------------------------------------------------------------- PCD


@pytest.mark.parametrize("binary", [True, False])
def test_pcd_double_roundtrip(tmp_path: Path, binary: bool) -> None:
    from survey.writers import write_pcd

    xyz = np.round(points(), 4)
    xyz[:, 0] += ZONE * 1e6
    p = write_pcd(tmp_path / "s.pcd", xyz, binary=binary, intensity=np.ones(len(xyz)))
    data = read_survey(p, licence=licence())
    want = xyz.copy()
    want[:, 0] -= ZONE * 1e6
    np.testing.assert_allclose(data.xyz, want, atol=1e-6, rtol=0)


def test_pcd_float32_absolute_refused_and_truncated(tmp_path: Path) -> None:
    from survey.writers import write_pcd

    p = write_pcd(tmp_path / "s.pcd", points(), float64=False)
    with pytest.raises(SurveyInputError, match="float32"):
        read_survey(p)
    local = write_pcd(tmp_path / "l.pcd", points() - ORIGIN, float64=False)
    data = read_survey(local, transform=PlanTransform(ORIGIN[0], ORIGIN[1], 0.0))
    np.testing.assert_allclose(data.xyz, points(), atol=1e-3, rtol=0)
    local.write_bytes(local.read_bytes()[:-50])
    with pytest.raises(SurveyInputError, match="truncated"):
        read_survey(local)


@pytest.mark.parametrize(
    "ext", [".las", ".laz", ".xyz", ".pts", ".csv", ".dat", ".gsi", ".e57", ".ply", ".pcd", ".dxf"]
)
def test_write_survey_dispatch_roundtrip(tmp_path: Path, ext: str) -> None:
    from survey.writers import write_survey

    xyz = np.round(points(50), 3)
    data = read_survey(write_survey(tmp_path / f"s{ext}", xyz))
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-3 if ext == ".e57" else MM, rtol=0)


# ---------------------------------------------------------------- DXF


def test_dxf_points_and_3dface_mesh(tmp_path: Path) -> None:
    from survey.writers import write_dxf

    xyz = np.round(points(40), 4)
    data = read_survey(write_dxf(tmp_path / "p.dxf", xyz), licence=licence())
    assert data.faces is None
    np.testing.assert_allclose(data.xyz, xyz, atol=1e-6, rtol=0)
    v, f = _tunnel_mesh()
    mesh = read_survey(write_dxf(tmp_path / "m.dxf", v, f))
    assert mesh.faces is not None and mesh.faces.shape == (12, 3)
    got = np.sort(mesh.xyz[mesh.faces].reshape(12, -1), axis=0)
    np.testing.assert_allclose(got, np.sort(v[f].reshape(12, -1), axis=0), atol=1e-6)


POLYFACE_DXF = """0
SECTION
2
ENTITIES
0
POLYLINE
8
TUNNEL
66
1
70
64
0
VERTEX
10
400500.0
20
2421500.0
30
-10.0
70
192
0
VERTEX
10
400504.0
20
2421500.0
30
-10.0
70
192
0
VERTEX
10
400504.0
20
2421530.0
30
-10.0
70
192
0
VERTEX
10
400500.0
20
2421530.0
30
-10.0
70
192
0
VERTEX
10
0.0
20
0.0
30
0.0
70
128
71
1
72
2
73
-3
74
4
0
SEQEND
0
LWPOLYLINE
8
OUTLINE
38
-12.5
90
2
10
400510.0
20
2421510.0
10
400511.0
20
2421511.0
0
TEXT
8
NOTE
0
ENDSEC
0
EOF
"""


def test_dxf_polyface_lwpolyline_and_notes(tmp_path: Path) -> None:
    p = tmp_path / "t.dxf"
    p.write_text(POLYFACE_DXF, encoding="ascii")
    data = read_survey(p)
    assert data.faces is not None and data.faces.shape == (2, 3)  # a quad as two triangles
    np.testing.assert_allclose(
        data.xyz[4:], [[400510.0, 2421510.0, -12.5], [400511.0, 2421511.0, -12.5]]
    )
    corners = data.xyz[data.faces].reshape(-1, 3)
    assert set(map(tuple, corners[:, :2])) == {
        (400500.0, 2421500.0), (400504.0, 2421500.0), (400504.0, 2421530.0), (400500.0, 2421530.0)
    }  # fmt: skip
    assert any("TEXT" in n for n in data.notes)


def test_dxf_bad_group_code_names_line(tmp_path: Path) -> None:
    p = tmp_path / "t.dxf"
    p.write_text("0\nSECTION\n2\nENTITIES\n0\nPOINT\nten\n400000.0\n0\nENDSEC\n", encoding="ascii")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 7


def test_obj_with_two_objects_keeps_both(tmp_path: Path) -> None:
    v, f = _tunnel_mesh()
    p = tmp_path / "two.obj"
    lines = ["o drift_a"] + [f"v {a:.4f} {b:.4f} {c:.4f}" for a, b, c in v]
    lines += [f"f {i + 1} {j + 1} {k + 1}" for i, j, k in f]
    lines += ["o drift_b"] + [f"v {a + 50:.4f} {b:.4f} {c:.4f}" for a, b, c in v]
    lines += [f"f {i + 9} {j + 9} {k + 9}" for i, j, k in f]
    p.write_text("\n".join(lines) + "\n")
    data = read_survey(p)
    assert data.faces is not None and data.faces.shape == (24, 3)
    assert data.xyz.shape == (16, 3)
    assert data.xyz[:, 0].max() == pytest.approx(v[:, 0].max() + 50)


def test_csv_scanner_xyz_header_read_by_magnitude_with_note(tmp_path: Path) -> None:
    xyz = points(30)
    p = write_csv_points(
        tmp_path / "s.csv", xyz, header=("id", "x", "y", "z"), northing_first=False
    )
    data = read_survey(p)
    np.testing.assert_allclose(data.xyz, xyz, atol=MM, rtol=0)
    assert any("by magnitude" in n for n in data.notes)
    p = write_csv_points(
        tmp_path / "t.csv", xyz, header=("点号", "北坐标", "东坐标", "高程"), northing_first=False
    )
    with pytest.raises(SurveyInputError, match="named as the northing"):
        read_survey(p)


def test_csv_later_non_numeric_value_names_its_line(tmp_path: Path) -> None:
    p = write_csv_points(tmp_path / "s.csv", points(80), header=None)
    lines = p.read_text().splitlines()
    lines[70] = "P70,2421300.000,-,12.0"
    p.write_text("\n".join(lines) + "\n")
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert info.value.line == 71


def test_e57_streams_scan_by_scan(tmp_path: Path) -> None:
    from survey.readers import iter_chunks

    a, b = points(300, seed=1), points(200, seed=2)
    p = write_e57(tmp_path / "two.e57", [(a, None), (b, None)])
    calls: list[tuple[int, int | None]] = []
    chunks = list(iter_chunks(p, 250, progress=lambda s, d, t: calls.append((d, t))))
    assert [len(c) for c in chunks] == [250, 50, 200]  # chunks never span two scans
    np.testing.assert_allclose(np.concatenate(chunks), np.concatenate([a, b]), atol=1e-3)
    assert calls == [(300, 500), (500, 500)]

"""Files as other tools write them (issue 10, readers): each test built
the way the other tool writes the file, and failing on the code before the
fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from survey.check import check_files
from survey.model import Block, Corner, Licence, ViolationType


def _licence() -> Licence:
    """One block E 400000-401000, N 2421000-2422000, levels -80..120 m."""
    en = [
        (400000.0, 2421000.0),
        (401000.0, 2421000.0),
        (401000.0, 2422000.0),
        (400000.0, 2422000.0),
    ]
    corners = tuple(Corner(str(i + 1), n, e) for i, (e, n) in enumerate(en))
    return Licence(
        mine_name="test mine",
        licence_no="T-1",
        epsg=4545,
        zone_prefix=None,
        blocks=(Block("main", corners, 120.0, -80.0),),
        tolerance_m=1.5,
        tolerance_z_m=0.5,
    )


def _3dface(corners: list[tuple[float, float, float]]) -> str:
    out = "0\n3DFACE\n8\n0\n"
    for i, (x, y, z) in enumerate(corners):
        out += f"1{i}\n{x}\n2{i}\n{y}\n3{i}\n{z}\n"
    return out


# ---------------------------------------------------------------- item 1


def test_dxf_polyline_vertices_beside_3dfaces_are_checked(tmp_path: Path) -> None:
    """A 3DFACE inside the licence and a polyline reaching 300 m beyond its
    east edge: the polyline vertex is used by no face, and the processed
    trimesh the mesh sampling builds drops it; it must still be checked."""
    body = "0\nSECTION\n2\nENTITIES\n"
    body += _3dface(
        [(400500, 2421500, 0), (400510, 2421500, 0), (400510, 2421510, 0), (400500, 2421510, 0)]
    )
    body += "0\nLWPOLYLINE\n8\n0\n90\n2\n70\n0\n38\n5.0\n"
    body += "10\n400600\n20\n2421600\n10\n401300\n20\n2421600\n"
    body += "0\nENDSEC\n0\nEOF\n"
    p = tmp_path / "mixed.dxf"
    p.write_text(body, encoding="ascii")
    result = check_files(_licence(), [p])
    assert [(i.type, i.point_count) for i in result.incidents] == [(ViolationType.BOUNDARY, 1)]
    assert result.incidents[0].max_exceedance_m == pytest.approx(300.0)


# ---------------------------------------------------------------- item 6


def _textured_ply(p: Path, *, binary: bool) -> list[tuple[float, float, float]]:
    """A mesh as photogrammetry tools write it: per-face texture coordinates
    (``property list uchar float texcoord``) and a texture file that is
    not there."""
    import struct

    verts = [(400100.0 + i, 2421100.0 + (i % 2) * 3, -55.0 + i * 0.5) for i in range(6)]
    faces = [(0, 1, 2), (1, 3, 2), (2, 3, 4), (3, 5, 4)]
    head = [
        "ply",
        "format binary_little_endian 1.0" if binary else "format ascii 1.0",
        "comment TextureFile missing_texture.png",
        f"element vertex {len(verts)}",
        "property double x",
        "property double y",
        "property double z",
        f"element face {len(faces)}",
        "property list uchar int vertex_indices",
        "property list uchar float texcoord",
        "end_header",
    ]
    uv = [[(k * 0.1 + j * 0.3) % 1 for j in range(6)] for k in range(len(faces))]
    if binary:
        body = b"".join(struct.pack("<3d", *v) for v in verts)
        body += b"".join(
            struct.pack("<B3iB6f", 3, *f, 6, *t) for f, t in zip(faces, uv, strict=True)
        )
        p.write_bytes(("\n".join(head) + "\n").encode("ascii") + body)
    else:
        rows = [f"{e:.3f} {n:.3f} {h:.3f}" for e, n, h in verts]
        rows += [
            f"3 {f[0]} {f[1]} {f[2]} 6 " + " ".join(f"{x:.3f}" for x in t)
            for f, t in zip(faces, uv, strict=True)
        ]
        p.write_text("\n".join(head + rows) + "\n", encoding="ascii")
    return verts


@pytest.mark.parametrize("binary", [False, True])
def test_ply_with_per_face_texcoords_reads_declared_vertices_quietly(
    tmp_path: Path, binary: bool, capfd: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    from survey.readers import read_survey

    p = tmp_path / "textured.ply"
    verts = _textured_ply(p, binary=binary)
    data = read_survey(p)
    np.testing.assert_allclose(data.xyz, np.array(verts), rtol=0, atol=1e-9)
    assert data.faces is not None and data.faces.tolist() == [[0, 1, 2], [1, 3, 2], [2, 3, 4], [3, 5, 4]]  # fmt: skip
    out, err = capfd.readouterr()
    assert err == "" and out == ""


# ---------------------------------------------------------------- item 7


@pytest.mark.parametrize("binary", [False, True])
def test_pcd_field_names_any_case(tmp_path: Path, binary: bool) -> None:
    """PDAL writes ``FIELDS X Y Z``; also a repeated ``_`` padding field,
    as PCL writes for aligned points."""
    import numpy as np

    from survey.readers import read_survey

    xyz = np.array([[400100.25, 2421100.5, -55.125], [400200.0, 2421200.75, -60.5]])
    head = (
        "# .PCD v0.7 - Point Cloud Data file format\nVERSION 0.7\nFIELDS X Y Z _ _\n"
        "SIZE 8 8 8 1 1\nTYPE F F F U U\nCOUNT 1 1 1 1 1\nWIDTH 2\nHEIGHT 1\n"
        "VIEWPOINT 0 0 0 1 0 0 0\nPOINTS 2\n"
    )
    p = tmp_path / "pdal.pcd"
    if binary:
        rec = np.zeros(2, dtype=[("xyz", "<f8", (3,)), ("pad", "u1", (2,))])
        rec["xyz"] = xyz
        p.write_bytes((head + "DATA binary\n").encode("ascii") + rec.tobytes())
    else:
        rows = "".join(f"{e} {n} {h} 0 0\n" for e, n, h in xyz.tolist())
        p.write_text(head + "DATA ascii\n" + rows, encoding="ascii")
    np.testing.assert_array_equal(read_survey(p).xyz, xyz)


# ---------------------------------------------------------------- item 8


def _gsi_word(wi: str, info: str, sign: str, data: str) -> str:
    return f"{wi}{info}{sign}{data:>016}" if data.isdigit() else f"{wi}{info}{sign}{data}"


def test_gsi16_missing_values_are_skipped_and_counted(tmp_path: Path) -> None:
    """Leica writes ``-----`` for an unmeasured value: a point without a
    height is read with a NaN height (checked in plan only) and a note
    naming it; one without a position is skipped and counted; the rest are
    read."""
    import numpy as np

    from survey.readers import read_survey

    dashes = "-" * 16
    blocks = [
        ("1", "400100000", "2421100000", "55000", "-"),
        ("2", "400200000", "2421200000", dashes, "+"),
        ("3", dashes, "2421300000", "60000", "-"),
        ("4", "400400000", "2421400000", "65500", "-"),
    ]
    lines = []
    for pid, e, n, h, hsign in blocks:
        words = [
            _gsi_word("11", "0001", "+", pid),
            _gsi_word("81", "..00", "+", e),
            _gsi_word("82", "..00", "+", n),
            _gsi_word("83", "..00", hsign, h),
        ]
        lines.append("*" + " ".join(words) + " ")
    p = tmp_path / "missing.gsi"
    p.write_text("\r\n".join(lines) + "\r\n", encoding="ascii")
    data = read_survey(p)
    assert data.point_ids == ["1", "2", "4"]
    np.testing.assert_allclose(
        data.xyz,
        [[400100.0, 2421100.0, -55.0], [400200.0, 2421200.0, np.nan], [400400.0, 2421400.0, -65.5]],
        atol=1e-9,
    )
    notes = " | ".join(data.notes)
    assert "2 GSI coordinate value(s) missing" in notes
    assert "1 GSI point(s) without an easting or northing" in notes
    assert "1 GSI point(s) have no height" in notes and "(2)" in notes


def test_obj_vertex_no_face_uses_is_read_and_checked(tmp_path: Path) -> None:
    """A survey point left in an OBJ beside a mesh (no face uses it): the
    library loader dropped it; every ``v`` line is a vertex."""
    p = tmp_path / "mesh_and_point.obj"
    p.write_text(
        "v 400500 2421500 0\nv 400510 2421500 0\nv 400510 2421510 0\n"
        "v 401300 2421600 5\nvt 0 0\nvt 1 0\nvt 1 1\nf 1/1 2/2 3/3\n",
        encoding="ascii",
    )
    result = check_files(_licence(), [p])
    assert [(i.type, i.point_count) for i in result.incidents] == [(ViolationType.BOUNDARY, 1)]
    assert result.incidents[0].max_exceedance_m == pytest.approx(300.0)

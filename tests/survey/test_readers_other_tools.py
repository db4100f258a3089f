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
    en = [(400000.0, 2421000.0), (401000.0, 2421000.0), (401000.0, 2422000.0), (400000.0, 2422000.0)]
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

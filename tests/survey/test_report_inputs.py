"""What the report says about its inputs (issue 10 items 2, 3, 12): the
readers' notes reach findings.json, report.html and the console; a LAS in
geographic degrees is refused; a mesh's own vertex and face counts are
shown, its surface samples apart."""

from __future__ import annotations

import json
from pathlib import Path

import laspy
import numpy as np
import pytest
import trimesh
from laspy.vlrs.known import GeoKeyDirectoryVlr, GeoKeyEntryStruct, WktCoordinateSystemVlr

from survey.check import check_files, check_survey
from survey.cli import EXIT_BAD_INPUT, EXIT_OK, main
from survey.model import Block, Corner, Licence, SurveyData, SurveyInputError
from survey.readers import read_survey
from survey.writers import write_las, write_licence_toml, write_mesh

N0, E0 = 2_430_000.0, 562_000.0  # Qinzhou, CGCS2000 zone 36 (EPSG 4545)


def _licence() -> Licence:
    corners = tuple(
        Corner(f"J{i + 1}", N0 + dn, E0 + de)
        for i, (dn, de) in enumerate([(0, 0), (0, 400), (300, 400), (300, 0)])
    )
    return Licence("Test mine", "C450000", 4545, None, (Block("1", corners, 120.0, -80.0),))


def _points(n: int = 500, h: tuple[float, float] = (-60.0, -50.0)) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.column_stack(
        [
            rng.uniform(E0 + 50, E0 + 350, n),
            rng.uniform(N0 + 50, N0 + 250, n),
            rng.uniform(*h, n),
        ]
    )


def _check_cli(
    tmp: Path, capsys: pytest.CaptureFixture[str], scan: Path
) -> tuple[int, str, str, Path]:
    lic = write_licence_toml(tmp / "licence.toml", _licence())
    out = tmp / "out"
    argv = ["check", "--licence", str(lic), "--scan", str(scan), "--out", str(out), "--quiet"]
    code = main(["survey", *argv])
    o, e = capsys.readouterr()
    return code, o, e, out


def _with_vlr(path: Path, vlr: object) -> Path:
    las = laspy.read(str(path))
    las.header.vlrs.append(vlr)
    las.write(str(path))
    return path


def _geokeys(keys: list[tuple[int, int]]) -> GeoKeyDirectoryVlr:
    vlr = GeoKeyDirectoryVlr()
    vlr.geo_keys_header.key_directory_version = 1
    vlr.geo_keys_header.key_revision = 1
    vlr.geo_keys_header.minor_revision = 0
    vlr.geo_keys_header.number_of_keys = len(keys)
    vlr.geo_keys = []
    for key_id, value in keys:
        e = GeoKeyEntryStruct()
        e.id, e.tiff_tag_location, e.count, e.value_offset = key_id, 0, 1, value
        vlr.geo_keys.append(e)
    return vlr


# -- item 2: the readers' notes reach the findings and the report ----------


def test_las_declared_epsg_note_reaches_findings_report_and_console(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = _with_vlr(
        write_las(tmp_path / "scan.las", _points()),
        WktCoordinateSystemVlr('PROJCS["NAD27 / Nebraska North",AUTHORITY["EPSG","32104"]]'),
    )
    code, out, _err, out_dir = _check_cli(tmp_path, capsys, scan)
    assert code == EXIT_OK
    note = "LAS header declares EPSG 32104"
    doc = json.loads((out_dir / "findings.json").read_text(encoding="utf-8"))
    assert any(note in n for n in doc["sources"][0]["notes"])
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    # under the files table, before the plan view: where a reader looks first
    assert note in html
    assert html.index(note) < html.index("Plan view")
    assert note in out


def test_dxf_notes_reach_the_result_in_both_check_paths(tmp_path: Path) -> None:
    """A 2D plan (every height 0) with text the reader skips: both notes."""
    pts = _points(20)
    lines = ["0", "SECTION", "2", "ENTITIES"]
    for e, n, _h in pts:
        lines += ["0", "POINT", "8", "S", "10", f"{e:.3f}", "20", f"{n:.3f}", "30", "0.0"]
    lines += ["0", "TEXT", "8", "S", "10", f"{E0:.1f}", "20", f"{N0:.1f}", "30", "0", "1", "J1"]
    lines += ["0", "ENDSEC", "0", "EOF"]
    dxf = tmp_path / "plan.dxf"
    dxf.write_text("\n".join(lines) + "\n", encoding="ascii")
    lic = _licence()
    for result in (check_files(lic, [dxf]), check_survey(lic, [read_survey(dxf, licence=lic)])):
        (summary,) = result.inputs
        assert any("every DXF height is 0" in n for n in summary.notes)
        assert any("DXF entities not read: 1 TEXT" in n for n in summary.notes)


# -- item 3: a LAS in geographic degrees is refused ------------------------


@pytest.mark.parametrize(
    "vlr",
    [
        _geokeys([(1024, 2), (2048, 4326)]),  # GTModelType geographic, GeographicType WGS 84
        _geokeys([(2048, 4490)]),  # a lone GeographicType key: CGCS2000 in degrees
        WktCoordinateSystemVlr(
            'GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
            'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433],AUTHORITY["EPSG","4326"]]'
        ),
    ],
    ids=["geokeys-4326", "geokey-4490", "wkt-4326"],
)
def test_las_in_geographic_degrees_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], vlr: object
) -> None:
    scan = _with_vlr(write_las(tmp_path / "deg.las", _points()), vlr)
    with pytest.raises(SurveyInputError, match="degrees") as info:
        read_survey(scan, licence=_licence())
    assert "EPSG 4545" in str(info.value) and "re-project" in str(info.value)
    code, _out, err, out_dir = _check_cli(tmp_path, capsys, scan)
    assert code == EXIT_BAD_INPUT
    assert "deg.las" in err and "geographic" in err and "Traceback" not in err
    assert not (out_dir / "findings.json").exists()


def test_projected_system_with_a_geographic_base_is_not_called_degrees(tmp_path: Path) -> None:
    """A user-defined projection names its geographic base (GeographicType
    4490) beside GTModelType 1: not degrees, taken as it is."""
    scan = _with_vlr(
        write_las(tmp_path / "user.las", _points()),
        _geokeys([(1024, 1), (2048, 4490), (3072, 32767)]),
    )
    data = read_survey(scan, licence=_licence())
    assert len(data.xyz) == 500


# -- item 12: a mesh's own counts, its samples apart -----------------------


def test_files_table_shows_mesh_vertices_faces_and_samples_apart(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    box = trimesh.creation.box(extents=(200.0, 150.0, 8.0))
    verts = np.asarray(box.vertices) + np.array([E0 + 200, N0 + 150, -55.0])
    obj = write_mesh(tmp_path / "drift.obj", verts, np.asarray(box.faces))
    code, _out, _err, out_dir = _check_cli(tmp_path, capsys, obj)
    assert code == EXIT_OK
    doc = json.loads((out_dir / "findings.json").read_text(encoding="utf-8"))
    (src,) = doc["sources"]
    assert (src["points"], src["faces"]) == (8, 12)
    assert src["surface_samples"] >= 1000
    assert doc["summary"]["points_checked"] == 8 + src["surface_samples"]
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    row = html[html.index("<td>" + str(obj)) :].split("</tr>")[0]
    cells = [c.split("</td>")[0] for c in row.split("<td class=num>")[1:]]
    assert cells == ["8", "12", f"{src['surface_samples']:,}"]


def test_point_counts_per_file_among_several(tmp_path: Path) -> None:
    """Every file's own count, whatever its format (was: '?' for all but
    LAS among several)."""
    las = write_las(tmp_path / "a.las", _points(300))
    xyz = tmp_path / "b.xyz"
    np.savetxt(xyz, _points(200), fmt="%.3f")
    result = check_files(_licence(), [las, xyz])
    assert [(i.fmt, i.points, i.faces, i.samples) for i in result.inputs] == [
        ("las", 300, None, 0),
        ("xyz", 200, None, 0),
    ]


# -- item 13: points within uncertainty: fringe of incidents, or groups -----


def test_uncertain_points_are_told_apart_as_fringe_or_groups() -> None:
    lic = _licence()  # E0..E0+400, N0..N0+300
    inside = _points(1000)
    # a drift driven 5 m past the east edge: its first 1.5 m beyond the
    # boundary are within the tolerance, the fringe of incident I1
    d = np.arange(0.05, 5.0, 0.1)
    drift = np.column_stack([E0 + 400 + d, np.full_like(d, N0 + 150), np.full_like(d, -55.0)])
    # a wall 0.2-0.8 m past the north edge, far from the drift: group U1
    w = np.arange(0.2, 0.8, 0.1)
    wall = np.column_stack([np.full_like(w, E0 + 100), N0 + 300 + w, np.full_like(w, -55.0)])
    result = check_survey(lic, [_survey(np.concatenate([inside, drift, wall]))])
    assert [i.id for i in result.incidents] == ["I1"] and [u.id for u in result.uncertain] == ["U1"]
    fringe, in_u = int((d <= 1.5).sum()), len(w)
    note = result.notes[0]
    assert f"{fringe + in_u:,} beyond a limit by at most the tolerance" in note
    assert f"{fringe:,} at the fringe of the violating incidents" in note
    assert f"{in_u:,} in the 1 group(s) within uncertainty" in note


def test_uncertain_points_with_no_group_of_their_own_are_the_fringe() -> None:
    lic = _licence()
    d = np.arange(0.05, 5.0, 0.1)
    drift = np.column_stack([E0 + 400 + d, np.full_like(d, N0 + 150), np.full_like(d, -55.0)])
    result = check_survey(lic, [_survey(np.concatenate([_points(1000), drift]))])
    assert result.uncertain == []
    note = result.notes[0]
    assert f"{int((d <= 1.5).sum()):,} at the fringe of the violating incidents" in note
    assert "group(s) within uncertainty" not in note


def _survey(xyz: np.ndarray) -> SurveyData:
    return SurveyData("scan.xyz", "xyz", xyz)

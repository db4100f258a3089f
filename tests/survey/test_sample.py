"""``minegate survey sample`` then ``survey check``: the sample's known
answers come out of the whole pipeline (readers, check, report)."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.cli import main as minegate
from simulators.tunnels import violation_scene
from survey.cli import EXIT_OK, EXIT_VIOLATIONS


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sample")
    code = minegate(["survey", "sample", "--out", str(out)])
    assert code == EXIT_OK
    return out


def _check(scan: Path, out: Path, *extra: str, licence: Path | None = None) -> int:
    lic = licence or scan.parent / "licence.toml"
    return minegate(
        [
            "survey",
            "check",
            "--licence",
            str(lic),
            "--scan",
            str(scan),
            "--out",
            str(out),
            "--quiet",
            *extra,
        ]
    )


def _images(html: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"base64,([A-Za-z0-9+/=]+)", html)]


def test_sample_prints_the_commands_to_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = minegate(["survey", "sample", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == EXIT_OK
    commands = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("minegate survey")]
    assert len(commands) >= 3
    for cmd in commands:  # every file a command names exists
        for arg in cmd.split():
            if arg.startswith(str(tmp_path)) and "/out-" not in arg:
                assert Path(arg).is_file(), arg
    assert (tmp_path / "licence.toml").read_text().count("number =") >= 4


def test_compliant_scan_exits_0(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _check(sample / "compliant.las", tmp_path)
    out = capsys.readouterr().out
    assert code == EXIT_OK
    assert "COMPLIANT" in out
    doc = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "compliant" and doc["incidents"] == []
    assert doc["sources"][0]["points"] > 100_000
    assert len(_images((tmp_path / "report.html").read_text(encoding="utf-8"))) == 1  # plan


@pytest.mark.parametrize("scan", ["violation.las", "violation_points.dat", "violation_mesh.obj"])
def test_violation_scan_exits_3_with_the_known_incidents(
    sample: Path, tmp_path: Path, scan: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = _check(sample / scan, tmp_path)
    out = capsys.readouterr().out
    assert code == EXIT_VIOLATIONS
    assert "VIOLATIONS FOUND" in out
    doc = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    assert doc["verdict"] == "violations found"
    expected = violation_scene(density=1.0).expected  # answers do not depend on density
    got = {i["type"]: i for i in doc["incidents"]}
    assert len(doc["incidents"]) == len(expected)
    for e in expected:
        inc = got[str(e.type)]
        assert inc["max_exceedance_m"] == pytest.approx(e.max_exceedance_m, abs=0.05)
        assert inc["volume_m3"] == pytest.approx(e.volume_m3, rel=0.15)
    boundary = got["boundary"]
    assert boundary["nearest_edge"] == ["4", "5"]  # the straight east edge of the scene
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    images = _images(html)
    assert len(images) == 1 + len(expected)  # plan + one section per incident
    assert all(img.startswith(b"\x89PNG") and len(img) > 10_000 for img in images)
    for inc in doc["incidents"]:
        assert f"<td>{inc['id']}</td>" in html


def test_compare_reports_new_excavation_only(sample: Path, tmp_path: Path) -> None:
    lic = sample / "licence.toml"
    code = minegate(
        [
            "survey",
            "compare",
            "--licence",
            str(lic),
            "--old",
            str(sample / "compliant.las"),
            "--new",
            str(sample / "violation.las"),
            "--out",
            str(tmp_path),
            "--quiet",
        ]
    )
    assert code == EXIT_VIOLATIONS
    doc = json.loads((tmp_path / "findings.json").read_text(encoding="utf-8"))
    comp = doc["comparison"]
    assert comp["old_source"].endswith("compliant.las")
    assert 0 < comp["new_points"] < doc["sources"][1]["points"]
    assert all(i["new_since"] for i in doc["incidents"])
    assert any(a["beyond_licence"] for a in comp["areas"])


def test_publish_appends_finding_records_to_the_site_store(sample: Path, tmp_path: Path) -> None:
    from gateway.config import load_config
    from gateway.model import RecordKind
    from gateway.runtime import open_store

    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nname = "qinzhou-1"\ngateway = "gw1"\ndata_dir = "data"\n\n'
        '[[sinks]]\nname = "broker"\ntype = "mqtt"\nhost = "127.0.0.1"\n'
    )
    code = _check(sample / "violation.las", tmp_path / "out", "--config", str(site), "--publish")
    assert code == EXIT_VIOLATIONS
    doc = json.loads((tmp_path / "out" / "findings.json").read_text(encoding="utf-8"))
    store = open_store(load_config(site))
    try:
        # the sink never ran, yet it gets the findings (its cursor was made first)
        recs = store.take("broker", 1000, kinds=[RecordKind.FINDING])
    finally:
        store.close()
    assert len(recs) == 1 + len(doc["incidents"]) + len(doc["within_uncertainty"])
    check = recs[0]
    assert check.device == doc["check_id"]
    assert check.fields["measurement"] == "survey_check" and check.fields["alert"] is True
    values = dict(zip(check.points, check.values, strict=True))
    assert values["incidents"] == len(doc["incidents"])
    assert {r.fields["tags"]["incident"] for r in recs[1:]} == {  # type: ignore[index]
        i["id"] for i in doc["incidents"] + doc["within_uncertainty"]
    }


def test_bad_input_through_the_installed_command(sample: Path, tmp_path: Path) -> None:
    bad = tmp_path / "scan.las"
    bad.write_bytes(b"LASF" + b"\0" * 50)  # a header cut short
    lic = sample / "licence.toml"
    exe = Path(sys.executable).parent / "minegate"
    proc = subprocess.run(
        [
            str(exe),
            "survey",
            "check",
            "--licence",
            str(lic),
            "--scan",
            str(bad),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert str(bad) in proc.stderr and "Traceback" not in proc.stderr


def test_scan_in_a_mine_grid_checked_with_a_plan_transform(sample: Path, tmp_path: Path) -> None:
    """The same scan moved into a local mine grid (rotated 30 degrees about
    a local origin) gives the same incidents once --transform brings it back."""
    import math

    import laspy
    import numpy as np

    from survey.writers import write_las

    las = laspy.read(str(sample / "violation.las"))
    xyz = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
    d_e, d_n, rot = 512_000.0, 2_523_000.0, 30.0
    a = math.radians(rot)
    e, n = xyz[:, 0] - d_e, xyz[:, 1] - d_n
    local = np.column_stack(  # inverse of E = dE + cos a e - sin a n, ...
        [math.cos(a) * e + math.sin(a) * n, -math.sin(a) * e + math.cos(a) * n, xyz[:, 2]]
    )
    scan = write_las(tmp_path / "mine_grid.las", local)
    code = _check(
        scan,
        tmp_path / "out",
        *("--transform", f"{d_e},{d_n},{rot},1"),
        licence=sample / "licence.toml",
    )
    assert code == EXIT_VIOLATIONS
    moved = json.loads((tmp_path / "out" / "findings.json").read_text(encoding="utf-8"))
    code = _check(sample / "violation.las", tmp_path / "ref")
    ref = json.loads((tmp_path / "ref" / "findings.json").read_text(encoding="utf-8"))
    assert [i["type"] for i in moved["incidents"]] == [i["type"] for i in ref["incidents"]]
    for m, r in zip(moved["incidents"], ref["incidents"], strict=True):
        assert m["centroid"]["x_north"] == pytest.approx(r["centroid"]["x_north"], abs=0.01)
        assert m["centroid"]["y_east"] == pytest.approx(r["centroid"]["y_east"], abs=0.01)
        assert m["max_exceedance_m"] == pytest.approx(r["max_exceedance_m"], abs=0.01)


def test_progress_lines_when_not_on_a_terminal(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lic = sample / "licence.toml"
    code = minegate(
        [
            "survey",
            "check",
            "--licence",
            str(lic),
            "--scan",
            str(sample / "compliant.las"),
            "--out",
            str(tmp_path),
        ]
    )
    err = capsys.readouterr().err
    assert code == EXIT_OK
    assert "compliant.las" in err and "(100%)" in err
    assert "\x1b[" not in err  # plain lines, no terminal control codes


def test_a_broken_store_leaves_the_report_and_exits_4(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from survey.cli import EXIT_NOT_PUBLISHED

    site = tmp_path / "site.toml"
    site.write_text('[site]\nname = "qinzhou-1"\ndata_dir = "data"\n')
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "minegate.sqlite").write_bytes(b"this is not a database" * 100)
    code = _check(sample / "compliant.las", tmp_path / "out", "--config", str(site), "--publish")
    err = capsys.readouterr().err
    assert code == EXIT_NOT_PUBLISHED
    assert "could not be published" in err and "Traceback" not in err
    assert (tmp_path / "out" / "findings.json").is_file()


def test_check_files_streams_a_mine_grid_scan_with_its_transform(
    sample: Path, tmp_path: Path
) -> None:
    """check_files applies the plan transform chunk by chunk (no whole-file
    read): small chunks give the same incidents as the licence-frame scan."""
    import laspy
    import numpy as np

    from survey.check import check_files
    from survey.model import PlanTransform
    from survey.readers.licence_files import load_licence
    from survey.writers import write_las

    las = laspy.read(str(sample / "violation.las"))
    xyz = np.column_stack([np.asarray(las.x), np.asarray(las.y), np.asarray(las.z)])
    d_e, d_n = 512_000.0, 2_523_000.0
    local = xyz - np.array([d_e, d_n, 0.0])
    scan = write_las(tmp_path / "mine_grid.las", local)
    licence = load_licence(sample / "licence.toml")
    moved = check_files(
        licence,
        [scan],
        chunk_points=7_000,
        fmt="LAS",
        transform=PlanTransform(d_east=d_e, d_north=d_n, rotation_rad=0.0),
    )
    ref = check_files(licence, [sample / "violation.las"])
    assert moved.n_points == ref.n_points == len(xyz)
    assert [i.type for i in moved.incidents] == [i.type for i in ref.incidents]
    for m, r in zip(moved.incidents, ref.incidents, strict=True):
        assert m.point_count == r.point_count
        assert m.max_exceedance_m == pytest.approx(r.max_exceedance_m, abs=0.005)


def test_the_sample_seam_grids_cover_every_seam_working(sample: Path) -> None:
    """The sample's check notes points outside the seam's extent: they must
    be the workings outside the seam (haulage drift, ramp, stopes, east
    drift), not seam drifts the written grids fail to reach. Every scan
    point within the seam's rectangle (scene frame) gets a roof and a floor
    from the .asc grids, and every point outside it none."""
    import numpy as np

    from simulators.tunnels import make_licence
    from survey.readers import read_survey
    from survey.readers.licence_files import load_licence

    lic = load_licence(sample / "licence.toml")
    xyz = read_survey(sample / "violation.las").xyz
    seam = lic.seams[0]
    covered = np.isfinite(seam.roof.height(xyz[:, :2])) & np.isfinite(seam.floor.height(xyz[:, :2]))
    # the rectangle, from the simulator's own (analytic) seam
    exact = np.isfinite(make_licence().seams[0].roof.height(xyz[:, :2]))
    np.testing.assert_array_equal(covered, exact)
    assert 0 < covered.sum() < len(xyz)

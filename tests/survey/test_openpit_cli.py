"""``minegate survey sample --open-pit`` and ``minegate survey check-pit``:
exit codes (0 compliant, 3 violations, 2 bad input with the file named),
findings.json's open_pit section and the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from survey.cli import EXIT_BAD_INPUT, EXIT_OK, EXIT_VIOLATIONS, main
from survey.openpit.dsm import Dsm, write_geotiff
from survey.openpit.geometry import PitGeometry, Sector
from survey.writers import write_licence_toml

# a pit inside its licence, benches within the default design
COMPLIANT = PitGeometry(
    steep_deg=65.0,
    wall=Sector(200.0, -100.0),  # no sector: weight 0 everywhere
    sump_bottom_m=158.0,
    licence_east_m=120.0,
    half_extent_m=100.0,
)


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["survey", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _pit_files(tmp: Path, g: PitGeometry, survey: int = 1, epsg: int = 4545) -> tuple[Path, Path]:
    lic = write_licence_toml(tmp / "licence.toml", g.licence())
    e, n = g.axes(0.5)
    E, N = np.meshgrid(e, n)
    if epsg == 4524:  # the same zone with the zone prefix in front of eastings
        e = e + 36e6
    dsm = write_geotiff(tmp / f"dsm{survey}.tif", Dsm(e, n, g.height(E, N, survey)), epsg=epsg)
    return lic, dsm


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pit-sample")
    assert main(["survey", "sample", "--open-pit", "--out", str(out)]) == EXIT_OK
    return out


def test_sample_writes_every_product(sample: Path) -> None:
    names = {p.name for p in sample.iterdir()}
    assert {
        "licence.toml",
        "design.toml",
        "dsm_2026-03-01.tif",
        "dsm_2026-09-01.tif",
        "pre_mining.tif",
        "ortho_2026-09-01.tif",
        "cloud_2026-03-01.las",
        "mesh_2026-03-01.obj",
        "expected.json",
        "EXPECTED.txt",
    } <= names


def test_check_pit_on_the_sample_exits_3_with_findings_and_report(
    sample: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = sample / "out"
    code, text, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(sample / "licence.toml"),
        "--design",
        str(sample / "design.toml"),
        "--dsm",
        str(sample / "dsm_2026-09-01.tif"),
        "--earlier",
        str(sample / "dsm_2026-03-01.tif"),
        "--pre-mining",
        str(sample / "pre_mining.tif"),
        "--ortho",
        str(sample / "ortho_2026-09-01.tif"),
        "--out",
        str(out),
    )
    assert code == EXIT_VIOLATIONS, err
    assert "one_wall" in text and "not top-down" in text
    doc = json.loads((out / "findings.json").read_text())
    assert doc["verdict"] == "violations found"
    assert {i["type"] for i in doc["incidents"]} == {"boundary", "below_range"}
    pit = doc["open_pit"]
    kinds = {v["kind"] for v in pit["violations"]}
    assert {"one_wall", "steep_face", "narrow_berm", "overall_slope"} <= kinds
    wall = next(v for v in pit["violations"] if v["kind"] == "one_wall")
    assert wall["worst"] == pytest.approx(40.0, abs=0.2) and wall["length_along_wall_m"] > 30
    assert len(pit["between_surveys"]["out_of_order"]) == 1
    assert pit["between_surveys"]["cut_outside_licence_m3"] > 1000
    assert {round(b["toe_h"]) for b in pit["benches"]} >= {160, 170, 180, 190}
    html = (out / "report.html").read_text()
    # the plan and one profile per bench violation
    assert html.count("data:image/png;base64,") == 1 + len(pit["violations"])
    assert "NOT TOP-DOWN" in html and "C4507002026030000001" in html
    assert "Orthophoto" in html and any(s["format"] == "orthophoto" for s in doc["sources"])


def test_compliant_pit_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic, dsm = _pit_files(tmp_path, COMPLIANT)
    code, text, err = _run(
        capsys, "check-pit", "--licence", str(lic), "--dsm", str(dsm), "--out", str(tmp_path / "o")
    )
    assert code == EXIT_OK, text + err
    doc = json.loads((tmp_path / "o" / "findings.json").read_text())
    assert doc["verdict"] == "compliant"
    assert doc["open_pit"]["violations"] == [] and doc["incidents"] == []
    assert doc["open_pit"]["design"]["source"] == "built-in defaults"


def test_prefixed_eastings_of_the_same_zone_are_accepted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lic, dsm = _pit_files(tmp_path, COMPLIANT, epsg=4524)
    code, text, err = _run(
        capsys, "check-pit", "--licence", str(lic), "--dsm", str(dsm), "--out", str(tmp_path / "o")
    )
    assert code == EXIT_OK, text + err


def test_dsm_in_another_zone_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic, dsm = _pit_files(tmp_path, COMPLIANT, epsg=4546)
    code, _, err = _run(
        capsys, "check-pit", "--licence", str(lic), "--dsm", str(dsm), "--out", str(tmp_path / "o")
    )
    assert code == EXIT_BAD_INPUT
    assert "dsm1.tif" in err and "raster declares EPSG 4546" in err and "re-project" in err


@pytest.mark.parametrize(
    ("design", "words"),
    [
        ("[design]\nmax_bench_hight_m = 12\n", ["unknown key 'max_bench_hight_m'"]),
        ("[design]\nmax_bench_height_m = -1\n", ["max_bench_height_m", "positive number"]),
        ("[zones]\nname = 'x'\n", ["zones"]),
        ("[design\n", ["not valid TOML"]),
        (
            "[[zones]]\ncorners = [{ x = 561000, y = 2431000 }, { x = 561100, y = 2431000 },"
            " { x = 561100, y = 2431100 }]\n",
            ["zones 1", "corner 1", "looks like an easting", "as on the licence"],
        ),
        ("[[zones]]\ncorners = [[1, 2], [3, 4], [5, 6]]\n", ["x = northing"]),
    ],
)
def test_bad_design_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], design: str, words: list[str]
) -> None:
    lic, dsm = _pit_files(tmp_path, COMPLIANT)
    path = tmp_path / "design.toml"
    path.write_text(design)
    code, _, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(lic),
        "--dsm",
        str(dsm),
        "--design",
        str(path),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == EXIT_BAD_INPUT
    assert "design.toml" in err and "Traceback" not in err
    for w in words:
        assert w in err


def test_not_a_geotiff_and_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic, _ = _pit_files(tmp_path, COMPLIANT)
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"this is not a tiff\n")
    code, _, err = _run(
        capsys, "check-pit", "--licence", str(lic), "--dsm", str(bad), "--out", str(tmp_path / "o")
    )
    assert code == EXIT_BAD_INPUT and "broken.tif" in err and "GeoTIFF" in err
    code, _, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(lic),
        "--dsm",
        str(tmp_path / "nope.tif"),
        "--out",
        str(tmp_path / "o"),
    )
    assert code == EXIT_BAD_INPUT and "nope.tif" in err and "not found" in err


def test_publish_appends_pit_findings_to_the_site_store(
    sample: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.config import load_config
    from gateway.model import RecordKind
    from gateway.runtime import open_store

    site = tmp_path / "site.toml"
    site.write_text(
        '[site]\nname = "quarry-1"\ngateway = "gw1"\ndata_dir = "data"\n\n'
        '[[sinks]]\nname = "broker"\ntype = "mqtt"\nhost = "127.0.0.1"\n'
    )
    out = tmp_path / "out"
    code, text, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(sample / "licence.toml"),
        "--dsm",
        str(sample / "dsm_2026-09-01.tif"),
        "--earlier",
        str(sample / "dsm_2026-03-01.tif"),
        "--out",
        str(out),
        "--config",
        str(site),
        "--publish",
    )
    assert code == EXIT_VIOLATIONS, err
    assert "published" in text
    doc = json.loads((out / "findings.json").read_text())
    store = open_store(load_config(site))
    try:
        recs = store.take("broker", 1000, kinds=[RecordKind.FINDING])
    finally:
        store.close()
    by = {}
    for r in recs:
        by.setdefault(r.fields["measurement"], []).append(r)
    check = by["survey_check"][0]
    values = dict(zip(check.points, check.values, strict=True))
    assert check.fields["alert"] is True
    assert values["pit_violations"] == len(doc["open_pit"]["violations"])
    assert values["out_of_order"] == 1
    assert len(by["survey_incident"]) == len(doc["incidents"]) + len(doc["within_uncertainty"])
    found = {r.fields["tags"]["finding"]: r for r in by["survey_pit_finding"]}  # type: ignore[index]
    assert set(found) == {v["id"] for v in doc["open_pit"]["violations"]} | set(
        doc["open_pit"]["between_surveys"]["out_of_order"]
    )
    wall = next(r for r in found.values() if r.fields["tags"]["kind"] == "one_wall")  # type: ignore[index]
    assert dict(zip(wall.points, wall.values, strict=True))["worst"] == pytest.approx(40.0, abs=0.2)
    (change,) = by["survey_pit_change"]
    cut = dict(zip(change.points, change.values, strict=True))
    assert (
        cut["cut_outside_licence_m3"]
        == doc["open_pit"]["between_surveys"]["cut_outside_licence_m3"]
    )


def test_publish_needs_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic, dsm = _pit_files(tmp_path, COMPLIANT)
    code, _, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(lic),
        "--dsm",
        str(dsm),
        "--out",
        str(tmp_path / "o"),
        "--publish",
    )
    assert code == EXIT_BAD_INPUT and "--config" in err


def test_centre_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic, dsm = _pit_files(tmp_path, COMPLIANT)
    x, y = COMPLIANT.centre_en[1] + 3.0, COMPLIANT.centre_en[0] - 2.0
    code, text, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(lic),
        "--dsm",
        str(dsm),
        "--centre",
        f"{x},{36e6 + y}",  # Y with the zone prefix, as printed on licences
        "--out",
        str(tmp_path / "o"),
    )
    assert code == EXIT_OK, text + err
    doc = json.loads((tmp_path / "o" / "findings.json").read_text())
    assert doc["open_pit"]["pit_centre"] == {"x_north": x, "y_east": y}
    code, _, err = _run(
        capsys,
        "check-pit",
        "--licence",
        str(lic),
        "--dsm",
        str(dsm),
        "--centre",
        "2431800",
        "--out",
        str(tmp_path / "o"),
    )
    assert code == EXIT_BAD_INPUT and "--centre" in err and "X,Y" in err

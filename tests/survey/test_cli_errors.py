"""Bad input to ``minegate survey``: exit 2, the file named, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from survey.cli import EXIT_BAD_INPUT, main, parse_transform
from survey.model import Block, Corner, Licence, SurveyInputError
from survey.writers import write_las, write_licence_toml

N0, E0 = 2_430_000.0, 562_000.0  # Qinzhou, CGCS2000 zone 36 (EPSG 4545)


def _licence_file(tmp: Path) -> Path:
    corners = tuple(
        Corner(f"J{i + 1}", N0 + dn, E0 + de)
        for i, (dn, de) in enumerate([(0, 0), (0, 400), (300, 400), (300, 0)])
    )
    lic = Licence("Test mine", "C450000", 4545, None, (Block("1", corners, 120.0, -80.0),))
    return write_licence_toml(tmp / "licence.toml", lic)


def _points(n: int = 2000) -> np.ndarray:
    rng = np.random.default_rng(3)
    return np.column_stack(
        [
            rng.uniform(E0 + 50, E0 + 350, n),
            rng.uniform(N0 + 50, N0 + 250, n),
            rng.uniform(-60, -50, n),
        ]
    )


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["survey", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _check(
    capsys: pytest.CaptureFixture[str], tmp: Path, licence: Path, scan: Path, *extra: str
) -> tuple[int, str]:
    code, _, err = _run(
        capsys,
        "check",
        "--licence",
        str(licence),
        "--scan",
        str(scan),
        "--out",
        str(tmp / "out"),
        "--quiet",
        *extra,
    )
    assert "Traceback" not in err
    return code, err


def test_truncated_las(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = write_las(tmp_path / "scan.las", _points(50_000))
    data = scan.read_bytes()
    scan.write_bytes(data[: len(data) // 2])
    code, err = _check(capsys, tmp_path, _licence_file(tmp_path), scan)
    assert code == EXIT_BAD_INPUT
    assert str(scan) in err and "truncated" in err


def test_nan_coordinates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pts = _points(20)
    lines = [f"{e:.3f} {n:.3f} {h:.3f}" for e, n, h in pts]
    lines[7] = f"{pts[7, 0]:.3f} nan {pts[7, 2]:.3f}"
    scan = tmp_path / "scan.xyz"
    scan.write_text("\n".join(lines) + "\n")
    code, err = _check(capsys, tmp_path, _licence_file(tmp_path), scan)
    assert code == EXIT_BAD_INPUT
    assert str(scan) in err
    assert "line 8" in err or "NaN" in err or "nan" in err


def test_empty_scan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = tmp_path / "empty.xyz"
    scan.write_text("")
    code, err = _check(capsys, tmp_path, _licence_file(tmp_path), scan)
    assert code == EXIT_BAD_INPUT
    assert str(scan) in err


def test_self_crossing_licence(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lic = tmp_path / "bowtie.toml"
    lic.write_text(
        'mine_name = "Bowtie"\nlicence_no = "C1"\nepsg = 4545\n\n[[blocks]]\nname = "1"\n'
        "z_top = 100.0\nz_bottom = -50.0\ncorners = [\n"
        f'  {{ number = "1", x = {N0:.1f}, y = {E0:.1f} }},\n'
        f'  {{ number = "2", x = {N0 + 300:.1f}, y = {E0 + 400:.1f} }},\n'
        f'  {{ number = "3", x = {N0:.1f}, y = {E0 + 400:.1f} }},\n'
        f'  {{ number = "4", x = {N0 + 300:.1f}, y = {E0:.1f} }},\n'
        "]\n"
    )
    scan = write_las(tmp_path / "scan.las", _points())
    code, err = _check(capsys, tmp_path, lic, scan)
    assert code == EXIT_BAD_INPUT
    assert str(lic) in err and "cross" in err


def test_missing_scan_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "nope.las"
    code, err = _check(capsys, tmp_path, _licence_file(tmp_path), missing)
    assert code == EXIT_BAD_INPUT
    assert str(missing) in err and "not found" in err


def test_publish_needs_a_config(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    scan = write_las(tmp_path / "scan.las", _points())
    code, err = _check(capsys, tmp_path, _licence_file(tmp_path), scan, "--publish")
    assert code == EXIT_BAD_INPUT
    assert "--config" in err


@pytest.mark.parametrize("text", ["1,2", "a,b,c", "1,2,3,0", "1,2,nan"])
def test_bad_transform_is_refused(text: str) -> None:
    with pytest.raises(SurveyInputError, match="--transform"):
        parse_transform(text)


def test_transform_parses_degrees() -> None:
    t = parse_transform("100,200,90,1.0")
    assert t is not None
    got = t.apply(np.array([[1.0, 0.0]]))
    assert got[0] == pytest.approx([100.0, 201.0])


def test_subprocess_bad_input_has_no_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "missing.toml"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "survey.cli",
            "survey",
            "check",
            "--licence",
            str(missing),
            "--scan",
            str(missing),
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == EXIT_BAD_INPUT
    assert str(missing) in proc.stderr
    assert "Traceback" not in proc.stderr


def test_unwritable_out_fails_before_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = write_las(tmp_path / "scan.las", _points())
    blocker = tmp_path / "afile"
    blocker.write_text("not a directory")
    code, _, err = _run(
        capsys,
        "check",
        "--licence",
        str(_licence_file(tmp_path)),
        "--scan",
        str(scan),
        "--out",
        str(blocker / "out"),
        "--quiet",
    )
    assert code == EXIT_BAD_INPUT
    assert str(blocker / "out") in err and "--out" in err and "Traceback" not in err


def test_survey_commands_run_without_the_cyclic_collector_and_restore_it() -> None:
    """The collector is off while a survey handler runs (a batch job: ~0.1 s
    of a big check went to walking numba's and matplotlib's objects) and on
    again afterwards, also when the handler fails."""
    import argparse
    import gc

    from survey.cli import run

    seen: list[bool] = []

    def handler(args: argparse.Namespace) -> int:
        seen.append(gc.isenabled())
        if args.fail:
            raise SurveyInputError("bad scan")
        return 0

    assert gc.isenabled()
    assert run(handler, argparse.Namespace(fail=False)) == 0
    assert run(handler, argparse.Namespace(fail=True)) == 2
    assert seen == [False, False] and gc.isenabled()

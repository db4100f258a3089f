"""The ``--out`` folder and the format flag (issue 10 item 9): bad input
leaves no empty report folder behind; an unknown extension names the CLI's
``--format``."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from survey.cli import EXIT_BAD_INPUT, EXIT_OK, main
from survey.model import Block, Corner, Licence
from survey.writers import write_licence_toml, write_xyz

N0, E0 = 2_430_000.0, 562_000.0


def _licence_file(tmp: Path) -> Path:
    corners = tuple(
        Corner(f"J{i + 1}", N0 + dn, E0 + de)
        for i, (dn, de) in enumerate([(0, 0), (0, 400), (300, 400), (300, 0)])
    )
    lic = Licence("Test mine", "C450000", 4545, None, (Block("1", corners, 120.0, -80.0),))
    return write_licence_toml(tmp / "licence.toml", lic)


def _points(n: int = 300) -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.column_stack(
        [
            rng.uniform(E0 + 50, E0 + 350, n),
            rng.uniform(N0 + 50, N0 + 250, n),
            rng.uniform(-60, -50, n),
        ]
    )


def _check(
    capsys: pytest.CaptureFixture[str], tmp: Path, scan: Path, out: Path, *extra: str
) -> tuple[int, str]:
    lic = _licence_file(tmp)
    argv = ["check", "--licence", str(lic), "--scan", str(scan), "--out", str(out), "--quiet"]
    code = main(["survey", *argv, *extra])
    _, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, err


def test_unknown_extension_names_the_format_flag_and_creates_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = tmp_path / "scan.asc"
    scan.write_text("562100 2430100 -55\n", encoding="ascii")
    out = tmp_path / "reports" / "run1"
    code, err = _check(capsys, tmp_path, scan, out)
    assert code == EXIT_BAD_INPUT
    assert "--format" in err and "scan.asc" in err
    assert not (tmp_path / "reports").exists()
    # and the flag it names works
    write_xyz(scan, _points(), decimals=3)
    assert _check(capsys, tmp_path, scan, out, "--format", "xyz")[0] == EXIT_OK
    assert (out / "findings.json").is_file() and (out / "report.html").is_file()


def test_a_file_refused_while_read_leaves_no_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = tmp_path / "bad.xyz"
    scan.write_text("562100 2430100 -55\n562101 2430101 nonsense\n", encoding="ascii")
    out = tmp_path / "out"
    code, err = _check(capsys, tmp_path, scan, out)
    assert code == EXIT_BAD_INPUT and "bad.xyz" in err
    assert not out.exists()


def test_out_under_a_file_is_refused_before_the_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = write_xyz(tmp_path / "scan.xyz", _points(), decimals=3)
    blocker = tmp_path / "taken"
    blocker.write_text("", encoding="ascii")
    code, err = _check(capsys, tmp_path, scan, blocker / "out")
    assert code == EXIT_BAD_INPUT
    assert "--out" in err and "is a file" in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_out_in_a_read_only_folder_is_refused_and_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scan = write_xyz(tmp_path / "scan.xyz", _points(), decimals=3)
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, err = _check(capsys, tmp_path, scan, locked / "a" / "b")
    finally:
        locked.chmod(0o755)
    assert code == EXIT_BAD_INPUT and "--out" in err and "permission" in err
    assert not (locked / "a").exists()

"""Bad uploads: every reader answers with a SurveyInputError that names the
file (and the line where there is one), never a traceback from a library."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import laspy
import numpy as np
import pytest

from survey.model import SurveyInputError
from survey.readers import read_survey
from survey.writers import write_e57, write_las, write_ply


def _points(n: int = 20_000) -> np.ndarray:
    rng = np.random.default_rng(5)
    return np.column_stack(
        [
            rng.uniform(400000.0, 401000.0, n),
            rng.uniform(2421000.0, 2422000.0, n),
            rng.uniform(-100.0, 100.0, n),
        ]
    )


def _empty_las(p: Path) -> None:
    laspy.LasData(laspy.LasHeader(point_format=6, version="1.4")).write(str(p))


EMPTY_CASES: dict[str, Callable[[Path], None] | str] = {
    "header_only.csv": "点号,X,Y,H\n",
    "zero.pts": "0\n",
    "angles_only.gsi": "*210001+0000000000000000 22..16+0000000009000000 \n",
    "blank.dat": "\n\n\n",
    "comments.xyz": "# exported by nothing\n\n",
    "zero.las": _empty_las,
    "zero.ply": lambda p: write_ply(p, np.empty((0, 3))) and None,
    "zero_bytes.e57": "",
}


@pytest.mark.parametrize("name", sorted(EMPTY_CASES))
def test_empty_inputs(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    make = EMPTY_CASES[name]
    if isinstance(make, str):
        p.write_text(make, encoding="utf-8")
    else:
        make(p)
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert str(p) in str(info.value)


@pytest.mark.parametrize("name", ["scan.laz", "scan.las", "scan.e57", "scan.ply"])
def test_truncated_binary_inputs(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    xyz = _points()
    if name.endswith(".laz"):
        write_las(p, xyz, compress=True)
    elif name.endswith(".las"):
        write_las(p, xyz)
    elif name.endswith(".e57"):
        write_e57(p, [(xyz, None)])
    else:
        write_ply(p, xyz)
    blob = p.read_bytes()
    p.write_bytes(blob[: len(blob) * 2 // 3])
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    assert str(p) in str(info.value)


def test_garbage_with_a_known_extension(tmp_path: Path) -> None:
    for name in ("scan.las", "scan.e57", "scan.ply", "scan.stl", "scan.pcd"):
        p = tmp_path / name
        p.write_bytes(b"this is not a scan\n" * 20)
        with pytest.raises(SurveyInputError) as info:
            read_survey(p)
        assert str(p) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SurveyInputError, match="not found"):
        read_survey(tmp_path / "nope.las")


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("bad.pcd", b"FIELDS x y z\nSIZE 8 8 8\nTYPE F F F\nPOINTS many\nDATA ascii\n1 2 3\n"),
        ("short.pcd", b"FIELDS x y z\nSIZE 8 8\nTYPE F F F\nPOINTS 1\nDATA ascii\n1 2 3\n"),
        ("bad.ply", b"ply\nformat ascii 1.0\nelement vertex lots\nproperty double x\nend_header\n"),
        ("bad.asc", b"ncols 2\nnrows two\n"),
    ],
)
def test_broken_headers(tmp_path: Path, name: str, content: bytes) -> None:
    from survey.surfaces import load_surface

    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(SurveyInputError) as info:
        load_surface(p) if name.endswith(".asc") else read_survey(p)
    assert str(p) in str(info.value)


FUZZ_EXTS = [".las", ".laz", ".xyz", ".pts", ".csv", ".dat", ".gsi", ".e57", ".ply", ".pcd", ".dxf"]


@pytest.mark.parametrize("ext", [*FUZZ_EXTS, ".obj", ".stl"])
def test_damaged_uploads_never_escape_as_library_errors(tmp_path: Path, ext: str) -> None:
    """Flipped, cut and inserted bytes: the reader either reads something or
    raises SurveyInputError (a damaged LAZ chunk table once aborted the whole
    process inside lazrs)."""
    from survey.writers import write_mesh, write_survey

    xyz = np.round(_points(200), 3)
    if ext == ".obj":
        base = write_mesh(tmp_path / "base.obj", xyz[:10], [[0, 1, 2], [2, 3, 4]])
    elif ext == ".stl":
        base = write_mesh(tmp_path / "base.stl", xyz[:10] - [400000.0, 2421000.0, 0.0], [[0, 1, 2]])
    else:
        base = write_survey(tmp_path / f"base{ext}", xyz)
    blob = base.read_bytes()
    rng = np.random.default_rng(sum(map(ord, ext)))
    for trial in range(24):
        b = bytearray(blob)
        if trial % 3 == 0:
            for _ in range(int(rng.integers(1, 8))):
                b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        elif trial % 3 == 1:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            i = int(rng.integers(0, len(b)))
            b = (
                b[:i]
                + bytes(rng.integers(0, 256, int(rng.integers(1, 20))).astype(np.uint8))
                + b[i:]
            )
        p = tmp_path / f"damaged{ext}"
        p.write_bytes(bytes(b))
        try:
            data = read_survey(p)
        except SurveyInputError as exc:
            assert str(p) in str(exc)
        else:
            assert data.xyz.dtype == np.float64 and data.xyz.shape[1] == 3

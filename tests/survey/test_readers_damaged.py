"""Damaged uploads (issue 10, items 4, 5, 16, 17, 18): LAS/LAZ headers
damaged the way a fuzzer or a broken exporter damages them, an OBJ face
pointing past its vertices, a directory given as a scan. A clear refusal
naming the file and the field, exit 2 from the CLI, never a finding, a
numpy warning or a MemoryError traceback; and a refusal of the points
themselves reaches the user as it is."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np
import pytest

from survey.cli import EXIT_BAD_INPUT, main
from survey.model import Block, Corner, Licence, SurveyInputError
from survey.readers import read_survey
from survey.writers import write_las, write_licence_toml

E0, N0 = 400_000.0, 2_421_000.0


def _licence() -> Licence:
    en = [(E0, N0), (E0 + 400, N0), (E0 + 400, N0 + 300), (E0, N0 + 300)]
    corners = tuple(Corner(str(i + 1), n, e) for i, (e, n) in enumerate(en))
    return Licence("test mine", "T-1", 4545, None, (Block("1", corners, 120.0, -80.0),))


def _points(n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(7)
    return np.column_stack(
        [
            rng.uniform(E0 + 50, E0 + 350, n),
            rng.uniform(N0 + 50, N0 + 250, n),
            rng.uniform(-60, -50, n),
        ]
    )


def _patched(tmp: Path, name: str, offset: int, fmt: str, value: float | int, **kw: object) -> Path:
    p = write_las(tmp / name, _points(), **kw)  # type: ignore[arg-type]
    blob = bytearray(p.read_bytes())
    struct.pack_into(fmt, blob, offset, value)
    p.write_bytes(bytes(blob))
    return p


def _refusal(p: Path) -> str:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no numpy warning on the way
        with pytest.raises(SurveyInputError) as info:
            read_survey(p, licence=_licence())
    msg = str(info.value)
    assert str(p) in msg
    return msg


# ------------------------------------------------ item 16: scales, offsets


@pytest.mark.parametrize(
    ("offset", "value", "words"),
    [
        (131, 0.0, "X scale factor is 0.0"),
        (139, -0.001, "Y scale factor is -0.001"),
        (147, float("nan"), "Z scale factor is nan"),
        (131, 1e300, "X scale factor is 1e+300"),
        (155, 1e300, "X offset is 1e+300"),
        (163, float("inf"), "Y offset is inf"),
    ],
)
def test_impossible_scale_or_offset_is_refused(
    tmp_path: Path, offset: int, value: float, words: str
) -> None:
    msg = _refusal(_patched(tmp_path, "bad.las", offset, "<d", value))
    assert words in msg
    assert "truncated" not in msg


def test_zero_scale_is_bad_input_not_a_violation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every point at the offset looked like 6 violations (exit 3)."""
    scan = _patched(tmp_path, "zero.las", 131, "<d", 0.0)
    lic = write_licence_toml(tmp_path / "licence.toml", _licence())
    out = tmp_path / "out"
    code = main(["survey", "check", "--licence", str(lic), "--scan", str(scan), "--out", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "X scale factor is 0.0" in err and "Traceback" not in err


# ------------------------------------------------ item 18: point format


def test_unknown_point_format_is_named(tmp_path: Path) -> None:
    msg = _refusal(_patched(tmp_path, "fmt.las", 104, "<B", 35))
    assert "point format 35 is not a LAS point format" in msg


def test_unknown_version_is_named(tmp_path: Path) -> None:
    """laspy read LAS "9.9" as 1.4 until a struct.error traceback."""
    msg = _refusal(_patched(tmp_path, "v.las", 25, "<B", 9))
    assert "LAS version 1.9" in msg


# ------------------------------------------------ item 17: sizes the header claims


def test_evlr_offset_zero_is_refused(tmp_path: Path) -> None:
    p = write_las(tmp_path / "e.las", _points(), version="1.4")
    blob = bytearray(p.read_bytes())
    struct.pack_into("<QI", blob, 235, 0, 1)  # one EVLR at byte 0: inside the header
    p.write_bytes(bytes(blob))
    msg = _refusal(p)
    assert "extended VLR" in msg and "at byte 0" in msg


def test_evlr_of_2_to_the_40_bytes_is_refused(tmp_path: Path) -> None:
    p = write_las(tmp_path / "e.las", _points(), version="1.4")
    blob = bytearray(p.read_bytes())
    start = len(blob)
    struct.pack_into("<QI", blob, 235, start, 1)
    evlr = struct.pack("<H16sHQ32s", 0, b"minegate", 1, 2**40, b"huge")
    p.write_bytes(bytes(blob) + evlr)
    msg = _refusal(p)
    assert "claims 1,099,511,627,776 bytes" in msg


def test_vlr_count_beyond_the_file_is_refused(tmp_path: Path) -> None:
    msg = _refusal(_patched(tmp_path, "v.las", 100, "<I", 4_000_000_000))
    assert "VLRs" in msg


# ------------------------------------------------ item 4: refusals inside the read


def test_far_away_las_refusal_reaches_the_user_as_it_is(tmp_path: Path) -> None:
    far = _points() + np.array([0.0, 1_652_000.0, 0.0])
    p = write_las(tmp_path / "far.las", far)
    msg = _refusal(p)
    assert "from the licensed area" in msg
    assert "damaged" not in msg and "truncated" not in msg


def test_swapped_las_refusal_reaches_the_user_as_it_is(tmp_path: Path) -> None:
    p = write_las(tmp_path / "swapped.las", _points()[:, [1, 0, 2]])
    msg = _refusal(p)
    assert "X and Y look swapped" in msg
    assert "damaged" not in msg


# ------------------------------------------------ item 5: old pointwise LAZ


def test_pointwise_laz_is_named_with_what_to_do(tmp_path: Path) -> None:
    """The LASzip VLR's compressor field set to 1 (pointwise, LASzip 1.x)."""
    import laspy

    p = write_las(tmp_path / "old.laz", _points(), compress=True, version="1.2", point_format=1)
    with laspy.open(str(p)) as r:
        start = int(r.header.offset_to_point_data)
    blob = bytearray(p.read_bytes())
    at = blob.find(b"laszip encoded")  # the LASzip VLR's user id
    assert 0 < at < start
    data = at - 2 + 54  # VLR header: 2 reserved + 16 user id + ..., 54 bytes
    assert struct.unpack_from("<H", blob, data)[0] == 2  # pointwise chunked, as written
    struct.pack_into("<H", blob, data, 1)
    p.write_bytes(bytes(blob))
    msg = _refusal(p)
    assert "pointwise" in msg and "re-compress" in msg
    assert "chunk table" not in msg


# ------------------------------------------------ item 18: OBJ faces, a directory


@pytest.mark.parametrize("index", ["99", "-7", "2/1/x"])
def test_obj_face_index_out_of_range_names_the_line(tmp_path: Path, index: str) -> None:
    p = tmp_path / "bad.obj"
    p.write_text(
        "v 400100 2421100 -55\nv 400101 2421100 -55\nv 400101 2421101 -55\n"
        f"f 1 3 {index.replace('2/1/x', 'x/1/2')}\n",
        encoding="ascii",
    )
    with pytest.raises(SurveyInputError) as info:
        read_survey(p)
    msg = str(info.value)
    assert f"{p}, line 4: OBJ face" in msg
    assert "out of bounds" not in msg


def test_directory_as_scan_is_called_a_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "scans"
    folder.mkdir()
    with pytest.raises(SurveyInputError, match="is a directory"):
        read_survey(folder)
    lic = write_licence_toml(tmp_path / "licence.toml", _licence())
    out = tmp_path / "out"
    code = main(["survey", "check", "--licence", str(lic), "--scan", str(folder), "--out", str(out), "--quiet"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "scan is a directory" in err and "not found" not in err


# ------------------------------------------------ item 16: coordinates no place has


@pytest.mark.parametrize("value", ["1e308", "-1e308", "4e12"])
def test_xyz_coordinate_beyond_any_place_is_refused_by_line(tmp_path: Path, value: str) -> None:
    """Once a 300-digit easting 'carrying zone prefix -9223372036854775808'
    and a numpy overflow warning."""
    p = tmp_path / "big.xyz"
    p.write_text(f"400100 2421100 -55\n{value} 2421150 -55\n400200 2421200 -56\n")
    msg = _refusal(p)
    assert f"{p}, line 2:" in msg and "no place on Earth" in msg
    assert "zone prefix" not in msg


def test_ply_height_beyond_any_place_is_refused(tmp_path: Path) -> None:
    from survey.writers import write_ply

    pts = _points(10)
    pts[3, 2] = 1e300
    msg = _refusal(write_ply(tmp_path / "big.ply", pts))
    assert "point index 3" in msg and "no place on Earth" in msg


def test_las_with_coarse_scale_checks_the_coordinates_it_holds(tmp_path: Path) -> None:
    """A scale of 1000 m is accepted, but its int32 Z of 2e9 puts a point
    2e12 m high: refused, not an 'above the licence' finding."""
    p = write_las(tmp_path / "coarse.las", _points())
    blob = bytearray(p.read_bytes())
    struct.pack_into("<d", blob, 147, 1000.0)  # Z scale
    p.write_bytes(bytes(blob))
    import laspy

    las = laspy.read(str(p))
    las.points.array["Z"][5] = 2_000_000_000
    las.write(str(p))
    msg = _refusal(p)
    assert "point index 5" in msg and "no place on Earth" in msg


def test_ply_negative_vertex_count_is_named(tmp_path: Path) -> None:
    """Was 'declares no vertex x property'."""
    from survey.writers import write_ply

    p = write_ply(tmp_path / "neg.ply", _points(20))
    p.write_bytes(p.read_bytes().replace(b"element vertex 20", b"element vertex -5"))
    assert "bad vertex count in 'element vertex -5'" in _refusal(p)

"""Licence loading: TOML and GeoJSON, validation errors that name what to fix."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import MultiPoint

from survey.licence import (
    CRS_TABLE,
    gk_zone,
    licence_polygon,
    licence_valid_on,
    parse_elevation_range,
)
from survey.model import Block, Corner, Licence, SurveyInputError
from survey.readers.licence_files import load_licence
from survey.writers import write_licence_geojson, write_licence_toml

GUANGXI_TOML = """\
# 采矿许可证 (example)
mine_name = "钦州市示例铁矿"
licence_no = "C4507002010127130099999"
epsg = 4524            # CGCS2000 3-degree GK zone 36, Y carries the prefix
valid_from = 2021-03-01
valid_to = 2031-03-01

[tolerance]
plan_m = 2.0
height_m = 0.4

[[blocks]]
name = "一采区"
elevation = "from +120 m to -80 m"
corners = [
  { number = "1", x = 2421000.000, y = 36400000.000 },
  { number = "2", x = 2421000.000, y = 36401000.000 },
  { number = "3", x = 2422000.000, y = 36401000.000 },
  { number = "4", x = 2422000.000, y = 36400000.000 },
]

[[blocks]]
name = "二采区"
z_top = -80.0
z_bottom = -200.0
corners = [
  ["5", 2421000.000, 401000.000],
  ["6", 2421000.000, 401500.000],
  ["7", 2421800.000, 401500.000],
]
"""


def _write(tmp_path: Path, text: str, name: str = "licence.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _error(tmp_path: Path, text: str, name: str = "licence.toml") -> SurveyInputError:
    p = _write(tmp_path, text, name)
    with pytest.raises(SurveyInputError) as info:
        load_licence(p)
    assert str(p) in str(info.value)
    return info.value


def test_toml_guangxi_licence(tmp_path: Path) -> None:
    lic = load_licence(_write(tmp_path, GUANGXI_TOML))
    assert lic.epsg == 4524 and lic.zone_prefix == 36
    assert lic.valid_from == date(2021, 3, 1) and lic.valid_to == date(2031, 3, 1)
    assert (lic.tolerance_m, lic.tolerance_z_m) == (2.0, 0.4)
    b1, b2 = lic.blocks
    assert (b1.z_top, b1.z_bottom) == (120.0, -80.0)
    assert (b2.z_top, b2.z_bottom) == (-80.0, -200.0)
    # prefix stripped from Y; X stays the northing
    assert b1.corners[1] == Corner("2", 2421000.0, 401000.0)
    assert b2.corners[2] == Corner("7", 2421800.0, 401500.0)
    poly = licence_polygon(b1)
    assert poly.area == pytest.approx(1000.0 * 1000.0)
    assert poly.bounds == (400000.0, 2421000.0, 401000.0, 2422000.0)  # (E, N) order


def test_defaults_and_no_prefix_code(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace("epsg = 4524", "epsg = 4545").replace(
        "[tolerance]\nplan_m = 2.0\nheight_m = 0.4\n", ""
    )
    lic = load_licence(_write(tmp_path, text))
    assert lic.zone_prefix is None and gk_zone(lic.epsg) == 36
    assert (lic.tolerance_m, lic.tolerance_z_m) == (1.5, 0.5)
    assert lic.blocks[0].corners[0].y_east == 400000.0


def test_crs_table_guangxi_and_ranges() -> None:
    for code, zone, prefixed in [
        (4523, 35, True),
        (4524, 36, True),
        (4525, 37, True),
        (4544, 35, False),
        (4545, 36, False),
        (4546, 37, False),
    ]:
        info = CRS_TABLE[code]
        assert (info.zone, info.prefixed, info.central_meridian) == (zone, prefixed, 3 * zone)
    assert {c for c in CRS_TABLE if CRS_TABLE[c].prefixed and 4513 <= c <= 4533} == set(
        range(4513, 4534)
    )
    assert CRS_TABLE[4534].central_meridian == 75 and CRS_TABLE[4554].central_meridian == 135


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from +120 m to -80 m", (120.0, -80.0)),
        ("+120m～-80m", (120.0, -80.0)),
        ("由 +350 米至 +180 米标高", (350.0, 180.0)),
        ("-20 m to -150.5 m", (-20.0, -150.5)),
    ],
)
def test_parse_elevation_range(text: str, expected: tuple[float, float]) -> None:
    assert parse_elevation_range(text) == expected


def test_roundtrip_toml_and_geojson_equivalent(tmp_path: Path) -> None:
    lic = load_licence(_write(tmp_path, GUANGXI_TOML))
    t = load_licence(write_licence_toml(tmp_path / "rt.toml", lic))
    g = load_licence(write_licence_geojson(tmp_path / "rt.geojson", lic))
    for other in (t, g):
        assert other.blocks == lic.blocks
        assert (other.epsg, other.zone_prefix, other.valid_from, other.valid_to) == (
            lic.epsg,
            lic.zone_prefix,
            lic.valid_from,
            lic.valid_to,
        )
        assert (other.tolerance_m, other.tolerance_z_m) == (lic.tolerance_m, lic.tolerance_z_m)


def test_self_crossing_names_edges_and_line(tmp_path: Path) -> None:
    # corners 2 and 3 swapped: a bow tie
    text = GUANGXI_TOML.replace(
        '{ number = "2", x = 2421000.000, y = 36401000.000 }',
        '{ number = "2", x = 2422000.000, y = 36401000.000 }',
    ).replace(
        '{ number = "3", x = 2422000.000, y = 36401000.000 }',
        '{ number = "3", x = 2421000.000, y = 36401000.000 }',
    )
    err = _error(tmp_path, text)
    assert "edge 1-2 crosses edge 3-4" in str(err)
    assert "一采区" in str(err)


def test_swapped_xy_points_at_corner_line(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace(
        '{ number = "3", x = 2422000.000, y = 36401000.000 }',
        '{ number = "3", x = 401000.000, y = 2422000.000 }',
    )
    err = _error(tmp_path, text)
    assert "X and Y look swapped" in str(err)
    lines = text.splitlines()
    assert err.line is not None and 'number = "3"' in lines[err.line - 1]


def test_wrong_zone_prefix(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace("y = 36401000.000 }", "y = 37401000.000 }", 1)
    err = _error(tmp_path, text)
    assert "zone prefix 37" in str(err) and "4524" in str(err)
    assert err.line is not None


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('elevation = "from +120 m to -80 m"', 'elevation = "from +50 m to +50 m"', "empty"),
        ('elevation = "from +120 m to -80 m"', 'elevation = "from -80 m to +120 m"', "inverted"),
        ("epsg = 4524", "epsg = 4326", "unknown or unsupported EPSG"),
        ('elevation = "from +120 m to -80 m"', 'elevation = "+120000 to -80000"', "millimetres"),
        ("valid_to = 2031-03-01", "valid_to = 2011-03-01", "validity is inverted"),
        ('  ["7", 2421800.000, 401500.000],\n', "", "at least 3"),
        ("epsg = 4524 ", "epsg = 4524\ncolour = 1 ", "unknown key"),
        (
            "x = 2421000.000, y = 36400000.000 }",
            "x = 21.87, y = 108.62 }",
            "latitude and longitude",
        ),
    ],
)
def test_licence_errors(tmp_path: Path, old: str, new: str, needle: str) -> None:
    assert old in GUANGXI_TOML
    err = _error(tmp_path, GUANGXI_TOML.replace(old, new))
    assert needle in str(err)


def test_closing_corner_repeated_is_accepted(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace(
        '  { number = "4", x = 2422000.000, y = 36400000.000 },\n',
        '  { number = "4", x = 2422000.000, y = 36400000.000 },\n'
        '  { number = "1", x = 2421000.000, y = 36400000.000 },\n',
    )
    lic = load_licence(_write(tmp_path, text))
    assert [c.number for c in lic.blocks[0].corners] == ["1", "2", "3", "4"]


def test_geojson_swapped_positions(tmp_path: Path) -> None:
    lic = Licence(
        "m",
        "n",
        4545,
        None,
        (
            Block(
                "b",
                (
                    Corner("1", 2421000.0, 400000.0),
                    Corner("2", 2421000.0, 401000.0),
                    Corner("3", 2422000.0, 401000.0),
                ),
                10.0,
                -10.0,
            ),
        ),
    )
    p = write_licence_geojson(tmp_path / "l.geojson", lic)
    text = p.read_text(encoding="utf-8")
    # turn [E, N] into [N, E]
    for c in lic.blocks[0].corners:
        text = text.replace(f"{c.y_east}", "TMP").replace(f"{c.x_north}", f"{c.y_east}")
        text = text.replace("TMP", f"{c.x_north}")
    err = _error(tmp_path, text, "l.geojson")
    assert "X and Y look swapped" in str(err)


def test_polygon_vertices_are_east_north(tmp_path: Path) -> None:
    lic = load_licence(_write(tmp_path, GUANGXI_TOML))
    en = lic.blocks[0].polygon_en()
    assert en.dtype == np.float64 and en.shape == (4, 2)
    assert (en[:, 0] < 1e6).all() and (en[:, 1] > 2e6).all()


def test_duplicate_corner_number(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace('["7", 2421800.000', '["6", 2421800.000')
    err = _error(tmp_path, text)
    assert "corner number 6 is used twice" in str(err) and err.line is not None


def test_licence_valid_on(tmp_path: Path) -> None:
    lic = load_licence(_write(tmp_path, GUANGXI_TOML))
    assert licence_valid_on(lic, date(2025, 1, 1))
    assert not licence_valid_on(lic, date(2020, 12, 31))
    assert not licence_valid_on(lic, date(2031, 3, 2))


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('"西安80坐标系"', "older datum"),
        ('"CGCS2000 3-degree zone 35"', "zone 35"),
        ('"CGCS2000 3度带 37带"', "zone 37"),
    ],
)
def test_coordinate_system_text_contradicts_epsg(tmp_path: Path, text: str, needle: str) -> None:
    err = _error(
        tmp_path, GUANGXI_TOML.replace("epsg = 4524 ", f"coordinate_system = {text}\nepsg = 4524 ")
    )
    assert needle in str(err)


def test_coordinate_system_text_agreeing(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace(
        "epsg = 4524 ", 'coordinate_system = "2000国家大地坐标系 3度带 36带"\nepsg = 4524 '
    )
    assert load_licence(_write(tmp_path, text)).epsg == 4524


def test_tolerance_overrides(tmp_path: Path) -> None:
    p = _write(tmp_path, GUANGXI_TOML)
    lic = load_licence(p, tolerance_m=3.0)
    assert (lic.tolerance_m, lic.tolerance_z_m) == (3.0, 0.4)
    assert load_licence(p, tolerance_z_m=0.0).tolerance_z_m == 0.0
    with pytest.raises(SurveyInputError, match="tolerance_m"):
        load_licence(p, tolerance_m=-1.0)


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 12),
    epsg=st.sampled_from([4523, 4524, 4525, 4544, 4545, 4546]),
    z=st.tuples(st.integers(-500_000, 500_000), st.integers(1, 400_000)),
)
def test_any_convex_licence_roundtrips(seed: int, n: int, epsg: int, z: tuple[int, int]) -> None:
    rng = np.random.default_rng(seed)
    pts = np.round(
        np.column_stack([rng.uniform(350000, 650000, n), rng.uniform(2.3e6, 2.9e6, n)]), 3
    )
    hull = MultiPoint([tuple(p) for p in pts]).convex_hull
    if hull.geom_type != "Polygon":
        return  # collinear draw: not a licence
    ring = list(hull.exterior.coords)[:-1]
    corners = tuple(Corner(str(i + 1), y, x) for i, (x, y) in enumerate(ring))
    z_top = z[0] / 1000
    lic = Licence("m", "n", epsg, None, (Block("b", corners, z_top, z_top - z[1] / 1000),))
    with tempfile.TemporaryDirectory() as tmp:
        t = load_licence(write_licence_toml(Path(tmp) / "l.toml", lic, y_with_prefix=epsg < 4534))
        g = load_licence(write_licence_geojson(Path(tmp) / "l.geojson", lic))
    assert t.blocks == lic.blocks == g.blocks


def test_writer_accepts_numpy_scalars(tmp_path: Path) -> None:
    f = np.float64
    corners = (
        Corner("1", f(2421000.25), f(400000.5)),
        Corner("2", f(2421000.25), f(401000.125)),
        Corner("3", f(2422000.0), f(401000.125)),
    )
    lic = Licence("m", "n", 4524, 36, (Block("b", corners, f(12.5), f(-80.0)),), tolerance_m=f(2.0))
    for writer, name in ((write_licence_toml, "l.toml"), (write_licence_geojson, "l.geojson")):
        back = load_licence(writer(tmp_path / name, lic))
        assert back.blocks == lic.blocks and back.tolerance_m == 2.0


@pytest.mark.parametrize("suffix", [".toml", ".geojson"])
def test_damaged_licence_files_give_survey_input_errors(tmp_path: Path, suffix: str) -> None:
    """Typing slips and cut or mis-encoded files: load_licence either loads
    or raises SurveyInputError naming the file (never a decoder's error)."""
    base = _write(tmp_path, GUANGXI_TOML)
    if suffix == ".geojson":
        base = write_licence_geojson(tmp_path / "l.geojson", load_licence(base))
    blob = base.read_bytes()
    alphabet = list(b'0123456789-+.,"[]{}=\n xyz')
    rng = np.random.default_rng(7)
    for trial in range(90):
        b = bytearray(blob)
        if trial % 3 == 0:
            for _ in range(int(rng.integers(1, 4))):
                b[int(rng.integers(0, len(b)))] = int(rng.choice(alphabet))
        elif trial % 3 == 1:
            b = b[: int(rng.integers(0, len(b)))]
        else:
            i = int(rng.integers(0, len(b)))
            b = (
                b[:i]
                + bytes(rng.choice(alphabet, int(rng.integers(1, 6))).astype(np.uint8))
                + b[i:]
            )
        p = tmp_path / f"damaged{suffix}"
        p.write_bytes(bytes(b))
        try:
            load_licence(p)
        except SurveyInputError as exc:
            assert str(p) in str(exc)


def test_elevation_and_syntax_errors_point_at_their_lines(tmp_path: Path) -> None:
    text = GUANGXI_TOML.replace("z_top = -80.0", "z_top = -280.0")  # block 2 inverted
    err = _error(tmp_path, text)
    assert err.line is not None and "z_top" in text.splitlines()[err.line - 1]
    text = GUANGXI_TOML.replace('elevation = "from +120 m to -80 m"', 'elevation = "deep"')
    err = _error(tmp_path, text)
    assert err.line is not None and "elevation" in text.splitlines()[err.line - 1]
    text = GUANGXI_TOML.replace("valid_to = 2031-03-01", "valid_to = 2031-03-01 x")
    err = _error(tmp_path, text)
    assert err.line is not None and "valid_to" in text.splitlines()[err.line - 1]


def test_corners_from_a_table_file(tmp_path: Path) -> None:
    (tmp_path / "corners").mkdir()
    table = tmp_path / "corners" / "block1.csv"
    table.write_text(
        "拐点号,X,Y\n1,2421000.000,36400000.000\n2,2421000.000,36401000.000\n"
        "3,2422000.000,36401000.000\n4,2422000.000,36400000.000\n",
        encoding="gb18030",
    )
    start = GUANGXI_TOML.index("corners = [\n  { number")
    end = GUANGXI_TOML.index("]\n", start) + 2
    text = GUANGXI_TOML[:start] + 'corners_file = "corners/block1.csv"\n' + GUANGXI_TOML[end:]
    lic = load_licence(_write(tmp_path, text))
    assert lic.blocks == load_licence(_write(tmp_path, GUANGXI_TOML, "inline.toml")).blocks
    # an error in the table names the table and its line
    table.write_text(
        "1,2421000.000,36400000.000\n2,401000.000,2421000.000\n3,2422000.000,36401000.000\n",
        encoding="utf-8",
    )
    with pytest.raises(SurveyInputError) as info:
        load_licence(tmp_path / "licence.toml")
    assert str(table) in str(info.value) and info.value.line == 2
    assert "look swapped" in str(info.value)

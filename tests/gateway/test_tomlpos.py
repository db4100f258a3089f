"""The TOML key -> line locator."""

from __future__ import annotations

from gateway.config.tomlpos import TomlPositions, format_loc

TEXT = '''# comment
[site]
name = "x"   # trailing comment
profile_dirs = [
  "a",
  "b = 3",
]
notes = """
[[devices]]
fake = 1
"""

[[devices]]
name = "d0"

[[devices]]
name = "d1"
"quoted key" = 2
inline = { a = 1, b = [1, 2] }

[devices.points.ch4]
deadband = 0.1

[[devices]]
name = "d2"
[devices.points."co"]
max_interval_s = 5

[[buses]]
name = "b0"
sub.dotted = true
'''


def test_lines_of_keys_tables_and_array_elements() -> None:
    pos = TomlPositions(TEXT)
    assert pos.line_of(("site", "name")) == 3
    assert pos.line_of(("site", "profile_dirs")) == 4
    assert pos.line_of(("site", "profile_dirs", 1)) == 4  # element of a multi-line array
    assert pos.line_of(("site", "notes")) == 8
    # Headers inside a multi-line string do not count.
    assert pos.line_of(("devices", 0)) == 13
    assert pos.line_of(("devices", 0, "name")) == 14
    assert pos.line_of(("devices", 1, "quoted key")) == 18
    assert pos.line_of(("devices", 1, "inline", "b")) == 19
    assert pos.line_of(("devices", 1, "points", "ch4", "deadband")) == 22
    assert pos.line_of(("devices", 2, "points", "co", "max_interval_s")) == 27
    assert pos.line_of(("buses", 0, "sub", "dotted")) == 31


def test_missing_keys_fall_back_to_their_table() -> None:
    pos = TomlPositions(TEXT)
    assert pos.line_of(("devices", 2, "unit")) == 24
    assert pos.line_of(("buses", 0, "host")) == 29
    assert pos.line_of(("store", "max_mb")) is None


def test_format_loc() -> None:
    assert format_loc(("devices", 3, "unit")) == "devices[3].unit"
    assert (
        format_loc(("devices", 0, "points", "ch4", "deadband")) == "devices[0].points.ch4.deadband"
    )
    assert format_loc(()) == ""

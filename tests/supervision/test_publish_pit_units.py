"""Small pieces of the upload findings' publishing and of open-pit
surveys: ``[publish]`` in platform.toml, the outbox's record encoding, what
each raster of a pit survey is, and the sniffing of GeoTIFF / ASCII grids."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.model import Quality, Record, RecordKind
from supervision.config import PlatformConfigError, parse_config
from supervision.jobs.pit import roles
from supervision.jobs.publish import dump_records, load_records, tagged
from supervision.uploads.files import UploadRefused, sniff

SINKS = """[server]
port = 8080
[[publish.sinks]]
name = "influx"
type = "influxdb_v1"
url = "http://127.0.0.1:8086"
database = "mines"
[[publish.sinks]]
name = "broker"
type = "mqtt"
host = "127.0.0.1"
"""


def test_publish_sinks_are_the_gateways_sink_tables() -> None:
    cfg = parse_config(SINKS)
    assert [(s.name, s.type) for s in cfg.publish.sinks] == [
        ("influx", "influxdb_v1"), ("broker", "mqtt")]  # fmt: skip
    assert cfg.publish.site == "platform" and cfg.publish.retry_initial_s > 0
    assert parse_config("").publish.sinks == ()
    with pytest.raises(PlatformConfigError) as bad:
        parse_config(SINKS.replace('database = "mines"', 'database = "mines"\ncolour = 1')
                     .replace("http://127.0.0.1:8086", "ftp://x"))  # fmt: skip
    assert bad.value.errors == [
        "platform.toml:6: publish.sinks[0].url: String should match pattern '^https?://' "
        "(got 'ftp://x')",
        "platform.toml:8: publish.sinks[0].colour: unknown key: remove it or fix the spelling "
        "(see docs/platform.md)",
    ]
    with pytest.raises(PlatformConfigError) as dup:
        parse_config(SINKS.replace('name = "broker"', 'name = "influx"'))
    assert "sink name(s) used twice: influx" in dup.value.errors[0]


def test_records_survive_the_outbox() -> None:
    rec = Record(
        RecordKind.FINDING, "chk-1", 1_700_000_000_123_456_789, ["verdict", "incidents", "v"],
        ["violations found", 3, 1.25], ["", "", "m3"], [Quality.GOOD] * 3,
        {"measurement": "survey_check", "tags": {"site": "platform"}, "alert": True},
    )  # fmt: skip
    [back] = load_records(dump_records(tagged([rec], "M-QN-1", 7)))
    assert back == rec
    assert back.fields["tags"] == {"site": "platform", "mine_code": "M-QN-1", "survey": "7"}
    assert isinstance(back.values[1], int) and back.kind is RecordKind.FINDING


def test_what_each_raster_of_a_pit_survey_is(pit_sample: Path) -> None:
    def files(*names: str) -> list[tuple[str, str, str]]:
        kinds = {".tif": "raster", ".toml": "design", ".las": "scan"}
        return [(n, n, kinds[Path(n).suffix]) for n in names]

    got = roles(pit_sample, files(
        "dsm_2026-09-01.tif", "ortho_2026-09-01.tif", "pre_mining.tif", "dsm_2026-03-01.tif",
        "design.toml", "cloud_2026-03-01.las"))  # fmt: skip
    assert not isinstance(got, str)
    assert got["dsm"] == "dsm_2026-09-01.tif" and got["earlier"] == "dsm_2026-03-01.tif"
    assert got["pre"] == "pre_mining.tif" and got["ortho"] == "ortho_2026-09-01.tif"
    assert got["design"] == "design.toml"
    assert got["notes"] == [
        "cloud_2026-03-01.las: kept, not checked (the pit is checked on its DSM)"
    ]
    one = roles(pit_sample, files("dsm_2026-03-01.tif"))
    assert not isinstance(one, str) and one["earlier"] is None
    assert "no DSM" in str(roles(pit_sample, files("ortho_2026-09-01.tif")))
    assert "second slope design" in str(roles(pit_sample, files("design.toml", "design.toml")))


def test_rasters_are_sniffed_by_their_bytes(pit_sample: Path) -> None:
    head = (pit_sample / "dsm_2026-03-01.tif").read_bytes()[:4096]
    assert sniff(head, "flight.tif", 10_000) == ("tif", "raster")
    assert sniff(head, "flight.TIFF", 10_000) == ("tif", "raster")
    assert sniff(b"MM\x00*\x00\x00\x00\x08", "big-endian.tif", 100) == ("tif", "raster")
    assert sniff(b"NCOLS 3\nNROWS 2\nxllcenter 0\n", "grid.asc", 40) == ("asc", "raster")
    assert sniff(b"[design]\nbench_height_m = 12\n", "design.toml", 30) == ("toml", "design")
    for data, name, words in (
        (b"LASF" + b"\0" * 100, "dsm.tif", "bytes are a LAS/LAZ"),
        (b"ncols 3\nnrows 3\n", "dsm.tif", "do not start like one"),
        (head, "dsm.asc", "bytes are a TIFF"),
        (b"x y z\n1 2 3\n", "dsm.asc", "ESRI ASCII grid"),
        (head, "scan.las", "bytes are a TIFF"),
    ):
        with pytest.raises(UploadRefused) as refused:
            sniff(data, name, len(data))
        assert words in str(refused.value), (name, str(refused.value))

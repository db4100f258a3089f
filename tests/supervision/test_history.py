"""The chart history layer against a real influxd (InfluxQL) and a real
VictoriaMetrics (PromQL): snapshots written in the gateway's own line
protocol, the mean per bucket read back, a comm_loss stretch left as a gap,
another gateway's series never mixed in, names with quotes safe; an
unreachable server is a HistoryError naming it; the mine page draws the
charts as inline SVG."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from gateway.model import Quality, Record, RecordKind
from gateway.sinks.lineproto import encode_records
from supervision.app import create_app
from supervision.config import HistorySection, PlatformConfig
from supervision.history import NS, HistoryError, PointRef, make_backend
from supervision.web.chart_svg import chart_svg

from .conftest import helpers, servers

STEP = 60
START = 1_700_000_000 // STEP * STEP * NS + 3600 * NS  # a whole minute
SITE, GW, DEVICE = 'qin\'nan "1"', "gw01", 'gas mon"1'


def snapshots(gateway: str, offset: float) -> list[Record]:
    """Every 20 s for 10 minutes, on the boundaries as the gateway stamps
    them; minute i reads i, i+0.1, i+0.2 (+ offset); minutes 4 and 5 the
    device is silent (comm_loss, no value)."""
    out = []
    for k in range(30):
        minute, third = divmod(k, 3)
        lost = minute in (4, 5)
        out.append(Record(
            RecordKind.SNAPSHOT, DEVICE, START + k * 20 * NS, ["ch4"],
            [None if lost else minute + 0.1 * third + offset], ["%"],
            [Quality.COMM_LOSS if lost else Quality.GOOD],
        ))  # fmt: skip
    return out


def write(url: str, path: str, records: list[Record], gateway: str) -> None:
    body = encode_records(records, SITE, gateway).encode()
    urllib.request.urlopen(urllib.request.Request(url + path, data=body), timeout=10).read()


@pytest.fixture(scope="module")
def influx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = servers.influxd(tmp_path_factory.mktemp("influxd")).start()
    servers.influx_query(srv.url, "CREATE DATABASE minegate", post=True)
    for gw, offset in ((GW, 0.0), ("gw02", 100.0)):
        write(srv.url, "/write?db=minegate&precision=ns", snapshots(gw, offset), gw)
    yield srv.url
    srv.stop()


@pytest.fixture(scope="module")
def victoria(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    srv = servers.victoria(tmp_path_factory.mktemp("vm")).start()
    for gw, offset in ((GW, 0.0), ("gw02", 100.0)):
        write(srv.url, "/write", snapshots(gw, offset), gw)
    servers.vm_export(srv.url, '{__name__="snapshot_ch4"}')  # forces a flush
    yield srv.url
    srv.stop()


EXPECTED = [(START + (m * STEP + STEP // 2) * NS, m + 0.1) for m in (0, 1, 2, 3, 6, 7, 8, 9)]


@pytest.mark.parametrize("backend", ["influxdb_v1", "victoriametrics"])
def test_mean_per_bucket_with_the_gap_left_out(
    backend: str, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("influx" if backend == "influxdb_v1" else "victoria")
    history = make_backend(HistorySection(backend=backend, url=url))
    ref = PointRef(SITE, GW, DEVICE, "ch4")
    series = history.series(ref, START, START + 10 * STEP * NS, STEP)
    assert [t for t, _ in series.points] == [t for t, _ in EXPECTED]
    assert [v for _, v in series.points] == pytest.approx([v for _, v in EXPECTED])
    svg = chart_svg(series, "gas ch4", "%")
    assert svg.count("<polyline") == 2  # broken at the silent minutes
    none = history.series(PointRef(SITE, GW, DEVICE, "co"), START, START + 600 * NS, STEP)
    assert none.points == ()
    assert "no history in this window" in chart_svg(none, "co", "ppm")


@pytest.mark.parametrize("backend", ["influxdb_v1", "victoriametrics"])
def test_unreachable_server_is_named(backend: str) -> None:
    url = f"http://127.0.0.1:{servers.free_port()}"
    history = make_backend(HistorySection(backend=backend, url=url, timeout_s=2))
    with pytest.raises(HistoryError, match=f"{backend} at {url}"):
        history.series(PointRef(SITE, GW, DEVICE, "ch4"), START, START + 600 * NS, STEP)


def test_influx_error_is_reported(influx: str) -> None:
    history = make_backend(HistorySection(backend="influxdb_v1", url=influx, database="nope"))
    with pytest.raises(HistoryError, match="database not found"):
        history.series(PointRef(SITE, GW, DEVICE, "ch4"), START, START + 600 * NS, STEP)


def test_mine_page_draws_charts(engine: Engine, world: Any, influx: str) -> None:
    from supervision.db import make_sessionmaker
    from supervision.ingest.models import LatestValue
    from supervision.registry.models import Gateway

    sessions = make_sessionmaker(engine)
    with sessions() as db, db.begin():
        gw = db.get_one(Gateway, world.gateways["qn1/gw01"])
        gw.site = SITE  # the written history's site
        db.add(LatestValue(gateway_id=gw.id, device=DEVICE, point="ch4", value=9.2, number=9.2,
                           unit="%", quality="good", ts_ns=START))  # fmt: skip
        db.add(LatestValue(gateway_id=gw.id, device=DEVICE, point="ch4_alarm", value=True,
                           number=1.0, unit="", quality="good", ts_ns=START))  # fmt: skip
    config = PlatformConfig.model_validate({
        "mqtt": {"enabled": False},
        "history": {"backend": "influxdb_v1", "url": influx, "window_h": 10 / 60,
                    "buckets": 10, "charts": ["ch4*"]},
    })  # fmt: skip
    clock = helpers.FakeClock(START + 10 * STEP * NS - 1)
    client = TestClient(create_app(config, engine=engine, clock=clock, background=False))
    auth = {"Authorization": f"Bearer {world.tokens['reg-qn']}"}
    page = client.get(f"/mines/{world.mines['M-QN-1']}", headers=auth).text
    assert page.count('<figure class="chart"') == 1  # the boolean alarm point is not charted
    assert "<polyline" in page and "History unavailable" not in page

    down = config.model_copy(update={"history": HistorySection(
        backend="influxdb_v1", url=f"http://127.0.0.1:{servers.free_port()}", timeout_s=2)})  # fmt: skip
    client = TestClient(create_app(down, engine=engine, clock=clock, background=False))
    page = client.get(f"/mines/{world.mines['M-QN-1']}", headers=auth).text
    assert "History unavailable: influxdb_v1 at http://127.0.0.1:" in page
    assert "Latest values" in page  # the rest of the page is still there


def test_history_config_errors_are_located() -> None:
    from supervision.config import PlatformConfigError, parse_config

    text = '[history]\nbackend = "prometheus"\nurl = "influx:8086"\nwindow_h = 0\n'
    with pytest.raises(PlatformConfigError) as err:
        parse_config(text, "platform.toml")
    joined = "\n".join(err.value.errors)
    assert "platform.toml:2: history.backend" in joined
    assert "platform.toml:3: history.url" in joined
    assert "platform.toml:4: history.window_h" in joined
    secret = parse_config('[history]\nbackend = "influxdb_v1"\nurl = "http://h:8086"\n'
                          'username = "u"\npassword = "hunter2-secret"\n')  # fmt: skip
    assert "hunter2-secret" not in repr(secret)

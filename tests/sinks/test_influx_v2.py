"""InfluxDB v2 sink: delivery to a real VictoriaMetrics through /api/v2/write
(read back with /api/v1/export), wrong credentials, outage; and the InfluxDB 2
error answers (404 unknown bucket, 400 partial write) from a stub server,
because no InfluxDB 2 server is installed here."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from gateway.model import Quality
from gateway.sinks import AuthError, NotFound, SinkError, SinkRunner
from gateway.sinks.config import InfluxV2Config
from gateway.sinks.influx_v2 import InfluxV2Sink

pytestmark = pytest.mark.servers


def v2(url: str, **kw: Any) -> InfluxV2Config:
    kw.setdefault("bucket", "mine")
    return InfluxV2Config(name="vm", url=url, org="regulator", token="tok", **kw)


async def until(cond: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(cond):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


def series(h: Any, url: str, device: str) -> dict[str, dict[int, float]]:
    """metric name -> {timestamp ms: value} for one device."""
    out: dict[str, dict[int, float]] = {}
    for s in h.servers.vm_export(url, f'{{device="{device}"}}'):
        m = s["metric"]
        out[m["__name__"]] = dict(zip(s["timestamps"], s["values"], strict=True))
    return out


@pytest.mark.parametrize("gzip", [False, True])
async def test_records_arrive_in_victoriametrics(vm_server: Any, h: Any, gzip: bool) -> None:
    device = h.unique("fan ")
    sink = InfluxV2Sink(v2(vm_server.url, gzip=gzip), h.SITE, h.GATEWAY)
    await sink.connect()
    recs = [h.sample(device, i) for i in range(100)]
    for i, r in enumerate(recs, 1):
        r.seq = i
    recs[5].values[0] = None
    recs[5].qualities[0] = Quality.COMM_LOSS
    res = await sink.write(recs)
    await sink.close()
    assert res.accepted_upto == 100 and not res.rejected
    got = series(h, vm_server.url, device)
    ms = [r.ts_ns // 1_000_000 for r in recs]
    assert got["telemetry_co"] == {t: float(r.values[1]) for t, r in zip(ms, recs, strict=True)}
    assert got["telemetry_fan_on"] == {
        t: 1.0 if r.values[2] else 0.0 for t, r in zip(ms, recs, strict=True)
    }
    # comm loss: no fake ch4 value at that instant
    assert ms[5] not in got["telemetry_ch4"] and len(got["telemetry_ch4"]) == 99
    labels = h.servers.vm_export(vm_server.url, f'telemetry_co{{device="{device}"}}')[0]["metric"]
    assert labels == {
        "__name__": "telemetry_co",
        "device": device,
        "site": h.SITE,
        "gateway": h.GATEWAY,
    }


async def test_outage_and_wrong_credentials_then_recovery(
    tmp_path: Path, h: Any, store: Any
) -> None:
    """VictoriaMetrics with basic auth refuses our token (AuthError shown in
    status, nothing lost); restarted without auth it takes everything,
    including what was appended while it was down."""
    srv = h.servers.victoria(tmp_path / "vm", auth=("admin", "secret")).start()
    try:
        store.register_sink("vm")
        sink = InfluxV2Sink(v2(srv.url, timeout_s=2), h.SITE, h.GATEWAY)
        runner = SinkRunner(
            sink, store, "vm", batch_size=50, flush_ms=20, retry_initial_s=0.05, retry_max_s=0.3,
            retry_slow_s=0.2, idle_poll_s=0.05,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        store.append([h.sample("pump2", i) for i in range(100)])
        await until(lambda: runner.status()["state"] == "auth_error")
        assert "401" in runner.status()["last_error"]
        assert store.backlog("vm") == (100, 300)
        await asyncio.to_thread(srv.stop)
        store.append([h.sample("pump2", i) for i in range(100, 200)])
        await asyncio.sleep(0.5)
        srv.argv = [a for a in srv.argv if not a.startswith("-httpAuth")]
        await asyncio.to_thread(srv.start)
        store.append([h.sample("pump2", i) for i in range(200, 250)])
        runner.notify()
        await until(lambda: store.backlog("vm") == (0, 0))
        stop.set()
        await task
        got = series(h, srv.url, "pump2")
        assert sorted(got["telemetry_co"]) == [
            h.sample("pump2", i).ts_ns // 1_000_000 for i in range(250)
        ]
        assert runner.status()["sent_records"] == 250
    finally:
        srv.stop()


# ------------------------------------------------ InfluxDB 2 error answers


@pytest.fixture
async def influx2_stub(unused_tcp_port: int) -> AsyncIterator[tuple[str, list[bytes]]]:
    """Answers like InfluxDB 2.x: 404 for an unknown bucket, 401 for a bad
    token, 400 partial write when a line holds ``bad``."""
    stored: list[bytes] = []

    async def ping(request: web.Request) -> web.Response:
        return web.Response(status=204)

    async def write(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Token tok":
            return web.json_response(
                {"code": "unauthorized", "message": "unauthorized access"}, status=401
            )
        if request.query.get("bucket") != "mine":
            msg = f'bucket "{request.query.get("bucket")}" not found'
            return web.json_response({"code": "not found", "message": msg}, status=404)
        body = await request.read()
        lines = body.split(b"\n")
        good = [ln for ln in lines if b"bad" not in ln]
        stored.extend(good)
        if len(good) != len(lines):
            msg = f"partial write error ({len(good)} written): unable to parse 'bad': invalid field format"
            return web.Response(
                status=400, text=json.dumps({"code": "invalid", "message": msg}),
                content_type="application/json",
            )  # fmt: skip
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/ping", ping)
    app.router.add_post("/api/v2/write", write)
    app_runner = web.AppRunner(app)
    await app_runner.setup()
    site = web.TCPSite(app_runner, "127.0.0.1", unused_tcp_port)
    await site.start()
    yield f"http://127.0.0.1:{unused_tcp_port}", stored
    await app_runner.cleanup()


async def test_unknown_bucket_and_bad_token(influx2_stub: Any, h: Any) -> None:
    url, _ = influx2_stub
    rec = h.sample("d", 1)
    rec.seq = 1
    sink = InfluxV2Sink(v2(url, bucket="nope"), h.SITE, h.GATEWAY)
    await sink.connect()
    with pytest.raises(NotFound, match='bucket "nope" not found'):
        await sink.write([rec])
    await sink.close()
    sink = InfluxV2Sink(InfluxV2Config(name="x", url=url, bucket="mine", token="bad"), "s", "g")
    await sink.connect()
    with pytest.raises(AuthError, match="unauthorized access"):
        await sink.write([rec])
    await sink.close()


async def test_partial_write_isolates_the_bad_records(influx2_stub: Any, h: Any) -> None:
    url, stored = influx2_stub
    sink = InfluxV2Sink(v2(url), h.SITE, h.GATEWAY)
    await sink.connect()
    recs = [h.sample("bad" if i in (3, 17) else "good", i) for i in range(40)]
    for i, r in enumerate(recs, 1):
        r.seq = i
    res = await sink.write(recs)
    await sink.close()
    assert res.accepted_upto == 40
    assert sorted(r.record.seq for r in res.rejected) == [4, 18]
    assert all("partial write" in r.reason for r in res.rejected)
    # every good record reached the server (some twice: re-writes are idempotent)
    assert {ln.split(b" ")[-1] for ln in stored} == {
        str(r.ts_ns).encode() for r in recs if r.device == "good"
    }


async def test_connection_refused_is_retryable(h: Any) -> None:
    port = h.servers.free_port()
    sink = InfluxV2Sink(v2(f"http://127.0.0.1:{port}", timeout_s=1), h.SITE, h.GATEWAY)
    with pytest.raises(SinkError) as info:
        await sink.connect()
    assert info.value.retryable and not sink.connected
    await sink.close()


async def test_metrics_of_a_big_site_arrive_whole(vm_server: Any, h: Any) -> None:
    """A METRIC record of 2,000 devices (16,000 fields, ~400 KB as one line)
    is over VictoriaMetrics' 256 KiB line limit: it is cut into lines of the
    same series and timestamp, and every field arrives."""
    from gateway.model import Record, RecordKind

    device = h.unique("gw ")
    names = [f"dev{d:04d}.{m}" for d in range(2000) for m in ("polls", "readings", "errors",
             "latency_mean_ms", "latency_p99_ms", "overruns", "comm_losses", "requests")]  # fmt: skip
    rec = Record(RecordKind.METRIC, device, time.time_ns(), names, list(range(len(names))),
                 [""] * len(names), [Quality.GOOD] * len(names))  # fmt: skip
    rec.seq = 1
    sink = InfluxV2Sink(v2(vm_server.url), h.SITE, h.GATEWAY)
    await sink.connect()
    res = await sink.write([rec])
    await sink.close()
    assert res.accepted_upto == 1 and not res.rejected
    # 16,000 new series: VictoriaMetrics makes them searchable a moment after
    # the write is acknowledged when its shared server is busy
    deadline = time.monotonic() + 15
    got = series(h, vm_server.url, device)
    while len(got) < len(names) and time.monotonic() < deadline:
        await asyncio.sleep(0.5)
        got = series(h, vm_server.url, device)
    assert len(got) == len(names)
    assert got["gateway_metrics_dev1999.requests"] == {
        rec.ts_ns // 1_000_000: float(len(names) - 1)
    }

"""InfluxDB 1.x sink against a real influxd: read-back with InfluxQL, rejects,
unknown database, outage with every record counted, wrong credentials."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.model import Quality, Record, RecordKind
from gateway.sinks import NotFound, SinkRunner, build_runners
from gateway.sinks.config import InfluxV1Config
from gateway.sinks.influx_v1 import InfluxV1Sink

pytestmark = pytest.mark.servers


def create_db(h: Any, url: str, name: str, auth: tuple[str, str] | None = None) -> str:
    h.servers.influx_query(url, f'CREATE DATABASE "{name}"', auth=auth, post=True)
    return name


def v1(url: str, db: str, **kw: Any) -> InfluxV1Config:
    return InfluxV1Config(name="influx", url=url, database=db, **kw)


async def until(cond: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await asyncio.to_thread(cond):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.1)


async def test_records_arrive_with_values_tags_and_timestamps(influxd_server: Any, h: Any) -> None:
    url = influxd_server.url
    db = create_db(h, url, h.unique("plain"))
    sink = InfluxV1Sink(v1(url, db, gzip=True), h.SITE, h.GATEWAY)
    await sink.connect()
    recs = [h.sample("fan 1", i) for i in range(50)]
    for i, r in enumerate(recs, 1):
        r.seq = i
    recs[10].values[0] = None
    recs[10].qualities[0] = Quality.COMM_LOSS
    recs[20].fields = {"out_of_service": ["ch4"]}  # its alarms out for calibration
    res = await sink.write(recs)
    await sink.close()
    assert res.accepted_upto == 50 and res.rejected == []
    rows = h.servers.influx_rows(url, db, "SELECT * FROM telemetry ORDER BY time")
    assert len(rows) == 50
    for r, row in zip(recs, rows, strict=True):
        assert row["time"] == r.ts_ns
        assert (row["device"], row["site"], row["gateway"]) == ("fan 1", h.SITE, h.GATEWAY)
        assert row["co"] == r.values[1] and row["fan_on"] == r.values[2]
        if r.values[0] is None:
            assert row["ch4"] is None and row["ch4_q"] == "comm_loss"
        else:
            assert row["ch4"] == pytest.approx(r.values[0], abs=0) and row["ch4_q"] is None
        assert row["ch4_oos"] is (True if r is recs[20] else None)


async def test_malformed_records_are_rejected_the_rest_delivered(
    influxd_server: Any, h: Any, store: Any
) -> None:
    url = influxd_server.url
    db = create_db(h, url, h.unique("conflict"))
    store.register_sink("influx")
    good = [h.sample("gas1", i) for i in range(40)]
    store.append(good[:20])
    clash = h.sample("gas1", 1000)
    clash.values[0] = "not a number"  # ch4 is a float field already: type conflict
    store.append([clash])
    store.append(good[20:])
    (runner,) = build_runners(
        [{"name": "influx", "type": "influxdb_v1", "url": url, "database": db, "flush_ms": 10}],
        store, h.SITE, h.GATEWAY,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await until(lambda: store.backlog("influx") == (0, 0))
    stop.set()
    await task
    (aside,) = store.rejected("influx")
    assert aside[0].seq == clash.seq and "conflict" in aside[1]
    rows = h.servers.influx_rows(url, db, "SELECT ch4, co FROM telemetry ORDER BY time")
    assert [r["time"] for r in rows] == [g.ts_ns for g in good]
    assert [r["co"] for r in rows] == [g.values[1] for g in good]
    assert runner.status()["set_aside"] == 1


async def test_unknown_database_is_not_found(influxd_server: Any, h: Any) -> None:
    sink = InfluxV1Sink(v1(influxd_server.url, "no_such_db"), h.SITE, h.GATEWAY)
    await sink.connect()
    rec = h.sample("d", 1)
    rec.seq = 1
    with pytest.raises(NotFound, match="database not found"):
        await sink.write([rec])
    await sink.close()


async def test_outage_every_record_arrives(tmp_path: Path, h: Any, store: Any) -> None:
    """Stop influxd mid-run, keep appending, restart: all records arrive."""
    srv = h.servers.influxd(tmp_path / "influxd").start()
    try:
        db = create_db(h, srv.url, "outage")
        store.register_sink("influx")
        sink = InfluxV1Sink(v1(srv.url, db, timeout_s=2), h.SITE, h.GATEWAY)
        runner = SinkRunner(
            sink, store, "influx", batch_size=100, flush_ms=20, retry_initial_s=0.05,
            retry_max_s=0.3, idle_poll_s=0.05,
        )  # fmt: skip
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        n = 0

        async def append(k: int) -> None:
            nonlocal n
            for _ in range(k):
                await asyncio.to_thread(store.append, [h.sample("pump1", n)])
                runner.notify()
                n += 1
                await asyncio.sleep(0.002)

        await append(100)
        await until(lambda: store.backlog("influx")[0] == 0)
        await asyncio.to_thread(srv.stop)
        await append(300)  # during the outage
        await until(lambda: runner.status()["state"] == "retrying")
        assert runner.status()["backlog_records"] > 0
        await asyncio.to_thread(srv.start)
        await append(100)
        await until(lambda: store.backlog("influx")[0] == 0)
        stop.set()
        await task
        rows = h.servers.influx_rows(srv.url, db, "SELECT co FROM telemetry ORDER BY time")
        expected = [h.sample("pump1", i) for i in range(n)]
        assert [r["time"] for r in rows] == [e.ts_ns for e in expected]
        assert len(rows) == 500
        assert runner.status()["failures"] >= 1
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def influxd_auth(tmp_path_factory: pytest.TempPathFactory, h: Any) -> Iterator[Any]:
    srv = h.servers.influxd(tmp_path_factory.mktemp("influxd_auth"), auth=True).start()
    admin = ("admin", "admin-pw")
    h.servers.influx_query(
        srv.url, "CREATE USER admin WITH PASSWORD 'admin-pw' WITH ALL PRIVILEGES", post=True
    )
    h.servers.influx_query(srv.url, 'CREATE DATABASE "secure"', auth=admin, post=True)
    h.servers.influx_query(srv.url, "CREATE USER gw WITH PASSWORD 'right'", auth=admin, post=True)
    h.servers.influx_query(srv.url, 'GRANT WRITE ON "secure" TO "gw"', auth=admin, post=True)
    yield srv, admin
    srv.stop()


async def test_wrong_credentials_shown_then_delivery_resumes(
    influxd_auth: Any, h: Any, store: Any
) -> None:
    srv, admin = influxd_auth
    store.register_sink("influx")
    store.append([h.sample("fan2", i) for i in range(30)])
    sink = InfluxV1Sink(v1(srv.url, "secure", username="gw", password="wrong"), h.SITE, h.GATEWAY)
    runner = SinkRunner(sink, store, "influx", flush_ms=10, retry_slow_s=0.2, idle_poll_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    await until(lambda: runner.status()["state"] == "auth_error")
    st = runner.status()
    assert "401" in st["last_error"] and "authorization failed" in st["last_error"]
    assert store.backlog("influx") == (30, 90)
    # the operator fixes the password on the server side
    h.servers.influx_query(srv.url, "SET PASSWORD FOR gw = 'wrong'", auth=admin, post=True)
    await until(lambda: store.backlog("influx") == (0, 0))
    stop.set()
    await task
    rows = h.servers.influx_rows(srv.url, "secure", "SELECT co FROM telemetry", auth=admin)
    assert len(rows) == 30 and runner.status()["state"] == "stopped"


async def test_other_kinds_reach_their_measurements(influxd_server: Any, h: Any) -> None:
    url = influxd_server.url
    db = create_db(h, url, h.unique("kinds"))
    sink = InfluxV1Sink(v1(url, db), h.SITE, h.GATEWAY)
    await sink.connect()
    ts = h.BASE_TS
    recs = [
        Record(RecordKind.STAT, "gas1", ts, ["ch4"], [0.5], ["%"], [Quality.GOOD],
               fields={"ch4": {"max": 0.9, "min": 0.1, "mean": 0.5, "count": 30, "window_s": 300}}),
        Record(RecordKind.ALARM, "gas1", ts + 1, ["ch4"], [1.2], ["%"], [Quality.GOOD],
               fields={"point": "ch4", "severity": "alarm", "state": "raised", "threshold": 1.0}),
        Record(RecordKind.METRIC, "gateway", ts + 2, ["polls"], [7], [""], [Quality.GOOD]),
    ]  # fmt: skip
    for i, r in enumerate(recs, 1):
        r.seq = i
    await sink.write(recs)
    await sink.close()
    (stat,) = h.servers.influx_rows(url, db, "SELECT * FROM stats_5m")
    assert (stat["point"], stat["unit"], stat["count"], stat["max"]) == ("ch4", "%", 30, 0.9)
    (alarm,) = h.servers.influx_rows(url, db, "SELECT * FROM alarm")
    assert (alarm["state"], alarm["threshold"], alarm["ch4"]) == ("raised", 1.0, 1.2)
    (metric,) = h.servers.influx_rows(url, db, "SELECT * FROM gateway_metrics")
    assert metric["polls"] == 7 and metric["time"] == ts + 2


async def test_a_point_that_is_sometimes_int_never_conflicts(influxd_server: Any, h: Any) -> None:
    """Seen end to end: an ASCII gas sensor prints humidity as 55 and as 55.3."""
    url = influxd_server.url
    db = create_db(h, url, h.unique("inttype"))
    sink = InfluxV1Sink(v1(url, db), h.SITE, h.GATEWAY)
    await sink.connect()
    recs = []
    for i, v in enumerate([55, 55.3, 56, 1.5e3], 1):
        r = Record(RecordKind.SAMPLE, "gas_ascii", h.BASE_TS + i, ["humidity"], [v], ["%"],
                   [Quality.GOOD], seq=i)  # fmt: skip
        recs.append(r)
        res = await sink.write([r])  # one write each: the first fixes the field type
        assert res.rejected == []
    await sink.close()
    rows = h.servers.influx_rows(url, db, "SELECT humidity FROM telemetry ORDER BY time")
    assert [row["humidity"] for row in rows] == [r.values[0] for r in recs]


async def test_awkward_names_and_strings_survive_the_round_trip(
    influxd_server: Any, h: Any
) -> None:
    url = influxd_server.url
    db = create_db(h, url, h.unique("names"))
    sink = InfluxV1Sink(v1(url, db), 'site "7", west=2', h.GATEWAY)
    await sink.connect()
    points = ["air flow=1,2", 'label "x"', "中段 -80 m"]
    values: list[object] = [3.25, 'say "hi" \\ back\\slash,comma=eq', "井下"]
    rec = Record(RecordKind.SAMPLE, 'fan "A", 1=x', h.BASE_TS, points, values,  # type: ignore[arg-type]
                 ["m/s", "", ""], [Quality.GOOD] * 3, seq=1)  # fmt: skip
    assert (await sink.write([rec])).rejected == []
    await sink.close()
    (row,) = h.servers.influx_rows(url, db, "SELECT * FROM telemetry")
    assert row["device"] == rec.device and row["site"] == 'site "7", west=2'
    assert [row[p] for p in points] == values


async def test_backlog_drain_rate_into_influxd(influxd_server: Any, h: Any, store: Any) -> None:
    """100,000 values waiting (an outage's worth): measure how fast they drain."""
    url = influxd_server.url
    db = create_db(h, url, h.unique("drain"))
    store.register_sink("influx")
    for chunk in range(10):
        store.append([h.sample(f"dev{chunk}", i, points=50) for i in range(200)])
    (runner,) = build_runners(
        [{"name": "influx", "type": "influxdb_v1", "url": url, "database": db, "gzip": True}],
        store, h.SITE, h.GATEWAY,
    )  # fmt: skip
    stop = asyncio.Event()
    t0 = time.monotonic()
    task = asyncio.create_task(runner.run(stop))
    await until(lambda: store.backlog("influx") == (0, 0), within=60)
    elapsed = time.monotonic() - t0
    stop.set()
    await task
    rate = 100_000 / elapsed
    print(f"drained 100000 values into influxd in {elapsed:.2f} s: {rate:.0f} values/s")
    (row,) = h.servers.influx_rows(url, db, "SELECT count(p0) FROM telemetry")
    assert row["count"] == 2000
    assert rate > 20_000  # an outage of 10 min at 1,000 values/s drains in < 30 s


async def test_retention_policy_is_honoured(influxd_server: Any, h: Any) -> None:
    url = influxd_server.url
    db = create_db(h, url, h.unique("rp"))
    h.servers.influx_query(
        url, f'CREATE RETENTION POLICY "two_years" ON "{db}" DURATION 104w REPLICATION 1', post=True
    )
    sink = InfluxV1Sink(v1(url, db, retention_policy="two_years"), h.SITE, h.GATEWAY)
    await sink.connect()
    rec = h.sample("fan5", 1, ts_ns=time.time_ns())  # within the policy's duration
    rec.seq = 1
    assert (await sink.write([rec])).rejected == []
    await sink.close()
    (row,) = h.servers.influx_rows(url, db, f'SELECT co FROM "{db}"."two_years"."telemetry"')
    assert row["co"] == rec.values[1] and row["time"] == rec.ts_ns
    assert h.servers.influx_rows(url, db, f'SELECT co FROM "{db}"."autogen"."telemetry"') == []


async def test_alarm_transitions_of_every_kind_are_accepted(influxd_server: Any, h: Any) -> None:
    """The engine's records of a limit, a state and a sensor-fault alarm and
    an operator's acknowledgement, in one measurement: no field type conflict."""
    from gateway.alarms.engine import AlarmEngine
    from gateway.alarms.records import to_record
    from gateway.alarms.rules import (
        LimitKind,
        LimitRule,
        PointRef,
        Rule,
        SensorFaultRule,
        StateRule,
    )
    from gateway.alarms.state import Event

    ts = h.BASE_TS
    rules: list[Rule] = [
        LimitRule(
            name="ch4", point=PointRef("gas1", "ch4"), kind=LimitKind.HIGH, limit=1, restore=1
        ),
        SensorFaultRule(name="ch4_fault", point=PointRef("gas1", "ch4"), valid_range=(0.0, 100.0)),
        StateRule(name="fan", point=PointRef("fan1", "running"), value=False),
    ]
    e = AlarmEngine(rules, clock=lambda: ts + 10)
    readings = [
        Record(RecordKind.SAMPLE, "gas1", ts + 1, ["ch4"], [2], ["%"], [Quality.GOOD]),
        Record(RecordKind.SAMPLE, "fan1", ts + 2, ["running"], [False], [""], [Quality.GOOD]),
        Record(RecordKind.SAMPLE, "gas1", ts + 3, ["ch4"], [655.35], ["%"], [Quality.GOOD]),
    ]
    trs = [tr for r in readings for tr in e.observe(r)] + e.command("fan", Event.ACK, "li")
    recs = [to_record(tr, e.conditions[tr.alarm]) for tr in trs]
    for i, r in enumerate(recs, 1):
        r.seq = i
    url = influxd_server.url
    db = create_db(h, url, h.unique("alarms"))
    sink = InfluxV1Sink(v1(url, db), h.SITE, h.GATEWAY)
    await sink.connect()
    result = await sink.write(recs)
    await sink.close()
    assert result.rejected == [] and result.accepted_upto == len(recs)
    rows = h.servers.influx_rows(url, db, "SELECT * FROM alarm")
    assert sorted(r["alarm"] for r in rows) == ["ch4", "ch4_fault", "fan", "fan"]

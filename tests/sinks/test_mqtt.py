"""MQTT sink against a real mosquitto: topics and payloads, retained status
and last will, credentials, TLS with client certificates, broker restart."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from gateway.model import Quality, Record, RecordKind
from gateway.sinks import AuthError, SinkError, SinkRunner, TlsError
from gateway.sinks.config import MqttConfig
from gateway.sinks.mqtt import MqttSink

pytestmark = pytest.mark.servers


def cfg(port: int, **kw: Any) -> MqttConfig:
    kw.setdefault("topic_prefix", "minegate")
    kw.setdefault("timeout_s", 3)
    return MqttConfig(name="mqtt", host="127.0.0.1", port=port, **kw)


async def until(cond: Callable[[], bool], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


class Collector:
    """A subscriber that keeps every message; reconnects when the broker
    goes away (persistent session, so nothing published meanwhile is lost)."""

    def __init__(self, port: int, topic: str, **client_kw: Any) -> None:
        self.port = port
        self.topic = topic
        self.kw = client_kw
        self.messages: list[tuple[str, Any, bool]] = []
        self.subscribed = asyncio.Event()

    def on(self, suffix: str) -> list[Any]:
        return [p for t, p, _ in self.messages if t.endswith(suffix)]

    async def run(self) -> None:
        while True:
            try:
                async with aiomqtt.Client("127.0.0.1", self.port, **self.kw) as c:
                    await c.subscribe(self.topic, qos=1)
                    self.subscribed.set()
                    async for m in c.messages:
                        payload = json.loads(bytes(m.payload))  # type: ignore[arg-type]
                        self.messages.append((m.topic.value, payload, bool(m.retain)))
            except aiomqtt.MqttError:
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def collecting(port: int, topic: str, **kw: Any) -> AsyncIterator[Collector]:
    col = Collector(port, topic, **kw)
    task = asyncio.create_task(col.run())
    await asyncio.wait_for(col.subscribed.wait(), 10)
    try:
        yield col
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def numbered(recs: list[Record], start: int = 1) -> list[Record]:
    for i, r in enumerate(recs, start):
        r.seq = i
    return recs


async def test_topics_payloads_and_status(mosquitto_server: Any, h: Any) -> None:
    prefix = h.unique("mg")
    root = f"{prefix}/{h.SITE}/{h.GATEWAY}"
    async with collecting(mosquitto_server.port, f"{prefix}/#") as col:
        sink = MqttSink(cfg(mosquitto_server.port, topic_prefix=prefix), h.SITE, h.GATEWAY)
        await sink.connect()
        ts = h.BASE_TS + 123_456_789
        tele = h.sample("fan/1", 0, ts_ns=ts)
        tele.values[1] = None
        tele.qualities[1] = Quality.COMM_LOSS
        recs = numbered(
            [
                tele,
                Record(RecordKind.STAT, "gas1", ts, ["ch4"], [0.5], ["%"], [Quality.GOOD],
                       fields={"ch4": {"max": 0.9, "min": 0.1, "mean": 0.5, "count": 3, "window_s": 300}}),
                Record(RecordKind.ALARM, "gas1", ts, ["ch4"], [1.2], ["%"], [Quality.GOOD],
                       fields={"point": "ch4", "state": "raised"}),
                Record(RecordKind.SNAPSHOT, "gas1", ts, ["ch4"], [0.4], ["%"], [Quality.GOOD]),
                Record(RecordKind.EVENT, "fan1", ts, [], [], [], [], fields={"event": "comm_loss"}),
                Record(RecordKind.METRIC, "gateway", ts, ["polls"], [7], [""], [Quality.GOOD]),
                Record(RecordKind.FINDING, "chk-9", ts, ["incidents"], [2], [""], [Quality.GOOD],
                       fields={"alert": True, "message": "2 violations"}),
            ]
        )  # fmt: skip
        res = await sink.write(recs)
        assert res.accepted_upto == 7 and not res.rejected
        await until(lambda: len(col.messages) >= 9)
        await sink.close()
        await until(lambda: len(col.on("/status")) >= 2)
    topics = [t for t, _, _ in col.messages]
    for leaf in ["status", "telemetry/fan_1", "stats/gas1", "alarms/gas1", "snapshot/gas1",
                 "events", "metrics", "survey/chk-9", "alerts/survey"]:  # fmt: skip
        assert f"{root}/{leaf}" in topics, leaf
    (t,) = col.on("/telemetry/fan_1")
    assert t["ts_ns"] == ts and t["ts"] == "2025-11-24T16:00:00.123Z" and t["seq"] == 1
    assert t["device"] == "fan/1"
    assert t["values"]["ch4"] == {"v": tele.values[0], "u": "%", "q": "good"}
    assert t["values"]["co"] == {"v": None, "u": "ppm", "q": "comm_loss"}
    assert t["values"]["fan_on"]["v"] is True
    (s,) = col.on("/stats/gas1")
    assert s["stats"]["ch4"] == {
        "max": 0.9,
        "min": 0.1,
        "mean": 0.5,
        "count": 3,
        "window_s": 300,
        "u": "%",
    }
    (a,) = col.on("/alerts/survey")
    assert a["check"] == "chk-9" and a["message"] == "2 violations"
    status = col.on("/status")
    assert status[0]["state"] == "online" and status[-1]["state"] == "offline"
    assert status[-1]["reason"] == "shutdown"
    # retained: a late subscriber sees the status and the snapshot at once
    async with collecting(mosquitto_server.port, f"{root}/#") as late:
        await until(lambda: len(late.messages) >= 2)
    assert {t for t, _, r in late.messages if r} == {f"{root}/status", f"{root}/snapshot/gas1"}


async def test_last_will_when_the_link_dies(mosquitto_server: Any, h: Any) -> None:
    prefix = h.unique("will")
    sink = MqttSink(cfg(mosquitto_server.port, topic_prefix=prefix, keepalive_s=5), "s", "g")
    await sink.connect()
    async with collecting(mosquitto_server.port, f"{prefix}/s/g/status") as col:
        await until(lambda: len(col.messages) >= 1)
        assert col.messages[0][1]["state"] == "online"
        sock = sink._client._client.socket()  # type: ignore[union-attr]
        sock.shutdown(socket.SHUT_RDWR)  # the link dies without a DISCONNECT
        await until(lambda: len(col.messages) >= 2)
        assert col.messages[-1][1] | {"ts": 0, "ts_ns": 0} == {
            "state": "offline", "reason": "connection lost", "site": "s", "gateway": "g",
            "ts": 0, "ts_ns": 0,
        }  # fmt: skip
    rec = numbered([h.sample("d", 1)])
    with pytest.raises(SinkError) as info:
        await sink.write(rec)
    assert info.value.retryable and not sink.connected
    await sink.close()


async def test_wrong_password_then_fixed_on_the_broker(tmp_path: Path, h: Any, store: Any) -> None:
    srv = h.servers.mosquitto(tmp_path / "mq", users={"gw": "right", "checker": "c"}).start()
    try:
        sink = MqttSink(cfg(srv.port, username="gw", password="typo"), h.SITE, h.GATEWAY)
        with pytest.raises(AuthError, match="code:"):
            await sink.connect()
        store.register_sink("mqtt")
        store.append([h.sample("fan3", i) for i in range(20)])
        runner = SinkRunner(sink, store, "mqtt", flush_ms=10, retry_slow_s=0.2, idle_poll_s=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run(stop))
        await until(lambda: runner.status()["state"] == "auth_error")
        assert store.backlog("mqtt") == (20, 60)
        async with collecting(srv.port, "minegate/#", username="checker", password="c") as col:
            h.servers.set_mosquitto_password(tmp_path / "mq" / "passwd", "gw", "typo")
            srv.reload()
            await until(lambda: len(col.on("/telemetry/fan3")) >= 20)
        stop.set()
        await task
        assert sorted(p["seq"] for p in col.on("/telemetry/fan3")) == list(range(1, 21))
        assert store.backlog("mqtt") == (0, 0)
    finally:
        srv.stop()


async def test_tls_with_client_certificate(tmp_path: Path, h: Any) -> None:
    tls = h.servers.make_tls(tmp_path)
    srv = h.servers.mosquitto(tmp_path / "mq", tls=tls, require_client_cert=True).start()
    try:
        good = MqttSink(
            cfg(srv.port, tls=True, ca_file=str(tls.ca), cert_file=str(tls.client_cert),
                key_file=str(tls.client_key)),
            "s", "g",
        )  # fmt: skip
        await good.connect()
        res = await good.write(numbered([h.sample("d", 1)]))
        assert res.accepted_upto == 1
        await good.close()
        # a broker certificate from an unknown CA is refused
        stranger = h.servers.make_tls(tmp_path / "other")
        bad = MqttSink(cfg(srv.port, tls=True, ca_file=str(stranger.ca)), "s", "g")
        with pytest.raises(TlsError):
            await bad.connect()
        await bad.close()
    finally:
        srv.stop()


async def test_broker_restart_resumes_from_the_cursor(tmp_path: Path, h: Any, store: Any) -> None:
    srv = h.servers.mosquitto(tmp_path / "mq", persistence=True).start()
    try:
        store.register_sink("mqtt")
        sink = MqttSink(cfg(srv.port, keepalive_s=5), h.SITE, h.GATEWAY)
        runner = SinkRunner(
            sink, store, "mqtt", batch_size=20, flush_ms=10, retry_initial_s=0.05,
            retry_max_s=0.3, idle_poll_s=0.02,
        )  # fmt: skip
        stop = asyncio.Event()
        async with collecting(
            srv.port, "minegate/#", identifier="checker", clean_session=False
        ) as col:
            task = asyncio.create_task(runner.run(stop))
            n = 0
            for phase in range(3):
                for _ in range(100):
                    await asyncio.to_thread(store.append, [h.sample("fan4", n)])
                    runner.notify()
                    n += 1
                    await asyncio.sleep(0.002)
                if phase == 0:
                    await asyncio.to_thread(srv.stop)
                elif phase == 1:
                    # the PUBACKs stop: the sink notices within its timeout
                    await until(lambda: runner.status()["connected"] is False, within=10)
                    await asyncio.to_thread(srv.start)
            await until(lambda: store.backlog("mqtt") == (0, 0))
            await until(lambda: len({p["seq"] for p in col.on("/telemetry/fan4")}) >= n)
            stop.set()
            await task
        got = sorted({p["seq"] for p in col.on("/telemetry/fan4")})
        assert got == list(range(1, n + 1))
        online = [p for p in col.on("/status") if p["state"] == "online"]
        assert len(online) >= 2  # published again after the reconnect
        assert runner.status()["failures"] >= 1
    finally:
        srv.stop()


async def test_backlog_drain_rate_into_mosquitto(mosquitto_server: Any, h: Any, store: Any) -> None:
    """2,000 records of 50 values waiting: each needs its PUBACK; measure."""
    prefix = h.unique("drain")
    store.register_sink("mqtt")
    store.append([h.sample("fan9", i, points=50) for i in range(2000)])
    sink = MqttSink(cfg(mosquitto_server.port, topic_prefix=prefix), h.SITE, h.GATEWAY)
    runner = SinkRunner(sink, store, "mqtt", batch_size=200, flush_ms=10)
    async with collecting(mosquitto_server.port, f"{prefix}/+/+/telemetry/#") as col:
        stop = asyncio.Event()
        t0 = time.monotonic()
        task = asyncio.create_task(runner.run(stop))
        await until(lambda: store.backlog("mqtt") == (0, 0), within=60)
        elapsed = time.monotonic() - t0
        await until(lambda: len(col.messages) >= 2000)
        stop.set()
        await task
    print(f"drained 2000 records (100000 values) over MQTT in {elapsed:.2f} s")
    assert sorted(p["seq"] for p in col.on("/telemetry/fan9")) == list(range(1, 2001))
    assert 100_000 / elapsed > 10_000


async def test_a_lost_link_is_noticed_without_a_write(mosquitto_server: Any, h: Any) -> None:
    # The sink learns of the loss from the client itself (``client.messages``
    # ends with an MqttError), not from the next publish failing.
    sink = MqttSink(cfg(mosquitto_server.port, topic_prefix=h.unique("lost")), "s", "g")
    await sink.connect()
    assert sink.connected
    sink._client._client.socket().shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]
    await until(lambda: not sink.connected, within=5.0)
    await sink.close()
    await sink.connect()  # the client reconnects after a lost link
    assert sink.connected
    await sink.close()


async def test_an_alarm_stored_during_a_catch_up_batch_does_not_wait_for_all_of_it(
    mosquitto_server: Any, h: Any, store: Any
) -> None:
    # A catch-up batch is 5,000 records (batch_size x catchup_factor); an
    # alarm stored as the second one starts leaves after the records then in
    # flight (max_inflight 100), not after the rest of that batch.
    # (sink._inflight: the publishes of the write under way)
    prefix = h.unique("yield")
    store.register_sink("mqtt")
    store.append([h.sample("old", i) for i in range(15_000)])
    sink = MqttSink(cfg(mosquitto_server.port, topic_prefix=prefix), h.SITE, h.GATEWAY)
    runner = SinkRunner(sink, store, "mqtt", batch_size=1000, catchup_factor=5)
    stop = asyncio.Event()
    async with collecting(mosquitto_server.port, f"{prefix}/#") as col:
        task = asyncio.create_task(runner.run(stop))
        await until(lambda: runner.sent_records >= 5000 and bool(sink._inflight))  # the 2nd
        alarm = Record(RecordKind.ALARM, "old", h.BASE_TS, [], [], [], [],
                       fields={"alarm": "old.running", "state": "active_unacked"})  # fmt: skip
        store.append([alarm])
        runner.notify(alarm=True)
        await until(lambda: len(col.on("/telemetry/old")) >= 15_000)
        stop.set()
        await asyncio.wait_for(task, 10)
    order = [
        "alarm" if t.endswith("/alarms/old") else p["seq"]
        for t, p, _ in col.messages
        if t.endswith(("/alarms/old", "/telemetry/old"))
    ]
    assert order.index("alarm") < order.index(10_000)  # the end of the second batch
    seqs = {p["seq"] for p in col.on("/telemetry/old")}
    assert seqs == set(range(1, 15_001))  # the rest of the batch sent after it, none lost


async def test_many_publishes_in_flight_are_each_confirmed_once(
    mosquitto_server: Any, h: Any
) -> None:
    """The sink's client keeps aiomqtt's pending-call bookkeeping in O(1)
    (an override of a private method): aiomqtt must still go through it,
    every publish of a window wider than the batch is confirmed, and
    nothing stays pending."""
    import inspect

    from gateway.sinks.mqtt import _Client

    assert "self._pending_call(info.mid" in inspect.getsource(aiomqtt.Client.publish)
    prefix = h.unique("mg")
    async with collecting(mosquitto_server.port, f"{prefix}/#") as col:
        sink = MqttSink(
            cfg(mosquitto_server.port, topic_prefix=prefix, max_inflight=500), h.SITE, h.GATEWAY
        )
        await sink.connect()
        client = sink._client
        assert isinstance(client, _Client)
        calls: list[int] = []
        original = client._pending_call

        def counting(mid: int, value: Any, pending: dict[int, Any]) -> Any:
            calls.append(mid)
            return original(mid, value, pending)

        client._pending_call = counting  # type: ignore[method-assign]
        recs = numbered([h.sample(f"d{i % 7}", i) for i in range(300)])
        result = await sink.write(recs)
        assert result.accepted_upto == 300
        assert len(calls) == 300 and len(set(calls)) == 300
        assert client._pending_publishes == {}
        await until(
            lambda: (
                len(col.on("telemetry/d0"))
                + sum(len(col.on(f"telemetry/d{k}")) for k in range(1, 7))
                == 300
            )
        )
        await sink.close()


async def test_a_broker_that_stops_answering_fails_the_write_after_timeout_s(
    tmp_path: Path, h: Any
) -> None:
    """A broker that keeps the connection but sends no PUBACK (here: the
    process stopped with SIGSTOP) fails the write once no PUBACK came for
    timeout_s: what was acknowledged before is the accepted prefix, nothing
    after it, and the sink reconnects."""
    import os
    import signal

    srv = h.servers.mosquitto(tmp_path / "mq").start()
    try:
        sink = MqttSink(cfg(srv.port, timeout_s=1, keepalive_s=60), h.SITE, h.GATEWAY)
        await sink.connect()
        first = numbered([h.sample("d", i) for i in range(50)])
        assert (await sink.write(first)).accepted_upto == 50
        os.kill(srv.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            with pytest.raises(SinkError) as err:
                await sink.write(numbered([h.sample("d", i) for i in range(50)], start=51))
            waited = time.monotonic() - t0
        finally:
            os.kill(srv.proc.pid, signal.SIGCONT)
        assert 1.0 <= waited < 3.0, waited
        assert err.value.retryable and "PUBACK" in str(err.value)
        assert err.value.accepted_upto == 0  # nothing of the second batch was acknowledged
        assert not sink.connected
        await sink.connect()
        assert (await sink.write(numbered([h.sample("d", 0)], start=101))).accepted_upto == 101
        await sink.close()
    finally:
        srv.stop()

"""The runner against the real store and a scripted sink: order, at-least-once,
rejects set aside, backoff, slow retry on auth errors, catch-up drain rate."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import pytest

from drivers.backoff import backoff_delay
from gateway.model import Record
from gateway.sinks.base import AuthError, Rejected, Sink, SinkError, WriteResult
from gateway.sinks.runner import SinkRunner


class ScriptedSink(Sink):
    """Accepts everything unless ``fail`` says otherwise for a batch."""

    type_name = "scripted"

    def __init__(self) -> None:
        self.connected = False
        self.received: list[int] = []  # seqs the "server" stored, in arrival order
        self.batches: list[int] = []  # batch sizes
        self.fail: Callable[[list[Record]], Exception | None] = lambda b: None
        self.connect_fail: Callable[[], Exception | None] = lambda: None
        self.reject: Callable[[Record], str | None] = lambda r: None
        self.closed = False
        self.connects = 0

    async def connect(self) -> None:
        self.connects += 1
        err = self.connect_fail()
        if err:
            raise err
        self.connected = True

    async def write(self, batch: list[Record]) -> WriteResult:
        assert not self.closed, "write after close"
        assert [r.seq for r in batch] == sorted(r.seq for r in batch)
        err = self.fail(batch)
        if err:
            if isinstance(err, SinkError):  # the confirmed prefix did reach the server
                self.received += [r.seq for r in batch if r.seq <= err.accepted_upto]
            raise err
        self.batches.append(len(batch))
        rejected = []
        for r in batch:
            reason = self.reject(r)
            if reason:
                rejected.append(Rejected(r, reason))
            else:
                self.received.append(r.seq)
        return WriteResult(batch[-1].seq, rejected)

    async def close(self) -> None:
        self.closed = True
        self.connected = False


def runner(sink: Sink, store: Any, **kw: Any) -> SinkRunner:
    opts: dict[str, Any] = dict(
        batch_size=50, flush_ms=20, retry_initial_s=0.01, retry_max_s=0.05, retry_slow_s=0.1,
        idle_poll_s=0.02,
    )  # fmt: skip
    opts.update(kw)
    return SinkRunner(sink, store, "up", **opts)


async def until(cond: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.01)


async def run_until_drained(r: SinkRunner, store: Any, cond: Callable[[], bool]) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    try:
        await until(lambda: cond() and store.backlog("up") == (0, 0))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


def test_backoff_is_capped_and_jittered() -> None:
    assert backoff_delay(0, 1, 30, lambda: 0.0) == 0.5
    assert backoff_delay(0, 1, 30, lambda: 1.0) == 1.0
    assert backoff_delay(3, 1, 30, lambda: 1.0) == 8.0
    assert backoff_delay(50, 1, 30, lambda: 1.0) == 30.0
    assert backoff_delay(50, 1, 30, lambda: 0.0) == 15.0


async def test_in_order_exactly_what_was_appended(store: Any, h: Any) -> None:
    store.register_sink("up")
    sink = ScriptedSink()
    r = runner(sink, store)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    for i in range(30):  # appended while the runner runs
        await asyncio.to_thread(store.append, [h.sample("fan1", i * 10 + k) for k in range(10)])
        r.notify()
        await asyncio.sleep(0.005)
    await until(lambda: len(sink.received) >= 300)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sink.received == list(range(1, 301))
    assert store.backlog("up") == (0, 0)
    st = r.status()
    assert st["sent_records"] == 300 and st["sent_values"] == 900 and st["state"] == "stopped"
    assert sink.closed


async def test_rejected_records_are_set_aside_and_the_rest_delivered(store: Any, h: Any) -> None:
    store.register_sink("up")
    recs = [h.sample("bad" if i % 7 == 3 else "gas1", i) for i in range(100)]
    store.append(recs)
    sink = ScriptedSink()
    sink.reject = lambda rec: "field type conflict" if rec.device == "bad" else None
    r = runner(sink, store)
    await run_until_drained(r, store, lambda: len(sink.received) >= 85)
    bad = [rec.seq for rec in recs if rec.device == "bad"]
    assert sorted(sink.received) == [rec.seq for rec in recs if rec.device != "bad"]
    aside = store.rejected("up")
    assert [rec.seq for rec, _ in aside] == bad
    assert all(reason == "field type conflict" for _, reason in aside)
    assert r.status()["set_aside"] == len(bad)


async def test_transient_faults_lose_nothing(store: Any, h: Any) -> None:
    store.register_sink("up")
    store.append([h.sample("fan1", i) for i in range(200)])
    sink = ScriptedSink()
    calls = {"write": 0, "connect": 0}

    def flaky_write(batch: list[Record]) -> Exception | None:
        calls["write"] += 1
        if calls["write"] % 3 == 1:
            # the server confirmed part of the batch before the link broke
            return SinkError("HTTP 503: busy", accepted_upto=batch[len(batch) // 2].seq)
        return None

    def flaky_connect() -> Exception | None:
        calls["connect"] += 1
        return SinkError("connection refused") if calls["connect"] <= 2 else None

    sink.fail = flaky_write
    sink.connect_fail = flaky_connect
    r = runner(sink, store)
    await run_until_drained(r, store, lambda: len(set(sink.received)) >= 200)
    # every record arrived, in order; nothing past a confirmed prefix was re-sent
    assert sink.received == list(range(1, 201))
    assert r.status()["failures"] >= 3


async def test_auth_error_retries_slowly_and_resumes_when_fixed(store: Any, h: Any) -> None:
    store.register_sink("up")
    store.append([h.sample("fan1", i) for i in range(20)])
    sink = ScriptedSink()
    broken = {"on": True}
    sink.fail = lambda b: AuthError("HTTP 401: authorization failed") if broken["on"] else None
    r = runner(sink, store, retry_slow_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    await until(lambda: r.status()["state"] == "auth_error")
    st = r.status()
    assert "authorization failed" in st["last_error"]
    assert st["backlog_records"] == 20 and sink.received == []
    await asyncio.sleep(0.5)
    assert r.status()["failures"] <= 6  # slow: at most one try per 0.1-0.2 s
    broken["on"] = False
    await until(lambda: len(sink.received) == 20)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert r.status()["last_success_at"] is not None


async def test_backlog_drains_in_big_batches_then_keeps_up(store: Any, h: Any) -> None:
    store.register_sink("up")
    for chunk in range(20):
        store.append([h.sample(f"dev{chunk}", chunk * 1000 + i) for i in range(1000)])
    sink = ScriptedSink()
    r = runner(sink, store, batch_size=100, catchup_factor=10, max_batch_values=10**6)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    t0 = time.monotonic()
    await until(lambda: len(sink.received) >= 20_000, within=60)
    drain_s = time.monotonic() - t0
    assert max(sink.batches[:5]) == 1000  # catch-up batches: batch_size * catchup_factor
    rate = r.drain_rate()
    # live data after the backlog: small batches again, delivered promptly
    t1 = time.monotonic()
    await asyncio.to_thread(store.append, [h.sample("live", 99_999)])
    r.notify()
    await until(lambda: len(sink.received) == 20_001)
    latency = time.monotonic() - t1
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sink.received == list(range(1, 20_002))
    assert sink.batches[-1] == 1 and not r.status()["catching_up"]
    print(
        f"drained 20000 records in {drain_s:.2f} s, {rate:.0f} values/s; live latency {latency * 1000:.0f} ms"
    )
    assert rate > 0 and latency < 1.0


async def test_max_backlog_rate_throttles_catch_up(store: Any, h: Any) -> None:
    store.register_sink("up")
    store.append([h.sample("d", i) for i in range(600)])  # 1800 values
    sink = ScriptedSink()
    r = runner(sink, store, batch_size=100, catchup_factor=2, max_backlog_rate=3000)
    t0 = time.monotonic()
    await run_until_drained(r, store, lambda: len(sink.received) == 600)
    assert time.monotonic() - t0 >= 0.4  # 1800 values at 3000/s, minus the last batch


@pytest.mark.parametrize("exc", [RuntimeError("bug")])
async def test_a_bug_is_not_swallowed(store: Any, h: Any, exc: Exception) -> None:
    store.register_sink("up")
    store.append([h.sample("d", 1)])
    sink = ScriptedSink()
    sink.fail = lambda b: exc
    r = runner(sink, store)
    with pytest.raises(RuntimeError, match="bug"):
        await asyncio.wait_for(r.run(asyncio.Event()), 10)
    assert sink.closed and store.backlog("up") == (1, 3)


async def test_an_alarm_does_not_wait_for_the_flush_time(store: Any, h: Any) -> None:
    """flush_ms is long; a partial batch waits, but an alarm leaves at once."""
    from gateway.model import Quality, RecordKind

    store.register_sink("up")
    sink = ScriptedSink()
    r = runner(sink, store, flush_ms=5000, idle_poll_s=5.0)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    await asyncio.to_thread(store.append, [h.sample("fan1", 0)])
    r.notify()
    await until(lambda: len(sink.received) == 1)  # first write: nothing to wait for
    await asyncio.to_thread(store.append, [h.sample("fan1", 1)])
    r.notify()
    await asyncio.sleep(0.2)
    assert len(sink.received) == 1  # a partial batch waits for the flush time
    alarm = Record(RecordKind.ALARM, "gas1", h.BASE_TS, ["ch4"], [1.2], ["%"], [Quality.GOOD],
                   fields={"point": "ch4", "state": "raised"})  # fmt: skip
    t0 = time.monotonic()
    await asyncio.to_thread(store.append, [alarm])
    r.notify()
    await until(lambda: 3 in sink.received)
    latency = time.monotonic() - t0
    assert sink.received == [1, 3]  # the alarm went ahead of the held sample
    stop.set()
    await asyncio.wait_for(task, 10)
    assert latency < 0.5, f"alarm took {latency:.3f} s"
    assert sink.received == [1, 3, 2]  # the final flush sends the sample, not the alarm again
    assert store.backlog("up") == (0, 0)


async def test_alarms_leave_ahead_of_a_backlog_once(store: Any, h: Any) -> None:
    """Samples pile up while the server is down; alarms appended after them
    are sent first when it returns, then the backlog in order, and no alarm
    is sent twice."""
    from gateway.model import Quality, RecordKind

    store.register_sink("up")
    down = True
    sink = ScriptedSink()
    sink.connect_fail = lambda: SinkError("down", retryable=True) if down else None
    backlog = [h.sample("fan1", i) for i in range(400)]
    store.append(backlog[:200])
    alarm = Record(RecordKind.ALARM, "gas1", h.BASE_TS, ["ch4"], [1.2], ["%"], [Quality.GOOD],
                   fields={"alarm": "ch4", "state": "active_unacked"})  # fmt: skip
    store.append([alarm])
    store.append(backlog[200:])
    alarm_seq = 201
    r = runner(sink, store, batch_size=50)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    await asyncio.sleep(0.2)
    assert sink.received == []
    down = False
    await until(lambda: len(sink.received) == 401)
    stop.set()
    await asyncio.wait_for(task, 10)
    assert sink.received[0] == alarm_seq
    assert sink.received[1:] == [s for s in range(1, 402) if s != alarm_seq]
    assert store.backlog("up") == (0, 0)


async def test_a_clean_stop_sends_what_the_flush_wait_held_back(store: Any, h: Any) -> None:
    store.register_sink("up")
    sink = ScriptedSink()
    r = runner(sink, store, flush_ms=60_000)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    store.append([h.sample("fan1", 0)])
    r.notify()
    await until(lambda: len(sink.received) == 1)
    store.append([h.sample("fan1", i) for i in range(1, 4)])
    r.notify()
    await asyncio.sleep(0.1)
    assert len(sink.received) == 1  # held back by the (long) flush time
    stop.set()
    await asyncio.wait_for(task, 5)
    assert sink.received == [1, 2, 3, 4] and store.backlog("up") == (0, 0)


async def test_a_failing_final_flush_does_not_delay_the_stop(store: Any, h: Any) -> None:
    store.register_sink("up")
    sink = ScriptedSink()
    r = runner(sink, store, flush_ms=60_000, retry_initial_s=30, retry_max_s=30)
    stop = asyncio.Event()
    task = asyncio.create_task(r.run(stop))
    store.append([h.sample("fan1", 0)])
    r.notify()
    await until(lambda: len(sink.received) == 1)
    store.append([h.sample("fan1", 1)])
    sink.fail = lambda b: SinkError("HTTP 503")
    stop.set()
    t0 = time.monotonic()
    await asyncio.wait_for(task, 5)
    assert time.monotonic() - t0 < 1.0
    assert store.backlog("up") == (1, 3)  # kept for the next start

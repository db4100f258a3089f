"""The store on a real, small, full file system (a tmpfs of a few MiB
mounted for the test): a full disk is told from a damaged file, and the
size bound acts before the disk is full (issue 9, items 14 and 15).

Mounting needs root; without it the tests skip, unless CI is set (then
they fail: the CI container runs as root and must run them)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gateway.config import load_config
from gateway.model import Quality, Record, RecordKind
from gateway.runtime import Gateway, store_path
from gateway.status import show_status
from gateway.store import Store, StoreFullError

FS_MIB = 12
T0 = time.time_ns()  # recent: the default 90-day retention keeps everything


def mount_small_fs(where: Path, size: str) -> None:
    """Mount a tmpfs of ``size`` on ``where``; skip (or fail under CI) when
    this process may not mount."""
    where.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        why = f"cannot mount a small tmpfs here ({done.stderr.strip() or done.returncode})"
        if os.environ.get("CI"):
            pytest.fail(why + "; CI must run the full-disk tests (as root)")
        pytest.skip(why)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "fs"
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    mount_small_fs(where, f"{FS_MIB}m")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(fs: Path) -> Path:
    """Fill the file system to the last byte; returns the filler file."""
    filler = fs / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (65536, 4096, 512, 1):
            try:
                while True:
                    f.write(b"\0" * chunk)
            except OSError:
                continue
    return filler


def rec(i: int, n: int = 100) -> Record:
    return Record(
        RecordKind.SAMPLE,
        f"dev{i % 3}",
        T0 + i,
        [f"p{j}" for j in range(n)],
        [float(i * n + j) for j in range(n)],
        ["V"] * n,
        [Quality.GOOD] * n,
    )


def test_restart_on_a_full_disk_says_disk_full_and_never_to_discard_the_store(
    small_fs: Path,
) -> None:
    path = small_fs / "minegate.sqlite"
    with Store(path, synchronous="OFF") as store:
        store.register_sink("influx")
        store.append([rec(i) for i in range(300)])
    filler = fill(small_fs)
    # Reopening needs a -shm file: on a full tmpfs SQLite says "disk I/O
    # error" (SQLITE_IOERR_SHMSIZE), which used to be reported as damage.
    with pytest.raises(StoreFullError) as info:
        Store(path)
    message = str(info.value)
    assert "disk full" in message
    assert "do not move it aside" in message
    assert "mv " not in message and "creates an empty store" not in message
    filler.unlink()
    with Store(path) as store:  # the store was intact all along
        assert store.check() == []
        assert store.backlog("influx") == (300, 300 * 100)


def test_append_on_a_full_disk_is_store_full_error(small_fs: Path) -> None:
    path = small_fs / "minegate.sqlite"
    store = Store(path, synchronous="OFF")
    store.append([rec(0)])
    filler = fill(small_fs)
    batch = [rec(i) for i in range(1, 200)]
    with pytest.raises(StoreFullError, match="do not move it aside"):
        store.append(batch)
    assert all(r.seq == 0 for r in batch)
    filler.unlink()
    store.append(batch)
    assert batch[-1].seq == 200
    store.close()


def test_size_bound_acts_when_max_bytes_exceeds_the_disk(small_fs: Path) -> None:
    # max_bytes is the default 2 GiB on a 12 MiB file system: the bound is
    # the free space less the reserve (room for the 4 MiB WAL and the
    # checkpoint that empties it), the WAL counted in the store's size, so
    # the store never fills the disk and the oldest samples make room.
    reserve = 6 * 2**20
    store = Store(small_fs / "minegate.sqlite", synchronous="OFF", reserve_bytes=reserve)
    store.register_sink("influx")
    store.append([Record(RecordKind.STAT, "dev0", T0, ["p"], [1.0], ["V"], [Quality.GOOD])])
    dropped = 0
    for i in range(0, 4000, 50):  # ~16 MiB of samples in all: more than the disk
        store.append([rec(1 + i + j, n=400) for j in range(50)])  # StoreFullError on a full disk
        if i % 200 == 150:  # every 800 KiB, as the runtime does every minute
            dropped += store.enforce_limits().get("dropped_sample", 0)
    dropped += store.enforce_limits().get("dropped_sample", 0)
    assert dropped > 0
    assert store.counters()["dropped_sample"] == dropped
    assert store.size_bytes() <= FS_MIB * 2**20 - reserve  # pages and WAL under the bound
    kinds = {r.kind for r in store.take("influx", 10_000)}
    assert RecordKind.STAT in kinds  # never dropped for space
    conn = sqlite3.connect(small_fs / "minegate.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    store.close()


# ---------------------------------------------------- the running gateway (16)


def _servers() -> Any:
    path = Path(__file__).resolve().parents[1] / "servers.py"
    spec = importlib.util.spec_from_file_location("minegate_test_servers", path)
    assert spec and spec.loader
    mod = sys.modules.get("minegate_test_servers") or importlib.util.module_from_spec(spec)
    if "minegate_test_servers" not in sys.modules:
        sys.modules["minegate_test_servers"] = mod
        spec.loader.exec_module(mod)
    return mod


OUTAGE_SITE = """
[site]
name = "full"
data_dir = "{data_dir}"

[store]
batch_ms = 50

[metrics]
interval_s = 0.5

[[buses]]
name = "vent"
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5

[[devices]]
name = "main_fan_1"
bus = "vent"
unit = 1
profile = "main_fan"
poll_interval_s = 0.05

[devices.points.airflow]
max_interval_s = 0.05

[[sinks]]
name = "live"
type = "mqtt"
host = "127.0.0.1"
port = {mqtt_port}
flush_ms = 50
retry_initial_s = 0.1
retry_max_s = 0.5
topic_prefix = "outage"
"""


async def _until(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_store_failing_keeps_polling_and_sends_latest_values_live(
    small_fs: Path, tmp_path: Path, fan_site: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import aiomqtt

    caplog.set_level(logging.INFO)
    broker = _servers().mosquitto(tmp_path / "mosquitto").start()
    messages: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def subscribe() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe("outage/#", qos=1)
            subscribed.set()
            async for m in client.messages:
                messages.append(json.loads(bytes(m.payload)))  # type: ignore[arg-type]

    listener = asyncio.create_task(subscribe())
    template = OUTAGE_SITE.replace("{data_dir}", str(small_fs)).replace(
        "{mqtt_port}", str(broker.port)
    )
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with fan_site(tmp_path, template) as config:
            gateway = Gateway(config)
            run = asyncio.create_task(gateway.run())
            await asyncio.wait_for(gateway.started.wait(), 10)
            fan = gateway.metrics.device("main_fan_1")
            await _until(lambda: gateway.metrics.writer.records_stored > 20, 10, "first records")
            filler = fill(small_fs)
            await _until(lambda: gateway.outage.failing, 15, "the store to fail")
            failed_at = time.time_ns()
            polls_then, heard_then = fan.polls, len(messages)
            await asyncio.sleep(2.0)
            # Polling goes on and the latest values still leave, from memory.
            assert fan.polls - polls_then >= 10
            live = [m for m in messages[heard_then:] if m["kind"] == "sample" and m["seq"] == 0]
            assert len(live) >= 5, messages[heard_then:]
            assert max(m["ts_ns"] for m in live) > failed_at
            assert gateway.runners[0].live_sent >= len(live)
            assert gateway.metrics.writer.backpressure == 0
            # minegate status says so, from the health file beside the store.
            out = io.StringIO()
            show_status(store_path(small_fs), console=Console(file=out, width=200))
            assert "STORE FAILING" in out.getvalue() and "disk full" in out.getvalue()
            held = gateway.outage.held_records
            assert held > 0
            filler.unlink()
            await _until(lambda: not gateway.outage.failing, 40, "the store to write again")
            assert "store writes succeed again" in caplog.text
            out = io.StringIO()
            show_status(store_path(small_fs), console=Console(file=out, width=200))
            assert "STORE FAILING" not in out.getvalue()
            gateway.request_stop()
            await asyncio.wait_for(run, 30)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        broker.stop()
    # What was held in memory reached the store: nothing lost, none dropped.
    with Store(store_path(small_fs)) as store:
        store.register_sink("check", start_at="start")
        records = store.take("check", 1_000_000)
        counters = store.counters()
    during = [r for r in records if r.kind is RecordKind.SAMPLE and r.ts_ns > failed_at]
    assert len(during) >= held // 2
    assert not [k for k in counters if k.startswith("outage_dropped")]
    seqs = [r.seq for r in records]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    # Never stored twice: the retried batches are the held ones, once.
    keys = [(r.device, r.ts_ns, r.kind) for r in records if r.kind is RecordKind.SAMPLE]
    assert len(keys) == len(set(keys))


FAN_LAYOUT_DEVICES = (("main_fan_1", 1), ("main_fan_2", 2))


async def test_a_store_that_cannot_write_still_lets_alarms_out(
    small_fs: Path, tmp_path: Path
) -> None:
    """Issue 11: the main fans stop and restart while the disk is full; the
    alarm transitions reach an independent subscriber at once, from memory
    (``seq`` 0), and once the disk has room they are stored and sent again
    with their real ``seq``."""
    import aiomqtt

    from gateway.alarms import persist
    from simulators.layout import BusLayout, DeviceLayout, MineLayout
    from simulators.mine import SimulatedMine
    from simulators.scenarios import SCENARIOS, play

    layout = MineLayout(
        "full-mine",
        (
            BusLayout(
                "vent", "tcp", tuple(DeviceLayout(n, "main_fan", u) for n, u in FAN_LAYOUT_DEVICES)
            ),
        ),
    )
    broker = _servers().mosquitto(tmp_path / "mosquitto").start()
    root = "minegate/full-mine/gw1"
    heard: list[tuple[str, dict[str, Any]]] = []
    subscribed = asyncio.Event()

    async def subscribe() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe(f"{root}/alarms/#", qos=1)
            subscribed.set()
            async for m in client.messages:
                if m.payload and "/active/" not in str(m.topic):
                    heard.append((str(m.topic), json.loads(bytes(m.payload))))  # type: ignore[arg-type]

    def transitions(live: bool) -> list[tuple[str, str]]:
        return [
            (p["fields"]["alarm"], p["fields"]["state"])
            for _, p in heard
            if p["kind"] == "alarm" and (p["seq"] == 0) is live
        ]

    expected = sorted(
        (f"{n}.running", s)
        for n, _ in FAN_LAYOUT_DEVICES
        for s in ("active_unacked", "rtn_unacked")
    )

    def saved_states() -> dict[str, str]:
        saved = persist.read(persist.state_path(small_fs))
        states = persist.states(saved).items()
        return {aid: st.status.value for aid, st in states if st.status.value != "normal"}

    listener = asyncio.create_task(subscribe())
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        async with SimulatedMine(layout, tick_s=0) as mine:
            site = tmp_path / "site.toml"
            text = mine.site_config_toml(small_fs).replace(
                "poll_interval_s = 1.0", "poll_interval_s = 0.1"
            )
            site.write_text(
                text.replace("batch_ms = 200", "batch_ms = 50")
                + f"""
[metrics]
interval_s = 0.3

[[sinks]]
name = "uplink"
type = "mqtt"
host = "127.0.0.1"
port = {broker.port}
flush_ms = 50
retry_initial_s = 0.1
retry_max_s = 0.5
"""
            )
            gateway = Gateway(load_config(site))
            run = asyncio.create_task(gateway.run())
            await asyncio.wait_for(gateway.started.wait(), 10)
            await _until(lambda: gateway.metrics.writer.records_stored > 5, 10, "first records")
            filler = fill(small_fs)
            await _until(lambda: gateway.outage.failing, 15, "the store to fail")
            await play(mine, SCENARIOS["fan_stop"], speed=1000, tick_s=0.1)
            await _until(
                lambda: len(transitions(live=True)) >= 4,
                10,
                f"the alarms, live (sink {gateway.runners[0].status()['state']}): {heard}",
            )
            assert gateway.outage.failing  # all of it while the store failed
            assert sorted(transitions(live=True)) == expected
            assert transitions(live=False) == []  # nothing stored yet
            filler.unlink()
            await _until(lambda: not gateway.outage.failing, 40, "the store to write again")
            await _until(lambda: len(transitions(live=False)) >= 4, 15, "the stored alarms sent")
            # the alarm states file, refused while the disk was full, is written again
            await _until(lambda: saved_states() == {a: "rtn_unacked" for a, _ in expected}, 5,
                         "alarms.json with the alarms as they are")  # fmt: skip
            gateway.request_stop()
            await asyncio.wait_for(run, 30)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        broker.stop()
    # sent again from the store, in order (at least once)
    assert sorted(set(transitions(live=False))) == expected
    with Store(store_path(small_fs)) as store:
        store.register_sink("check", start_at="start")
        stored = store.take("check", 1_000_000, kinds=(RecordKind.ALARM,))
    alarms = sorted((r.fields["alarm"], r.fields["state"]) for r in stored)
    assert alarms == expected  # each transition stored once


async def test_a_sink_goes_on_when_the_store_refuses_its_acks(
    small_fs: Path, tmp_path: Path
) -> None:
    """Records sent while the disk is full cannot be acked: the runner keeps
    the ack in memory and goes on (it used to die with StoreFullError, and
    the uplink stayed silent for the rest of the run, alarms included)."""
    import aiomqtt

    from gateway.sinks.config import MqttConfig
    from gateway.sinks.mqtt import MqttSink
    from gateway.sinks.runner import SinkRunner

    broker = _servers().mosquitto(tmp_path / "mosquitto").start()
    heard: list[dict[str, Any]] = []
    subscribed = asyncio.Event()

    async def subscribe() -> None:
        async with aiomqtt.Client("127.0.0.1", broker.port) as client:
            await client.subscribe("acks/#", qos=1)
            subscribed.set()
            async for m in client.messages:
                if "/status" not in str(m.topic):
                    heard.append(json.loads(bytes(m.payload)))  # type: ignore[arg-type]

    listener = asyncio.create_task(subscribe())
    store = Store(small_fs / "minegate.sqlite", synchronous="OFF")
    store.register_sink("mqtt")
    store.append([rec(i, n=5) for i in range(5)])
    filler = fill(small_fs)
    sink = MqttSink(
        MqttConfig(name="mqtt", host="127.0.0.1", port=broker.port, topic_prefix="acks"), "s", "g"
    )
    runner = SinkRunner(sink, store, "mqtt", flush_ms=10, idle_poll_s=0.05)
    stop = asyncio.Event()
    try:
        await asyncio.wait_for(subscribed.wait(), 10)
        task = asyncio.create_task(runner.run(stop))
        await _until(lambda: len(heard) >= 5, 10, "the stored samples")
        alarm = Record(RecordKind.ALARM, "dev0", T0 + 99, [], [], [], [],
                       fields={"alarm": "dev0.running", "state": "active_unacked"})  # fmt: skip
        runner.offer_live([alarm])
        await _until(lambda: any(m["kind"] == "alarm" for m in heard), 10, "the live alarm")
        await asyncio.sleep(0.3)
        assert not task.done()
        assert sorted(m["seq"] for m in heard if m["kind"] == "sample") == [1, 2, 3, 4, 5]
        assert store.backlog("mqtt") == (5, 25)  # the ack is not stored yet
        filler.unlink()
        await _until(lambda: store.backlog("mqtt") == (0, 0), 10, "the ack stored")
        stop.set()
        await asyncio.wait_for(task, 10)
    finally:
        listener.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await listener
        broker.stop()
        with contextlib.suppress(StoreFullError):  # a failed test leaves the disk full
            store.close()
    assert len([m for m in heard if m["kind"] == "sample"]) == 5  # each sent once

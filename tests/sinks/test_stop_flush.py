"""A clean stop stores every record produced before it, and the sinks then
hold all of them: the stop is made to land in each phase of the store
writer (waiting for a record, gathering a batch, appending one), on a real
fan (pymodbus), a real Mosquitto and a real influxd."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from gateway.config import load_config
from gateway.model import Record, RecordKind
from gateway.runtime import Gateway, store_path
from gateway.store import Store
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics

pytestmark = [pytest.mark.servers]

BATCH_MS = 200

SITE = """
[site]
name = "stop"
data_dir = "{data_dir}"

[store]
batch_ms = {batch_ms}

[metrics]
interval_s = 0.3

[stats]
snapshot_interval_s = 0.25

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
poll_interval_s = 0.07

[[sinks]]
name = "archive"
type = "influxdb_v1"
url = "{influx}"
database = "stopdb"
flush_ms = 20

[[sinks]]
name = "live"
type = "mqtt"
host = "127.0.0.1"
port = {mqtt}
flush_ms = 20
topic_prefix = "{prefix}"
"""


class StopWhileAppending(Store):
    """The real store; the ``nth`` append asks the gateway to stop while it
    is writing (the stop lands in the writer's append phase)."""

    nth = 0
    gateway: Gateway | None = None
    loop: asyncio.AbstractEventLoop | None = None

    def append(self, records: Any, counters: Any = None) -> None:
        type(self).nth -= 1
        if type(self).nth == 0 and self.gateway is not None and self.loop is not None:
            self.loop.call_soon_threadsafe(self.gateway.request_stop)
        super().append(records, counters)


async def _run_once(site_file: Path, stop_after_s: float | None, stop_at_append: int) -> Path:
    config = load_config(site_file)
    store: Store | None = None
    if stop_at_append:
        StopWhileAppending.nth = stop_at_append
        store = StopWhileAppending(store_path(config.data_dir))
    gateway = Gateway(config, store=store)
    StopWhileAppending.gateway, StopWhileAppending.loop = gateway, asyncio.get_running_loop()
    run = asyncio.create_task(gateway.run())
    await asyncio.wait_for(gateway.started.wait(), 10)
    if stop_after_s is not None:
        await asyncio.sleep(stop_after_s)
        gateway.request_stop()
    await asyncio.wait_for(run, 30)
    if store is not None:
        store.close()

    path = store_path(config.data_dir)
    with Store(path) as check:
        check.register_sink("check", start_at="start")
        records: list[Record] = check.take("check", 1_000_000)
        counters = check.counters()
        sinks = check.sinks()
        last = records[-1].seq
        backlogs = {name: check.backlog(name) for name in ("archive", "live")}

    produced = gateway.metrics.devices["main_fan_1"].records
    polled = [r for r in records if r.device == "main_fan_1" and r.kind is not RecordKind.STAT]
    kinds = [r.kind for r in records if r.device == "main_fan_1"]
    where = f"stop after {stop_after_s} s / at append {stop_at_append}"
    # Every record the poller produced is stored...
    assert len([r for r in polled if r.kind is not RecordKind.SNAPSHOT]) == produced, where
    # ...and so is the interrupted window's statistics (the record that was
    # lost at every stop), the stop event and the final metrics.
    assert RecordKind.STAT in kinds, where
    events = [r.fields["event"] for r in records if r.kind is RecordKind.EVENT]
    assert events[0] == "gateway_start" and events[-1] == "gateway_stop", where
    assert records[-1].kind is RecordKind.METRIC, where
    # The persistent counters agree with what the store holds (item 3).
    assert counters["records_stored"] == len(records), where
    assert counters["values_stored"] == sum(len(r) for r in records), where
    # Each sink's server accepted everything.
    assert sinks["archive"] == sinks["live"] == last, (where, sinks, last)
    assert backlogs == {"archive": (0, 0), "live": (0, 0)}, where
    return path


async def test_every_record_before_a_stop_reaches_the_store_and_each_sink(
    tmp_path: Path, mosquitto_server: Any, influxd_server: Any, h: Any
) -> None:
    h.servers.influx_query(influxd_server.url, 'CREATE DATABASE "stopdb"', post=True)
    site = tmp_path / "site.toml"
    fan_profile = None
    bus: ModbusBus | None = None
    runs: list[tuple[float | None, int]] = [
        # through the batch window and the idle wait, in steps of a fifth
        *((k * BATCH_MS / 5000.0 + 0.4, 0) for k in range(7)),
        # while the writer appends: the first batch, and a later one
        (None, 1),
        (None, 4),
    ]
    try:
        for i, (after_s, at_append) in enumerate(runs):
            text = SITE.format(
                data_dir=tmp_path / f"data{i}",
                batch_ms=BATCH_MS,
                port="{port}",
                influx=influxd_server.url,
                mqtt=mosquitto_server.port,
                prefix=h.unique("stop"),
            )
            if bus is None:
                site.write_text(text.replace("{port}", "1"))
                fan_profile = load_config(site).devices[0].profile
                bus = ModbusBus(
                    "vent", [SimulatedDevice("main_fan_1", fan_profile, 1, MinePhysics(seed=1))]
                )
                bus.refresh()
                port = await bus.serve_tcp()
            site.write_text(text.replace("{port}", str(port)))
            await _run_once(site, after_s, at_append)
    finally:
        if bus is not None and bus.server is not None:
            await bus.server.shutdown()

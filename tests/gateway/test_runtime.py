"""The runtime in-process: bounded writer queue, shutdown flush, metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from gateway.model import Record, RecordKind
from gateway.runtime import Gateway, store_path
from gateway.store import Store

SITE = """
[site]
name = "rt"
data_dir = "data"

[store]
batch_ms = 1500        # slow writer...
queue_size = 10        # ...and a tiny queue: producers must wait

[metrics]
interval_s = 0.5

[stats]
snapshot_interval_s = 1

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
max_interval_s = 0.05  # record every poll: plenty of records
[devices.points.wind_speed]
max_interval_s = 0.05
"""


async def test_bounded_queue_backpressure_loses_nothing_and_flushes_on_stop(
    tmp_path: Path, fan_site: Any
) -> None:
    async with fan_site(tmp_path, SITE) as config:
        gateway = Gateway(config)
        readings: list[Record] = []
        gateway.add_observer(readings.append)
        run = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.started.wait(), 10)
        await asyncio.sleep(2.5)
        gateway.request_stop()
        await asyncio.wait_for(run, 20)

    m = gateway.metrics
    # Observers (alarms) see every reading, not only what RBE lets through.
    assert sum(len(r) for r in readings) == m.devices["main_fan_1"].readings
    assert m.writer.backpressure > 0, "the tiny queue never filled"
    assert gateway.queue.qsize() == 0
    produced = m.devices["main_fan_1"].records
    with Store(store_path(config.data_dir)) as store:
        store.register_sink("check", start_at="start")
        records = store.take("check", 1_000_000)
        counters = store.counters()
    samples = [r for r in records if r.kind is RecordKind.SAMPLE]
    # Every record a poller produced reached the store, despite the waits.
    assert (
        len(samples)
        + sum(1 for r in records if r.kind is RecordKind.EVENT and r.device == "main_fan_1")
        == produced
    )
    kinds = {r.kind for r in records}
    assert {RecordKind.METRIC, RecordKind.SNAPSHOT, RecordKind.EVENT} <= kinds
    assert counters["polls"] == m.devices["main_fan_1"].polls
    assert counters["backpressure"] == m.writer.backpressure
    metric = [r for r in records if r.kind is RecordKind.METRIC][-1]
    values = dict(zip(metric.points, metric.values, strict=True))
    assert values["main_fan_1.state"] == "online"
    assert values["total.latency_p99_ms"] > 0

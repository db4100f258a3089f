"""`minegate status` tells an operator which sink is stuck, why, and how big
its backlog is (the uplink here is a closed port: a real refused connect)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway.runtime import Gateway, store_path
from gateway.status import read_status, render

SITE = """
[site]
name = "st"
data_dir = "data"

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
poll_interval_s = 0.1

[[sinks]]
name = "uplink"
type = "mqtt"
host = "127.0.0.1"
port = {dead}
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_status_shows_stalled_sink_backlog_and_error(tmp_path: Path, fan_site: Any) -> None:
    dead = closed_port()
    async with fan_site(tmp_path, SITE.replace("{dead}", str(dead))) as config:
        gateway = Gateway(config)
        run = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.started.wait(), 10)
        await asyncio.sleep(2.0)
        gateway.request_stop()
        await asyncio.wait_for(run, 20)

    report = read_status(store_path(config.data_dir))
    (uplink,) = report.sinks
    assert uplink["cursor"] == 0
    assert uplink["backlog_records"] > 0
    console = Console(record=True, width=160)
    render(report, console, report.metrics_ts_ns)
    text = console.export_text()
    assert "stalled" in text
    assert f"sink uplink: last error: connect: mqtt://127.0.0.1:{dead}" in text

"""The demo's live table shows the age of the last *reading*, not of the
last stored (report-by-exception) value: a steady, healthy point is young."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from rich.console import Console

from gateway.config import load_config
from gateway.demo import LiveReadings, live_view
from gateway.runtime import Gateway
from simulators.mine import SimulatedMine


async def test_live_view_ages_come_from_readings(tmp_path: Path) -> None:
    async with SimulatedMine(seed=3) as mine:
        site = tmp_path / "site.toml"
        site.write_text(mine.site_config_toml(tmp_path))
        config = load_config(site)
        gateway = Gateway(config)
        readings = LiveReadings()
        gateway.add_observer(readings.observe)
        run = asyncio.create_task(gateway.run())
        try:
            await asyncio.wait_for(gateway.started.wait(), 10)
            await asyncio.sleep(4.0)
            now = time.time_ns()
            # The fan's model string never changes, so the store recorded it
            # once; the reading is still refreshed every poll.
            model = readings.samples[("main_fan_1", "model")]
            assert (now - model.ts_ns) / 1e9 < 2.5
            stored = {(s.device, s.point): s for s in gateway.store.latest()}
            assert stored[("main_fan_1", "model")].ts_ns < model.ts_ns
            console = Console(record=True, width=200)
            console.print(live_view(config, gateway, now, "test", readings))
            text = console.export_text()
        finally:
            gateway.request_stop()
            await asyncio.wait_for(run, 20)
    for device in config.devices:
        assert device.name in text
    assert "FBCDZ" in text  # the fan's model string is on screen

"""Alarm outputs: a beacon on while a critical alarm is active, a horn on
until it is acknowledged, written to a simulated annunciator's coils over
real Modbus TCP."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateway.alarms.cli import send
from gateway.config import load_config
from gateway.model import RecordKind
from gateway.runtime import Gateway, store_path
from gateway.store import Store
from simulators.layout import BusLayout, DeviceLayout, MineLayout
from simulators.mine import SimulatedMine
from simulators.physics import EntitySpec

LAYOUT = MineLayout(
    "beacon-mine",
    (
        BusLayout(
            "vent",
            "tcp",
            (
                DeviceLayout("main_fan_1", "main_fan", 1),
                DeviceLayout("annunciator_1", "annunciator", 2),
            ),
        ),
    ),
    entities={"main_fan_1": EntitySpec("main_fan"), "annunciator_1": EntitySpec("annunciator")},
)

OUTPUTS = """
[alarm_control]
tick_ms = 50

[[alarm_control.users]]
name = "li"
rights = ["ack"]

[[alarm_control.outputs]]
point = "annunciator_1.beacon"
min_priority = "critical"

[[alarm_control.outputs]]
point = "annunciator_1.horn"
min_priority = "critical"
until_ack = true
"""


async def until(cond: object, within_s: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + within_s
    while not cond():  # type: ignore[operator]
        assert loop.time() < end, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_beacon_and_horn_follow_the_critical_alarm(tmp_path: Path) -> None:
    async with SimulatedMine(LAYOUT, tick_s=0) as mine:
        text = mine.site_config_toml(tmp_path / "data").replace(
            "poll_interval_s = 1.0", "poll_interval_s = 0.1"
        )
        (tmp_path / "site.toml").write_text(text + OUTPUTS)
        config = load_config(tmp_path / "site.toml")
        gateway = Gateway(config)
        run = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.started.wait(), 10)

        def out(name: str) -> bool:
            return bool(mine.value("annunciator_1", name))

        await asyncio.sleep(0.5)
        assert not out("beacon") and not out("horn")
        mine.physics.set("main_fan_1", "running", False)  # main fan stopped: critical
        mine.advance(1.0)
        await until(lambda: out("beacon") and out("horn"))
        reply = await asyncio.to_thread(
            send, config.data_dir, {"user": "li", "cmd": "ack", "alarm": "main_fan_1.running"}
        )
        assert reply["ok"], reply
        await until(lambda: not out("horn"))  # silenced by the acknowledgement
        assert out("beacon")  # the beacon stays while the fan is stopped
        mine.physics.set("main_fan_1", "running", True)
        mine.advance(1.0)
        await until(lambda: not out("beacon"))
        # let the writer commit the last event before stopping: a record the
        # writer holds while it waits for its batch interval is lost on stop
        # on main today (issue 9, "writer stop", fixed on another branch)
        await asyncio.sleep(0.6)
        gateway.request_stop()
        await asyncio.wait_for(run, 30)

    with Store(store_path(config.data_dir), retention_s=1e9, max_bytes=2**30) as store:
        store.register_sink("check", start_at="start")
        events = store.take("check", 100_000, kinds=(RecordKind.EVENT,))
    switched = [
        (r.fields["point"], r.fields["on"])
        for r in events
        if r.fields.get("event") == "alarm_output"
    ]
    assert switched == [
        ("beacon", False), ("horn", False),  # set at start
        ("beacon", True), ("horn", True), ("horn", False), ("beacon", False),
    ]  # fmt: skip

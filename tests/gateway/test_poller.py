"""Pollers against real peers: simulated devices served by pymodbus servers,
read through the drivers' TCP hubs. Real clock with short intervals: the
point is timing across tasks and sockets, which virtual time cannot show."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.modbus import TcpHub
from gateway.config import CompiledDevice, SiteConfig, load_config
from gateway.metrics import DeviceStats
from gateway.model import Quality, Record, RecordKind
from gateway.poller import ModbusPoller
from simulators.faults import Fault
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics

SITE = """
[site]
name = "t"
data_dir = "data"

[[buses]]
name = "vent"
type = "tcp"
host = "127.0.0.1"
port = {vent_port}
timeout_s = 0.2
retries = 0

[[buses]]
name = "pumps"
type = "tcp"
host = "127.0.0.1"
port = {pump_port}
timeout_s = 0.2
retries = 0

[[devices]]
name = "main_fan_1"
bus = "vent"
unit = 1
profile = "main_fan"
poll_interval_s = 0.1

[[devices]]
name = "drainage_1"
bus = "pumps"
unit = 2
profile = "drainage"
poll_interval_s = 0.1
comm_loss_after = 2
"""


@dataclass
class Rig:
    config: SiteConfig
    buses: dict[str, ModbusBus]
    records: list[Record]

    def device(self, name: str) -> CompiledDevice:
        return next(d for d in self.config.devices if d.name == name)

    def sim(self, name: str) -> SimulatedDevice:
        for bus in self.buses.values():
            for dev in bus.devices.values():
                if dev.name == name:
                    return dev
        raise KeyError(name)

    def of(self, device: str, kind: RecordKind = RecordKind.SAMPLE) -> list[Record]:
        return [r for r in self.records if r.device == device and r.kind is kind]


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    physics = MinePhysics(seed=3)
    cfg0 = load_config(_write(tmp_path, 1, 1))
    profiles = {d.name: d.profile for d in cfg0.devices}
    vent = ModbusBus("vent", [SimulatedDevice("main_fan_1", profiles["main_fan_1"], 1, physics)])
    pumps = ModbusBus("pumps", [SimulatedDevice("drainage_1", profiles["drainage_1"], 2, physics)])
    vent.refresh()
    pumps.refresh()
    vport = await vent.serve_tcp()
    pport = await pumps.serve_tcp()
    try:
        yield Rig(load_config(_write(tmp_path, vport, pport)), {"vent": vent, "pumps": pumps}, [])
    finally:
        for bus in (vent, pumps):
            if bus.server is not None:
                await bus.server.shutdown()


def _write(tmp: Path, vport: int, pport: int) -> Path:
    path = tmp / "site.toml"
    path.write_text(SITE.replace("{vent_port}", str(vport)).replace("{pump_port}", str(pport)))
    return path


async def _run_pollers(rig: Rig, seconds: float, during=None) -> dict[str, DeviceStats]:  # type: ignore[no-untyped-def]
    stats = {d.name: DeviceStats() for d in rig.config.devices}

    async def emit(rec: Record) -> None:
        rig.records.append(rec)

    async with TcpHub("127.0.0.1", rig.config.bus("vent").port, timeout_s=0.2, retries=0, name="vent") as vh, \
            TcpHub("127.0.0.1", rig.config.bus("pumps").port, timeout_s=0.2, retries=0, name="pumps") as ph:  # fmt: skip
        hubs = {"vent": vh, "pumps": ph}
        tasks = [
            asyncio.create_task(ModbusPoller(d, hubs[d.bus.name], emit, stats[d.name]).run())
            for d in rig.config.devices
        ]
        if during is not None:
            await during()
        else:
            await asyncio.sleep(seconds)
        for t in tasks:
            t.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if not isinstance(r, asyncio.CancelledError):
                raise AssertionError(f"poller died: {r!r}")
    return stats


async def test_healthy_devices_record_good_values(rig: Rig) -> None:
    stats = await _run_pollers(rig, 0.6)
    fan = rig.of("main_fan_1")
    assert fan, "no samples from the fan"
    first = fan[0]
    assert all(q is Quality.GOOD for r in fan for q in r.qualities)
    recorded = {p for r in fan for p in r.points}
    assert recorded == {p.name for p in rig.device("main_fan_1").points}
    assert first.units[first.points.index("airflow")] == "m3/min"
    assert stats["main_fan_1"].polls >= 5
    assert stats["main_fan_1"].error_total == 0


async def test_silent_device_goes_comm_loss_without_delaying_others_then_recovers(rig: Rig) -> None:
    pump = rig.sim("drainage_1")

    async def scenario() -> None:
        await asyncio.sleep(0.35)
        pump.faults.inject(Fault.make("silent"))
        await asyncio.sleep(1.2)
        pump.faults.clear()
        await asyncio.sleep(0.6)

    stats = await _run_pollers(rig, 0, during=scenario)

    events = [r.fields["event"] for r in rig.of("drainage_1", RecordKind.EVENT)]
    assert events == ["comm_loss", "comm_restored"]
    samples = rig.of("drainage_1")
    loss = [r for r in samples if Quality.COMM_LOSS in r.qualities]
    assert len(loss) == 1, "comm loss must be written once, not every cycle"
    assert all(v is None for v in loss[0].values)
    assert set(loss[0].points) == {p.name for p in rig.device("drainage_1").points}
    # Nothing else from the pump between the loss record and recovery: the
    # last good values are never re-sent with fresh timestamps.
    i = samples.index(loss[0])
    after = samples[i + 1 :]
    assert after and all(q is Quality.GOOD for q in after[0].qualities)
    restored = rig.of("drainage_1", RecordKind.EVENT)[1]
    assert restored.ts_ns <= after[0].ts_ns
    assert stats["drainage_1"].errors["timeout"] >= 2
    assert stats["drainage_1"].comm_losses == 1

    # The fan kept polling on its own schedule while the pump timed out.
    assert stats["main_fan_1"].error_total == 0
    # (0.1 s slots over ~2.15 s; a loaded CI core may cost a slot, not more.)
    assert stats["main_fan_1"].overruns <= 2
    assert stats["main_fan_1"].polls >= 18

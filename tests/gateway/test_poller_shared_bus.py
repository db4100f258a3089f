"""Pollers on a bus shared with other devices, against real pymodbus servers
(the project's simulators): when a reading is stamped, what a Modbus
gateway's exceptions 10/11 mean for a device, and how a merged read refused
for one missing address is cut down to the points the device lacks."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from drivers.modbus import ModbusHub, RtuOverTcpHub, TcpHub
from drivers.plan import build_plan
from drivers.types import DataType, PointSpec, RegisterKind
from gateway.config import CompiledDevice, load_config
from gateway.metrics import DeviceMetrics
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
name = "line"
type = "tcp"
host = "127.0.0.1"
port = 1

[[devices]]
name = "main_fan_1"
bus = "line"
unit = 1
profile = "main_fan"
comm_loss_after = 2

[[devices]]
name = "drainage_1"
bus = "line"
unit = 2
profile = "drainage"
comm_loss_after = 2

[[devices]]
name = "drainage_9"
bus = "line"
unit = 9
profile = "drainage"
comm_loss_after = 2
"""


@dataclass
class Line:
    """One bus with a fan (unit 1) and a pump (unit 2); unit 9 is configured
    in the gateway but not on the line."""

    sim: ModbusBus
    devices: dict[str, CompiledDevice]
    records: list[Record]

    def poller(
        self, name: str, hub: ModbusHub, device: CompiledDevice | None = None
    ) -> ModbusPoller:
        async def emit(rec: Record) -> None:
            self.records.append(rec)

        return ModbusPoller(device or self.devices[name], hub, emit, DeviceMetrics())

    def of(self, device: str, kind: RecordKind = RecordKind.SAMPLE) -> list[Record]:
        return [r for r in self.records if r.device == device and r.kind is kind]


async def _line(tmp_path: Path, framing: str, absent_answer: int | None = None) -> Line:
    site = tmp_path / "site.toml"
    site.write_text(SITE)
    devices = {d.name: d for d in load_config(site).devices}
    physics = MinePhysics(seed=5)
    sims = [
        SimulatedDevice(name, devices[name].profile, unit, physics)
        for name, unit in (("main_fan_1", 1), ("drainage_1", 2))
    ]
    bus = ModbusBus("line", sims, framing=framing, absent_answer=absent_answer)
    bus.refresh()
    await bus.serve_tcp()
    return Line(bus, devices, [])


@pytest.fixture
async def line(tmp_path: Path) -> AsyncIterator[Line]:
    bus = await _line(tmp_path, "tcp")
    yield bus
    await bus.sim.close()


@pytest.fixture
async def dtu_line(tmp_path: Path) -> AsyncIterator[Line]:
    """The line behind a Modbus TCP gateway that answers exception 11 for
    units that do not answer it."""
    bus = await _line(tmp_path, "tcp", absent_answer=11)
    yield bus
    await bus.sim.close()


# --- when a reading is stamped -------------------------------------------------------


@pytest.mark.parametrize("framing", ["tcp", "rtu"])
async def test_reading_is_stamped_when_its_request_goes_on_the_wire(
    tmp_path: Path, framing: str
) -> None:
    """The pump waits for the bus while the slow fan answers: its values
    carry the time its own request was sent, not the time it queued."""
    line = await _line(tmp_path, framing)
    hub_cls = TcpHub if framing == "tcp" else RtuOverTcpHub
    delay = 0.4
    try:
        async with hub_cls("127.0.0.1", line.sim.port, timeout_s=2.0, retries=0, name="l") as hub:
            await line.poller("drainage_1", hub).poll_once()  # the link is up
            line.records.clear()
            # New pollers: their first cycle records every value.
            fan = line.poller("main_fan_1", hub)
            pump = line.poller("drainage_1", hub)
            line.sim.device("main_fan_1").faults.inject(Fault.make("slow", delay_s=delay))
            fan_task = asyncio.create_task(fan.poll_once())
            await asyncio.sleep(0.05)  # the fan's first request is on the wire
            queued_ns = time.time_ns()
            await pump.poll_once()
            answered_ns = time.time_ns()
            await fan_task
    finally:
        await line.sim.close()
    pump_samples = line.of("drainage_1")
    assert pump_samples
    for rec in pump_samples:
        # Sent after the fan's slow answer freed the bus (the old stamp was
        # taken when the pump started waiting, ~0.35 s earlier) ...
        assert rec.ts_ns - queued_ns >= (delay - 0.1) * 1e9, rec.ts_ns - queued_ns
        # ... and before its own answer came back.
        assert rec.ts_ns <= answered_ns
    fan_samples = line.of("main_fan_1")
    assert fan_samples and all(r.ts_ns < queued_ns for r in fan_samples[:1])


# --- exceptions 10 and 11: the device behind the gateway is silent ---------------------


async def test_gateway_exception_11_is_comm_loss_not_bad_values(
    dtu_line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    async with TcpHub("127.0.0.1", dtu_line.sim.port, timeout_s=1.0, retries=0, name="l") as hub:
        absent = dtu_line.poller("drainage_9", hub)
        present = dtu_line.poller("drainage_1", hub)
        for _ in range(3):
            await absent.poll_once()
            await present.poll_once()
    samples = dtu_line.of("drainage_9")
    assert all(q is Quality.COMM_LOSS for r in samples for q in r.qualities)
    assert len(samples) == 1 and len(samples[0].points) == len(
        dtu_line.devices["drainage_9"].points
    )
    events = dtu_line.of("drainage_9", RecordKind.EVENT)
    assert [e.fields["event"] for e in events] == ["comm_loss"]
    assert "failed to respond" in str(events[0].fields["error"])
    assert absent.stats.state == "comm_loss" and absent.stats.comm_losses == 1
    # One failed request per cycle (the rest of a silent cycle is skipped).
    assert absent.stats.errors["gateway"] == 3 and absent.stats.errors["exception"] == 0
    # The device behind it is fine and unaffected.
    assert present.stats.state == "online"
    assert all(q is Quality.GOOD for r in dtu_line.of("drainage_1") for q in r.qualities)
    # The log says what the code means, not just the number.
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("exception 11" in m and "failed to respond" in m for m in warned), warned


async def test_gateway_exception_10_is_comm_loss_until_the_path_returns(line: Line) -> None:
    pump = line.sim.device("drainage_1")
    async with TcpHub("127.0.0.1", line.sim.port, timeout_s=1.0, retries=0, name="l") as hub:
        poller = line.poller("drainage_1", hub)
        await poller.poll_once()
        pump.faults.inject(Fault.make("exception", code=10))
        for _ in range(3):
            await poller.poll_once()
        assert poller.stats.state == "comm_loss"
        pump.faults.clear()
        await poller.poll_once()
    events = [e.fields["event"] for e in line.of("drainage_1", RecordKind.EVENT)]
    assert events == ["comm_loss", "comm_restored"]
    qualities = {q for r in line.of("drainage_1") for q in r.qualities}
    assert Quality.BAD not in qualities and Quality.COMM_LOSS in qualities
    assert poller.stats.state == "online"


# --- a merged read refused because one point is at an address the device lacks -----


def _with_missing_point(device: CompiledDevice) -> tuple[CompiledDevice, PointSpec]:
    """The fan as a site might misconfigure it: one extra holding point just
    past the last register the device has, close enough to be merged."""
    holding = [p for p in device.points if p.kind is RegisterKind.HOLDING]
    end = max(p.address + p.width for p in holding)
    extra = PointSpec("phantom", RegisterKind.HOLDING, end + 2, DataType.UINT16)
    points = (*device.points, extra)
    plan = build_plan(points, merge=True, max_gap=10)
    merged = next(r for r in plan.requests if extra in r.points)
    assert len(merged.points) == len(holding) + 1  # one read covers them all
    return dataclasses.replace(device, points=points, plan=plan), extra


async def test_refused_merged_read_is_cut_to_the_missing_point(
    line: Line, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device, extra = _with_missing_point(line.devices["main_fan_1"])
    sim = line.sim.device("main_fan_1")
    async with TcpHub("127.0.0.1", line.sim.port, timeout_s=1.0, retries=0, name="l") as hub:
        poller = line.poller("main_fan_1", hub, device)
        await poller.poll_once()
        plan_after_first = list(poller.requests)
        sent_first = sim.requests
        await poller.poll_once()
        await poller.poll_once()
        sent_later = (sim.requests - sent_first) / 2
    # Every point but the phantom is good; the phantom alone is bad.
    latest: dict[str, Quality] = {}
    for rec in line.of("main_fan_1"):
        latest.update(zip(rec.points, rec.qualities, strict=True))
    assert latest.pop("phantom") is Quality.BAD
    assert set(latest) == {p.name for p in device.points} - {"phantom"}
    assert all(q is Quality.GOOD for q in latest.values()), latest
    assert poller.stats.state == "online"
    # The cut plan is kept: later cycles send one read per piece, no more.
    assert poller.requests == plan_after_first
    assert sent_later == len(plan_after_first)
    assert len(plan_after_first) < len(device.points)  # cut, but not into single points
    lone = [r for r in plan_after_first if extra in r.points]
    assert len(lone) == 1 and lone[0].points == (extra,)
    holding = [r for r in plan_after_first if r.kind is RegisterKind.HOLDING]
    assert {p for r in holding for p in r.points} == {
        p for p in device.points if p.kind is RegisterKind.HOLDING
    }
    # One warning, naming the address and the point, over three cycles.
    warned = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warned) == 1, warned
    assert f"holding {extra.address}" in warned[0] and "phantom" in warned[0]
    assert "illegal data address" in warned[0]


async def test_unmerged_refusal_marks_only_its_points(line: Line) -> None:
    """Exception 4 (device failure) is not about addresses: nothing is cut,
    the request's points are bad, as before."""
    sim = line.sim.device("drainage_1")
    async with TcpHub("127.0.0.1", line.sim.port, timeout_s=1.0, retries=0, name="l") as hub:
        poller = line.poller("drainage_1", hub)
        planned = list(poller.requests)
        sim.faults.inject(Fault.make("exception", code=4))
        await poller.poll_once()
    assert poller.requests == planned
    assert all(q is Quality.BAD for r in line.of("drainage_1") for q in r.qualities)

"""Production machinery: the hoist winds trip after trip and its power shows
on its feeder, a trip brakes it and counts; the crusher's throughput and
current follow the feed; both served by pymodbus from their profiles and
polled by the unmodified gateway runtime."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

from simpeers import TcpBench, close_enough, profile, read_point

from gateway.config import load_config
from gateway.runtime import Gateway
from simulators.layout import BusLayout, DeviceLayout, MineLayout
from simulators.mine import SimulatedMine
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import DEFAULT_ENTITIES, EntitySpec, MinePhysics


def _run(physics: MinePhysics, seconds: float, dt: float = 0.5) -> list[dict[str, object]]:
    out = []
    for _ in range(int(seconds / dt)):
        physics.step(dt)
        out.append(dict(physics.snapshot("hoist_1")))
    return out


def test_a_started_hoist_winds_up_dwells_and_winds_back() -> None:
    physics = MinePhysics(seed=3, entities={"hoist_1": "hoist"})
    assert physics.get("hoist_1", "running") is False
    assert physics.get("hoist_1", "motor_power") == 0.0
    physics.set("hoist_1", "running", True)
    cycles = int(physics.get("hoist_1", "cycles"))  # type: ignore[arg-type]
    trace = _run(physics, 150.0)
    speeds = [float(s["speed"]) for s in trace]  # type: ignore[arg-type]
    positions = [float(s["position"]) for s in trace]  # type: ignore[arg-type]
    assert max(speeds) == 8.0 and min(speeds) == 0.0
    assert min(positions) == 0.0 and max(positions) == 420.0  # top reached, then back down
    up = [s for s in trace if s["direction"] == -1]
    down = [s for s in trace if s["direction"] == 1]
    assert up and down
    # lifting a loaded skip at full speed: about 9 t x g x 8 m/s / 0.9
    cruising = [float(s["motor_power"]) for s in trace if s["speed"] == 8.0]  # type: ignore[arg-type]
    assert 700 < sum(cruising) / len(cruising) < 900
    # loading and tipping at the ends: the winder stands, only its auxiliaries draw
    dwelling = [
        float(s["motor_power"])  # type: ignore[arg-type]
        for before, s in itertools.pairwise(trace)
        if s["speed"] == 0.0 and before["speed"] == 0.0
    ]
    assert len(dwelling) >= 2 * 10 and all(p < 20 for p in dwelling)
    assert int(trace[-1]["cycles"]) >= cycles + 2  # type: ignore[call-overload]


def test_a_stopped_hoist_brakes_where_it_is_and_a_trip_counts() -> None:
    physics = MinePhysics(seed=3, entities={"hoist_1": "hoist"})
    physics.set("hoist_1", "running", True)
    _run(physics, 30.0)
    physics.set("hoist_1", "running", False)
    _run(physics, 15.0)
    where = physics.get("hoist_1", "position")
    assert 0.0 < float(where) < 420.0  # type: ignore[arg-type]
    assert physics.get("hoist_1", "speed") == 0.0 and physics.get("hoist_1", "motor_power") == 0.0
    _run(physics, 30.0)
    assert physics.get("hoist_1", "position") == where
    physics.set("hoist_1", "running", True)
    _run(physics, 5.0)
    trips = int(physics.get("hoist_1", "trips"))  # type: ignore[call-overload]
    physics.set("hoist_1", "fault", 7)
    assert physics.get("hoist_1", "running") is False
    assert physics.get("hoist_1", "trips") == trips + 1
    physics.step(0.5)
    assert physics.get("hoist_1", "speed") == 0.0


def test_the_hoist_shows_on_its_feeder_and_a_lost_feeder_trips_it() -> None:
    entities = {
        "hoist_1": EntitySpec("hoist"),
        "power_meter_1": EntitySpec("power_meter", {"feeds": ("hoist_1",), "base_kw": 200.0}),
    }
    physics = MinePhysics(seed=3, entities=entities)
    idle = float(physics.get("power_meter_1", "active_power"))  # type: ignore[arg-type]
    physics.set("hoist_1", "running", True)
    for _ in range(30):
        physics.step(1.0)
    assert float(physics.get("power_meter_1", "active_power")) > idle + 600  # type: ignore[arg-type]
    trips = int(physics.get("hoist_1", "trips"))  # type: ignore[call-overload]
    physics.set("power_meter_1", "breaker_tripped", True)
    physics.step(1.0)
    assert physics.get("hoist_1", "running") is False
    assert physics.get("hoist_1", "trips") == trips + 1


def test_idle_machines_leave_the_seeded_mine_as_it_was() -> None:
    """Stopped, the hoist and crusher draw no random numbers: a default
    mine runs the same sequence as one without them."""
    without = {k: v for k, v in DEFAULT_ENTITIES.items() if k not in ("hoist_1", "crusher_1")}
    a, b = MinePhysics(seed=9), MinePhysics(seed=9, entities=without)
    for _ in range(20):
        a.step(1.0)
        b.step(1.0)
    assert a.snapshot("gas_monitor_1") == b.snapshot("gas_monitor_1")
    assert a.snapshot("power_meter_1") == b.snapshot("power_meter_1")


def test_crusher_throughput_and_current_follow_the_feed() -> None:
    physics = MinePhysics(seed=4, entities={"crusher_1": EntitySpec("crusher", {"feed": 300.0})})
    assert physics.get("crusher_1", "motor_current") == 0.0
    physics.set("crusher_1", "running", True)
    physics.step(1.0)
    empty = float(physics.get("crusher_1", "motor_current"))  # type: ignore[arg-type]
    assert empty > 50  # idle current of a running crusher
    total = float(physics.get("crusher_1", "total_tonnes"))  # type: ignore[arg-type]
    for _ in range(120):
        physics.step(1.0)
    assert abs(float(physics.get("crusher_1", "throughput")) - 300.0) < 30  # type: ignore[arg-type]
    assert float(physics.get("crusher_1", "motor_current")) > 1.8 * empty  # type: ignore[arg-type]
    gained = float(physics.get("crusher_1", "total_tonnes")) - total  # type: ignore[arg-type]
    assert 5.0 < gained < 300.0 * 121 / 3600  # about 10 t in two minutes at 300 t/h
    physics.set("crusher_1", "fault", 2)
    for _ in range(120):
        physics.step(1.0)
    assert physics.get("crusher_1", "running") is False
    assert physics.get("crusher_1", "throughput") == 0.0
    assert physics.get("crusher_1", "motor_current") == 0.0


async def test_every_point_reads_back_over_modbus_tcp() -> None:
    from pymodbus.client import AsyncModbusTcpClient
    from pymodbus.framer import FramerType

    physics = MinePhysics(seed=5, entities={"hoist_1": "hoist", "crusher_1": "crusher"})
    physics.set("hoist_1", "running", True)
    physics.set("crusher_1", "running", True)
    for _ in range(20):
        physics.step(1.0)
    devices = [
        SimulatedDevice("hoist_1", profile("hoist"), 1, physics),
        SimulatedDevice("crusher_1", profile("crusher"), 2, physics),
    ]
    bus = ModbusBus("production", devices, framing="tcp")
    port = await bus.serve_tcp("127.0.0.1", 0)
    client = AsyncModbusTcpClient(
        "127.0.0.1", port=port, framer=FramerType.SOCKET, timeout=0.8, retries=0
    )
    await client.connect()
    try:
        bench = TcpBench(physics, bus, port, client)
        for name in ("hoist_1", "crusher_1"):
            sim = bench.device(name)
            for spec in sim.profile.points:
                got = await read_point(client, sim.unit, spec)
                want = physics.get(name, spec.sim or spec.name)
                assert close_enough(got, want, spec), f"{name}.{spec.name}: {got!r} vs {want!r}"
        # the hoist is read-only: no start over Modbus
        refused = await client.write_register(0, 0, device_id=1)
        assert refused.isError() and refused.exception_code == 2
    finally:
        client.close()
        await bus.close()


PRODUCTION = MineLayout(
    name="production",
    buses=(
        BusLayout(
            "plant-tcp",
            "tcp",
            (
                DeviceLayout("hoist_1", "hoist", 1, "Main shaft winder house"),
                DeviceLayout("crusher_1", "crusher", 2, "Primary crushing station"),
            ),
        ),
    ),
)


async def test_the_gateway_polls_the_hoist_and_crusher(tmp_path: Path) -> None:
    async with SimulatedMine(PRODUCTION, seed=6, bus_timing=False) as mine:
        mine.operate("hoist_1", "running", 1)
        mine.operate("crusher_1", "running", 1)
        site = tmp_path / "site.toml"
        site.write_text(mine.site_config_toml(tmp_path / "data"))
        config = load_config(site)
        assert {d.device_class for d in config.devices} == {"hoist", "processing"}
        gateway = Gateway(config)
        run = asyncio.create_task(gateway.run())
        try:
            await asyncio.wait_for(gateway.started.wait(), 10)
            latest: dict[tuple[str, str], object] = {}
            for _ in range(40):
                await asyncio.sleep(0.25)
                latest = {(s.device, s.point): s for s in gateway.store.latest()}
                hoist = latest.get(("hoist_1", "speed"))
                if hoist is not None and float(hoist.value) > 0:  # type: ignore[attr-defined]
                    break
        finally:
            gateway.request_stop()
            await asyncio.wait_for(run, 20)
    assert latest[("hoist_1", "running")].value  # type: ignore[attr-defined]
    assert float(latest[("hoist_1", "speed")].value) > 0  # type: ignore[attr-defined]
    assert latest[("crusher_1", "running")].value  # type: ignore[attr-defined]
    for point in ("position", "motor_current", "motor_power", "trips", "cycles"):
        assert latest[("hoist_1", point)].quality == "good"  # type: ignore[attr-defined]
    for point in ("motor_current", "throughput", "total_tonnes"):
        assert latest[("crusher_1", point)].quality == "good"  # type: ignore[attr-defined]

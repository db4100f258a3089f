"""Profile-built devices over Modbus TCP, read by a plain pymodbus client:
values as encoded, device behaviour (gaps, writes, absent units) and every
fault kind as a client sees it."""

from __future__ import annotations

import time

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from simpeers import TcpBench, close_enough, profile, read_point

from drivers import codec
from drivers.types import RegisterKind
from simulators.faults import Fault, FaultKind, corrupt_rtu, corrupt_tcp
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics


@pytest.mark.parametrize("device", ["main_fan_1", "power_meter_1", "aux_fan_1"])
async def test_every_point_reads_back_as_the_physics_value(
    tcp_bench: TcpBench, device: str
) -> None:
    sim = tcp_bench.device(device)
    for spec in sim.profile.points:
        got = await read_point(tcp_bench.client, sim.unit, spec)
        want = tcp_bench.physics.get(device, spec.sim or spec.name)
        assert close_enough(got, want, spec), (
            f"{device}.{spec.name}: read {got!r}, physics {want!r}"
        )


async def test_values_follow_the_physics_after_refresh(tcp_bench: TcpBench) -> None:
    spec = next(p for p in tcp_bench.device("main_fan_1").profile.points if p.name == "airflow")
    before = await read_point(tcp_bench.client, 1, spec)
    tcp_bench.physics.set("main_fan_1", "running", False)
    tcp_bench.physics.step(60.0)
    tcp_bench.bus.refresh()
    after = await read_point(tcp_bench.client, 1, spec)
    assert float(after) < 0.3 * float(before)
    assert close_enough(after, tcp_bench.physics.get("main_fan_1", "airflow"), spec)


async def test_status_word_packs_several_bits(tcp_bench: TcpBench) -> None:
    tcp_bench.physics.set("power_meter_1", "earth_leakage", True)
    tcp_bench.physics.step(1.0)
    tcp_bench.bus.refresh()
    rr = await tcp_bench.client.read_holding_registers(0, count=1, device_id=2)
    assert rr.registers == [0b0101]  # closed (bit 0) and earth leakage (bit 2)


async def test_reads_past_the_map_are_illegal_address(tcp_bench: TcpBench) -> None:
    rr = await tcp_bench.client.read_holding_registers(20, count=9, device_id=1)
    assert rr.isError() and rr.exception_code == 2


async def test_merge_false_device_rejects_reads_spanning_gaps(tcp_bench: TcpBench) -> None:
    # aux_fan maps holding 0, 1, 4-5, 8, 9: 0..1 is fine, 0..5 spans a gap.
    ok = await tcp_bench.client.read_holding_registers(0, count=2, device_id=3)
    assert not ok.isError()
    gap = await tcp_bench.client.read_holding_registers(0, count=6, device_id=3)
    assert gap.isError() and gap.exception_code == 2
    # main_fan (merge = true) answers across its gap with zeros.
    fan = await tcp_bench.client.read_holding_registers(8, count=14, device_id=1)
    assert not fan.isError() and fan.registers[2:12] == [0] * 10


async def test_writing_a_writable_coil_acts_on_the_physics(tcp_bench: TcpBench) -> None:
    assert tcp_bench.physics.get("aux_fan_1", "running") is True
    rr = await tcp_bench.client.write_coil(0, False, device_id=3)
    assert not rr.isError()
    assert tcp_bench.physics.get("aux_fan_1", "running") is False
    # Read-only registers refuse writes, as real devices do.
    refused = await tcp_bench.client.write_register(2, 7, device_id=1)
    assert refused.isError() and refused.exception_code == 2


async def test_absent_unit_is_silent(tcp_bench: TcpBench) -> None:
    started = time.monotonic()
    with pytest.raises(ModbusIOException):
        await tcp_bench.client.read_holding_registers(0, count=1, device_id=9)
    assert time.monotonic() - started >= 0.75  # the client waited out its timeout


async def test_fault_silent_then_cleared(tcp_bench: TcpBench) -> None:
    sim = tcp_bench.device("main_fan_1")
    sim.faults.inject(Fault.make("silent"))
    with pytest.raises(ModbusIOException):
        await tcp_bench.client.read_holding_registers(0, count=2, device_id=1)
    # Only that device: its neighbour on the same endpoint still answers.
    other = await tcp_bench.client.read_input_registers(0, count=2, device_id=2)
    assert not other.isError()
    sim.faults.clear()
    rr = await tcp_bench.client.read_holding_registers(0, count=2, device_id=1)
    assert rr.registers[0] == 1


async def test_fault_slow_delays_the_answer(tcp_bench: TcpBench) -> None:
    tcp_bench.device("power_meter_1").faults.inject(Fault.make("slow", delay_s=0.25))
    started = time.monotonic()
    rr = await tcp_bench.client.read_input_registers(0, count=4, device_id=2)
    elapsed = time.monotonic() - started
    assert not rr.isError()
    assert 0.25 <= elapsed < 0.8  # late, but within the client timeout


@pytest.mark.parametrize("code", [2, 4, 6])
async def test_fault_exception_returns_the_code(tcp_bench: TcpBench, code: int) -> None:
    tcp_bench.device("main_fan_1").faults.inject(Fault.make("exception", code=code))
    rr = await tcp_bench.client.read_holding_registers(0, count=2, device_id=1)
    assert rr.isError() and rr.exception_code == code


async def test_fault_corrupt_is_rejected_by_the_client(tcp_bench: TcpBench) -> None:
    tcp_bench.device("main_fan_1").faults.inject(Fault.make("corrupt"))
    with pytest.raises(ModbusIOException):
        await tcp_bench.client.read_holding_registers(0, count=10, device_id=1)


async def test_fault_frozen_stops_values_while_physics_moves(tcp_bench: TcpBench) -> None:
    sim = tcp_bench.device("main_fan_1")
    spec = next(p for p in sim.profile.points if p.name == "airflow")
    sim.faults.inject(Fault.make("frozen"))
    frozen = await read_point(tcp_bench.client, 1, spec)
    tcp_bench.physics.set("main_fan_1", "running", False)
    tcp_bench.physics.step(60.0)
    tcp_bench.bus.refresh()
    assert await read_point(tcp_bench.client, 1, spec) == frozen
    sim.faults.clear("frozen")
    tcp_bench.bus.refresh()
    assert float(await read_point(tcp_bench.client, 1, spec)) < 0.3 * float(frozen)


def test_fault_parameters_are_validated() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        Fault.make("melted")
    with pytest.raises(ValueError, match="not a Modbus exception code"):
        Fault.make("exception", code=9)
    with pytest.raises(ValueError, match="takes"):
        Fault.make("silent", delay_s=1)
    assert Fault.make("slow", delay_s=0.5).delay_s == 0.5
    assert Fault.make("bad_checksum").kind is FaultKind.CORRUPT


def test_frame_damage_keeps_length_and_breaks_the_check() -> None:
    rtu = bytes([1, 3, 2, 0, 1, 0x79, 0x84])
    bad = corrupt_rtu(rtu)
    assert len(bad) == len(rtu) and bad[:-2] == rtu[:-2] and bad[-2:] != rtu[-2:]
    tcp = bytes([0, 1, 0, 0, 0, 5, 1, 3, 2, 0, 1])
    bad_tcp = corrupt_tcp(tcp)
    assert bad_tcp[:7] == tcp[:7] and bad_tcp[8] == 0xFF


def test_encoded_tables_match_the_codec(tcp_bench: TcpBench) -> None:
    """The datastore holds exactly codec.encode of each point (word order
    and scale included), so a gateway decoding with the profile gets it."""
    sim = tcp_bench.device("power_meter_1")
    for spec in sim.profile.points:
        if spec.kind.is_bit or spec.dtype.value == "bit":
            continue
        words = sim.tables[spec.kind][spec.address : spec.address + spec.width]
        want = codec.encode(tcp_bench.physics.get("power_meter_1", spec.sim or spec.name), spec)
        assert words == want, spec.name
    assert sim.tables[RegisterKind.INPUT][30:32] != [0, 0]


async def test_tcp_gateway_mode_answers_absent_units_with_exception_11(
    physics: MinePhysics,
) -> None:
    bus = ModbusBus(
        "gw",
        [SimulatedDevice("smoke_1", profile("smoke"), 4, physics)],
        framing="tcp",
        absent_answer=11,
    )
    port = await bus.serve_tcp()
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=0.8, retries=0)
    await client.connect()
    try:
        absent = await client.read_input_registers(0, count=1, device_id=5)
        assert absent.isError() and absent.exception_code == 11
        present = await client.read_input_registers(0, count=1, device_id=4)
        assert not present.isError()
        # A silent fault still means silence, not the gateway's exception.
        bus.device("smoke_1").faults.inject(Fault.make("silent"))
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=1, device_id=4)
    finally:
        client.close()
        await bus.close()
    with pytest.raises(ValueError, match="10 or 11"):
        ModbusBus("bad", [], absent_answer=4)

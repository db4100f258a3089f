"""Serial transports: the pty null-modem, Modbus RTU on it with several
units (one absent), and the DTU carrying RTU frames over TCP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import serial
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType
from simpeers import close_enough, profile

from drivers import codec
from simulators.dtu import Dtu
from simulators.faults import Fault
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics
from simulators.ptybridge import PtyPair


async def _read_all(port: serial.Serial, want: int, timeout_s: float = 2.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while len(data) < want and time.monotonic() < deadline:
        data += port.read(4096)
        await asyncio.sleep(0.005)
    return data


async def test_pty_pair_carries_every_byte_both_ways() -> None:
    payload = bytes(range(256)) + b"\r\n\x11\x13\x03"  # control chars must pass raw
    async with PtyPair() as (a_path, b_path):
        assert a_path.startswith("/dev/") and b_path.startswith("/dev/") and a_path != b_path
        a = serial.Serial(a_path, 9600, timeout=0)
        b = serial.Serial(b_path, 9600, timeout=0)
        try:
            a.write(payload)
            assert await _read_all(b, len(payload)) == payload
            b.write(payload[::-1])
            assert await _read_all(a, len(payload)) == payload[::-1]
        finally:
            a.close()
            b.close()


async def test_pty_pair_paces_at_the_baud_rate_and_corrupts_on_request() -> None:
    pair = PtyPair(baudrate=9600, seed=1)
    a_path, b_path = await pair.open()
    a = serial.Serial(a_path, timeout=0)
    b = serial.Serial(b_path, timeout=0)
    try:
        started = time.monotonic()
        a.write(b"x" * 96)  # 960 bits: 0.1 s at 9600 baud
        assert await _read_all(b, 96) == b"x" * 96
        assert time.monotonic() - started >= 0.09
        pair.corrupt(1.0)
        a.write(b"\x00" * 16)
        damaged = await _read_all(b, 16)
        assert len(damaged) == 16 and damaged != b"\x00" * 16
        assert pair.corrupted_chunks >= 1
    finally:
        a.close()
        b.close()
        await pair.close()


@pytest.fixture
async def rtu_line() -> AsyncIterator[tuple[MinePhysics, ModbusBus, AsyncModbusSerialClient]]:
    physics = MinePhysics(seed=21)
    devices = [
        SimulatedDevice("gas_monitor_1", profile("gas_monitor"), 1, physics),
        SimulatedDevice("gas_monitor_2", profile("gas_monitor"), 2, physics),
        SimulatedDevice("smoke_1", profile("smoke"), 4, physics),
    ]
    bus = ModbusBus("rs485", devices, framing="rtu")
    async with PtyPair() as (near, far):
        await bus.serve_serial(far, baudrate=9600)
        client = AsyncModbusSerialClient(
            near, framer=FramerType.RTU, baudrate=9600, timeout=0.6, retries=0
        )
        await client.connect()
        assert client.connected
        yield physics, bus, client
        client.close()
        await bus.close()


async def test_rtu_units_on_one_line_answer_with_their_values(
    rtu_line: tuple[MinePhysics, ModbusBus, AsyncModbusSerialClient],
) -> None:
    physics, _, client = rtu_line
    spec = next(p for p in profile("gas_monitor").points if p.name == "ch4")
    for unit, entity in ((1, "gas_monitor_1"), (2, "gas_monitor_2")):
        rr = await client.read_input_registers(0, count=13, device_id=unit)
        assert not rr.isError()
        assert close_enough(codec.decode(rr.registers[:1], spec), physics.get(entity, "ch4"), spec)
    bits = await client.read_discrete_inputs(0, count=2, device_id=4)
    assert bits.bits[:2] == [physics.get("smoke_1", "smoke_alarm"), False]


async def test_rtu_absent_unit_is_silent_and_the_line_recovers(
    rtu_line: tuple[MinePhysics, ModbusBus, AsyncModbusSerialClient],
) -> None:
    _, _, client = rtu_line
    with pytest.raises(ModbusIOException):
        await client.read_input_registers(0, count=2, device_id=3)
    rr = await client.read_input_registers(0, count=2, device_id=1)
    assert not rr.isError()


async def test_rtu_corrupt_fault_sends_a_bad_crc(
    rtu_line: tuple[MinePhysics, ModbusBus, AsyncModbusSerialClient],
) -> None:
    _, bus, client = rtu_line
    bus.device("gas_monitor_2").faults.inject(Fault.make("corrupt"))
    with pytest.raises(ModbusIOException):
        await client.read_input_registers(0, count=9, device_id=2)
    bus.device("gas_monitor_2").faults.clear()
    await asyncio.sleep(0.05)  # let the rejected frame's tail drain
    rr = await client.read_input_registers(0, count=9, device_id=2)
    assert not rr.isError()


async def test_rtu_exception_fault(
    rtu_line: tuple[MinePhysics, ModbusBus, AsyncModbusSerialClient],
) -> None:
    _, bus, client = rtu_line
    bus.device("gas_monitor_1").faults.inject(Fault.make("exception", code=6))
    rr = await client.read_input_registers(0, count=2, device_id=1)
    assert rr.isError() and rr.exception_code == 6


@pytest.fixture
async def dtu() -> AsyncIterator[tuple[MinePhysics, Dtu]]:
    physics = MinePhysics(seed=31)
    devices = [
        SimulatedDevice("drainage_1", profile("drainage"), 1, physics),
        SimulatedDevice("drainage_2", profile("drainage"), 2, physics),
        SimulatedDevice("fire_water_1", profile("fire_water"), 3, physics),
    ]
    bus = ModbusBus("pumps", devices, framing="rtu")
    async with Dtu("dtu", bus, baudrate=9600, bus_timing=True, response_timeout_s=0.3) as server:
        yield physics, server


def _rtu_tcp_client(port: int, timeout: float = 1.0) -> AsyncModbusTcpClient:
    return AsyncModbusTcpClient(
        "127.0.0.1", port=port, framer=FramerType.RTU, timeout=timeout, retries=0
    )


async def test_dtu_serves_rtu_frames_over_tcp_with_bus_timing(dtu: tuple[MinePhysics, Dtu]) -> None:
    physics, server = dtu
    client = _rtu_tcp_client(server.port)
    await client.connect()
    try:
        started = time.monotonic()
        rr = await client.read_input_registers(0, count=24, device_id=2)
        elapsed = time.monotonic() - started
        assert not rr.isError()
        # 8-byte request + 53-byte answer at 9600 baud, 10 bits a byte.
        assert elapsed >= (8 + 53) * 10 / 9600 * 0.9
        spec = next(p for p in profile("drainage").points if p.name == "sump_level")
        assert close_enough(
            codec.decode(rr.registers[0:2], spec), physics.get("drainage_2", "sump_level"), spec
        )
        bits = await client.read_discrete_inputs(0, count=3, device_id=1)
        assert bits.bits[:3] == [physics.get("drainage_1", f"pump{n}_running") for n in (1, 2, 3)]
    finally:
        client.close()


async def test_dtu_absent_unit_costs_a_timeout_then_others_answer(
    dtu: tuple[MinePhysics, Dtu],
) -> None:
    _, server = dtu
    client = _rtu_tcp_client(server.port, timeout=0.5)
    await client.connect()
    try:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=2, device_id=7)
        assert server.timeouts == 1
        rr = await client.read_input_registers(0, count=2, device_id=3)
        assert not rr.isError()
    finally:
        client.close()


async def test_dtu_serialises_two_masters(dtu: tuple[MinePhysics, Dtu]) -> None:
    _, server = dtu
    clients = [_rtu_tcp_client(server.port), _rtu_tcp_client(server.port)]
    for c in clients:
        await c.connect()
    try:
        results = await asyncio.gather(
            *(
                c.read_input_registers(0, count=24, device_id=u)
                for c, u in zip(clients, (1, 2), strict=True)
            )
        )
        assert all(not r.isError() and len(r.registers) == 24 for r in results)
        assert server.requests == 2
    finally:
        for c in clients:
            c.close()


async def test_dtu_silent_unit_fault(dtu: tuple[MinePhysics, Dtu]) -> None:
    _, server = dtu
    server.bus.device("fire_water_1").faults.inject(Fault.make("silent"))
    client = _rtu_tcp_client(server.port, timeout=0.5)
    await client.connect()
    try:
        with pytest.raises(ModbusIOException):
            await client.read_input_registers(0, count=2, device_id=3)
        server.bus.device("fire_water_1").faults.clear()
        rr = await client.read_input_registers(0, count=2, device_id=3)
        assert not rr.isError()
    finally:
        client.close()


async def test_dtu_coil_write_stops_a_pump(dtu: tuple[MinePhysics, Dtu]) -> None:
    physics, server = dtu
    client = _rtu_tcp_client(server.port)
    await client.connect()
    try:
        assert physics.get("drainage_1", "pump1_running") is True
        rr = await client.write_coil(0, False, device_id=1)
        assert not rr.isError()
        assert physics.get("drainage_1", "pump1_running") is False
        assert physics.get("drainage_1", "auto") is False  # remote command: manual mode
        physics.step(1.0)
        server.bus.refresh()
        bits = await client.read_discrete_inputs(0, count=1, device_id=1)
        assert bits.bits[0] is False
    finally:
        client.close()

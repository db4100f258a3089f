"""The assembled mine: every transport up, the site config it writes is one
the gateway accepts, operations and faults through the API and the control
port, and a standard Modbus tool (mbpoll) reading it."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import serial
from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from pymodbus.framer import FramerType

from drivers import codec
from drivers.ascii import get_format
from drivers.types import RegisterKind
from gateway.config import load_config
from gateway.config.schema import RtuOverTcpBus, TcpBus
from simulators.control import parse_value, send_command
from simulators.mine import SimulatedMine


@pytest.fixture
async def mine() -> AsyncIterator[SimulatedMine]:
    # tick_s=0: nothing moves unless the test advances virtual time.
    async with SimulatedMine(seed=5, tick_s=0, control_port=0, bus_timing=False) as running:
        yield running


def _tcp(mine: SimulatedMine, bus: str, rtu: bool = False) -> AsyncModbusTcpClient:
    end = mine.endpoints[bus]
    framer = FramerType.RTU if rtu else FramerType.SOCKET
    return AsyncModbusTcpClient(end.host, port=end.port, framer=framer, timeout=0.5, retries=0)


async def test_default_mine_covers_every_transport_and_class(mine: SimulatedMine) -> None:
    transports = {d.transport for d in mine.devices.values()}
    assert transports == {"tcp", "rtu", "rtu_over_tcp", "ascii"}
    classes = {d.profile.device_class for d in mine.devices.values()}
    assert classes == {"ventilation", "drainage", "power", "gas", "fire"}
    rtu_units = [d.unit for d in mine.devices.values() if d.transport == "rtu"]
    assert len(rtu_units) >= 2
    counts: dict[str, int] = {}
    for d in mine.devices.values():
        counts[d.profile.name] = counts.get(d.profile.name, 0) + 1
    assert counts["main_fan"] == 2 and counts["drainage"] == 2 and counts["power_meter"] == 2
    assert counts["gas_monitor"] == 2 and counts["aux_fan"] == 1 and counts["smoke"] == 1


async def test_site_config_is_accepted_by_the_gateway(mine: SimulatedMine, tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(mine.site_config_toml(tmp_path / "data"))
    config = load_config(path)
    assert {d.name for d in config.devices} == set(mine.devices)
    for bus in config.buses:
        end = mine.endpoints[bus.name]
        if isinstance(bus, TcpBus | RtuOverTcpBus):
            assert (bus.host, bus.port) == (end.host, end.port)
        else:
            assert bus.serial_port == end.serial_port


async def test_every_transport_answers(mine: SimulatedMine) -> None:
    vent = _tcp(mine, "vent-tcp")
    await vent.connect()
    rr = await vent.read_holding_registers(0, count=1, device_id=2)
    assert rr.registers == [1]
    vent.close()

    dtu = _tcp(mine, "dtu-pumps", rtu=True)
    await dtu.connect()
    rr = await dtu.read_discrete_inputs(0, count=3, device_id=3)
    assert rr.bits[:3] == [False, False, False]  # fire valves closed
    dtu.close()

    line = AsyncModbusSerialClient(
        mine.endpoints["rs485-env"].serial_port, framer=FramerType.RTU, timeout=0.5, retries=0
    )
    await line.connect()
    rr = await line.read_holding_registers(0, count=2, device_id=3)  # aux fan
    assert rr.registers[0] == 1
    line.close()

    sensor = mine.sensors["gas_ascii_1"]
    port = serial.Serial(mine.endpoints["gas-ascii"].serial_port, timeout=0)
    try:
        port.reset_input_buffer()
        sensor.emit()
        data = b""
        for _ in range(100):
            data += port.read(1024)
            if data.endswith(b"\r\n"):
                break
            await asyncio.sleep(0.01)
        values = get_format("gas_nmea").parse(data.decode().strip().splitlines()[-1])
        assert values["CH4"] == round(float(mine.value("gas_ascii_1", "ch4")), 2)
    finally:
        port.close()


async def test_operate_and_inject_through_the_api(mine: SimulatedMine) -> None:
    client = _tcp(mine, "vent-tcp")
    await client.connect()
    try:
        mine.operate("main_fan_1", "running", 0)
        mine.advance(120.0)
        rr = await client.read_holding_registers(0, count=4, device_id=1)
        spec = mine.devices["main_fan_1"].profile.points[2]
        assert spec.name == "airflow"
        assert rr.registers[0] == 0
        assert float(codec.decode(rr.registers[2:4], spec)) < 0.1 * 4500.0  # coasted down
        mine.inject("main_fan_1", "silent")
        with pytest.raises(ModbusIOException):
            await client.read_holding_registers(0, count=1, device_id=1)
        mine.clear("main_fan_1")
        rr = await client.read_holding_registers(0, count=1, device_id=1)
        assert not rr.isError()
        with pytest.raises(KeyError, match="no device"):
            mine.inject("main_fan_9", "silent")
    finally:
        client.close()


async def test_control_port_protocol(mine: SimulatedMine) -> None:
    assert mine.control_port
    port = mine.control_port

    async def ask(line: str) -> str:
        return await send_command("127.0.0.1", port, line)

    assert await ask("fault power_meter_1 exception code=6") == "ok power_meter_1 exception(6)"
    client = _tcp(mine, "power-tcp")
    await client.connect()
    try:
        rr = await client.read_input_registers(0, count=2, device_id=1)
        assert rr.isError() and rr.exception_code == 6
        assert await ask("clear power_meter_1") == "ok power_meter_1 healthy"
        assert (
            await ask("set power_meter_1 breaker_closed off") == "ok power_meter_1 breaker_closed=0"
        )
        assert (await ask("advance 5")).startswith("ok t=")
        rr = await client.read_holding_registers(0, count=1, device_id=1)
        assert rr.registers[0] & 1 == 0
    finally:
        client.close()
    assert "slow(0.2s)" in await ask("fault smoke_1 slow delay_s=0.2")
    assert "smoke_1=slow(0.2s)" in await ask("status")
    assert re.search(r"\bch4=\d", await ask("get gas_monitor_1"))
    assert (await ask("get main_fan_1 model")) == "ok model=FBCDZ-8-No26"
    assert "gas_ascii_1=ascii@/dev/" in await ask("devices")
    for bad, why in (
        ("fault main_fan_1 melted", "unknown fault"),
        ("set nobody running 1", "no device"),
        ("advance -3", ">= 0"),
        ("frobnicate", "unknown command"),
    ):
        with pytest.raises(RuntimeError, match=why):
            await ask(bad)


def test_control_values() -> None:
    assert parse_value("on") is True and parse_value("stop") is False
    assert parse_value("12") == 12 and parse_value("0.5") == 0.5 and parse_value("x") == "x"


# --------------------------------------------------------------------- mbpoll


def _mbpoll() -> str:
    path = shutil.which("mbpoll")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("mbpoll is not installed (Debian package mbpoll); CI needs it")
        pytest.skip("mbpoll not installed")
    return path


async def _run_mbpoll(*args: str) -> tuple[int, str]:
    # Async: the simulator answering it runs in this very event loop.
    proc = await asyncio.create_subprocess_exec(
        _mbpoll(),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 20.0)
    return proc.returncode or 0, out.decode(errors="replace")


def _registers(output: str) -> dict[int, int]:
    """mbpoll prints ``[ref]: value`` (1-based refs; negative int16 values
    also in parentheses, which we ignore)."""
    return {int(m[1]): int(m[2]) for m in re.finditer(r"^\[(\d+)\]:\s+(-?\d+)", output, re.M)}


async def test_mbpoll_reads_the_simulator_over_tcp(mine: SimulatedMine) -> None:
    port = str(mine.endpoints["vent-tcp"].port)
    code, out = await _run_mbpoll(
        "-m", "tcp", "-p", port, "-a", "1", "-r", "1", "-c", "10", "-1", "127.0.0.1"
    )
    assert code == 0, out
    table = mine.buses["vent-tcp"].device("main_fan_1").tables[RegisterKind.HOLDING]
    got = _registers(out)
    assert got == {ref: table[ref - 1] for ref in range(1, 11)}
    assert got[1] == 1  # running

    code, out = await _run_mbpoll(
        "-m", "tcp", "-p", port, "-a", "2", "-r", "21", "-c", "8", "-1", "127.0.0.1"
    )
    assert code == 0, out
    words = [_registers(out)[ref] for ref in range(21, 29)]
    spec = next(p for p in mine.devices["main_fan_2"].profile.points if p.name == "model")
    assert codec.decode(words, spec) == "FBCDZ-8-No24"


async def test_mbpoll_sees_a_silent_device_time_out(mine: SimulatedMine) -> None:
    port = str(mine.endpoints["power-tcp"].port)
    mine.inject("power_meter_2", "silent")
    code, out = await _run_mbpoll(
        "-m",
        "tcp",
        "-p",
        port,
        "-a",
        "2",
        "-t",
        "3",
        "-r",
        "1",
        "-c",
        "2",
        "-o",
        "0.3",
        "-1",
        "127.0.0.1",
    )
    assert code != 0 and "timed out" in out.lower(), out


def _free_run(count: int) -> int:
    """A base port with ``count`` consecutive free ports after it."""
    import socket

    for base in range(20000, 60000, 97):
        socks = []
        try:
            for offset in range(count):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


async def test_base_port_gives_predictable_ports() -> None:
    base = _free_run(3)
    async with SimulatedMine(seed=2, tick_s=0, base_port=base, bus_timing=False) as fixed:
        ports = [fixed.endpoints[b].port for b in ("vent-tcp", "power-tcp", "dtu-pumps")]
        assert ports == [base, base + 1, base + 2]
        assert fixed.control_port is None  # off unless asked for


async def test_line_noise_on_the_rs485_bus(mine: SimulatedMine) -> None:
    answer = await send_command("127.0.0.1", mine.control_port or 0, "noise rs485-env 1")
    assert answer == "ok rs485-env noise=1"
    line = AsyncModbusSerialClient(
        mine.endpoints["rs485-env"].serial_port, framer=FramerType.RTU, timeout=0.6, retries=0
    )
    await line.connect()
    try:
        with pytest.raises(ModbusIOException):
            await line.read_input_registers(0, count=9, device_id=1)
        mine.line_noise("rs485-env", 0.0)
        await asyncio.sleep(0.05)
        rr = await line.read_input_registers(0, count=9, device_id=1)
        assert not rr.isError()
    finally:
        line.close()
    with pytest.raises(KeyError, match="serial lines"):
        mine.line_noise("vent-tcp", 0.5)

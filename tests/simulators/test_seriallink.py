"""The baud-faithful RS-485 line: frames take their wire time, the
3.5-character silence and the device's turnaround are kept, and a real RTU
hub reads through it from a pymodbus serial server.

Timing assertions are lower bounds only (what pacing guarantees whatever
the machine's load), never upper bounds."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import serial
from simpeers import profile

from drivers.errors import CorruptFrame, DeviceTimeout
from drivers.modbus import RtuHub
from drivers.types import RegisterKind
from simulators.layout import BusLayout, DeviceLayout, MineLayout
from simulators.mine import SimulatedMine
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics
from simulators.seriallink import CharFormat, SerialLink

# A little slack for clocks read in two places (the test and the link).
EPS = 1e-4


async def _read_all(port: serial.Serial, want: int, timeout_s: float = 3.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while len(data) < want and time.monotonic() < deadline:
        data += port.read(4096)
        await asyncio.sleep(0.002)
    return data


def test_char_format_counts_start_parity_and_stop_bits() -> None:
    assert CharFormat(9600).bits == 10
    assert CharFormat(9600, "E").bits == 11
    assert CharFormat(9600, "N", 2).bits == 11
    assert CharFormat(19200, "O", 1, 7).bits == 10
    assert CharFormat(9600).wire_s(8) == pytest.approx(8 * 10 / 9600)
    assert CharFormat(9600, "E").silence_s == pytest.approx(3.5 * 11 / 9600)
    assert CharFormat(38400).silence_s == pytest.approx(1.75e-3)  # fixed above 19200
    with pytest.raises(ValueError, match="parity"):
        CharFormat(9600, "X")
    with pytest.raises(ValueError, match="bytesize 7 or 8"):
        CharFormat(0)


@pytest.mark.parametrize(("baud", "parity", "size"), [(9600, "N", 96), (19200, "E", 120)])
async def test_a_frame_takes_its_wire_time(baud: int, parity: str, size: int) -> None:
    link = SerialLink(baud, parity=parity, keep_frames=4)
    a_path, b_path = await link.open()
    a = serial.Serial(a_path, timeout=0)
    b = serial.Serial(b_path, timeout=0)
    try:
        payload = bytes(range(size))
        started = time.monotonic()
        a.write(payload)
        assert await _read_all(b, size) == payload
        took = time.monotonic() - started
        wire = size * CharFormat(baud, parity).bits / baud
        assert took >= wire - EPS
        (frame,) = link.frames
        assert frame.request and frame.size == size
        assert frame.end - frame.start == pytest.approx(wire)
        assert frame.delivered >= frame.end
        counters = link.counters()
        assert (counters.requests, counters.replies, counters.bytes_requests) == (1, 0, size)
        assert counters.wire_s == pytest.approx(wire)
    finally:
        a.close()
        b.close()
        await link.close()


async def test_silence_and_turnaround_are_kept_and_early_requests_counted() -> None:
    turnaround = 0.02
    link = SerialLink(9600, turnaround_s=turnaround, keep_frames=8)
    fmt = link.fmt
    a_path, b_path = await link.open()
    master = serial.Serial(a_path, timeout=0)
    device = serial.Serial(b_path, timeout=0)
    try:
        master.write(b"R" * 8)
        assert await _read_all(device, 8) == b"R" * 8
        device.write(b"A" * 20)  # at once: the link holds it for silence + turnaround
        assert await _read_all(master, 20) == b"A" * 20
        # The master talks over a long reply (as after a timeout too short
        # for the device): the line holds its request until the reply and
        # the silence after it are over, and counts it.
        device.write(b"L" * 200)  # ~210 ms on the wire
        await asyncio.sleep(0.03)
        master.write(b"Q" * 8)
        assert await _read_all(master, 200) == b"L" * 200
        assert await _read_all(device, 8) == b"Q" * 8
        request, reply, long_reply, early = link.frames
        assert not reply.request and reply.size == 20
        assert reply.start >= request.end + fmt.silence_s + turnaround - EPS
        assert reply.end - reply.start == pytest.approx(fmt.wire_s(20))
        assert long_reply.start >= reply.end + fmt.silence_s - EPS
        assert early.request and early.start >= long_reply.end + fmt.silence_s - EPS
        assert link.early_requests == 1
        counters = link.counters()
        assert (counters.requests, counters.replies) == (2, 2)
        assert counters.wire_s == pytest.approx(fmt.wire_s(236))
    finally:
        master.close()
        device.close()
        await link.close()


async def test_bytes_written_while_the_frame_is_on_the_wire_join_it() -> None:
    link = SerialLink(9600, keep_frames=4)
    a_path, b_path = await link.open()
    a = serial.Serial(a_path, timeout=0)
    b = serial.Serial(b_path, timeout=0)
    try:
        a.write(b"x" * 40)  # ~42 ms on the wire
        await asyncio.sleep(0.005)
        a.write(b"y" * 10)
        assert await _read_all(b, 50) == b"x" * 40 + b"y" * 10
        (frame,) = link.frames
        assert frame.size == 50 and link.early_requests == 0
    finally:
        a.close()
        b.close()
        await link.close()


async def test_rtu_hub_reads_through_the_link_at_wire_speed() -> None:
    physics = MinePhysics(seed=3)
    bus = ModbusBus(
        "line",
        [SimulatedDevice("gas_monitor_1", profile("gas_monitor"), 1, physics)],
        framing="rtu",
    )
    turnaround = 0.01
    link = SerialLink(19200, turnaround_s=turnaround, keep_frames=16)
    near, far = await link.open()
    await bus.serve_serial(far, baudrate=19200)
    try:
        async with RtuHub(near, baudrate=19200, timeout_s=1.0, retries=0) as hub:
            started = time.monotonic()
            for _ in range(3):
                words = await hub.read(1, RegisterKind.INPUT, 0, 9)
                assert len(words) == 9
            took = time.monotonic() - started
        fmt = link.fmt
        # 3 x (8-byte request + 23-byte reply), 3 silences + turnarounds
        # before the replies and 2 silences between the transactions.
        least = 3 * (fmt.wire_s(8 + 23) + fmt.silence_s + turnaround) + 2 * fmt.silence_s
        assert took >= least - EPS
        counters = link.counters()
        assert (counters.requests, counters.replies) == (3, 3)
        assert (counters.bytes_requests, counters.bytes_replies) == (24, 69)
        assert counters.early_requests == 0  # the hub keeps the silence itself
    finally:
        await bus.close()
        await link.close()


async def test_line_noise_damages_frames_and_the_hub_calls_them_corrupt() -> None:
    physics = MinePhysics(seed=3)
    bus = ModbusBus(
        "line",
        [SimulatedDevice("gas_monitor_1", profile("gas_monitor"), 1, physics)],
        framing="rtu",
    )
    link = SerialLink(19200, corrupt_probability=1.0, seed=2)
    near, far = await link.open()
    await bus.serve_serial(far, baudrate=19200)
    try:
        async with RtuHub(near, baudrate=19200, timeout_s=0.3, retries=0) as hub:
            # A damaged request is ignored by the device (a timeout), a
            # damaged reply fails its CRC at the hub.
            with pytest.raises((CorruptFrame, DeviceTimeout)):
                await hub.read(1, RegisterKind.INPUT, 0, 9)
        assert link.corrupted_frames >= 1
    finally:
        await bus.close()
        await link.close()


async def test_the_mine_puts_its_rtu_buses_on_a_baud_paced_line(tmp_path: Path) -> None:
    layout = MineLayout(
        "line-mine",
        (
            BusLayout(
                "rs485",
                "rtu",
                (DeviceLayout("smoke_1", "smoke", 4),),
                baudrate=19200,
                turnaround_ms=7.0,
                frame_pause_ms=0.0,
            ),
        ),
    )
    async with SimulatedMine(layout, tick_s=0) as mine:
        link = mine.serial_link("rs485")
        assert link.fmt.baudrate == 19200 and link.turnaround_s == pytest.approx(0.007)
        site = mine.site_config_toml(tmp_path)
        assert "baudrate = 19200" in site and "frame_pause_ms = 0.0" in site
        async with RtuHub(mine.endpoints["rs485"].serial_port, baudrate=19200) as hub:
            await hub.read(4, RegisterKind.INPUT, 0, 1)
        assert (link.requests, link.replies) == (1, 1)
    async with SimulatedMine(layout, tick_s=0, bus_timing=False) as unpaced:
        with pytest.raises(KeyError, match="not a baud-paced RTU line"):
            unpaced.serial_link("rs485")

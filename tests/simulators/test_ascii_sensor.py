"""The gas_nmea line sensor on a pty, read back with the gateway's parser."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
import serial
from simpeers import profile

from drivers.ascii import get_format, nmea_checksum, values_for_points
from drivers.errors import CorruptFrame
from simulators.ascii_sensor import DECIMALS, AsciiSensor, sentence
from simulators.faults import Fault
from simulators.physics import MinePhysics
from simulators.ptybridge import PtyPair


@pytest.fixture
async def sensor_line() -> AsyncIterator[tuple[MinePhysics, AsciiSensor, serial.Serial]]:
    physics = MinePhysics(seed=41)
    async with PtyPair() as (near, far):
        sensor = AsciiSensor("gas_ascii_1", profile("gas_ascii"), physics, far, station=3)
        reader = serial.Serial(near, 9600, timeout=0)
        try:
            yield physics, sensor, reader
        finally:
            reader.close()
            await sensor.close()


async def _line(reader: serial.Serial, timeout_s: float = 1.0) -> bytes:
    data = b""
    deadline = time.monotonic() + timeout_s
    while not data.endswith(b"\r\n") and time.monotonic() < deadline:
        data += reader.read(1024)
        await asyncio.sleep(0.005)
    return data


def test_sentence_layout_and_checksum() -> None:
    text = sentence(3, {"CH4": 0.4512, "CO": 12.4, "O2": 20.83})
    assert text.startswith("$GASM,03,CH4=0.45,CO=12,O2=20.8*")
    body = text[1 : text.index("*")]
    assert text[-2:] == nmea_checksum(body)


async def test_sensor_lines_parse_to_the_physics_values(
    sensor_line: tuple[MinePhysics, AsciiSensor, serial.Serial],
) -> None:
    physics, sensor, reader = sensor_line
    sensor.emit()
    raw = await _line(reader)
    values = get_format("gas_nmea").parse(raw.decode("ascii").strip())
    assert values["id"] == "03"
    points = values_for_points(values, sensor.profile.points)
    for spec in sensor.profile.points:
        want = float(physics.get("gas_ascii_1", spec.name))
        got = points[spec.name]
        assert not isinstance(got, Exception), got
        # The instrument prints a fixed number of decimals per key.
        half_step = 0.5 * 10.0 ** -DECIMALS[spec.key] + 1e-9
        assert float(got) == pytest.approx(want, abs=half_step), spec.name


async def test_sensor_faults(sensor_line: tuple[MinePhysics, AsciiSensor, serial.Serial]) -> None:
    physics, sensor, reader = sensor_line
    parser = get_format("gas_nmea")

    sensor.faults.inject(Fault.make("corrupt"))
    sensor.emit()
    with pytest.raises(CorruptFrame, match="checksum"):
        parser.parse((await _line(reader)).decode("ascii").strip())
    sensor.faults.clear()

    sensor.faults.inject(Fault.make("garbage"))
    sensor.emit()
    noise = await _line(reader)
    assert noise.endswith(b"\r\n") and b"$GASM" not in noise
    sensor.faults.clear()

    sensor.faults.inject(Fault.make("silent"))
    assert sensor.emit() is None
    assert await _line(reader, timeout_s=0.2) == b""
    sensor.faults.clear()

    sensor.faults.inject(Fault.make("frozen"))
    first = sensor.emit()
    physics.set("main_fan_1", "running", 0)
    physics.step(300.0)
    assert sensor.emit() == first
    sensor.faults.clear()
    assert sensor.emit() != first
    with pytest.raises(ValueError, match="cannot show fault 'exception'"):
        sensor.faults.inject(Fault.make("exception", code=4))


async def test_periodic_writer(sensor_line: tuple[MinePhysics, AsciiSensor, serial.Serial]) -> None:
    _, sensor, reader = sensor_line
    sensor.interval_s = 0.05
    sensor.start()
    data = b""
    deadline = time.monotonic() + 2.0
    while data.count(b"\r\n") < 3 and time.monotonic() < deadline:
        data += reader.read(4096)
        await asyncio.sleep(0.01)
    assert data.count(b"$GASM,03,") >= 3

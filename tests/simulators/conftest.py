"""Fixtures for the simulator tests; helpers live in ``simpeers.py``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.framer import FramerType

sys.path.insert(0, str(Path(__file__).resolve().parent))

from simpeers import TcpBench, profile

from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics


@pytest.fixture
def physics() -> MinePhysics:
    return MinePhysics(seed=7)


@pytest.fixture
async def tcp_bench(physics: MinePhysics) -> AsyncIterator[TcpBench]:
    devices = [
        SimulatedDevice("main_fan_1", profile("main_fan"), 1, physics),
        SimulatedDevice("power_meter_1", profile("power_meter"), 2, physics),
        SimulatedDevice("aux_fan_1", profile("aux_fan"), 3, physics),
    ]
    bus = ModbusBus("bench", devices, framing="tcp")
    port = await bus.serve_tcp("127.0.0.1", 0)
    client = AsyncModbusTcpClient(
        "127.0.0.1", port=port, framer=FramerType.SOCKET, timeout=0.8, retries=0
    )
    await client.connect()
    assert client.connected
    yield TcpBench(physics, bus, port, client)
    client.close()
    await bus.close()

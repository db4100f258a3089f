"""Shared peers for the simulator tests (imported by the test modules;
``conftest.py`` puts this folder on ``sys.path``): a physics model, profile-built
Modbus buses, and a plain pymodbus client reading points back through
``drivers.codec`` (the reader the gateway uses is tested elsewhere)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient

from drivers import codec
from drivers.profile import find_profile
from drivers.types import DataType, DeviceProfile, PointSpec, Value
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics


@dataclass
class TcpBench:
    physics: MinePhysics
    bus: ModbusBus
    port: int
    client: AsyncModbusTcpClient

    def device(self, name: str) -> SimulatedDevice:
        return self.bus.device(name)


def close_enough(got: Value, want: Value, spec: PointSpec) -> bool:
    """Equal up to what the register type can hold: the scale step for
    scaled integers, float32 precision for float32."""
    if isinstance(want, str) or isinstance(got, str):
        return got == want
    if spec.dtype in (DataType.BIT, DataType.BOOL) or spec.kind.is_bit:
        return bool(got) == bool(want)
    step = abs(spec.scale) if spec.dtype not in (DataType.FLOAT32, DataType.FLOAT64) else 0.0
    return math.isclose(float(got), float(want), rel_tol=1e-6, abs_tol=step / 2 + 1e-9)


async def read_point(client: AsyncModbusTcpClient, unit: int, spec: PointSpec) -> Value:
    """One point read on its own and decoded, as a gateway would."""
    if spec.kind.value == "coil":
        rr = await client.read_coils(spec.address, count=1, device_id=unit)
        return bool(rr.bits[0])
    if spec.kind.value == "discrete":
        rr = await client.read_discrete_inputs(spec.address, count=1, device_id=unit)
        return bool(rr.bits[0])
    reader = (
        client.read_holding_registers
        if spec.kind.value == "holding"
        else client.read_input_registers
    )
    rr = await reader(spec.address, count=spec.width, device_id=unit)
    assert not rr.isError(), f"{spec.name}: {rr}"
    return codec.decode(rr.registers, spec)


def profile(name: str) -> DeviceProfile:
    return find_profile(name)

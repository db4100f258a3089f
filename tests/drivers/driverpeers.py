"""Real protocol peers for the driver tests: pymodbus servers with
fault-injecting device contexts, pty pairs made by socat, a fake clock.

A plain module (not conftest) so the test modules can import its types;
``conftest.py`` puts this folder on ``sys.path``."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from drivers.types import RegisterKind

SIZE = 2000  # registers / bits per table of a test device
_FC = {
    RegisterKind.HOLDING: 3,
    RegisterKind.INPUT: 4,
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE: 2,
}


class FaultyDevice(ModbusDeviceContext):
    """A device whose next answers can be made busy, late or an exception on purpose."""

    def __init__(self) -> None:
        super().__init__(
            hr=ModbusSequentialDataBlock(1, [0] * SIZE),
            ir=ModbusSequentialDataBlock(1, [0] * SIZE),
            co=ModbusSequentialDataBlock(1, [False] * SIZE),
            di=ModbusSequentialDataBlock(1, [False] * SIZE),
        )
        self.busy = 0  # answer "device busy" this many times
        self.exception = 0  # answer this exception code to every read (0: none)
        self.slow = 0  # answer late this many times
        self.slow_s = 0.0
        self.seen: list[tuple[float, int, int, int]] = []  # (monotonic s, fc, address, count)

    async def async_getValues(
        self, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        self.seen.append((time.monotonic(), func_code, address, count))
        if self.busy:
            self.busy -= 1
            return ExcCodes.DEVICE_BUSY
        if self.exception:
            return ExcCodes(self.exception)
        if self.slow:
            self.slow -= 1
            await asyncio.sleep(self.slow_s)
        return self.getValues(func_code, address, count)

    def put(self, kind: RegisterKind, address: int, values: list[int] | list[bool]) -> None:
        self.setValues(_FC[kind], address, values)

    def get(self, kind: RegisterKind, address: int, count: int) -> list[int] | list[bool]:
        out = self.getValues(_FC[kind], address, count)
        assert isinstance(out, list)
        return out


@dataclass
class Corrupter:
    """Server-side packet trace that spoils the CRC of the next ``n`` replies."""

    n: int = 0
    done: int = 0

    def __call__(self, sending: bool, data: bytes) -> bytes:
        if sending and self.n > 0 and len(data) > 2:
            self.n -= 1
            self.done += 1
            return data[:-1] + bytes([data[-1] ^ 0xFF])
        return data


@dataclass
class Peer:
    server: ModbusTcpServer | ModbusSerialServer
    devices: dict[int, FaultyDevice]
    port: int = 0
    corrupter: Corrupter = field(default_factory=Corrupter)

    async def stop(self) -> None:
        await self.server.shutdown()


def make_context(units: tuple[int, ...]) -> tuple[ModbusServerContext, dict[int, FaultyDevice]]:
    devices = {u: FaultyDevice() for u in units}
    return ModbusServerContext(devices=devices, single=False), devices


async def start_tcp(
    units: tuple[int, ...] = (1, 2), *, framer: FramerType = FramerType.SOCKET, port: int = 0
) -> Peer:
    context, devices = make_context(units)
    corrupter = Corrupter()
    server = ModbusTcpServer(
        context,
        framer=framer,
        address=("127.0.0.1", port),
        ignore_missing_devices=True,  # absent units stay silent, like on a real bus
        trace_packet=corrupter,
    )
    await server.serve_forever(background=True)
    bound = server.transport.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    return Peer(server, devices, bound, corrupter)


async def start_rtu(path: str, units: tuple[int, ...] = (1, 2), baudrate: int = 115200) -> Peer:
    context, devices = make_context(units)
    corrupter = Corrupter()
    server = ModbusSerialServer(
        context,
        framer=FramerType.RTU,
        port=path,
        baudrate=baudrate,
        ignore_missing_devices=True,
        trace_packet=corrupter,
    )
    await server.serve_forever(background=True)
    return Peer(server, devices, 0, corrupter)


def need_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            pytest.fail(f"{name} is required in CI (apt-get install {name})")
        pytest.skip(f"{name} not installed")
    return path


class PtyPair:
    """Two linked ptys made by socat, at ``a`` and ``b``; ``stop()`` makes
    both vanish (like unplugging a USB adapter), ``start()`` brings them back."""

    def __init__(self, directory: Path) -> None:
        self.socat = need_binary("socat")
        self.a = str(directory / "ttyA")
        self.b = str(directory / "ttyB")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.socat, f"pty,raw,echo=0,link={self.a}", f"pty,raw,echo=0,link={self.b}"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15  # generous: CI machines are busy
        while not (os.path.exists(self.a) and os.path.exists(self.b)):
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("socat did not create the pty pair")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None
        for link in (self.a, self.b):
            if os.path.lexists(link):
                os.unlink(link)


class FakeClock:
    """Monotonic seconds under the test's control."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

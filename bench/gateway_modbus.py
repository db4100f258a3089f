"""Modbus TCP servers for the gateway benchmark: one pymodbus server per
process, each carrying several devices (unit ids) of 100 holding registers.

Every read changes every register: register ``a`` of a device answers
``(n + a) & 0xFFFF`` where ``n`` counts the reads of that device. So each
poll returns 100 values that all differ from the previous poll, whatever the
poll rate, and report by exception (deadband 0) lets every one through.

Run as ``python -m bench.gateway_modbus --units 1-10``: it binds a free
loopback port, prints ``READY <port>`` on stdout and serves until SIGTERM /
SIGINT, or until ``--max-s`` seconds have passed (a bound, so a forgotten
server never outlives the benchmark by much). ``--listeners N`` serves N
ports from the one process (``READY <port1> <port2> ...``), each with its
own devices of those unit ids: unit ids stop at 247 per endpoint, so a
process carries more than 247 devices on several ports (``bench.gateway_scale``
puts 2,000 devices on 4 processes this way).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusBaseDeviceContext, ModbusServerContext
from pymodbus.framer import FramerType
from pymodbus.server import ModbusTcpServer

REGISTERS = 100
HOLDING_FC = (3, 6, 16, 22, 23)


class ChangingDevice(ModbusBaseDeviceContext):
    """``REGISTERS`` holding registers whose values change on every read."""

    def __init__(self, unit: int, size: int = REGISTERS) -> None:
        self.unit = unit
        self.size = size
        self.reads = unit * 1000  # devices start apart

    def reset(self) -> None:
        self.reads = self.unit * 1000

    def getValues(
        self, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        if func_code != 3:
            return ExcCodes.ILLEGAL_FUNCTION
        if address < 0 or count < 1 or address + count > self.size:
            return ExcCodes.ILLEGAL_ADDRESS
        self.reads += 1
        n = self.reads
        return [(n + a) & 0xFFFF for a in range(address, address + count)]

    def setValues(
        self, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        return ExcCodes.ILLEGAL_FUNCTION  # read-only devices


def parse_units(text: str) -> list[int]:
    """``"1-10"`` or ``"1,2,5"`` -> unit ids (1..247)."""
    units: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        units.extend(range(int(lo), int(hi or lo) + 1))
    if not units or any(not 1 <= u <= 247 for u in units):
        raise ValueError(f"unit ids must be in 1..247: {text!r}")
    return units


async def serve(units: list[int], port: int, max_s: float, listeners: int = 1) -> None:
    servers: list[ModbusTcpServer] = []
    bound: list[int] = []
    for k in range(listeners):
        devices = {u: ChangingDevice(u) for u in units}
        context = ModbusServerContext(devices=devices, single=False)
        server = ModbusTcpServer(
            context,
            framer=FramerType.SOCKET,
            address=("127.0.0.1", port + k if port else 0),
            ignore_missing_devices=True,
        )
        await server.serve_forever(background=True)
        listener = server.transport
        assert listener is not None
        bound.append(int(listener.sockets[0].getsockname()[1]))  # type: ignore[attr-defined]
        servers.append(server)
    print("READY " + " ".join(str(p) for p in bound), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max_s)
    for server in servers:
        await server.shutdown()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", default="1-10", help="unit ids served, e.g. 1-10")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: a free one)")
    ap.add_argument("--listeners", type=int, default=1, help="ports served, each with the units")
    ap.add_argument("--max-s", type=float, default=3600.0, help="exit after this many seconds")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    if not 1 <= args.listeners <= 64:
        ap.error("--listeners must be 1..64")
    asyncio.run(serve(parse_units(args.units), args.port, args.max_s, args.listeners))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A simulated DTU: an RTU-over-TCP serial server in front of an RS-485 bus.

DTUs (serial device servers, common on Chinese mine sites) are transparent:
the bytes of a TCP connection are RTU frames (address, PDU, CRC, no MBAP
header) copied onto the serial line, and whatever the line answers is sent
back. This one is built the same way, from real parts:

    TCP client ──► Dtu (asyncio server) ──► PtyPair (paced at ``baudrate``)
                                               └──► ModbusBus, RTU framer,
                                                    several unit ids

Like the real thing it carries one request at a time: a request holds the
line until the answer has been silent for the packing interval (3.5
characters, at least ``pack_ms``) or ``response_timeout_s`` passes, so
several TCP clients are serialised, and an absent unit costs the whole line
the timeout. A late answer (a ``slow`` unit) still goes to whoever asked
last, as a transparent converter does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time

from simulators.lifecycle import ClosesOnExit, stop_tasks
from simulators.modbus_server import ModbusBus
from simulators.ptybridge import PtyPair
from simulators.sessions import end_sessions

log = logging.getLogger(__name__)


class Dtu(ClosesOnExit):
    """RTU-over-TCP endpoint for ``bus`` (a :class:`ModbusBus` with
    ``framing="rtu"``). ``bus_timing=False`` skips the baud-rate pacing for
    fast tests; the one-request-at-a-time rule always holds."""

    def __init__(
        self,
        name: str,
        bus: ModbusBus,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        baudrate: int = 9600,
        bus_timing: bool = True,
        response_timeout_s: float = 1.0,
        pack_ms: float = 5.0,
    ) -> None:
        if bus.framing != "rtu":
            raise ValueError(f"DTU {name!r}: bus {bus.name!r} must use RTU framing")
        self.name = name
        self.bus = bus
        self.host = host
        self.port = port
        self.baudrate = baudrate
        self.response_timeout_s = response_timeout_s
        # Silence that ends a frame: 3.5 characters of 10 bits, or pack_ms.
        self.pack_s = max(35.0 / baudrate, pack_ms / 1000.0)
        self.line = PtyPair(baudrate=baudrate if bus_timing else None)
        self._fd = -1
        self._server: asyncio.Server | None = None
        self._line_lock = asyncio.Lock()
        self._rx = bytearray()
        self._rx_last = 0.0
        self._answer = asyncio.Event()
        self._owner: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}
        self.requests = 0
        self.timeouts = 0

    async def start(self) -> int:
        """Open the line, start the bus on its far end, listen; returns the
        TCP port."""
        near, far = await self.line.open()
        await self.bus.serve_serial(far, baudrate=self.baudrate)
        self._fd = os.open(near, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self._reader_task = asyncio.create_task(self._read_line(), name=f"dtu {self.name} rx")
        self._server = await asyncio.start_server(self._serve_client, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])
        log.info("DTU %s: RTU over TCP on %s:%d -> %s", self.name, self.host, self.port, far)
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None
        await end_sessions(self._clients)
        await stop_tasks(self._reader_task)
        self._reader_task = None
        await self.bus.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        await self.line.close()

    async def __aenter__(self) -> Dtu:
        await self.start()
        return self

    # ------------------------------------------------------------------ line

    async def _read_line(self) -> None:
        """Collect bytes from the line; a silence of ``pack_s`` ends a packet,
        which goes to the client that holds (or last held) the line."""
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(self._fd, readable.set)
        try:
            while True:
                if self._rx:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(readable.wait(), self.pack_s)
                else:
                    await readable.wait()
                if readable.is_set():
                    readable.clear()
                    with contextlib.suppress(BlockingIOError):
                        self._rx += os.read(self._fd, 4096)
                        self._rx_last = time.monotonic()
                    continue
                self._deliver(bytes(self._rx))
                self._rx.clear()
        finally:
            loop.remove_reader(self._fd)

    def _deliver(self, packet: bytes) -> None:
        owner = self._owner
        if owner is not None and not owner.is_closing():
            owner.write(packet)
        self._answer.set()

    # ---------------------------------------------------------------- clients

    async def _serve_client(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        me = asyncio.current_task()
        if me is not None:
            self._clients[me] = writer
        try:
            while True:
                request = await reader.read(512)
                if not request:
                    break
                await self._transact(request, writer)
        except ConnectionError:
            pass  # the master went away mid-request; its answer is lost, as on site
        finally:
            if self._owner is writer:
                self._owner = None
            writer.close()
            if me is not None:
                self._clients.pop(me, None)

    async def _transact(self, request: bytes, writer: asyncio.StreamWriter) -> None:
        async with self._line_lock:
            self.requests += 1
            self._owner = writer
            self._answer.clear()
            os.write(self._fd, request)
            try:
                await asyncio.wait_for(self._answer.wait(), self.response_timeout_s)
            except TimeoutError:
                self.timeouts += 1  # absent or silent unit: the line stays ours until now
            await writer.drain()

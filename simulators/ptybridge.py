"""An in-process null-modem cable: two pseudo-terminals joined back to back.

``PtyPair`` opens two pty pairs and pumps bytes between their master sides
in the running asyncio loop, exactly what ``socat pty,raw pty,raw`` does,
without the external process. Each side's slave path (``/dev/pts/N``) is what
a serial program opens: the gateway's RTU hub on one side, a simulated
device bus (``pymodbus`` serial server, an ASCII sensor) on the other.

The bridge can also play a noisy line: ``corrupt(probability)`` flips one
bit in chunks crossing it, and ``baudrate`` paces the bytes as a UART would
(10 bits per byte at 8N1), which gives RS-485 timing on the wire. A Modbus
RTU line with its silences and the devices' turnaround is
:class:`simulators.seriallink.SerialLink`, built on the same pty sides.

    async with PtyPair() as (a_path, b_path):
        ...  # open a_path and b_path with pyserial / pymodbus
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import termios
import tty

from simulators.lifecycle import ClosesOnExit, stop_tasks

CHUNK = 4096


class PtySide:
    """One pty pair: we keep both fds; the slave fd is held open so the
    master never sees EIO while no program has the device open."""

    def __init__(self) -> None:
        self.master, self.slave = os.openpty()
        tty.setraw(self.slave, termios.TCSANOW)
        # Raw mode on the slave's termios: no echo, no CR/LF mangling, 8 bits.
        os.set_blocking(self.master, False)
        self.path = os.ttyname(self.slave)

    def close(self) -> None:
        for fd in (self.master, self.slave):
            with contextlib.suppress(OSError):
                os.close(fd)


class PtyPair(ClosesOnExit):
    """Two serial device paths joined by an in-process null-modem cable.

    ``baudrate`` (optional) delays each chunk by its time on the wire;
    ``corrupt_probability`` (0..1) flips one random bit per chunk with that
    probability, on both directions; ``seed`` makes the noise reproducible.
    """

    def __init__(
        self,
        *,
        baudrate: int | None = None,
        corrupt_probability: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.baudrate = baudrate
        self.corrupt_probability = corrupt_probability
        self._rng = random.Random(seed)
        self._sides: tuple[PtySide, PtySide] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.bytes_a_to_b = 0
        self.bytes_b_to_a = 0
        self.corrupted_chunks = 0
        self.dropped_bytes = 0  # nobody read the other side: lost, as on a wire

    @property
    def paths(self) -> tuple[str, str]:
        if self._sides is None:
            raise RuntimeError("PtyPair is not open; use 'async with PtyPair()'")
        return self._sides[0].path, self._sides[1].path

    def corrupt(self, probability: float) -> None:
        """Set the probability (0..1) that a chunk crossing the cable gets
        one bit flipped; 0 turns the noise off."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {probability}")
        self.corrupt_probability = probability

    async def open(self) -> tuple[str, str]:
        a, b = PtySide(), PtySide()
        self._sides = (a, b)
        self._tasks = [
            asyncio.create_task(self._pump(a, b, "a_to_b"), name=f"pty {a.path}->{b.path}"),
            asyncio.create_task(self._pump(b, a, "b_to_a"), name=f"pty {b.path}->{a.path}"),
        ]
        return a.path, b.path

    async def close(self) -> None:
        await stop_tasks(*self._tasks)
        self._tasks = []
        if self._sides is not None:
            for side in self._sides:
                side.close()
            self._sides = None

    async def __aenter__(self) -> tuple[str, str]:
        return await self.open()

    async def _pump(self, src: PtySide, dst: PtySide, direction: str) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(src.master, readable.set)
        deaf = False
        try:
            while True:
                await readable.wait()
                readable.clear()
                try:
                    data = os.read(src.master, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    # EIO: the slave was closed and reopened between our
                    # reads; nothing was lost that a real cable would keep.
                    await asyncio.sleep(0.01)
                    continue
                if not data:
                    continue
                if self.baudrate:
                    await asyncio.sleep(len(data) * 10.0 / self.baudrate)
                if self.corrupt_probability and self._rng.random() < self.corrupt_probability:
                    data = self._flip_bit(data)
                    self.corrupted_chunks += 1
                if direction == "a_to_b":
                    self.bytes_a_to_b += len(data)
                else:
                    self.bytes_b_to_a += len(data)
                # Once a side is found deaf, later chunks are dropped at once
                # instead of each waiting out the patience again.
                delivered = await write_all(loop, dst.master, data, 0.0 if deaf else 1.0)
                deaf = not delivered
                if not delivered:
                    self.dropped_bytes += len(data)
        finally:
            loop.remove_reader(src.master)

    def _flip_bit(self, data: bytes) -> bytes:
        mangled = bytearray(data)
        index = self._rng.randrange(len(mangled))
        mangled[index] ^= 1 << self._rng.randrange(8)
        return bytes(mangled)


async def write_all(
    loop: asyncio.AbstractEventLoop, fd: int, data: bytes, patience_s: float = 1.0
) -> bool:
    """Write everything, waiting up to ``patience_s`` for the pty buffer to
    drain; False when it stayed full (no program reads that side), so the
    bytes are dropped as a line with nobody listening drops them instead of
    stalling the other direction."""
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            writable = asyncio.Event()
            loop.add_writer(fd, writable.set)
            try:
                if patience_s <= 0:
                    return False
                await asyncio.wait_for(writable.wait(), patience_s)
            except TimeoutError:
                return False
            finally:
                loop.remove_writer(fd)
            continue
        view = view[written:]
    return True

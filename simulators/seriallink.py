"""A baud-faithful RS-485 line between a Modbus RTU master and its devices.

:class:`~simulators.ptybridge.PtyPair` copies bytes between two ptys as fast
as the kernel moves them (or, paced, a chunk at a time), so nobody can tell
from it how close a master gets to the wire. ``SerialLink`` is the same
null-modem cable with the timing of a half-duplex RTU line:

* **characters take their time**: a frame of N bytes is on the wire for
  N x bits / baud, with bits = start + data + parity (if any) + stop
  (:class:`CharFormat`); the receiving side gets the frame when its last
  character has arrived;
* **one frame at a time** (RS-485 is half duplex), and **the 3.5-character
  silence** (1.75 ms above 19200 baud, :func:`drivers.modbus.rtu_silence_s`)
  between the end of one frame and the start of the next, whichever side
  sends it. A master that writes before the silence has passed (or while a
  reply is still on the wire) would garble both frames on a real line; the
  link delays its frame instead and counts it in ``early_requests``;
* **the device's turnaround**: a device (side ``b``) starts its answer no
  sooner than ``turnaround_s`` after it could tell the request had ended
  (its end + the silence). The simulated devices answer within a
  millisecond of CPU; the turnaround is what a real device adds.

Side ``a`` is the master (the gateway's RTU hub opens its path), side ``b``
the devices (a pymodbus serial server). Every frame is counted with its wire
time, so a benchmark can compute the bus utilisation, wire time / elapsed
time (:meth:`SerialLink.counters`), and with ``keep_frames`` the link keeps
the last frames (:class:`WireFrame`) to show where the gaps between them go.

Bytes a sender writes while its frame is still on the wire follow it back to
back (a UART's FIFO); a pause in the sender's writes that the line has
already drained ends the frame. ``corrupt(probability)`` flips one bit in
that fraction of the frames, both ways (EMI on a long run).

    async with SerialLink(baudrate=9600, turnaround_s=0.01) as (master, devices):
        ...  # the hub opens ``master``, ModbusBus.serve_serial(devices)
"""

from __future__ import annotations

import asyncio
import collections
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from drivers.modbus import rtu_silence_s
from simulators.lifecycle import ClosesOnExit, stop_tasks
from simulators.ptybridge import CHUNK, PtySide, write_all

# The event loop's timers are this late at worst, on an idle machine.
TIMER_SLACK_S = 0.002


@dataclass(frozen=True)
class CharFormat:
    """Baud rate and character format of a serial line."""

    baudrate: int = 9600
    parity: str = "N"
    stopbits: int = 1
    bytesize: int = 8

    def __post_init__(self) -> None:
        if self.parity not in ("N", "E", "O"):
            raise ValueError(f"parity must be 'N', 'E' or 'O', got {self.parity!r}")
        if self.bytesize not in (7, 8) or self.stopbits not in (1, 2) or self.baudrate <= 0:
            raise ValueError(
                f"need bytesize 7 or 8, stopbits 1 or 2 and baudrate > 0, got "
                f"{self.bytesize}, {self.stopbits}, {self.baudrate}"
            )

    @property
    def bits(self) -> int:
        """Bits per character on the wire: start, data, parity if any, stop."""
        return 1 + self.bytesize + (0 if self.parity == "N" else 1) + self.stopbits

    @property
    def char_s(self) -> float:
        return self.bits / self.baudrate

    @property
    def silence_s(self) -> float:
        """The RTU inter-frame silence (3.5 characters; 1.75 ms above 19200 Bd)."""
        return rtu_silence_s(
            self.baudrate, parity=self.parity, stopbits=self.stopbits, bytesize=self.bytesize
        )

    def wire_s(self, nbytes: int) -> float:
        """Seconds ``nbytes`` characters take on the wire."""
        return nbytes * self.char_s

    def __str__(self) -> str:
        return f"{self.baudrate} {self.bytesize}{self.parity}{self.stopbits}"


@dataclass(frozen=True)
class WireFrame:
    """One frame as it crossed the line (``clock()`` seconds).

    ``written``: when its first bytes reached the link (the sender wrote
    them); ``start``/``end``: its time on the wire; ``delivered``: when the
    receiver got it (``end`` plus the simulator's own lag)."""

    request: bool  # True: master -> devices
    data: bytes  # as sent (before any line noise)
    written: float
    start: float
    end: float
    delivered: float

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class LinkCounters:
    """Totals since the link opened; subtract two to get a window's."""

    at: float  # clock() when taken
    requests: int
    replies: int
    wire_s: float  # sum of the frames' wire time, both directions
    bytes_requests: int
    bytes_replies: int
    early_requests: int

    def __sub__(self, other: LinkCounters) -> LinkCounters:
        return LinkCounters(
            self.at - other.at,
            self.requests - other.requests,
            self.replies - other.replies,
            self.wire_s - other.wire_s,
            self.bytes_requests - other.bytes_requests,
            self.bytes_replies - other.bytes_replies,
            self.early_requests - other.early_requests,
        )

    @property
    def utilisation(self) -> float:
        """Wire time / elapsed time (of a difference of two counters)."""
        return self.wire_s / self.at if self.at > 0 else 0.0


class SerialLink(ClosesOnExit):
    """An RS-485 line at ``baudrate`` and character format between a master
    (side ``a``) and devices (side ``b``), each a pty path.

    ``turnaround_s``: a device's time from seeing the end of a request (its
    end + the 3.5-character silence) to starting its answer;
    ``corrupt_probability`` (0..1): share of frames with one bit flipped;
    ``keep_frames``: how many of the last frames to keep in :attr:`frames`.
    """

    def __init__(
        self,
        baudrate: int = 9600,
        *,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        turnaround_s: float = 0.0,
        corrupt_probability: float = 0.0,
        seed: int = 0,
        keep_frames: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fmt = CharFormat(baudrate, parity, stopbits, bytesize)
        if turnaround_s < 0:
            raise ValueError(f"turnaround_s must be >= 0, got {turnaround_s}")
        self.turnaround_s = turnaround_s
        self.corrupt(corrupt_probability)
        self._rng = random.Random(seed)
        self._clock = clock
        self._sides: tuple[PtySide, PtySide] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.frames: collections.deque[WireFrame] = collections.deque(maxlen=keep_frames)
        self._line_end = -1e9  # end of the last frame on the wire (or reserved)
        self._request_end = -1e9  # end of the last request
        self.requests = 0
        self.replies = 0
        self.wire_s = 0.0
        self.bytes_a_to_b = 0
        self.bytes_b_to_a = 0
        self.early_requests = 0
        self.corrupted_frames = 0
        self.dropped_bytes = 0  # nobody read the other side: lost, as on a wire
        self.max_lag_s = 0.0  # worst delivery after a frame's end (simulator lag)

    @property
    def baudrate(self) -> int:
        return self.fmt.baudrate

    @property
    def paths(self) -> tuple[str, str]:
        if self._sides is None:
            raise RuntimeError("SerialLink is not open; use 'async with SerialLink()'")
        return self._sides[0].path, self._sides[1].path

    def corrupt(self, probability: float) -> None:
        """Set the share (0..1) of frames that get one bit flipped; 0 = off."""
        if not 0.0 <= probability <= 1.0:
            raise ValueError(f"probability must be within 0..1, got {probability}")
        self.corrupt_probability = probability

    def record_frames(self, keep: int) -> None:
        """Keep the next frames (the last ``keep`` of them) in :attr:`frames`,
        forgetting those kept so far; 0 stops keeping them."""
        self.frames = collections.deque(maxlen=keep)

    def counters(self) -> LinkCounters:
        return LinkCounters(
            self._clock(),
            self.requests,
            self.replies,
            self.wire_s,
            self.bytes_a_to_b,
            self.bytes_b_to_a,
            self.early_requests,
        )

    async def open(self) -> tuple[str, str]:
        a, b = PtySide(), PtySide()
        self._sides = (a, b)
        self._tasks = [
            asyncio.create_task(self._pump(a, b, request=True), name=f"rs485 {a.path}->{b.path}"),
            asyncio.create_task(self._pump(b, a, request=False), name=f"rs485 {b.path}->{a.path}"),
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

    # ------------------------------------------------------------------ wire

    def _start_time(self, written: float, request: bool) -> float:
        """When a frame written at ``written`` can start on the wire."""
        free = self._line_end + self.fmt.silence_s
        if request:
            if written < free:
                self.early_requests += 1
            return max(written, free)
        answer = self._request_end + self.fmt.silence_s + self.turnaround_s
        return max(written, free, answer)

    async def _pump(self, src: PtySide, dst: PtySide, *, request: bool) -> None:
        loop = asyncio.get_running_loop()
        readable = asyncio.Event()
        loop.add_reader(src.master, readable.set)
        deaf = False
        try:
            while True:
                await readable.wait()
                readable.clear()
                data = await _read(src)
                if not data:
                    continue
                written = self._clock()
                start = self._start_time(written, request)
                end = start + self.fmt.wire_s(len(data))
                self._line_end = end  # reserved: the other side waits for it
                while True:  # what the sender adds meanwhile follows back to back
                    await self._sleep_until(end)
                    more = await _read(src)
                    if not more:
                        break
                    data += more
                    end += self.fmt.wire_s(len(more))
                    self._line_end = end
                deaf = await self._deliver(loop, dst, data, request, written, start, end, deaf)
        finally:
            loop.remove_reader(src.master)

    async def _sleep_until(self, deadline: float) -> None:
        """Sleep until ``clock() >= deadline``, to a fraction of a millisecond.

        The event loop's timers wake up to a millisecond or two late (epoll
        counts whole milliseconds), which on every frame would show up as
        idle line time the master did not cause; the last ``TIMER_SLACK_S``
        are slept blocking instead. Nothing else may use a half-duplex line
        while a frame is on it, so holding the loop that long costs no one
        a frame."""
        early = deadline - self._clock() - TIMER_SLACK_S
        if early > 0:
            await asyncio.sleep(early)
        _block_until(self._clock, deadline)

    async def _deliver(
        self,
        loop: asyncio.AbstractEventLoop,
        dst: PtySide,
        data: bytes,
        request: bool,
        written: float,
        start: float,
        end: float,
        deaf: bool,
    ) -> bool:
        """Count the frame and hand it to the receiver; returns whether the
        receiver is deaf (its pty full: nobody reads it)."""
        size, sent = len(data), data
        self.wire_s += end - start
        if request:
            self._request_end = end
            self.requests += 1
            self.bytes_a_to_b += size
        else:
            self.replies += 1
            self.bytes_b_to_a += size
        if self.corrupt_probability and self._rng.random() < self.corrupt_probability:
            mangled = bytearray(data)
            mangled[self._rng.randrange(size)] ^= 1 << self._rng.randrange(8)
            data = bytes(mangled)
            self.corrupted_frames += 1
        # Once a side is found deaf, later frames are dropped at once
        # instead of each waiting out the patience again.
        delivered = await write_all(loop, dst.master, data, 0.0 if deaf else 1.0)
        now = self._clock()
        self.max_lag_s = max(self.max_lag_s, now - end)
        if self.frames.maxlen:
            self.frames.append(WireFrame(request, sent, written, start, end, now))
        if not delivered:
            self.dropped_bytes += size
        return not delivered


def _block_until(clock: Callable[[], float], deadline: float) -> None:
    remaining = deadline - clock()
    if remaining > 0:
        time.sleep(min(remaining, TIMER_SLACK_S))


async def _read(side: PtySide) -> bytes:
    """What is waiting on ``side``'s master now, b"" if nothing."""
    try:
        return os.read(side.master, CHUNK)
    except BlockingIOError:
        return b""
    except OSError:
        # EIO: the slave was closed and reopened between our reads;
        # nothing was lost that a real cable would keep.
        await asyncio.sleep(0.01)
        return b""

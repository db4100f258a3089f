"""RTU hub on a real pty pair (socat) and RTU-over-TCP hub against a
pymodbus TCP server speaking RTU frames, as a DTU does."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from driverpeers import FakeClock, PtyPair, start_rtu, start_tcp
from pymodbus.framer import FramerType

from drivers.codec import encode
from drivers.errors import (
    CorruptFrame,
    DeviceTimeout,
    ErrorKind,
    ModbusExceptionResponse,
    TransportError,
)
from drivers.modbus import RtuHub, RtuOverTcpHub, make_hub
from drivers.plan import build_plan
from drivers.types import DataType, PointSpec, RegisterKind, WordOrder

H, INP, C = RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL


async def test_rtu_units_on_one_bus_and_absent_unit(pty_pair: PtyPair) -> None:
    peer = await start_rtu(pty_pair.a, units=(1, 2))
    try:
        peer.devices[1].put(H, 0, [11, 12, 13])
        peer.devices[2].put(INP, 4, [21, 22])
        peer.devices[2].put(C, 0, [True, True, False])
        async with RtuHub(
            pty_pair.b, baudrate=115200, timeout_s=0.3, retries=0, name="rs485-1"
        ) as hub:
            assert await hub.read(1, H, 0, 3) == [11, 12, 13]
            assert await hub.read(2, INP, 4, 2) == [21, 22]
            assert await hub.read(2, C, 0, 3) == [True, True, False]
            with pytest.raises(DeviceTimeout):
                await hub.read(7, H, 0, 1)  # nobody at unit 7: silence
            # the bus survives: other units still answer, and in order
            for _ in range(5):
                assert await hub.read(1, H, 0, 3) == [11, 12, 13]
                assert await hub.read(2, INP, 4, 2) == [21, 22]
            with pytest.raises(ModbusExceptionResponse) as info:
                await hub.read(1, H, 1999, 5)
            assert info.value.code == 2
            assert hub.stats.errors[ErrorKind.TIMEOUT] == 1
    finally:
        await peer.stop()


async def test_rtu_bad_crc_is_corrupt_frame_and_retried(pty_pair: PtyPair) -> None:
    peer = await start_rtu(pty_pair.a, units=(1,))
    try:
        peer.devices[1].put(H, 0, [321])
        async with RtuHub(
            pty_pair.b, baudrate=115200, timeout_s=0.2, retries=1, late_reply_s=0.05, name="b"
        ) as hub:
            peer.corrupter.n = 1
            assert await hub.read(1, H, 0, 1) == [321]  # first reply spoiled, retry good
            assert hub.stats.errors[ErrorKind.CORRUPT] == 1 and hub.stats.retries == 1
            peer.corrupter.n = 2
            with pytest.raises(CorruptFrame, match="bad CRC"):
                await hub.read(1, H, 0, 1)
            assert await hub.read(1, H, 0, 1) == [321]
    finally:
        await peer.stop()


async def test_rtu_late_reply_is_never_taken_for_the_next(pty_pair: PtyPair) -> None:
    peer = await start_rtu(pty_pair.a, units=(1,))
    try:
        dev = peer.devices[1]
        dev.put(H, 0, [1, 2])
        dev.put(H, 10, [100, 200])
        async with RtuHub(
            pty_pair.b, baudrate=115200, timeout_s=0.15, retries=0, late_reply_s=0.2, name="b"
        ) as hub:
            dev.slow, dev.slow_s = 1, 0.25  # answers 0.1 s after the timeout
            with pytest.raises(DeviceTimeout):
                await hub.read(1, H, 0, 2)
            # Requests of the same shape while the late [1, 2] is on its way:
            # only the hub's drain keeps it from being taken for one of them.
            deadline = time.monotonic() + 0.3
            while time.monotonic() < deadline:
                assert await hub.read(1, H, 10, 2) == [100, 200]
            assert await hub.read(1, H, 0, 2) == [1, 2]
            assert hub.stats.unsolicited >= 1  # the late reply was seen and dropped
    finally:
        await peer.stop()


async def test_rtu_frame_pause_between_requests(pty_pair: PtyPair) -> None:
    peer = await start_rtu(pty_pair.a, units=(1, 2))
    try:
        async with RtuHub(pty_pair.b, baudrate=115200, extra_pause_s=0.03, name="b") as hub:

            async def poll(unit: int) -> None:
                for _ in range(5):
                    await hub.read(unit, H, 0, 2)

            await asyncio.gather(poll(1), poll(2))  # concurrent callers, one bus
        arrivals = sorted(t for dev in peer.devices.values() for t, *_ in dev.seen)
        assert len(arrivals) == 10
        gaps = [b - a for a, b in itertools.pairwise(arrivals)]
        assert min(gaps) >= 0.03 * 0.9  # serialised, with the pause between frames
    finally:
        await peer.stop()


async def test_rtu_silence_follows_the_baud_rate_plus_the_sites_extra_pause(
    pty_pair: PtyPair,
) -> None:
    """At 1200 baud 8N1 the 3.5-character silence is 29 ms; the site's
    ``frame_pause_ms`` comes on top of it (the old hub kept only the 5 ms)."""
    peer = await start_rtu(pty_pair.a, units=(1,), baudrate=1200)
    bus = {"type": "rtu", "name": "slow", "serial_port": pty_pair.b, "baudrate": 1200}
    try:
        async with make_hub({**bus, "frame_pause_ms": 5, "timeout_s": 2.0}) as hub:
            for _ in range(4):
                await hub.read(1, H, 0, 2)
        arrivals = [t for t, *_ in peer.devices[1].seen]
        assert len(arrivals) == 4
        # Between two requests: the reply, then at least the silence and the
        # extra pause (the pty carries bytes at any speed, so the wire adds
        # next to nothing to this lower bound).
        silence = 3.5 * 10 / 1200 + 0.005
        assert min(b - a for a, b in itertools.pairwise(arrivals)) >= silence * 0.95
    finally:
        await peer.stop()


async def test_rtu_silence_runs_from_the_replys_arrival_not_its_decoding(
    pty_pair: PtyPair,
) -> None:
    """The 3.5 characters are kept between frames on the wire: time the hub
    spends decoding a reply after its last byte arrived counts toward the
    silence before the next request (the hub used to start it after the
    decoding, which left the line idle for that time on every transaction)."""
    peer = await start_rtu(pty_pair.a, units=(1,), baudrate=9600)
    clock = FakeClock()
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        clock.advance(seconds)

    class SlowDecoding(RtuHub):
        async def _exchange(self, *args: Any) -> Any:
            reply = await super()._exchange(*args)
            clock.advance(0.003)  # 3 ms after the reply's last byte
            return reply

    try:
        async with SlowDecoding(pty_pair.b, baudrate=9600, clock=clock, sleep=sleep) as hub:
            await hub.read(1, H, 0, 2)
            await hub.read(1, H, 0, 2)
        silence = 3.5 * 10 / 9600
        assert waits == [pytest.approx(silence - 0.003)]
    finally:
        await peer.stop()


async def test_rtu_port_missing_and_vanishing(
    pty_pair: PtyPair, fake_clock: FakeClock, tmp_path: Path
) -> None:
    missing = RtuHub(str(tmp_path / "ttyUSB9"), name="gone", clock=fake_clock)
    async with missing:
        with pytest.raises(TransportError, match="does not exist"):
            fake_clock.advance(100)
            await missing.read(1, H, 0, 1)

    peer = await start_rtu(pty_pair.a, units=(1,))
    hub = RtuHub(
        pty_pair.b, baudrate=115200, timeout_s=0.2, retries=0, name="usb", clock=fake_clock
    )
    try:
        async with hub:
            assert await hub.read(1, H, 0, 1) == [0]
            await peer.stop()
            pty_pair.stop()  # the adapter is unplugged
            await asyncio.sleep(0.05)
            with pytest.raises((TransportError, DeviceTimeout)):
                await hub.read(1, H, 0, 1)
            fake_clock.advance(100)
            with pytest.raises(TransportError):
                await hub.read(1, H, 0, 1)
            pty_pair.start()  # plugged back in
            peer = await start_rtu(pty_pair.a, units=(1,))
            peer.devices[1].put(H, 0, [77])
            # the next polls find it again; the first may still catch the
            # new server starting (no reply, or the tail of a stale frame)
            got = None
            for _ in range(10):
                fake_clock.advance(100)
                try:
                    got = await hub.read(1, H, 0, 1)
                    break
                except (DeviceTimeout, CorruptFrame):
                    await asyncio.sleep(0.1)
            assert got == [77]
    finally:
        await peer.stop()


async def test_rtu_over_tcp_every_order_and_faults() -> None:
    peer = await start_tcp(units=(1, 3), framer=FramerType.RTU)
    try:
        points = [
            PointSpec(f"f_{o}", H, i * 2, DataType.FLOAT32, o) for i, o in enumerate(WordOrder)
        ] + [PointSpec(f"q_{o}", H, 8 + i * 4, DataType.INT64, o) for i, o in enumerate(WordOrder)]
        for p in points:
            peer.devices[3].put(
                H, p.address, encode(-1.5 if p.dtype is DataType.FLOAT32 else -(2**40), p)
            )
        plan = build_plan(points)
        async with RtuOverTcpHub(
            "127.0.0.1", peer.port, timeout_s=0.2, retries=1, name="dtu"
        ) as hub:
            (req,) = plan.requests
            values = plan.decode(req, await hub.read(3, req.kind, req.address, req.count))
            assert all(v == (-1.5 if n.startswith("f_") else -(2**40)) for n, v in values.items())
            started = time.monotonic()
            with pytest.raises(DeviceTimeout):
                await hub.read(5, H, 0, 1)
            assert time.monotonic() - started >= 0.4  # one retry of the timeout
            peer.corrupter.n = 1
            assert await hub.read(1, H, 0, 1) == [0]
            assert hub.stats.errors[ErrorKind.CORRUPT] == 1
    finally:
        await peer.stop()

"""Modbus TCP hub against a real pymodbus TCP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import math
import random
import socket
import time

import pytest
from driverpeers import FakeClock, Peer, start_tcp

from drivers.codec import encode
from drivers.errors import (
    DeviceBusy,
    DeviceTimeout,
    ErrorKind,
    GatewayTargetSilent,
    ModbusExceptionResponse,
    TransportError,
)
from drivers.modbus import Backoff, TcpHub, make_hub, rtu_silence_s
from drivers.plan import build_plan
from drivers.types import DataType, PointSpec, RegisterKind, WordOrder

H, INP, C, D = RegisterKind.HOLDING, RegisterKind.INPUT, RegisterKind.COIL, RegisterKind.DISCRETE


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_reads_every_table_of_several_units(tcp_peer: Peer) -> None:
    rng = random.Random(7)
    for unit, dev in tcp_peer.devices.items():
        dev.put(H, 10, [rng.randrange(65536) for _ in range(100)])
        dev.put(INP, 0, [unit * 1000 + i for i in range(5)])
        dev.put(C, 3, [True, False, True])
        dev.put(D, 0, [False, True])
    async with TcpHub("127.0.0.1", tcp_peer.port, timeout_s=1.0, name="t") as hub:
        for unit, dev in tcp_peer.devices.items():
            assert await hub.read(unit, H, 10, 100) == dev.get(H, 10, 100)
            assert await hub.read(unit, INP, 0, 5) == [unit * 1000 + i for i in range(5)]
            assert await hub.read(unit, C, 3, 3) == [True, False, True]
            assert await hub.read(unit, D, 0, 2) == [False, True]
        assert hub.stats.ok == hub.stats.requests == 8
        assert hub.stats.latency_count == 8 and hub.stats.latency_sum_s > 0
        assert sum(hub.stats.latency_buckets) == 8


def all_type_points() -> list[tuple[PointSpec, object]]:
    points: list[tuple[PointSpec, object]] = []
    address = 0
    values: dict[DataType, object] = {
        DataType.INT16: -12345,
        DataType.UINT16: 54321,
        DataType.INT32: -123456789,
        DataType.UINT32: 3_000_000_000,
        DataType.INT64: -(2**62) + 12345,
        DataType.UINT64: 2**63 + 99,
        DataType.FLOAT32: 123.456,
        DataType.FLOAT64: -9876.54321,
        DataType.STRING: "FAN-07",
        DataType.BOOL: True,
    }
    for dtype, value in values.items():
        for order in WordOrder:
            spec = PointSpec(f"{dtype}_{order}", H, address, dtype, order, length=3)
            points.append((spec, value))
            address += spec.width
    for bit in (0, 7, 8, 15):
        for order in (WordOrder.ABCD, WordOrder.BADC):
            spec = PointSpec(f"bit{bit}_{order}", H, address, DataType.BIT, order, bit=bit)
            points.append((spec, True))
            address += 1
    scaled = PointSpec("scaled", H, address, DataType.INT16, scale=0.1, offset=-20.0)
    points.append((scaled, 3.5))
    return points


async def test_every_type_and_order_end_to_end(tcp_peer: Peer) -> None:
    dev = tcp_peer.devices[1]
    points = all_type_points()
    for spec, value in points:
        dev.put(H, spec.address, encode(value, spec))  # type: ignore[arg-type]
    plan = build_plan([p for p, _ in points], max_registers=40)
    assert len(plan.requests) >= 3  # values cross request boundaries intact
    async with TcpHub("127.0.0.1", tcp_peer.port, name="t") as hub:
        got: dict[str, object] = {}
        for req in plan.requests:
            got.update(plan.decode(req, await hub.read(1, req.kind, req.address, req.count)))
    for spec, value in points:
        if spec.dtype is DataType.FLOAT32:
            assert math.isclose(got[spec.name], value, rel_tol=1e-6), spec.name  # type: ignore[arg-type]
        elif spec.name == "scaled":
            assert got[spec.name] == pytest.approx(value)
        else:
            assert got[spec.name] == value, spec.name


async def test_illegal_address_is_exception_2_and_not_retried(tcp_peer: Peer) -> None:
    async with TcpHub("127.0.0.1", tcp_peer.port, retries=3, name="t") as hub:
        with pytest.raises(ModbusExceptionResponse) as info:
            await hub.read(1, H, 1990, 20)
        assert info.value.code == 2 and info.value.unit == 1
        assert not isinstance(info.value, DeviceBusy)
        assert hub.stats.transactions == 1
        assert hub.stats.errors[ErrorKind.EXCEPTION] == 1


async def test_gateway_exceptions_10_and_11_say_the_device_behind_is_silent(tcp_peer: Peer) -> None:
    async with TcpHub("127.0.0.1", tcp_peer.port, retries=3, name="t") as hub:
        for code, meaning in ((10, "gateway path unavailable"), (11, "failed to respond")):
            tcp_peer.devices[1].exception = code
            with pytest.raises(GatewayTargetSilent) as info:
                await hub.read(1, H, 0, 1)
            assert info.value.code == code and meaning in str(info.value)
            assert info.value.kind is ErrorKind.GATEWAY
        assert hub.stats.transactions == 2  # not retried: the gateway already waited
        assert hub.stats.errors[ErrorKind.GATEWAY] == 2


async def test_busy_is_retried_until_retries_run_out(tcp_peer: Peer) -> None:
    dev = tcp_peer.devices[2]
    dev.put(H, 0, [42])
    sleeps: list[float] = []

    async def record_sleep(seconds: float) -> None:
        sleeps.append(seconds)

    async with TcpHub("127.0.0.1", tcp_peer.port, retries=2, name="t", sleep=record_sleep) as hub:
        dev.busy = 2
        assert await hub.read(2, H, 0, 1) == [42]
        assert hub.stats.retries == 2 and hub.stats.errors[ErrorKind.BUSY] == 2
        assert len(sleeps) == 2 and all(0 < s < 0.2 for s in sleeps)  # short, jittered
        dev.busy = 3
        with pytest.raises(DeviceBusy) as info:
            await hub.read(2, H, 0, 1)
        assert info.value.code == 6
        assert hub.stats.failures == 1


async def test_absent_unit_times_out_and_others_still_answer(tcp_peer: Peer) -> None:
    tcp_peer.devices[1].put(H, 0, [7])
    async with TcpHub("127.0.0.1", tcp_peer.port, timeout_s=0.2, retries=1, name="t") as hub:
        started = time.monotonic()
        with pytest.raises(DeviceTimeout):
            await hub.read(9, H, 0, 1)
        assert time.monotonic() - started >= 0.4  # the timeout was retried once
        assert hub.stats.errors[ErrorKind.TIMEOUT] == 2
        assert await hub.read(1, H, 0, 1) == [7]
        assert hub.connected


async def test_connection_refused_backs_off_and_recovers(
    fake_clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()
    backoff = Backoff(1.0, 8.0, jitter=0.0)
    hub = TcpHub("127.0.0.1", port, timeout_s=0.5, name="dead", clock=fake_clock, backoff=backoff)
    caplog.set_level(logging.DEBUG, logger="drivers.modbus")
    async with hub:  # a device down at start-up does not stop the gateway
        assert not hub.connected
        assert hub.stats.connect_failures == 1
        # while backing off, reads fail at once without touching the network
        started = time.monotonic()
        for _ in range(5):
            with pytest.raises(TransportError, match=r"link down \(connection refused\), next"):
                await hub.read(1, H, 0, 1)
        assert time.monotonic() - started < 0.1
        assert hub.stats.connect_failures == 1
        fake_clock.advance(1.0)
        # pymodbus only says the connect failed; the hub asks the OS why
        refused = f"connection to 127.0.0.1:{port} refused: nothing listens on that port"
        with pytest.raises(TransportError, match=refused):
            await hub.read(1, H, 0, 1)
        assert hub.stats.connect_failures == 2
        fake_clock.advance(1.5)  # second delay is 2 s: still backing off
        with pytest.raises(TransportError, match="next reconnect"):
            await hub.read(1, H, 0, 1)
        peer = await start_tcp(port=port)
        try:
            peer.devices[1].put(H, 0, [99])
            fake_clock.advance(0.5)
            assert await hub.read(1, H, 0, 1) == [99]
            assert hub.backoff.failures == 0
        finally:
            await peer.stop()
    warnings = [
        r for r in caplog.records if r.levelno == logging.WARNING and "dead" in r.getMessage()
    ]
    assert len(warnings) == 1  # first failure loud, repeats quiet
    assert refused in warnings[0].getMessage()
    assert not [r for r in caplog.records if "cannot connect within" in r.getMessage()]
    assert any(r.levelno == logging.INFO and "recovered" in r.getMessage() for r in caplog.records)


async def test_server_restart_is_transport_error_then_reconnect(fake_clock: FakeClock) -> None:
    peer = await start_tcp()
    port = peer.port
    hub = TcpHub("127.0.0.1", port, timeout_s=0.5, retries=0, name="t", clock=fake_clock)
    async with hub:
        assert await hub.read(1, H, 0, 1) == [0]
        await peer.stop()
        await asyncio.sleep(0.05)
        with pytest.raises(TransportError):
            await hub.read(1, H, 0, 1)
        assert hub.stats.errors[ErrorKind.TRANSPORT] >= 1
        peer = await start_tcp(port=port)
        try:
            peer.devices[1].put(H, 0, [5])
            fake_clock.advance(60)
            assert await hub.read(1, H, 0, 1) == [5]
            assert hub.stats.connects == 2
        finally:
            await peer.stop()


async def test_writes_registers_and_coils(tcp_peer: Peer) -> None:
    dev = tcp_peer.devices[1]
    async with TcpHub("127.0.0.1", tcp_peer.port, name="t") as hub:
        await hub.write(1, H, 5, [1234])
        await hub.write(1, H, 6, [1, 2, 3])
        await hub.write(1, C, 0, [True])
        await hub.write(1, C, 1, [False, True])
        assert dev.get(H, 5, 4) == [1234, 1, 2, 3]
        assert dev.get(C, 0, 3) == [True, False, True]
        with pytest.raises(ValueError, match="read-only"):
            await hub.write(1, INP, 0, [1])
        with pytest.raises(ValueError, match=r"0\.\.65535"):
            await hub.write(1, H, 0, [70000])
        with pytest.raises(ValueError, match="count"):
            await hub.read(1, H, 0, 126)


async def test_one_dead_hub_does_not_delay_another(tcp_peer: Peer) -> None:
    # an address that swallows SYNs is not available on 127.0.0.1; a server
    # that never answers (absent unit) is the slow peer instead
    tcp_peer.devices[1].put(H, 0, [1])
    async with (
        TcpHub("127.0.0.1", tcp_peer.port, timeout_s=1.0, retries=0, name="slow") as slow,
        TcpHub("127.0.0.1", tcp_peer.port, timeout_s=1.0, name="fast") as fast,
    ):
        slow_task = asyncio.create_task(slow.read(9, H, 0, 1))
        await asyncio.sleep(0.01)
        started = time.monotonic()
        for _ in range(20):
            assert await fast.read(1, H, 0, 1) == [1]
        assert time.monotonic() - started < 0.9
        with pytest.raises(DeviceTimeout):
            await slow_task


async def test_make_hub_from_bus_config() -> None:
    hub = make_hub(
        {
            "type": "tcp",
            "name": "b1",
            "host": "127.0.0.1",
            "port": 1502,
            "timeout_s": 0.3,
            "retries": 2,
        }
    )
    assert (
        isinstance(hub, TcpHub) and hub.timeout_s == 0.3 and hub.retries == 2 and hub.name == "b1"
    )
    dtu = make_hub(
        {
            "type": "rtu_over_tcp",
            "name": "d",
            "host": "h",
            "port": 4001,
            "frame_pause_ms": 20,
            "baudrate": 9600,
        }
    )
    assert dtu.frame_pause_s == pytest.approx(0.02) and dtu.serialised
    rtu = make_hub(
        {"type": "rtu", "name": "r", "serial_port": "/dev/ttyS9", "baudrate": 19200, "parity": "E"}
    )
    assert rtu.frame_pause_s == pytest.approx(3.5 * 11 / 19200)
    # The 3.5-character silence comes from the baud rate and the character
    # format (start + 8 data + stop = 10 bits for 8N1); frame_pause_ms is
    # added on top of it, never in its place.
    slow = make_hub(
        {
            "type": "rtu",
            "name": "r",
            "serial_port": "/dev/ttyS9",
            "baudrate": 1200,
            "frame_pause_ms": 5,
        }
    )
    assert slow.frame_pause_s == pytest.approx(3.5 * 10 / 1200 + 0.005)
    fast = make_hub(
        {
            "type": "rtu",
            "name": "r",
            "serial_port": "/dev/ttyS9",
            "baudrate": 115200,
            "frame_pause_ms": 2,
        }
    )
    assert fast.frame_pause_s == pytest.approx(0.00175 + 0.002)  # fixed above 19200 baud
    assert rtu_silence_s(4800, parity="E") == pytest.approx(3.5 * 11 / 4800)  # ~8 ms
    assert rtu_silence_s(9600, stopbits=2, bytesize=7) == pytest.approx(3.5 * 10 / 9600)
    with pytest.raises(ValueError, match="parity"):
        make_hub({"type": "rtu", "name": "r", "serial_port": "/dev/ttyS9", "parity": "X"})
    with pytest.raises(ValueError, match="bytesize"):
        make_hub({"type": "rtu", "name": "r", "serial_port": "/dev/ttyS9", "bytesize": 9})
    with pytest.raises(ValueError, match="make_port"):
        make_hub({"type": "ascii", "name": "a", "serial_port": "/dev/x"})
    with pytest.raises(ValueError, match="missing key 'host'"):
        make_hub({"type": "tcp", "name": "x"})
    with pytest.raises(ValueError, match="unknown type"):
        make_hub({"type": "can", "name": "x"})


def test_backoff_is_capped_and_jittered() -> None:
    backoff = Backoff(0.5, 4.0, jitter=0.5, rng=random.Random(1))
    delays = [backoff.next_delay() for _ in range(8)]
    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(cap * 0.5 <= d <= cap for d, cap in zip(delays, caps, strict=True))
    assert len(set(delays)) == len(delays)  # jittered
    backoff.reset()
    assert backoff.next_delay() <= 0.5


@pytest.mark.slow
async def test_throughput_many_hubs(tcp_peer: Peer) -> None:
    # The gateway benchmark needs >= 1000 req/s over 50 devices; here 10
    # hubs share one in-process server (and two cores with other tests), so
    # only a loose floor is asserted; the number is printed for the record.
    hubs = [TcpHub("127.0.0.1", tcp_peer.port, name=f"h{i}") for i in range(10)]
    for hub in hubs:
        await hub.__aenter__()
    try:

        async def poll(hub: TcpHub) -> None:
            for _ in range(100):
                await hub.read(1, H, 0, 100)

        started = time.perf_counter()
        await asyncio.gather(*(poll(h) for h in hubs))
        rate = 1000 / (time.perf_counter() - started)
    finally:
        for hub in hubs:
            await hub.close()
    print(f"\nTCP hub throughput: {rate:.0f} req/s (100 registers each)")
    assert rate > 200


async def test_all_silent_tcp_link_is_reopened(tcp_peer: Peer) -> None:
    # Half-open connections (a DTU rebooted behind NAT) only show as
    # timeouts; after `reconnect_after_timeouts` in a row the hub reconnects.
    async with TcpHub("127.0.0.1", tcp_peer.port, timeout_s=0.05, retries=0, name="t") as hub:
        hub.reconnect_after_timeouts = 3
        for _ in range(3):
            with pytest.raises(DeviceTimeout):
                await hub.read(9, H, 0, 1)
        assert hub.stats.disconnects == 1 and not hub.connected
        assert await hub.read(1, H, 0, 1) == [0]
        assert hub.stats.connects == 2
        # a good reply in between resets the count
        for _ in range(2):
            with pytest.raises(DeviceTimeout):
                await hub.read(9, H, 0, 1)
            assert await hub.read(1, H, 0, 1) == [0]
        assert hub.stats.connects == 2


async def test_link_lost_mid_request_fails_fast() -> None:
    peer = await start_tcp()
    dev = peer.devices[1]
    dev.slow, dev.slow_s = 1, 2.0
    async with TcpHub("127.0.0.1", peer.port, timeout_s=3.0, retries=2, name="t") as hub:
        pending = asyncio.create_task(hub.read(1, H, 0, 1))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await peer.stop()  # the device drops the connection while we wait
        with pytest.raises(TransportError):
            await pending
        assert time.monotonic() - started < 1.0  # not the 3 s timeout, no retries
        assert hub.stats.transactions == 1 and not hub.connected


async def test_unit_failures_logged_once_then_recovery(
    tcp_peer: Peer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="drivers.modbus")
    dev = tcp_peer.devices[2]
    async with TcpHub("127.0.0.1", tcp_peer.port, retries=0, name="plc") as hub:
        dev.busy = 3
        for _ in range(3):
            with pytest.raises(DeviceBusy):
                await hub.read(2, H, 0, 1)
        assert await hub.read(2, H, 0, 1) == [0]
    mine = [r for r in caplog.records if r.name == "drivers.modbus" and "unit 2" in r.getMessage()]
    levels = [r.levelno for r in mine]
    assert levels == [logging.WARNING, logging.DEBUG, logging.DEBUG, logging.INFO]
    assert "recovered after 3" in mine[-1].getMessage()

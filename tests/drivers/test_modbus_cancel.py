"""Cancelling a read that waits on a silent unit must cancel, not turn into
a timeout: a stopping gateway cancels its pollers and waits for them."""

from __future__ import annotations

import asyncio
import time

from driverpeers import Peer

from drivers.modbus import TcpHub
from drivers.types import RegisterKind


async def test_cancel_while_waiting_on_silent_unit(tcp_peer: Peer) -> None:
    async with TcpHub("127.0.0.1", tcp_peer.port, timeout_s=5.0, retries=3, name="c") as hub:
        task = asyncio.create_task(hub.read(9, RegisterKind.HOLDING, 0, 1))  # unit 9 is absent
        await asyncio.sleep(0.3)
        assert not task.done()
        started = time.monotonic()
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=2.0)
        assert task in done, "the read ignored its cancellation"
        assert task.cancelled()
        assert time.monotonic() - started < 2.0
        # the hub still serves the units that answer
        tcp_peer.devices[1].put(RegisterKind.HOLDING, 0, [42])
        assert await hub.read(1, RegisterKind.HOLDING, 0, 1) == [42]

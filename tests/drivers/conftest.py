"""Fixtures for the driver tests; the peers themselves live in
``driverpeers.py`` (importable by the test modules)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from driverpeers import FakeClock, Peer, PtyPair, start_tcp


@pytest.fixture
async def tcp_peer() -> AsyncIterator[Peer]:
    peer = await start_tcp()
    yield peer
    await peer.stop()


@pytest.fixture
def pty_pair(tmp_path: Path) -> Iterator[PtyPair]:
    pair = PtyPair(tmp_path)
    pair.start()
    yield pair
    pair.stop()


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()

"""The metrics registry components register with, and the one wait helper."""

from __future__ import annotations

import asyncio
import random

import pytest

from drivers.backoff import Backoff, backoff_delay
from gateway.metrics import GatewayMetrics, MetricsRegistry
from gateway.scheduler import stopped_within


def test_registered_metrics_are_prefixed_in_registration_order() -> None:
    registry = MetricsRegistry()
    counts = {"requests": 1}
    registry.register("bus.b1", lambda: counts)
    registry.register("sink.influx", lambda: {"state": "ok", "connected": True})
    counts["requests"] = 5  # read at collect time, not at registration
    assert list(registry.collect().items()) == [
        ("bus.b1.requests", 5),
        ("sink.influx.state", "ok"),
        ("sink.influx.connected", True),
    ]


def test_a_prefix_registers_once() -> None:
    registry = MetricsRegistry()
    registry.register("bus.b1", dict)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("bus.b1", dict)


def test_snapshot_ends_with_the_registered_metrics() -> None:
    metrics = GatewayMetrics()
    metrics.registry.register("bus.b1", lambda: {"requests": 7})
    record = metrics.snapshot(1_000)
    assert record.points[-1] == "bus.b1.requests" and record.values[-1] == 7


def test_backoff_is_backoff_delay_with_a_failure_count() -> None:
    backoff = Backoff(0.5, 4.0, rng=random.Random(3))
    rng = random.Random(3)
    expected = [backoff_delay(n, 0.5, 4.0, rng.random) for n in range(6)]
    assert [backoff.next_delay() for _ in range(6)] == expected


async def test_stopped_within_says_whether_stop_was_set() -> None:
    stop, wake = asyncio.Event(), asyncio.Event()
    assert await stopped_within(stop, 0.01) is False  # timed out
    asyncio.get_running_loop().call_later(0.01, wake.set)
    assert await stopped_within(stop, 10.0, wake=wake) is False  # woken, not stopped
    asyncio.get_running_loop().call_later(0.01, stop.set)
    assert await stopped_within(stop, 10.0, wake=asyncio.Event()) is True
    assert await stopped_within(stop, 10.0) is True  # already set: at once

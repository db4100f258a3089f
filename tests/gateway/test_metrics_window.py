"""The latency windows of the self-metrics: a ring of 8-byte floats per
device, and one window of every device's requests for ``total.*``."""

from __future__ import annotations

import tracemalloc

from gateway.metrics import TOTAL_WINDOWS, GatewayMetrics, LatencyWindow, percentile


def test_window_keeps_the_last_n_oldest_first() -> None:
    w = LatencyWindow(4)
    for x in range(1, 11):
        w.append(float(x))
    assert list(w) == [7.0, 8.0, 9.0, 10.0] and len(w) == 4
    w.resize(6)  # grows, keeps order, then fills
    w.append(11.0)
    w.append(12.0)
    w.append(13.0)
    assert list(w) == [8.0, 9.0, 10.0, 11.0, 12.0, 13.0]
    w.resize(2)  # never shrinks
    assert len(w) == 6


def test_totals_are_the_last_requests_of_every_device() -> None:
    m = GatewayMetrics(latency_window=10)
    devs = [m.device(f"d{i}") for i in range(3)]
    for k in range(20):
        for i, d in enumerate(devs):
            d.request_ok(i + k / 100)
    total = m.totals()
    assert total.requests == 60
    # 3 devices x window 10: the last 30 requests, 10 of each device
    assert len(total.latencies) == 30
    assert sorted(total.latencies) == sorted(i + k / 100 for k in range(10, 20) for i in range(3))
    snap = m.snapshot(1)
    values = dict(zip(snap.points, snap.values, strict=True))
    assert values["total.latency_p99_ms"] == round(1000 * percentile(list(total.latencies), 99), 3)
    assert values["d2.latency_p99_ms"] == 2190.0


def test_memory_per_device_is_the_array_of_its_window() -> None:
    m = GatewayMetrics(latency_window=1000)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i in range(100):
        d = m.device(f"dev{i}")
        for k in range(1000):
            d.request_ok(k * 1e-4)
    used = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # 100 x 1000 x 8 bytes, the total window of 10 devices' worth, and
    # the counters; a deque of floats took 100 x 32 kB
    assert used < 100 * 1000 * 8 * 1.3 + TOTAL_WINDOWS * 1000 * 8 + 100 * 4000

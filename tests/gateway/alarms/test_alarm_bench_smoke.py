"""The alarm evaluation-cost benchmark runs (tiny), so it does not rot."""

from __future__ import annotations

from bench.alarms_bench import run


def test_alarms_bench_smoke() -> None:
    r = run(devices=20, seconds=5)
    assert r["rules"] == 200  # ten alarms per monitor
    assert r["virtual_s"] == 5 and r["cpu_s"] > 0

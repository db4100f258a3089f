"""The platform benchmark (bench/platform_bench.py): its arithmetic on
made-up samples, and a tiny real run so it does not rot between
`make bench-platform` runs (its numbers are not checked here, only that
every part ran: two instances sharing the load, alerts timed at the
webhook receiver, a last will detected, nothing missing, the ramp)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.platform_bench import Case, summarise

from .conftest import servers

ROOT = Path(__file__).resolve().parents[2]


def _sample(t: float, acked: int, applied: list[int], cpu: list[float]) -> dict[str, Any]:
    return {
        "t": t,
        "gen": {"t": t, "due": acked, "acked": acked + 10, "statuses": 10},
        "alarms": 0,
        "stats": [{"applied": {"snapshot": n, "status": 10}} for n in applied],
        "cpu": cpu,
        "db_cpu": 0.0,
        "broker_cpu": 0.0,
    }


def test_rates_shares_and_falling_behind_from_two_samples() -> None:
    case = Case("c", "sqlite", 2, 100, 10)
    a = _sample(100.0, 1000, [450, 450], [1.0, 2.0])
    kept_up = summarise(case, a, _sample(110.0, 2000, [950, 1000], [2.0, 3.5]), [50.0] * 2, [60.0] * 2)  # fmt: skip
    assert kept_up["published_per_s"] == 100.0 and kept_up["handled_per_s"] == 105.0
    assert kept_up["handled_share_per_instance"] == [0.476, 0.524]  # statuses not counted
    assert kept_up["cpu_cores_per_instance"] == [0.1, 0.15]
    assert kept_up["handled_per_cpu_s"] == 420.0
    assert kept_up["backlog_at_end"] == 50 and not kept_up["behind"]
    # 400 messages waiting at the end, 4 s of load, and 70 % of it handled
    behind = summarise(case, a, _sample(110.0, 2000, [800, 800], [2.0, 3.5]), [50.0] * 2, [60.0] * 2)  # fmt: skip
    assert behind["backlog_at_end"] == 400 and behind["behind"]
    assert not behind["generator_limited"]


def test_platform_benchmark_tiny_run(tmp_path: Path) -> None:
    servers.require_binary(servers.MOSQUITTO)
    results, temp = tmp_path / "results", tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "bench.platform_bench", "--quick", "--only", "sqlite-2x4",
         "--ramp-db", "sqlite", "--results", str(results)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(temp)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    doc = json.loads((results / "platform.json").read_text())
    r = doc["results"]["sqlite-2x4"]
    assert r["handled_per_s"] > 0 and r["handled_per_cpu_s"] > 0
    shares = r["handled_share_per_instance"]
    assert len(shares) == 2 and abs(sum(shares) - 1) < 0.01
    assert r["alert_latency"]["n"] >= 1 and r["alert_latency"]["p99_ms"] is not None
    assert len(r["offline_detection_s"]) == 1 and r["offline_detection_s"][0] is not None
    assert r["drained"] and r["missing_after_drain"] == 0 and r["dropped"] == {}
    assert all(x > 0 for x in r["rss_mib_per_instance"])
    assert [s["gateways"] for s in doc["ramps"][0]["steps"]] == [4]
    assert "## Targets (issue 12)" in (results / "platform.md").read_text()
    assert list(temp.iterdir()) == []  # the work folder is removed

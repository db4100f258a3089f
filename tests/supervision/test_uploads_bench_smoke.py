"""The uploads benchmark (bench/uploads_bench.py) in a tiny real run, so
it does not rot between `make bench-uploads` runs: concurrent uploads by
tus, multipart and (when nginx is installed) a plain PUT, the service's
peak RSS measured, an upload cut and resumed with the same SHA-256, and
re-checks run by one and two Dramatiq workers. Its speeds are not
checked here (they are the benchmark's), only that every part ran."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from .conftest import servers

ROOT = Path(__file__).resolve().parents[2]


def test_uploads_benchmark_tiny_run(tmp_path: Path) -> None:
    servers.require_binary("/usr/bin/redis-server")
    results = tmp_path / "results"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.uploads_bench", "--quick", "--sizes", "1", "3",
         "--resume-mb", "4", "--checks", "2", "--results", str(results),
         "--work", str(tmp_path / "work")],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    doc = json.loads((results / "uploads.json").read_text())
    cases = doc["uploads"]["cases"]
    hows = {c["how"] for c in cases}
    assert {"tus", "multipart"} <= hows
    assert ("nginx-put" in hows) == doc["uploads"]["nginx"]
    for c in cases:
        assert c["upload_mb_s"] > 0 and c["service_peak_rss_mib"] > 0, c
    assert {c["size_mb"] for c in cases} == {1.0, 3.0}
    tus = next(c for c in cases if c["how"] == "tus")
    assert tus["surveys"] == 1  # the same bytes twice: one survey, recognised
    r = doc["uploads"]["resume"]
    assert r["sha256_equal"] and 0 < r["kept_by_service_bytes"] < r["size_bytes"]
    # resumed, not sent again from the start
    assert r["second_session_wire_bytes"] < r["size_bytes"] - r["kept_by_service_bytes"] + 50_000
    rounds = doc["checks"]["rounds"]
    assert [x["workers"] for x in rounds] == [1, 2]
    assert all(x["failed"] == 0 and x["checks"] == 2 for x in rounds)
    assert all(x["checks_per_min"] > 0 and x["worker_cpu_s_per_check"] > 0 for x in rounds)
    md = (results / "uploads.md").read_text()
    assert "Queued checks" in md and "Cut and resumed" in md

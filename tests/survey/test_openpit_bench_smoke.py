"""The open-pit benchmark runs end to end on a small pit (so it does not rot
between `make bench-openpit` runs): the DSM and the LAZ go through
`minegate survey check-pit` pinned to a core under /usr/bin/time, and the
results say what the targets need. Its numbers are not checked here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_openpit_benchmark_small_run(tmp_path: Path) -> None:
    results, work = tmp_path / "results", tmp_path / "work"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.openpit_bench",
            *("--size", "500", "--laz-points", "2e5", "--laz-cell", "2", "--no-cloudcompare"),
            *("--results", str(results), "--work", str(work)),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((results / "openpit.json").read_text())
    a = res["dsm"]
    assert a["cells"] == 500 * 500 and a["exit"] == 3 and a["one_core"]
    assert a["maxrss_mb"] > 0 and a["cpu_s"] > 0 and "met" in a
    kinds = {i["type"] for i in a["incidents"]}
    assert kinds == {"boundary", "below_range"}, a["incidents"]
    b = res["laz"]
    assert b["points"] == 200_000 and b["exit"] == 3 and b["maxrss_mb"] > 0
    md = (results / "openpit.md").read_text()
    assert "500 × 500 cells" in md and "200,000 points" in md

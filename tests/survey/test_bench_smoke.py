"""The survey benchmark runs end to end on small sizes (so it does not rot
between `make bench-survey` runs); its numbers are not checked here, only
that every part ran and said what the targets need: identical results to
shapely, a finished `minegate survey check` with the known incidents, a
streamed LAZ with its peak memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_survey_benchmark_small_run(tmp_path: Path) -> None:
    results, work, temp = tmp_path / "results", tmp_path / "work", tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.survey_bench",
            *("--points", "2e5", "--laz-points", "3e5", "--repeat", "1"),
            *("--results", str(results), "--work", str(work)),
        ],
        cwd=ROOT,
        env={**os.environ, "TMPDIR": str(temp)},  # where the reports of the checks go
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    res = json.loads((results / "survey.json").read_text())
    c = res["classify"]
    assert c["points"] == 200_000 and c["identical"] and c["mismatches"] == 0
    w = res["whole_check"]
    assert w["exit_code"] == 3 and w["verdict"] == "violations found"
    assert w["incidents"] >= 1 and max(w["volumes_m3"]) > 0  # a sliver may hold no volume
    assert w["seconds"] > w["timings_s"]["check"] > 0
    # --repeat 1: one process per whole check, and no report folder left behind
    assert w["repeat"] == 1 and res["whole_check_seam"]["repeat"] == 1
    assert list(temp.glob("minegate-bench-*")) == []
    assert res["whole_check_seam"]["incidents"] >= w["incidents"]
    z = res["laz_stream"]
    assert z["points"] == 300_000 and z["maxrss_mb"] > 0
    md = (results / "survey.md").read_text()
    assert "whole check of an uncompressed LAS" in md and "streamed check of a LAZ" in md
    assert (work / "scan_200000.las").exists() and (work / "scan_300000.laz").exists()

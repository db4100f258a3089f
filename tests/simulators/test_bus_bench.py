"""The bus benchmark (bench/bus_bench.py): its arithmetic on a made-up
frame log, and a short real run so it does not rot between `make bench-bus`
runs (its numbers are not checked here, only that every part ran)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.bus_bench import Window, analyse
from drivers.types import RegisterKind
from gateway import busload
from simulators.seriallink import SerialLink, WireFrame

ROOT = Path(__file__).resolve().parents[2]


def test_the_time_between_frames_is_split_into_its_causes() -> None:
    link = SerialLink(9600, turnaround_s=0.01)
    fmt = link.fmt
    silence = fmt.silence_s
    request = bytes([1, 4, 0, 0, 0, 9, 0xAA, 0xBB])  # read 9 input registers of unit 1
    reply = bytes(23)
    frames, t = [], 0.0
    for _ in range(2):
        end = t + fmt.wire_s(8)
        frames.append(WireFrame(True, request, t, t, end, end))
        start = end + silence + 0.01 + 0.002  # the device took 2 ms more than its turnaround
        t = start + fmt.wire_s(23)
        frames.append(WireFrame(False, reply, start, start, t, t + 0.001))  # delivered 1 ms late
        t += silence + 0.001 + 0.004  # the lag, then the gateway 4 ms beyond the silence
    frames.append(WireFrame(True, request, t, t, t + fmt.wire_s(8), t + fmt.wire_s(8)))
    span = frames[-1].end - frames[0].start
    wire = 3 * fmt.wire_s(8) + 2 * fmt.wire_s(23)
    window = Window(span, frames, 3, 2, wire, 0, 0.1)

    got = analyse(window, link, est_round_s=0.5, requests_per_round=1, interval_s=0.025)

    gaps = got["gaps_s"]
    assert gaps["silence"] == pytest.approx(4 * silence, abs=1e-4)
    assert gaps["turnaround"] == pytest.approx(0.02, abs=1e-4)
    assert gaps["device_extra"] == pytest.approx(0.004, abs=1e-4)
    assert gaps["link_lag"] == pytest.approx(0.002, abs=1e-4)
    assert gaps["gateway"] == pytest.approx(0.008, abs=1e-4)
    assert wire + sum(gaps.values()) == pytest.approx(span, abs=1e-3)  # nothing unaccounted
    assert got["transactions"] == 2 and got["utilisation"] == pytest.approx(wire / span)
    estimate = 2 * busload.request_time_s(RegisterKind.INPUT, 9, baudrate=9600)
    assert got["estimate_error"] == pytest.approx(estimate / span - 1)
    protocol = 2 * (fmt.wire_s(31) + 2 * silence + 0.01)
    assert got["achievable_share"] == pytest.approx(protocol / span)
    assert got["estimated_load"] == pytest.approx(20.0)


def test_bus_benchmark_short_run(tmp_path: Path) -> None:
    results, work = tmp_path / "results", tmp_path / "work"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.bus_bench",
            *("--devices", "2", "--bauds", "19200", "--instant-devices", ""),
            *("--duration", "1", "--warmup", "0.2"),
            *("--results", str(results), "--work", str(work)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads((results / "bus.json").read_text())
    (case,) = doc["cases"]
    assert case["devices"] == 2 and case["line"] == "19200 8N1"
    assert case["transactions"] > 0 and 0 < case["utilisation"] < 1
    assert case["estimate_error"] is not None and case["estimated_load"] > 1
    assert "| 19200 8N1 | 2 | 10 |" in (results / "bus.md").read_text()

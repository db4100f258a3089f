"""The alarm latency benchmark runs (tiny: 3 devices, 3 alarms, a small
backlog), so it does not rot. No timing is asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.alarms_latency import MOSQUITTO, main


def test_alarms_latency_smoke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    if not Path(MOSQUITTO).exists():
        pytest.skip("mosquitto is not installed")
    out = tmp_path / "latency.json"
    args = [
        "--devices",
        "3",
        "--alarms",
        "3",
        "--backlog",
        "2000",
        "--poll-s",
        "0.2",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    result = json.loads(out.read_text())
    assert result["from_change_ms"]["n"] == 3 and result["beyond_poll_ms"]["n"] == 3
    assert result["backlog"] == 2000
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == result

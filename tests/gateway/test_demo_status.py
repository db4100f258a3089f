"""``minegate demo`` headless, then ``minegate status`` on what it stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.config import load_config
from gateway.runtime import store_path
from gateway.status import read_status

EXE = [sys.executable, "-m", "gateway.cli"]
ENV = {**os.environ, "COLUMNS": "200"}


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [*EXE, "demo", "--duration", "8", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=60,
        env=ENV,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo finished" in proc.stdout
    assert "values stored" in proc.stdout
    return data


def test_demo_stores_every_device_class(demo_dir: Path) -> None:
    config = load_config(demo_dir / "site.toml")
    classes = {d.name: d.device_class for d in config.devices}
    report = read_status(store_path(demo_dir))
    seen = {classes[v.device] for v in report.latest if v.device in classes and v.quality == "good"}
    assert seen >= {"ventilation", "drainage", "power", "gas", "fire"}
    # The scenario stopped main fan 1.
    running = {(v.device, v.point): v.value for v in report.latest}
    assert running[("main_fan_1", "running")] is False
    assert report.metrics["total.polls"] > 0
    assert report.counters.get("polls", 0) > 0


def test_status_text_and_json(demo_dir: Path) -> None:
    proc = subprocess.run(
        [*EXE, "status", "--data-dir", str(demo_dir)],
        capture_output=True, text=True, timeout=30, env=ENV, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    for word in ("main_fan_1", "drainage_1", "latest values", "counters", "quality", "MiB"):
        assert word in proc.stdout
    # the stopped main fan is a critical alarm, shown above everything else
    assert proc.stdout.index("ACTIVE ALARMS") < proc.stdout.index("latest values")
    assert "main_fan_1.running" in proc.stdout and "critical" in proc.stdout
    proc = subprocess.run(
        [*EXE, "status", "--data-dir", str(demo_dir), "--json"],
        capture_output=True, text=True, timeout=30, env=ENV, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    # the demo has ended: the gateway is stopped, and says since when
    assert doc["gateway"]["state"] == "stopped"
    assert doc["devices"]["main_fan_1"] == "stopped"
    assert doc["last_device_states"]["main_fan_1"] in ("online", "degraded")
    assert any(v["point"] == "airflow" and v["unit"] == "m3/min" for v in doc["latest"])
    (fan,) = [a for a in doc["alarms"] if a["alarm"] == "main_fan_1.running"]
    assert (fan["priority"], fan["state"]) == ("critical", "active_unacked")


def test_status_on_missing_store_says_what_to_do(tmp_path: Path) -> None:
    proc = subprocess.run(
        [*EXE, "status", "--data-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=30, env=ENV, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "no store here" in proc.stderr and "--data-dir" in proc.stderr

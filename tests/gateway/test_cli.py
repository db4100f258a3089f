"""The ``minegate`` command end to end, as a user runs it: subprocesses
against a simulated mine served from this test's event loop."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gateway.cli import main
from gateway.model import RecordKind
from gateway.runtime import store_path
from gateway.store import Store
from simulators.mine import SimulatedMine

EXE = [sys.executable, "-m", "gateway.cli"]
CASES = Path(__file__).parent / "config_cases"
ENV = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


async def _cli(*args: str, limit_s: float = 30.0) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *EXE, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV
    )
    out, err = await asyncio.wait_for(proc.communicate(), limit_s)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.fixture
async def mine() -> AsyncIterator[SimulatedMine]:
    async with SimulatedMine(seed=5) as m:
        yield m


def test_check_config_reports_file_line_key_and_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    path = CASES / "unknown_bus" / "site.toml"
    assert main(["check-config", str(path)]) == 2
    out = capsys.readouterr().out
    assert f"{path}:12: devices[0].bus: bus 'plc2' is not defined" in out


def test_check_config_summary_for_valid_file(capsys: pytest.CaptureFixture[str]) -> None:
    example = Path(__file__).parents[2] / "examples" / "site.toml"
    assert main(["check-config", str(example)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "requests per poll cycle" in out and "estimated load" in out


async def test_read_decodes_registers_and_explains_silence(mine: SimulatedMine) -> None:
    fan = mine.devices["main_fan_1"]
    code, out, err = await _cli(
        "read", "--tcp", fan.endpoint, "--unit", str(fan.unit), "--address", "2",
        "--count", "4", "--type", "float32", "--order", "ABCD",
    )  # fmt: skip
    assert code == 0, err
    assert "holding 2..5" in out
    airflow = float(mine.value("main_fan_1", "airflow"))
    shown = [line.split("│") for line in out.splitlines() if line.count("│") >= 3]
    values = [float(cols[3]) for cols in shown if cols[1].strip() == "2"]
    assert values and abs(values[0] - airflow) < max(0.05 * abs(airflow), 1.0)

    code, out, err = await _cli(
        "read", "--tcp", fan.endpoint, "--unit", "1", "--profile", "main_fan"
    )
    assert code == 0, err
    assert "airflow" in out and "m3/min" in out

    code, out, err = await _cli(
        "read", "--tcp", fan.endpoint, "--unit", "1", "--address", "9000", "--count", "2"
    )
    assert code == 1
    assert "exception 2" in err and "illegal data address" in err

    mine.inject("main_fan_1", "silent")
    code, out, err = await _cli(
        "read", "--tcp", fan.endpoint, "--unit", str(fan.unit), "--timeout", "0.3"
    )
    assert code == 1
    assert "no answer from unit 1 within 0.3 s" in err


async def test_run_stores_and_flushes_on_sigterm(mine: SimulatedMine, tmp_path: Path) -> None:
    site = tmp_path / "site.toml"
    site.write_text(mine.site_config_toml(tmp_path / "data"))
    proc = await asyncio.create_subprocess_exec(
        *EXE, "run", "--config", str(site), "--log-format", "json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV,
    )  # fmt: skip
    assert proc.stderr is not None
    # Wait until it says it runs, then let it poll a few cycles.
    while True:
        line = await asyncio.wait_for(proc.stderr.readline(), 20)
        assert line, "gateway exited early"
        if json.loads(line)["msg"] == "gateway running":
            break
    await asyncio.sleep(3.0)
    proc.send_signal(signal.SIGTERM)
    _, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err.decode()
    logs = [json.loads(x) for x in err.decode().splitlines() if x.startswith("{")]
    assert any(x["msg"] == "gateway stopped" for x in logs)

    with Store(store_path(tmp_path / "data")) as store:
        latest = store.latest()
        assert {s.device for s in latest} >= {"main_fan_1", "drainage_1", "gas_monitor_1"}
        store.register_sink("test", start_at="start")
        records = store.take("test", 100_000)
    kinds = [(r.kind, r.device, r.fields.get("event")) for r in records]
    # The stop event is written after the pollers stopped: it is in the store
    # only if the queue was flushed on SIGTERM.
    assert (RecordKind.EVENT, "gateway", "gateway_stop") in kinds
    assert any(k[0] is RecordKind.METRIC for k in kinds)


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "check-config", "read", "status", "demo", "sim", "survey"):
        assert command in out


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["read", "--unit", "1"])  # no --tcp/--rtu/--rtu-over-tcp
    assert info.value.code == 2
    assert "one of the arguments --tcp --rtu --rtu-over-tcp is required" in capsys.readouterr().err

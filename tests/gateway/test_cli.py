"""The ``minegate`` command end to end, as a user runs it: subprocesses
against a simulated mine served from this test's event loop."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.cli import build_parser, main
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
    # One line that explains, none of the service's log lines.
    assert err.count("\n") == 1 and "repeats are logged" not in err, err


async def test_read_shows_one_bit_of_each_register(mine: SimulatedMine) -> None:
    fan = mine.devices["main_fan_1"]
    code, out, err = await _cli(
        "read", "--tcp", fan.endpoint, "--unit", str(fan.unit), "--address", "0",
        "--count", "8", "--bit", "3",
    )  # fmt: skip
    assert code == 0, err
    assert "bit 3" in out
    rows = [line.split("│") for line in out.splitlines() if line.count("│") >= 3]
    rows = [[c.strip() for c in r[1:4]] for r in rows if r[1].strip().isdigit()]
    assert [int(r[0]) for r in rows] == list(range(8))
    assert all(int(r[2]) == (int(r[1], 16) >> 3) & 1 for r in rows)
    assert any(int(r[1], 16) for r in rows)  # a running fan has non-zero registers

    code, _, err = await _cli("read", "--tcp", fan.endpoint, "--bit", "16")
    assert code == 2 and "bits 0..15" in err
    code, _, err = await _cli("read", "--tcp", fan.endpoint, "--kind", "coil", "--bit", "1")
    assert code == 2 and "drop --bit" in err


async def test_read_finds_a_site_profile_in_profile_dir(
    mine: SimulatedMine, tmp_path: Path
) -> None:
    fan = mine.devices["main_fan_1"]
    builtin = Path(__file__).parents[2] / "drivers" / "profiles" / "main_fan.toml"
    text = builtin.read_text()
    assert 'name = "main_fan"' in text
    (tmp_path / "site_fan.toml").write_text(
        text.replace('name = "main_fan"', 'name = "site_fan"', 1)
    )
    code, out, err = await _cli(
        "read", "--tcp", fan.endpoint, "--unit", str(fan.unit), "--profile", "site_fan",
        "--profile-dir", str(tmp_path),
    )  # fmt: skip
    assert code == 0, err
    assert "profile site_fan" in out and "airflow" in out
    code, out, err = await _cli("read", "--tcp", fan.endpoint, "--profile", "site_fan")
    assert code == 2 and "no device profile named 'site_fan'" in err


async def test_read_says_a_refused_connection_is_refused() -> None:
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    code, _, err = await _cli("read", "--tcp", f"127.0.0.1:{port}", "--timeout", "0.5")
    assert code == 1
    assert err.startswith(f"minegate: connection to 127.0.0.1:{port} refused: nothing listens")
    assert err.count("\n") == 1 and "reconnect" not in err, err


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


async def test_demo_without_a_terminal_never_breaks_a_line(tmp_path: Path) -> None:
    env = {k: v for k, v in ENV.items() if k not in ("COLUMNS", "LINES")}  # width unknown
    proc = await asyncio.create_subprocess_exec(
        *EXE, "demo", "--duration", "1", "--data-dir", str(tmp_path),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    (last,) = [line for line in out.decode().splitlines() if "demo finished" in line]
    assert last.endswith(f"(inspect with: minegate status --data-dir {tmp_path})"), out.decode()


def test_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for command in ("run", "check-config", "read", "status", "demo", "sim", "survey"):
        assert command in out


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out == f"minegate {version('minegate')}\n"


def _every_parser(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                yield from _every_parser(sub)


def test_every_option_has_help_and_shows_its_default() -> None:
    parsers = list(_every_parser(build_parser()))
    assert len(parsers) > 8  # minegate, its commands, sim, survey and survey's
    for parser in parsers:
        text = parser.format_help()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue  # each command's help is checked with its parser
            assert action.help, f"{parser.prog} {action.option_strings or action.dest}: no help"
            if action.option_strings and action.default not in (None, False, [], "==SUPPRESS=="):
                assert f"(default: {action.default})" in " ".join(text.split()), (
                    f"{parser.prog} {action.option_strings[0]}: default not shown"
                )


def test_usage_error_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["read", "--unit", "1"])  # no --tcp/--rtu/--rtu-over-tcp
    assert info.value.code == 2
    assert "one of the arguments --tcp --rtu --rtu-over-tcp is required" in capsys.readouterr().err

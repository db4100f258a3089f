"""``minegate sim``: the subcommand's arguments, and a real run in a child
process that another process controls through the control port."""

from __future__ import annotations

import argparse
import asyncio
import re
import socket
import sys
from pathlib import Path

from gateway.config import load_config
from simulators.cli import register, run
from simulators.control import send_command

REPO = Path(__file__).resolve().parents[2]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="minegate")
    register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_register_adds_sim_with_its_options() -> None:
    args = _parser().parse_args(
        ["sim", "--tcp-port", "15020", "--seed", "3", "--duration", "2", "--control-port", "0"]
    )
    assert args.func is run
    assert (args.tcp_port, args.seed, args.duration, args.control_port) == (15020, 3, 2.0, 0)


def test_bad_port_is_exit_code_2() -> None:
    args = _parser().parse_args(["sim", "--tcp-port", "70000"])
    assert run(args) == 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_sim_process_prints_endpoints_writes_config_and_obeys_control(
    tmp_path: Path,
) -> None:
    config_out = tmp_path / "site.toml"
    control = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulators.cli",
        "--control-port",
        str(control),
        "--config-out",
        str(config_out),
        "--data-dir",
        str(tmp_path / "data"),
        "--duration",
        "20",
        "--tick",
        "0.1",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        cwd=REPO,
    )
    assert proc.stdout is not None
    try:
        banner = b""
        while b"gateway site config written" not in banner:
            line = await asyncio.wait_for(proc.stdout.readline(), 15.0)
            assert line, banner.decode()
            banner += line
        text = banner.decode()
        assert re.search(r"main_fan_1\s+tcp\s+127\.0\.0\.1:\d+ unit 1", text), text
        assert re.search(r"gas_ascii_1\s+ascii\s+/dev/", text), text
        # The printed hint works as printed, with socat (netcat may be absent).
        hint = re.search(r"\(try: (echo status \| socat - TCP:127\.0\.0\.1:\d+)\)", text)
        assert hint, text
        shell = await asyncio.create_subprocess_shell(hint[1], stdout=asyncio.subprocess.PIPE)
        said, _ = await asyncio.wait_for(shell.communicate(), 10.0)
        assert said.startswith(b"ok"), said
        config = load_config(config_out)
        assert len(config.devices) == 12
        answer = await send_command("127.0.0.1", control, "fault main_fan_2 frozen")
        assert answer == "ok main_fan_2 frozen"
        assert "main_fan_2=frozen" in await send_command("127.0.0.1", control, "status")
    finally:
        proc.terminate()
        out, _ = await asyncio.wait_for(proc.communicate(), 10.0)
    assert proc.returncode == 0, out.decode()
    assert b"simulated mine stopped" in out


def test_default_control_port_falls_back_when_taken() -> None:
    from simulators.cli import DEFAULT_CONTROL_PORT, _control_port

    assert _control_port(6000) == 6000
    with socket.socket() as holder:
        try:
            holder.bind(("127.0.0.1", DEFAULT_CONTROL_PORT))
            holder.listen()
        except OSError:
            pass  # someone else holds it: taken either way
        assert _control_port(None) == 0

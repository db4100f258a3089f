"""``minegate sim``: run the simulated mine in the foreground.

    minegate sim --tcp-port 5020 --config-out site.toml --data-dir ./data

prints where every device listens, writes the matching gateway site
configuration, and serves until Ctrl-C (or ``--duration`` seconds). Faults
and operator actions go through the control port (see ``docs/simulators.md``).

``gateway/cli.py`` calls :func:`register` to add the subcommand.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path

DEFAULT_CONTROL_PORT = 5029


def register(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Add the ``sim`` subcommand; its handler is ``args.func(args) -> int``."""
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated mine (Modbus TCP, RTU on ptys, DTU, ASCII sensor)",
        description=(
            "Run a simulated underground mine: fans, pumps, power meters, gas monitors, "
            "fire water and smoke sensors, served over Modbus TCP, Modbus RTU on a pty "
            "pair, RTU over TCP (DTU) and a serial ASCII gas sensor. Writes the matching "
            "gateway site configuration."
        ),
    )
    parser.add_argument(
        "--tcp-port",
        type=int,
        default=0,
        help="first TCP port (Modbus TCP buses, then the DTU); 0 = any free ports",
    )
    parser.add_argument(
        "--config-out", type=Path, default=None, help="write the gateway site config here"
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=Path("./minegate-data"),
        help="data_dir written into the site config (default ./minegate-data)",
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the physics")
    parser.add_argument(
        "--control-port",
        type=int,
        default=None,
        help=(
            f"loopback control port for faults and operator actions (default {DEFAULT_CONTROL_PORT}, "
            "or a free port when that one is taken; 0 = any free port)"
        ),
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="stop after S seconds (default: run until Ctrl-C)",
    )
    parser.add_argument(
        "--tick", type=float, default=0.5, help="physics step in seconds (default 0.5)"
    )
    parser.add_argument(
        "--no-bus-timing",
        action="store_true",
        help="do not pace serial lines at their baud rate",
    )
    parser.set_defaults(func=run)
    return parser


def run(args: argparse.Namespace) -> int:
    """Handler of ``minegate sim``; returns the exit code."""
    for name in ("tcp_port", "control_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            print(
                f"minegate sim: --{name.replace('_', '-')} {value} is not a TCP port",
                file=sys.stderr,
            )
            return 2
    if args.tick <= 0:
        print("minegate sim: --tick must be > 0", file=sys.stderr)
        return 2
    import asyncio  # here: `minegate survey ...` never starts an event loop

    try:
        return asyncio.run(_serve(args))
    except OSError as exc:
        print(f"minegate sim: cannot start: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


def _control_port(requested: int | None) -> int:
    """The requested port, or the default one if it is free, else 0 (any):
    two simulators on one machine (parallel test runs) must both start."""
    if requested is not None:
        return requested
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", DEFAULT_CONTROL_PORT))
        except OSError:
            return 0
    return DEFAULT_CONTROL_PORT


def _write_atomically(path: Path, text: str) -> None:
    """Readers polling for the file never see half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, path)


async def _serve(args: argparse.Namespace) -> int:
    # imported here: `minegate --help` and the survey commands need no pymodbus server
    import asyncio

    from simulators.mine import SimulatedMine

    mine = SimulatedMine(
        seed=args.seed,
        tick_s=args.tick,
        base_port=args.tcp_port,
        control_port=_control_port(args.control_port),
        bus_timing=not args.no_bus_timing,
    )
    async with mine:
        data_dir = args.data_dir.resolve()
        print(f"simulated mine {mine.layout.name!r} (seed {args.seed}) is running:")
        for line in mine.describe():
            print("  " + line)
        print(
            f"control port: 127.0.0.1:{mine.control_port}  "
            f"(try: echo status | socat - TCP:127.0.0.1:{mine.control_port})"
        )
        config = mine.site_config_toml(data_dir)
        if args.config_out is not None:
            _write_atomically(args.config_out, config)
            print(f"gateway site config written to {args.config_out}")
        else:
            print("gateway site config (use --config-out FILE to save it):")
            print(config)
        sys.stdout.flush()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.duration)
        print("simulated mine stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Stand-alone entry (``python -m simulators.cli``) until the gateway's
    CLI is the way in."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="minegate")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(["sim", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())

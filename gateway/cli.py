"""The ``minegate`` command.

Subcommands: ``run``, ``check-config``, ``read``, ``status``, ``demo``,
``completion``, and ``sim`` / ``survey`` (registered by their packages).
Exit codes: 0 ok, 2 usage or configuration error, 1 runtime failure. Each
subcommand is one ``_add_*`` function in ``SUBCOMMANDS`` that sets ``func``
(namespace -> exit code) on its parser, the same convention the ``sim`` and
``survey`` packages follow.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from drivers.types import DataType, RegisterKind, WordOrder
from gateway.logs import add_log_options

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2

log = logging.getLogger("minegate.cli")


def _err(message: str) -> None:
    print(f"minegate: {message}", file=sys.stderr)


# --- run ---------------------------------------------------------------------


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio  # here: the survey commands never start an event loop

    from gateway.config import ConfigError, load_config
    from gateway.logs import setup_logging
    from gateway.runtime import Gateway

    setup_logging(args.log_format, args.log_level.upper())
    _limit_malloc_arenas()
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for e in exc.errors:
            _err(str(e))
        return EXIT_USAGE
    for w in config.warnings:
        log.warning(str(w))

    async def main() -> None:
        gateway = Gateway(config)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gateway.request_stop)
        await gateway.run()

    from gateway.store.errors import StoreError

    try:
        asyncio.run(main())
    except (OSError, StoreError) as exc:
        # A store that cannot be opened or written, a port that cannot be
        # bound: the message names the file or address.
        log.error("gateway failed: %s", exc)
        return EXIT_FAILURE
    except RuntimeError as exc:
        log.error("gateway failed: %s", exc, exc_info=exc.__cause__ or exc)
        return EXIT_FAILURE
    return EXIT_OK


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives each thread that allocates its own malloc arena (up to 8
    per core), and the store's and sinks' worker threads each keep pages
    there that the main thread never reuses: tens of MB of RSS on a big
    site. Two arenas, set before any thread starts, as ``MALLOC_ARENA_MAX``
    would (an environment variable the operator may still set: it wins)."""
    import ctypes

    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc (musl): nothing to limit
        pass


# --- check-config --------------------------------------------------------------


def cmd_check_config(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config

    try:
        config = load_config(args.file)
    except ConfigError as exc:
        for e in exc.errors:
            print(str(e))
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return EXIT_USAGE
    print(config.summary())
    return EXIT_OK


# --- read ----------------------------------------------------------------------


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host:
        return text, default_port
    try:
        return host, int(port)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT") from None


def cmd_read(args: argparse.Namespace) -> int:
    from rich.console import Console

    from drivers.profile import ProfileError
    from gateway.commission import CommissionError, ReadTarget, run_read

    bus: dict[str, Any] = {"timeout_s": args.timeout, "retries": 0}
    if args.tcp:
        host, port = _host_port(args.tcp, 502)
        bus |= {"type": "tcp", "host": host, "port": port}
    elif args.rtu_over_tcp:
        host, port = _host_port(args.rtu_over_tcp, 502)
        bus |= {"type": "rtu_over_tcp", "host": host, "port": port}
    else:
        bus |= {
            "type": "rtu",
            "serial_port": args.rtu,
            "baudrate": args.baud,
            "parity": args.parity,
            "stopbits": args.stopbits,
        }
    # A one-shot command explains its own failure in one line: the hubs'
    # service-style log lines (reconnect backoff, "repeats are logged at
    # DEBUG") only with --verbose.
    if args.verbose:
        from gateway.logs import setup_logging

        setup_logging("text", "DEBUG")
    else:
        logging.getLogger().addHandler(logging.NullHandler())
    console = Console()
    try:
        return run_read(
            ReadTarget(bus, args.unit),
            kind=RegisterKind(args.kind),
            address=args.address,
            count=args.count,
            dtype=DataType(args.type),
            order=WordOrder(args.order),
            scale=args.scale,
            offset=args.offset,
            profile=args.profile,
            console=console,
            profile_dirs=args.profile_dir,
            bit=args.bit,
        )
    except CommissionError as exc:
        _err(str(exc))
        return EXIT_FAILURE
    except (ProfileError, ValueError) as exc:
        _err(str(exc))
        return EXIT_USAGE


# --- status --------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from gateway.config import ConfigError, load_config
    from gateway.runtime import store_path
    from gateway.status import StatusError, show_status, watch_status

    data_dir = args.data_dir
    if args.config:
        try:
            data_dir = load_config(args.config).data_dir
        except ConfigError as exc:
            for e in exc.errors:
                _err(str(e))
            return EXIT_USAGE
    if data_dir is None:
        _err("give --data-dir DIR (the site's data_dir) or --config FILE")
        return EXIT_USAGE
    try:
        if args.watch:
            watch_status(store_path(Path(data_dir)), args.watch)
        else:
            show_status(store_path(Path(data_dir)), as_json=args.json)
    except StatusError as exc:
        _err(str(exc))
        return EXIT_FAILURE
    return EXIT_OK


# --- demo ----------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(duration_s=args.duration, data_dir=Path(args.data_dir), tui=not args.no_tui)


# --- parser --------------------------------------------------------------------


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless it has none (None,
    a flag's False) or the help already says it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        if (
            "%(default)" in text
            or not action.option_strings
            or default is None
            or default is False
            or default == []
            or default == argparse.SUPPRESS
            or isinstance(action, argparse._VersionAction)
        ):
            return text
        return f"{text} (default: %(default)s)"


class _Parser(argparse.ArgumentParser):
    """The parser of ``minegate`` and of every subcommand (``sim`` and
    ``survey`` included: subparsers are made of the parent's class)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("minegate")
    except PackageNotFoundError:  # run from a source tree without `pip install -e .`
        return "(not installed)"


def _add_run(sub: Any) -> None:
    run = sub.add_parser("run", help="run the gateway", description="Poll, store and forward.")
    run.add_argument("--config", "-c", required=True, type=Path, help="site configuration TOML")
    add_log_options(run)
    run.set_defaults(func=cmd_run)


def _add_check_config(sub: Any) -> None:
    check = sub.add_parser(
        "check-config",
        help="validate a site configuration",
        description="Print every error as FILE:LINE: key: message (exit 2), or a summary.",
    )
    check.add_argument("file", type=Path, help="site configuration TOML")
    check.set_defaults(func=cmd_check_config)


def _add_read(sub: Any) -> None:
    read = sub.add_parser(
        "read",
        help="one-shot Modbus read for commissioning",
        description="Read registers once and show raw words and decoded values.",
    )
    where = read.add_mutually_exclusive_group(required=True)
    where.add_argument("--tcp", metavar="HOST:PORT", help="Modbus TCP device or gateway")
    where.add_argument("--rtu", metavar="DEVICE", help="serial port, e.g. /dev/ttyUSB0")
    where.add_argument("--rtu-over-tcp", metavar="HOST:PORT", help="serial server (DTU)")
    read.add_argument("--baud", type=int, default=9600, help="serial line speed (--rtu)")
    read.add_argument(
        "--parity", choices=("N", "E", "O"), default="N", help="serial parity (--rtu)"
    )
    read.add_argument(
        "--stopbits", type=int, choices=(1, 2), default=1, help="serial stop bits (--rtu)"
    )
    read.add_argument("--unit", type=int, default=1, help="unit (slave) id, 1..247")
    read.add_argument(
        "--kind", choices=[k.value for k in RegisterKind], default="holding", help="register table"
    )
    read.add_argument("--address", type=int, default=0, help="0-based protocol address")
    read.add_argument("--count", type=int, default=10, help="registers (or bits) to read")
    read.add_argument(
        "--type", choices=[t.value for t in DataType], default="uint16", help="decode as"
    )
    read.add_argument(
        "--order",
        choices=[o.value for o in WordOrder],
        default="ABCD",
        help="word and byte order of multi-register values",
    )
    read.add_argument("--scale", type=float, default=1.0, help="value = raw x scale + offset")
    read.add_argument("--offset", type=float, default=0.0, help="value = raw x scale + offset")
    read.add_argument(
        "--bit",
        type=int,
        metavar="N",
        help="show bit N (0..15, 0 = least significant) of each register",
    )
    read.add_argument("--timeout", type=float, default=1.0, help="seconds per request")
    read.add_argument(
        "--profile", help="read every point of this device profile (name or .toml path) instead"
    )
    read.add_argument(
        "--profile-dir",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="folder of site profiles searched before the built-ins (repeatable)",
    )
    read.add_argument(
        "--verbose", "-v", action="store_true", help="show the driver's log lines on stderr"
    )
    read.set_defaults(func=cmd_read)


def _add_status(sub: Any) -> None:
    status = sub.add_parser(
        "status",
        help="latest values, device states, counters and sink backlogs",
        description="Read the store (read-only); works while the gateway runs.",
    )
    status.add_argument("--data-dir", type=Path, help="the site's data_dir")
    status.add_argument("--config", type=Path, help="take data_dir from this site file")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.add_argument(
        "--watch", type=float, metavar="SECONDS", help="redraw every SECONDS until Ctrl-C"
    )
    status.set_defaults(func=cmd_status)


def _add_demo(sub: Any) -> None:
    demo = sub.add_parser(
        "demo",
        help="simulated mine + gateway with a live table",
        description="Start a simulated mine and the gateway against it.",
    )
    demo.add_argument(
        "--duration",
        type=float,
        help="stop after SECONDS and print progress lines, no live table "
        "(default: until Ctrl-C, with the live table on a terminal)",
    )
    demo.add_argument("--data-dir", default="data/demo", help="where the demo's store goes")
    demo.add_argument("--no-tui", action="store_true", help="progress lines instead of a table")
    demo.set_defaults(func=cmd_demo)


def cmd_completion(args: argparse.Namespace) -> int:
    from gateway.completion import bash_script

    print(bash_script(build_parser()), end="")
    return EXIT_OK


def _add_completion(sub: Any) -> None:
    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a bash completion script. Install it with "
        "`minegate completion bash > /etc/bash_completion.d/minegate`, or add "
        "`source <(minegate completion bash)` to ~/.bashrc.",
    )
    completion.add_argument("shell", choices=("bash",), help="the shell")
    completion.set_defaults(func=cmd_completion)


#: The gateway's own subcommands, in the order ``--help`` lists them; ``sim``
#: and ``survey`` are registered by their packages (``_register_optional``).
SUBCOMMANDS = (_add_run, _add_check_config, _add_read, _add_status, _add_demo, _add_completion)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="minegate",
        description="Telemetry gateway and survey checks for underground mines.",
    )
    parser.add_argument("--version", action="version", version=f"minegate {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in SUBCOMMANDS:
        add(sub)
    for module in ("gateway.alarms.cli", "simulators.cli", "survey.cli", "supervision.cli"):
        _register_optional(module, sub)
    return parser


def _register_optional(module: str, sub: Any) -> None:
    # Only "module not written yet" is tolerated; a broken module must fail loudly.
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return
    mod.register(sub)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return int(func(args))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into `head` or a pager that quit: not an error. Point
        # stdout at /dev/null so the interpreter's final flush stays quiet.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())

"""The simulator's control port: a line protocol over loopback TCP.

One command per line, one answer line per command, ``ok ...`` or
``error <why>``. Made for ``nc 127.0.0.1 PORT``, test code and the gateway
demo alike::

    fault DEVICE KIND [delay_s=S] [code=N]   inject a fault (silent, slow,
                                             exception, corrupt, frozen, garbage)
    clear DEVICE [KIND]                      clear one fault kind or all
    set DEVICE QUANTITY VALUE                operator action / pinned reading
    release DEVICE [QUANTITY]                drop pinned readings
    get DEVICE [QUANTITY]                    current physics values
    noise BUS PROBABILITY                    bit errors on a serial line (0 = off)
    advance SECONDS                          step the physics (virtual time)
    status                                   faults of every device
    devices                                  name=transport@endpoint list
    help | quit

Values: ``1 0 on off true false open closed start stop`` or a number.
"""

from __future__ import annotations

import asyncio
import contextlib
import shlex
from typing import TYPE_CHECKING

from drivers.types import Value
from simulators.sessions import end_sessions

if TYPE_CHECKING:
    from simulators.mine import SimulatedMine

WORDS: dict[str, bool] = {
    "on": True,
    "true": True,
    "open": True,
    "start": True,
    "run": True,
    "closed": False,
    "off": False,
    "false": False,
    "stop": False,
}


def parse_value(text: str) -> Value:
    """A control-line value: a boolean word, an int, a float or a string."""
    lowered = text.lower()
    if lowered in WORDS:
        return WORDS[lowered]
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        return text


def _format(value: Value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, str):
        return shlex.quote(value)
    return str(int(value)) if isinstance(value, bool) else str(value)


def execute(mine: SimulatedMine, line: str) -> str:
    """Run one command line on ``mine``; returns the answer line."""
    try:
        words = shlex.split(line)
    except ValueError as exc:
        return f"error {exc}"
    if not words:
        return "error empty command; try 'help'"
    command, args = words[0].lower(), words[1:]
    try:
        return _dispatch(mine, command, args)
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        return f"error {message}"


def _need(args: list[str], low: int, high: int, usage: str) -> None:
    if not low <= len(args) <= high:
        raise ValueError(f"usage: {usage}")


def _dispatch(mine: SimulatedMine, command: str, args: list[str]) -> str:
    if command == "fault":
        _need(args, 2, 4, "fault DEVICE KIND [delay_s=S] [code=N]")
        params: dict[str, float | int | str] = {}
        for item in args[2:]:
            key, sep, raw = item.partition("=")
            if not sep:
                raise ValueError(f"parameter {item!r} must be key=value")
            value = parse_value(raw)
            if isinstance(value, bool):
                raise ValueError(f"parameter {key} needs a number, not {raw!r}")
            params[key] = value
        mine.inject(args[0], args[1], **params)
        return f"ok {args[0]} {mine.faults(args[0])}"
    if command == "clear":
        _need(args, 1, 2, "clear DEVICE [KIND]")
        mine.clear(args[0], args[1] if len(args) > 1 else None)
        return f"ok {args[0]} {mine.faults(args[0])}"
    if command == "set":
        _need(args, 3, 3, "set DEVICE QUANTITY VALUE")
        mine.operate(args[0], args[1], parse_value(args[2]))
        return f"ok {args[0]} {args[1]}={_format(mine.value(args[0], args[1]))}"
    if command == "release":
        _need(args, 1, 2, "release DEVICE [QUANTITY]")
        mine.release(args[0], args[1] if len(args) > 1 else None)
        return f"ok {args[0]}"
    if command == "get":
        _need(args, 1, 2, "get DEVICE [QUANTITY]")
        if len(args) == 2:
            return f"ok {args[1]}={_format(mine.value(args[0], args[1]))}"
        snapshot = mine.physics.snapshot(mine.entity(args[0]))
        return "ok " + " ".join(f"{k}={_format(v)}" for k, v in sorted(snapshot.items()))
    if command == "noise":
        _need(args, 2, 2, "noise BUS PROBABILITY")
        mine.line_noise(args[0], float(args[1]))
        return f"ok {args[0]} noise={float(args[1]):g}"
    if command == "advance":
        _need(args, 1, 1, "advance SECONDS")
        seconds = float(args[0])
        if seconds < 0:
            raise ValueError("advance needs seconds >= 0")
        mine.advance(seconds)
        return f"ok t={mine.physics.time_s:g}"
    if command == "status":
        return "ok " + " ".join(f"{name}={mine.faults(name)}" for name in mine.devices)
    if command == "devices":
        return "ok " + " ".join(
            f"{d.name}={d.transport}@{d.endpoint}" + (f"#{d.unit}" if d.unit is not None else "")
            for d in mine.devices.values()
        )
    if command == "help":
        return "ok commands: fault clear set release get noise advance status devices help quit"
    raise ValueError(f"unknown command {command!r}; try 'help'")


class ControlServer:
    """The listening control port and its open sessions."""

    def __init__(
        self, server: asyncio.Server, sessions: dict[asyncio.Task[None], asyncio.StreamWriter]
    ) -> None:
        self.server = server
        self.sessions = sessions
        self.port = int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        self.server.close()
        await end_sessions(self.sessions)


async def serve_control(mine: SimulatedMine, host: str, port: int) -> ControlServer:
    """Start the control server for ``mine`` on ``host:port`` (0: any)."""
    sessions: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    async def session(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        me = asyncio.current_task()
        if me is not None:
            sessions[me] = writer
        try:
            while line := await reader.readline():
                text = line.decode("utf-8", "replace").strip()
                if text.lower() in ("quit", "exit"):
                    writer.write(b"ok bye\n")
                    break
                if not text or text.startswith("#"):
                    continue
                writer.write((execute(mine, text) + "\n").encode())
                await writer.drain()
        except ConnectionError:
            pass  # the peer went away; nothing to answer
        finally:
            writer.close()
            if me is not None:
                sessions.pop(me, None)

    return ControlServer(await asyncio.start_server(session, host, port), sessions)


async def send_command(host: str, port: int, line: str, *, timeout_s: float = 5.0) -> str:
    """Send one command to a running simulator's control port; returns the
    answer line. Raises ``RuntimeError`` on an ``error`` answer."""

    async def exchange() -> str:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(line.strip().encode() + b"\n")
            await writer.drain()
            return (await reader.readline()).decode().strip()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    answer = await asyncio.wait_for(exchange(), timeout_s)
    if not answer.startswith("ok"):
        raise RuntimeError(f"simulator refused {line.strip()!r}: {answer}")
    return answer

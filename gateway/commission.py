"""``minegate read``: a one-shot read for commissioning, like ``mbpoll``.

Reads registers (or a whole profile) once through the same hubs the gateway
uses and prints address, raw words in hex and decoded values, so an
integrator can check wiring, unit id, word order and scale before writing
the site file. It never writes to the device.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from drivers.errors import (
    EXCEPTION_MEANING,
    DeviceTimeout,
    DriverError,
    ModbusExceptionResponse,
    TransportError,
)
from drivers.reach import serial_problem, tcp_problem
from drivers.types import DataType, PointSpec, RegisterKind, WordOrder


class CommissionError(Exception):
    """The read failed; the message says what to check."""


@dataclass(frozen=True)
class ReadTarget:
    bus: dict[str, Any]  # as a [[buses]] table: type, host/port or serial_port, ...
    unit: int


def _explain(exc: DriverError, target: ReadTarget) -> str:
    if isinstance(exc, ModbusExceptionResponse):
        meaning = EXCEPTION_MEANING.get(exc.code, "see the device manual")
        return f"unit {target.unit} answered Modbus exception {exc.code}: {meaning}"
    if isinstance(exc, DeviceTimeout):
        hint = (
            "check the unit id, wiring (A/B swapped?), baud rate and parity"
            if target.bus["type"] != "tcp"
            else "check the unit id (many TCP devices answer only unit 1 or 255)"
        )
        return f"no answer from unit {target.unit} within {target.bus['timeout_s']} s: {hint}"
    if isinstance(exc, TransportError):
        return f"cannot reach the bus: {exc}; check the address/port or serial device"
    return f"{exc.kind.value}: {exc}"


async def _why_unreachable(target: ReadTarget) -> str | None:
    """What the OS says about a bus the hub could not open, without the
    hub's service wording ("link down, next reconnect in 0.4 s")."""
    bus = target.bus
    if bus["type"] == "rtu":
        problem = serial_problem(str(bus["serial_port"]))
    else:
        problem = await tcp_problem(bus["host"], bus["port"], bus["timeout_s"])
    return None if problem is None else problem.detail


async def _open_failed(exc: DriverError, target: ReadTarget) -> CommissionError:
    reason = await _why_unreachable(target) if isinstance(exc, TransportError) else None
    return CommissionError(reason or _explain(exc, target))


async def read_once(
    target: ReadTarget, kind: RegisterKind, address: int, count: int
) -> list[int] | list[bool]:
    from drivers.modbus import make_hub

    try:
        async with make_hub({"name": "commission", **target.bus}) as hub:
            return await hub.read(target.unit, kind, address, count)
    except DriverError as exc:
        raise await _open_failed(exc, target) from exc


def decode_table(
    words: list[int] | list[bool],
    kind: RegisterKind,
    address: int,
    dtype: DataType,
    order: WordOrder,
    scale: float,
    offset: float,
    bit: int | None = None,
) -> Table:
    """Address, raw hex and the value starting at each step of the type's
    width; with ``bit``, that bit (0 = least significant) of each register."""
    from drivers.codec import decode

    table = Table(title=f"{kind} {address}..{address + len(words) - 1}")
    table.add_column("address", justify="right")
    table.add_column("raw")
    if kind.is_bit:
        table.add_column("value", justify="right")
        for i, b in enumerate(words):
            table.add_row(str(address + i), str(int(b)), str(bool(b)))
        return table
    if bit is not None:
        table.add_column(f"bit {bit}", justify="right")
        for i, w in enumerate(words):
            table.add_row(str(address + i), f"{int(w):04X}", str((int(w) >> bit) & 1))
        return table
    table.add_column(f"{dtype} {order}", justify="right")
    spec = PointSpec("value", kind, address, dtype, order, scale=scale, offset=offset)
    width = spec.width
    for i in range(0, len(words), width):
        chunk = [int(w) for w in words[i : i + width]]
        raw = " ".join(f"{w:04X}" for w in chunk)
        if len(chunk) < width:
            value = f"(needs {width} registers)"
        else:
            try:
                value = str(decode(chunk, spec))
            except ValueError as exc:
                value = f"cannot decode: {exc}"
        table.add_row(str(address + i), raw, value)
    return table


async def read_profile(
    target: ReadTarget, profile_name: str, console: Console, profile_dirs: Sequence[Path] = ()
) -> int:
    """Read every point of a profile (by name, searched in ``profile_dirs``
    then the built-ins, or by path) once and print the decoded values."""
    from drivers.modbus import make_hub
    from drivers.plan import build_plan
    from drivers.profile import find_profile

    profile = find_profile(profile_name, profile_dirs)
    plan = build_plan(profile.points, merge=profile.merge, max_gap=profile.max_gap)
    table = Table(title=f"profile {profile.name}, unit {target.unit}")
    for col in ("point", "kind", "address", "raw", "value", "unit"):
        table.add_column(col)
    failures = 0
    async with make_hub({"name": "commission", **target.bus}) as hub:
        for req in plan.requests:
            try:
                data = await hub.read(target.unit, req.kind, req.address, req.count)
            except TransportError as exc:
                raise await _open_failed(exc, target) from exc
            except DriverError as exc:
                failures += 1
                for p in req.points:
                    table.add_row(p.name, p.kind, str(p.address), "", "[red]error[/]", p.unit)
                console.print(f"[red]{req.kind} {req.address}+{req.count}: {_explain(exc, target)}")
                continue
            values = plan.decode(req, data)
            for p in req.points:
                off = p.address - req.address
                raw = (
                    str(int(data[off]))
                    if req.kind.is_bit
                    else " ".join(f"{int(w):04X}" for w in data[off : off + p.width])
                )
                v = values[p.name]
                shown = f"[red]{v}[/]" if isinstance(v, Exception) else str(v)
                table.add_row(p.name, p.kind, str(p.address), raw, shown, p.unit)
    console.print(table)
    return 1 if failures == len(plan.requests) else 0


def run_read(
    target: ReadTarget,
    *,
    kind: RegisterKind,
    address: int,
    count: int,
    dtype: DataType,
    order: WordOrder,
    scale: float,
    offset: float,
    profile: str | None,
    console: Console,
    profile_dirs: Sequence[Path] = (),
    bit: int | None = None,
) -> int:
    if profile and bit is not None:
        raise ValueError("--bit reads registers by address; a profile decodes its bit points")
    if profile:
        return asyncio.run(read_profile(target, profile, console, profile_dirs))
    if bit is not None and kind.is_bit:
        raise ValueError(f"--bit picks a bit of a register; {kind} are single bits: drop --bit")
    if bit is not None and not 0 <= bit <= 15:
        raise ValueError(f"--bit {bit}: a register has bits 0..15 (0 = least significant)")
    words = asyncio.run(read_once(target, kind, address, count))
    console.print(decode_table(words, kind, address, dtype, order, scale, offset, bit))
    return 0

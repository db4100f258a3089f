"""Alarm outputs: a beacon or horn coil switched on while an alarm of a set
priority is active (``[[alarm_control.outputs]]``, docs/alarms.md).

The only place the gateway writes to a field device, and only to a coil a
profile marks ``writable = true`` (checked by check-config). Each output is
written when its wanted state changes and again every ``refresh_s`` (so a
PLC or annunciator that restarted is set again); a failed write is logged
and retried a second later. Every switch is an EVENT record
``alarm_output`` (point, on, the alarms that hold it on).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from drivers.errors import DriverError
from drivers.types import PointSpec, RegisterKind
from gateway.alarms.engine import AlarmEngine
from gateway.alarms.rules import Priority
from gateway.alarms.state import Status
from gateway.config import CompiledDevice
from gateway.config.schema import AlarmOutput
from gateway.model import Quality, Record, RecordKind
from gateway.scheduler import stopped_within

log = logging.getLogger("minegate.alarms")

RETRY_S = 1.0
_ON = (Status.ACTIVE_UNACKED, Status.ACTIVE_ACKED)


class CoilWriter(Protocol):
    async def write(
        self, unit: int, kind: RegisterKind, address: int, values: Sequence[int] | Sequence[bool]
    ) -> None: ...


@dataclass
class _Output:
    config: AlarmOutput
    device: CompiledDevice
    point: PointSpec
    min_priority: Priority
    written: bool | None = None
    written_at: float = -1e18


class AlarmOutputs:
    def __init__(
        self,
        outputs: Sequence[AlarmOutput],
        devices: Sequence[CompiledDevice],
        engine: AlarmEngine,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        by_name = {d.name: d for d in devices}
        self.engine = engine
        self.clock = clock
        self.outputs: list[_Output] = []
        for out in outputs:
            dev_name, _, point = out.point.rpartition(".")
            dev = by_name[dev_name]  # check-config made sure it exists
            spec = next(p for p in dev.points if p.name == point)
            self.outputs.append(_Output(out, dev, spec, Priority.parse(out.min_priority)))
        self.changed = asyncio.Event()
        self.changed.set()

    def holding(self, out: _Output) -> list[str]:
        """The alarms that want ``out`` on."""
        states = (Status.ACTIVE_UNACKED,) if out.config.until_ack else _ON
        return [
            aid
            for aid, st in self.engine.states.items()
            if st.status in states and self.engine.conditions[aid].rule.priority >= out.min_priority
        ]

    async def run(
        self,
        hubs: Mapping[str, CoilWriter],
        emit: Callable[[Record], Awaitable[None]],
        wall_ns: Callable[[], int],
        stop: asyncio.Event,
    ) -> None:
        """Until ``stop``: a write under way finishes and is recorded (the
        outputs keep their state when the gateway stops: an alarm still
        holds)."""
        while not stop.is_set():
            self.changed.clear()
            due = RETRY_S * 30
            for out in self.outputs:
                due = min(due, await self._update(out, hubs, emit, wall_ns))
            await stopped_within(stop, max(due, 0.05), wake=self.changed)

    async def _update(
        self,
        out: _Output,
        hubs: Mapping[str, CoilWriter],
        emit: Callable[[Record], Awaitable[None]],
        wall_ns: Callable[[], int],
    ) -> float:
        """Write the output if needed; return seconds until it is due again."""
        holding = self.holding(out)
        want = bool(holding)
        now = self.clock()
        refresh = out.config.refresh_s
        if want == out.written and now - out.written_at < refresh:
            return refresh - (now - out.written_at)
        hub = hubs.get(out.device.bus.name)
        if hub is None:  # the hubs are not open yet
            return RETRY_S
        unit = out.device.config.unit or 0
        try:
            await hub.write(unit, RegisterKind.COIL, out.point.address, [want])
        except DriverError as exc:
            log.warning("alarm output %s: cannot write %s: %s", out.config.point, want, exc)
            out.written = None
            return RETRY_S
        changed = want != out.written
        out.written, out.written_at = want, now
        if changed:
            log.info("alarm output %s %s", out.config.point, "on" if want else "off")
            await emit(
                Record(
                    RecordKind.EVENT,
                    out.device.name,
                    wall_ns(),
                    ["event"],
                    ["alarm_output"],
                    [""],
                    [Quality.GOOD],
                    fields={
                        "event": "alarm_output",
                        "point": out.point.name,
                        "on": want,
                        "alarms": holding[:20],
                    },
                )
            )
        return refresh

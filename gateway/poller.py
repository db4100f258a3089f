"""Pollers: one asyncio task per device.

A Modbus poller walks its device's poll plan every cycle on a drift-free
schedule, through the hub of the device's bus (the hub serialises each bus,
so devices on one RS-485 line or behind one gateway take turns). Each
answered request becomes at most one SAMPLE record, timestamped when the
request went on the wire (after the wait for the bus: the hub's
``on_send``), with the values report-by-exception lets through.

Failures are judged per cycle: a cycle in which no request got an answer is a
failed cycle; ``DeviceRecorder`` turns enough of them into comm loss. When a
request times out, the link fails, or a gateway answers exception 10/11 for
the device (it is silent behind the gateway), the rest of that cycle is
skipped: the device is not answering, and on a shared serial bus every
further timeout would steal time from the healthy devices.

A merged read refused with exception 2 or 3 (a point at an address the
device lacks) is cut in halves, down to single points, in the same cycle:
the points that answer stay good, only the refused ones are bad, each
refused read is logged once with its address and point names, and the cut
plan is kept for the next cycles.

An ASCII poller reads a line sensor's port as lines arrive and watches for
silence: no valid line within ``comm_loss_after`` x ``poll_interval_s`` is
comm loss.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any, Protocol

from drivers.errors import (
    REFUSED_RANGE_CODES,
    REFUSED_REQUEST_CODES,
    CorruptFrame,
    DeviceTimeout,
    DriverError,
    GatewayTargetSilent,
    ModbusExceptionResponse,
    TransportError,
)
from drivers.plan import ReadRequest, split_request
from drivers.types import RegisterKind, Value
from gateway.config import CompiledDevice
from gateway.metrics import DeviceMetrics
from gateway.model import Record
from gateway.quality import DeviceRecorder
from gateway.scheduler import Clock, MonotonicClock, Schedule

log = logging.getLogger("minegate.poller")

RecordSink = Callable[[Record], Awaitable[None]]


class Hub(Protocol):
    """What a poller needs of ``drivers.modbus`` hubs."""

    async def read(
        self,
        unit: int,
        kind: RegisterKind,
        address: int,
        count: int,
        *,
        on_send: Callable[[], object] | None = None,
    ) -> Sequence[int] | Sequence[bool]: ...


# Errors after which the rest of the cycle is pointless: nobody is answering.
_UNREACHABLE = (DeviceTimeout, TransportError, GatewayTargetSilent)


def _span(req: ReadRequest) -> str:
    last = req.address + req.count - 1
    where = f"{req.address}" if last == req.address else f"{req.address}..{last}"
    return f"{req.kind} {where}"


class ModbusPoller:
    """Polls one Modbus device forever (until cancelled)."""

    def __init__(
        self,
        device: CompiledDevice,
        hub: Hub,
        emit: RecordSink,
        stats: DeviceMetrics,
        *,
        clock: Clock | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        observe: Callable[[Record], None] | None = None,
    ) -> None:
        if device.plan is None or device.config.unit is None:
            raise ValueError(f"device {device.name!r} is not a Modbus device")
        self.device = device
        self.unit: int = device.config.unit
        self.hub = hub
        self.emit = emit
        self.stats = stats
        self.clock = clock or MonotonicClock()
        self.wall_ns = wall_ns
        self.recorder = DeviceRecorder(
            device.name,
            device.points,
            device.stale_after_s,
            device.config.comm_loss_after,
            stats,
            observe,
        )
        # The requests walked each cycle: the device's plan, with the reads
        # it refused cut in pieces (remembered until restart).
        self.requests: list[ReadRequest] = list(device.plan.requests)
        for req in self.requests:
            self.recorder.prepare([p.name for p in req.points])
        self._logged_failure = False
        self._logged_refusals: set[tuple[RegisterKind, int, int, int]] = set()
        self._sent_ns = 0
        self._on_send = self._stamp

    async def run(self, start: float | None = None) -> None:
        schedule = Schedule(self.device.config.poll_interval_s, self.clock, start=start)
        async for _ in schedule:
            await self.poll_once()
            self.stats.overruns = schedule.stats.overruns

    def _stamp(self) -> None:
        self._sent_ns = self.wall_ns()

    async def poll_once(self) -> None:
        """Run one cycle: every request of the plan, in order."""
        self.stats.polls += 1
        answered = 0
        last_error: DriverError | None = None
        cycle_ts = self.wall_ns()
        todo = self.requests[::-1]  # a stack: the halves of a cut read go next
        walked: list[ReadRequest] = []
        cut = False
        while todo:
            req = todo.pop()
            self._sent_ns = 0
            t0 = self.clock.now()
            try:
                data = await self.hub.read(
                    self.unit, req.kind, req.address, req.count, on_send=self._on_send
                )
            except DriverError as exc:
                self.stats.request_failed(exc.kind)
                last_error = exc
                if isinstance(exc, _UNREACHABLE):
                    todo.append(req)
                    break
                if isinstance(exc, CorruptFrame):
                    # Line noise: this request is lost, the next may pass.
                    walked.append(req)
                    continue
                # The device answered with an exception code: it is alive.
                answered += 1
                halves = self._cut(req, exc)
                if halves is not None:
                    todo.extend(reversed(halves))
                    cut = True
                    continue
                walked.append(req)
                # These points have no value this cycle.
                readings: dict[str, Value | Exception | None] = {p.name: exc for p in req.points}
                await self._emit_values(self._sent_ns or self.wall_ns(), readings)
                continue
            walked.append(req)
            self.stats.request_ok(self.clock.now() - t0)
            answered += 1
            decoded: dict[str, Any] = req.decode(data)
            await self._emit_values(self._sent_ns or self.wall_ns(), decoded)
        if cut:
            before = len(self.requests)
            self.requests = walked + todo[::-1]
            log.info(
                "device %s (unit %s): reads refused for their addresses were cut in parts; "
                "polling with %d reads instead of %d from now on",
                self.device.name,
                self.unit,
                len(self.requests),
                before,
                extra={"device": self.device.name},
            )
        if answered:
            if self._logged_failure:
                log.info("device %s answers again", self.device.name)
                self._logged_failure = False
            for rec in self.recorder.cycle_ok(cycle_ts):
                await self._send(rec)
        else:
            self._log_failure(last_error)
            for rec in self.recorder.cycle_failed(cycle_ts, last_error):
                await self._send(rec)

    def _cut(self, req: ReadRequest, exc: DriverError) -> tuple[ReadRequest, ReadRequest] | None:
        """The halves to read instead of ``req`` when the device refused it
        for its range; otherwise None, after saying once which points the
        refusal leaves without a value."""
        if not isinstance(exc, ModbusExceptionResponse) or exc.code not in REFUSED_REQUEST_CODES:
            return None
        halves = split_request(req) if exc.code in REFUSED_RANGE_CODES else None
        if halves is not None:
            for half in halves:
                self.recorder.prepare([p.name for p in half.points])
            log.debug(
                "device %s (unit %s): read of %s (%d points) refused with %s; "
                "reading it in halves to find the refused points",
                self.device.name,
                self.unit,
                _span(req),
                len(req.points),
                exc,
                extra={"device": self.device.name},
            )
            return halves
        key = (req.kind, req.address, req.count, exc.code)
        if key not in self._logged_refusals:
            self._logged_refusals.add(key)
            log.warning(
                "device %s (unit %s): read of %s refused with %s; point(s) %s have no value "
                "(check their addresses in the profile)",
                self.device.name,
                self.unit,
                _span(req),
                exc,
                ", ".join(p.name for p in req.points),
                extra={"device": self.device.name},
            )
        return None

    async def _emit_values(self, ts_ns: int, readings: dict[str, Any]) -> None:
        # Recovery must be announced before the first fresh values.
        if self.recorder.in_comm_loss:
            for rec in self.recorder.cycle_ok(ts_ns):
                await self._send(rec)
        record = self.recorder.values_record(ts_ns, readings)
        if record is not None:
            await self._send(record)

    async def _send(self, record: Record) -> None:
        self.stats.records += 1
        self.stats.values += len(record)
        await self.emit(record)

    def _log_failure(self, error: DriverError | None) -> None:
        # Loud once per outage, then quiet until the device answers again.
        if not self._logged_failure:
            log.warning(
                "device %s (unit %s) did not answer: %s",
                self.device.name,
                self.unit,
                error,
                extra={"device": self.device.name},
            )
            self._logged_failure = True


class LineSource(Protocol):
    """An open ASCII port: yields (ts_ns, {key: value}) per valid line."""

    def lines(self) -> AsyncIterator[tuple[int, dict[str, Value]]]: ...


class AsciiPoller:
    """Records a line sensor's values as they arrive and detects silence."""

    def __init__(
        self,
        device: CompiledDevice,
        open_port: Callable[[], contextlib.AbstractAsyncContextManager[LineSource]],
        emit: RecordSink,
        stats: DeviceMetrics,
        *,
        clock: Clock | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        reopen_delay_s: float = 2.0,
        observe: Callable[[Record], None] | None = None,
    ) -> None:
        self.device = device
        self.open_port = open_port
        self.emit = emit
        self.stats = stats
        self.clock = clock or MonotonicClock()
        self.wall_ns = wall_ns
        self.reopen_delay_s = reopen_delay_s
        self.recorder = DeviceRecorder(
            device.name,
            device.points,
            device.stale_after_s,
            device.config.comm_loss_after,
            stats,
            observe,
        )
        self._port: LineSource | None = None
        self._last_line = self.clock.now()
        self._last_error: DriverError | None = None

    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch())
            tg.create_task(self._read_forever())

    async def _read_forever(self) -> None:
        while True:
            try:
                async with self.open_port() as port:
                    self._port = port
                    async for ts_ns, values in port.lines():
                        await self.on_line(ts_ns, values)
            except DriverError as exc:
                # Port gone or unreadable: count it, let the watchdog declare
                # comm loss, and reopen after a pause.
                self.stats.request_failed(exc.kind)
                self._last_error = exc
                log.warning("ASCII port of %s failed: %s", self.device.name, exc)
            await asyncio.sleep(self.reopen_delay_s)

    async def on_line(self, ts_ns: int, values: dict[str, Value]) -> None:
        """Handle one parsed line (public so tests can feed lines directly)."""
        self.stats.polls += 1
        self.stats.request_ok(0.0)
        self._last_line = self.clock.now()
        from drivers.ascii import values_for_points

        # Converts each field to its point's type and scale; a missing or
        # unreadable field becomes a DecodeError, i.e. a BAD value.
        readings: dict[str, Any] = values_for_points(values, self.device.points)
        for rec in self.recorder.cycle_ok(ts_ns):
            await self._send(rec)
        record = self.recorder.values_record(ts_ns, readings)
        if record is not None:
            await self._send(record)

    async def _watch(self) -> None:
        interval = self.device.config.poll_interval_s
        schedule = Schedule(interval, self.clock)
        async for _ in schedule:
            await self.check_silence()

    async def check_silence(self) -> None:
        """One watchdog tick: a missing line counts as a failed cycle."""
        interval = self.device.config.poll_interval_s
        if self.clock.now() - self._last_line <= interval * 1.5:
            return
        port_error = getattr(self._port, "last_error", None)
        if isinstance(port_error, DriverError):
            self.stats.request_failed(port_error.kind)
        error = (
            port_error
            or self._last_error
            or DeviceTimeout(
                f"no valid line for {self.clock.now() - self._last_line:.1f} s",
                device=self.device.name,
            )
        )
        for rec in self.recorder.cycle_failed(self.wall_ns(), error):
            await self._send(rec)

    async def _send(self, record: Record) -> None:
        self.stats.records += 1
        self.stats.values += len(record)
        await self.emit(record)

"""The engine shared by the Modbus hubs: :class:`ModbusHub`, one client and
one connection per physical bus, with request serialisation, frame pauses,
retries, reconnects with backoff, late-reply draining and reply checks.

The contract and the concrete hubs (TCP, RTU, RTU over TCP) are in
:mod:`drivers.modbus`, the public module; import from there.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.exceptions import ConnectionException, ModbusException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.backoff import Backoff
from drivers.errors import (
    REFUSED_REQUEST_CODES,
    CorruptFrame,
    DeviceBusy,
    DeviceTimeout,
    DriverError,
    ModbusExceptionResponse,
    TransportError,
    exception_for,
    needs_reconnect,
    worth_resending,
)
from drivers.fastpdu import register_fast_pdus
from drivers.hubmetrics import HubMetrics
from drivers.reach import LinkProblem
from drivers.types import MAX_READ_BITS, MAX_READ_REGISTERS, RegisterKind

__all__ = ["ModbusHub"]

# The hubs log under the public module's name, which operators' logging
# settings (and the tests) select.
log = logging.getLogger("drivers.modbus")

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]

# Function codes, to check that a reply answers the request it is taken for.
_READ_FC = {
    RegisterKind.COIL: 1,
    RegisterKind.DISCRETE: 2,
    RegisterKind.HOLDING: 3,
    RegisterKind.INPUT: 4,
}


class _PymodbusNoise(logging.Filter):
    """Drops pymodbus log lines the hub reports itself (once per outage,
    not once per request), so a silent RTU unit does not flood the log."""

    _DUPLICATES = (
        "No response received after",
        "Failed to connect",
        "request ask for id=",
        "Not connected, trying to connect",
        "Cancel send, because not connected",
        "received pdu without a corresponding request",  # counted as unsolicited
    )

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(part in message for part in self._DUPLICATES)


_NOISE_FILTER = _PymodbusNoise()
logging.getLogger("pymodbus.logging").addFilter(_NOISE_FILTER)


def _check_unit(unit: int) -> None:
    if not 0 <= unit <= 255:
        raise ValueError(f"unit id must be 0..255, got {unit}")


class ModbusHub:
    """Base of the three hubs; see :mod:`drivers.modbus` for the contract.

    Parameters common to all hubs: ``timeout_s`` (answer timeout per
    transaction), ``retries`` (extra attempts for busy/corrupt/timeout),
    ``frame_pause_s`` (silence between frames on serial links),
    ``late_reply_s`` (quiet time after a timeout on serial links),
    ``backoff`` (reconnect policy), ``clock`` / ``sleep`` / ``rng``
    (injectable for tests: monotonic seconds, an awaitable sleep, jitter).
    """

    serialised = False  # one request at a time, with pauses and drains
    # Consecutive timeouts (any unit, no good reply between) after which a
    # TCP link is dropped and reopened; 0 = never (serial ports).
    reconnect_after_timeouts = 0

    def __init__(
        self,
        *,
        name: str,
        timeout_s: float = 1.0,
        retries: int = 1,
        frame_pause_s: float = 0.0,
        late_reply_s: float | None = None,
        retry_pause_s: float = 0.05,
        backoff: Backoff | None = None,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if timeout_s <= 0 or retries < 0 or frame_pause_s < 0:
            raise ValueError(f"hub {name!r}: need timeout_s > 0, retries >= 0, frame_pause_s >= 0")
        self.name = name
        self.timeout_s = timeout_s
        self.retries = retries
        self.frame_pause_s = frame_pause_s
        self.late_reply_s = min(timeout_s, 0.25) if late_reply_s is None else late_reply_s
        self.retry_pause_s = retry_pause_s
        self._rng = rng or random.Random()
        self.backoff = backoff or Backoff(rng=self._rng)
        self._clock = clock
        self._sleep = sleep
        self.stats = HubMetrics()
        self._client: AsyncModbusTcpClient | AsyncModbusSerialClient | None = None
        self._bus_lock = asyncio.Lock()
        self._connect_lock = asyncio.Lock()
        self._retry_at = 0.0  # clock() before which no reconnect is tried
        self._last_frame_end = -math.inf
        # Bytes seen (pymodbus traces its whole receive buffer, so this is a
        # "something arrived" flag more than a count) since the request.
        self._rx_bytes = 0
        self._rx_at = -math.inf  # clock() when bytes last arrived for a request
        self._silent_timeouts = 0  # consecutive timeouts, all units
        self._in_flight = 0  # requests waiting for their reply
        self._failing: dict[int | None, int] = {}  # unit (None: the link) -> failures
        self._link_problem: LinkProblem | None = None  # why the last connect failed
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    def _new_client(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        raise NotImplementedError

    def _client_options(self) -> dict[str, Any]:
        """The pymodbus client arguments every hub passes: pymodbus's own
        retries and reconnect loop off (the hub does both, with its own
        backoff), the hub's timeout and name, and the hub's traces."""
        return {
            "timeout": self.timeout_s,
            "retries": 0,
            "reconnect_delay": 0,
            "name": self.name,
            "trace_packet": self._trace_packet,
            "trace_connect": self._trace_connect,
        }

    def _describe(self) -> str:
        raise NotImplementedError

    def _precheck(self) -> LinkProblem | None:
        """A precise reason not to try connecting (a missing serial port)."""
        return None

    async def _connect_problem(self, elapsed_s: float) -> LinkProblem:
        """Why the client's connect failed after ``elapsed_s`` (pymodbus
        only says that it did); the TCP hubs ask the OS."""
        return LinkProblem(
            "cannot connect",
            f"cannot connect within {self.timeout_s} s (refused, unreachable or port busy); "
            "check the address and the device",
        )

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._describe()}>"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def __aenter__(self) -> ModbusHub:
        """Open the link. A device that is down at start-up is not an error
        here: the hub keeps retrying with backoff on later calls."""
        self._closed = False
        try:
            await self._ensure_connected()
        except TransportError:
            pass  # already logged and counted; reads fail fast until the backoff expires
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the link; later calls raise :class:`TransportError`."""
        self._closed = True
        self._drop_client()

    def _drop_client(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            client.close()
            self.stats.disconnects += 1

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            if self._in_flight:
                self._rx_bytes += len(data)
                self._rx_at = self._clock()
            else:  # nobody asked: a late reply (dropped) or line noise
                self.stats.unsolicited += 1
        return data

    def _trace_connect(self, connected: bool) -> None:
        if connected or self._client is None:
            return
        # The peer went away mid-request: fail the waiting request now
        # instead of letting it run into the timeout.
        ctx = self._client.ctx
        future = getattr(ctx, "response_future", None)
        if future is not None and not future.done():
            future.set_exception(ConnectionException("connection lost"))

    async def _ensure_connected(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        if self._closed:
            raise TransportError(f"{self._describe()}: hub is closed", device=self.name)
        client = self._client
        if client is not None and client.connected:
            return client
        if self._clock() < self._retry_at:
            why = f" ({self._link_problem.reason})" if self._link_problem else ""
            raise TransportError(
                f"{self._describe()}: link down{why}, next reconnect in "
                f"{self._retry_at - self._clock():.1f} s",
                device=self.name,
            )
        async with self._connect_lock:
            client = self._client
            if client is not None and client.connected:
                return client
            if self._clock() < self._retry_at:  # another caller just failed
                raise TransportError(f"{self._describe()}: link down", device=self.name)
            self._drop_client()
            try:
                client = await self._open()
            except TransportError as exc:
                self.stats.connect_failures += 1
                self._schedule_reconnect(exc)
                raise
            except OSError as exc:
                err = TransportError(f"{self._describe()}: {exc}", device=self.name)
                self.stats.connect_failures += 1
                self._schedule_reconnect(err)
                raise err from exc
            self._client = client
            self._link_problem = None
            self.stats.connects += 1
            self.backoff.reset()
            self._retry_at = 0.0
            self._last_frame_end = -math.inf
            self._recovered(None)
            return client

    async def _open(self) -> AsyncModbusTcpClient | AsyncModbusSerialClient:
        """A new connected client, or TransportError saying why not."""
        problem = self._precheck()
        if problem is None:
            client = self._new_client()
            register_fast_pdus(client)  # one struct call per read response
            # pymodbus would close the link after retries+3 silent
            # requests; an absent RTU unit must not take its bus down.
            client.set_max_no_responses(2**31)
            started = time.monotonic()
            if await client.connect():
                return client
            client.close()
            problem = await self._connect_problem(time.monotonic() - started)
        self._link_problem = problem
        raise TransportError(f"{self._describe()}: {problem}", device=self.name)

    def _schedule_reconnect(self, exc: DriverError) -> None:
        delay = self.backoff.next_delay()
        self._retry_at = self._clock() + delay
        self._report(None, exc, extra=f"; reconnecting in {delay:.1f} s")

    # -------------------------------------------------------------- logging

    def _report(self, unit: int | None, exc: DriverError, extra: str = "") -> None:
        count = self._failing.get(unit, 0) + 1
        self._failing[unit] = count
        who = f"bus {self.name!r}" + (f" unit {unit}" if unit is not None else "")
        if count == 1:
            log.warning(
                "%s: %s (%s)%s; repeats are logged at DEBUG until it recovers",
                who,
                exc,
                exc.kind,
                extra,
            )
        else:
            log.debug("%s: %s (%s), failure %d%s", who, exc, exc.kind, count, extra)

    def _recovered(self, unit: int | None) -> None:
        count = self._failing.pop(unit, 0)
        if count:
            who = f"bus {self.name!r}" + (f" unit {unit}" if unit is not None else " link")
            log.info("%s recovered after %d failure(s)", who, count)

    # ------------------------------------------------------------- requests

    async def read(
        self,
        unit: int,
        kind: RegisterKind,
        address: int,
        count: int,
        *,
        on_send: Callable[[], object] | None = None,
    ) -> list[int] | list[bool]:
        """Read ``count`` registers (list of int 0..65535) or bits (list of
        bool, exactly ``count``) of ``kind`` from ``address`` of ``unit``.

        ``on_send`` is called each time the request goes on the wire: with
        the link open, the bus acquired and the frame pause kept, so waits
        for other devices' requests, timeouts and retries come before it.
        Its last call is for the attempt that got the answer (the time a
        reading is stamped with).

        Raises a :class:`DriverError` subclass after the retries are used up.
        """
        _check_unit(unit)
        limit = MAX_READ_BITS if kind.is_bit else MAX_READ_REGISTERS
        if not 1 <= count <= limit or not 0 <= address <= 65536 - count:
            raise ValueError(
                f"read of {count} {kind} at {address}: count must be 1..{limit} within 0..65535"
            )
        fc = _READ_FC[kind]

        async def call(client: Any) -> ModbusPDU:
            if kind is RegisterKind.HOLDING:
                return await client.read_holding_registers(address, count=count, device_id=unit)
            if kind is RegisterKind.INPUT:
                return await client.read_input_registers(address, count=count, device_id=unit)
            if kind is RegisterKind.COIL:
                return await client.read_coils(address, count=count, device_id=unit)
            return await client.read_discrete_inputs(address, count=count, device_id=unit)

        reply = await self._request(unit, fc, call, retry_timeouts=True, on_send=on_send)
        if kind.is_bit:
            bits = reply.bits
            if len(bits) < count:
                raise CorruptFrame(
                    f"{self._describe()}: reply has {len(bits)} bits, asked {count}",
                    device=self.name,
                    unit=unit,
                )
            return [bool(b) for b in bits[:count]]
        registers = reply.registers
        if len(registers) != count:
            raise CorruptFrame(
                f"{self._describe()}: reply has {len(registers)} registers, asked {count}",
                device=self.name,
                unit=unit,
            )
        return list(registers)

    async def write(
        self, unit: int, kind: RegisterKind, address: int, values: Sequence[int] | Sequence[bool]
    ) -> None:
        """Write holding registers (ints 0..65535) or coils (bools) from
        ``address``. One value uses function 6/5, several 16/15.

        The gateway only calls this for points marked ``writable``.
        """
        _check_unit(unit)
        if kind not in (RegisterKind.HOLDING, RegisterKind.COIL):
            raise ValueError(
                f"{kind} is read-only in Modbus; only holding registers and coils can be written"
            )
        if not values:
            raise ValueError("write needs at least one value")
        items = list(values)
        if kind is RegisterKind.HOLDING:
            if any(not 0 <= int(v) <= 0xFFFF for v in items):
                raise ValueError(f"register values must be 0..65535, got {items}")
            fc = 6 if len(items) == 1 else 16
        else:
            fc = 5 if len(items) == 1 else 15

        async def call(client: Any) -> ModbusPDU:
            if fc == 6:
                return await client.write_register(address, int(items[0]), device_id=unit)
            if fc == 16:
                return await client.write_registers(
                    address, [int(v) for v in items], device_id=unit
                )
            if fc == 5:
                return await client.write_coil(address, bool(items[0]), device_id=unit)
            return await client.write_coils(address, [bool(v) for v in items], device_id=unit)

        await self._request(unit, fc, call, retry_timeouts=False)

    async def _request(
        self,
        unit: int,
        fc: int,
        call: Callable[[Any], Awaitable[ModbusPDU]],
        *,
        retry_timeouts: bool,
        on_send: Callable[[], object] | None = None,
    ) -> ModbusPDU:
        stats = self.stats
        stats.requests += 1
        attempt = 0
        while True:
            try:
                client = await self._ensure_connected()
                reply = await self._transact(client, unit, fc, call, on_send)
            except DriverError as exc:
                stats.errors[exc.kind] += 1
                if isinstance(exc, DeviceTimeout):
                    self._silent_timeouts += 1
                    self._maybe_drop_silent_link()
                if needs_reconnect(exc):
                    if self._client is not None:  # the link broke under this request
                        self._drop_client()
                        self._schedule_reconnect(exc)
                    stats.failures += 1
                    raise
                retry = worth_resending(exc) and (retry_timeouts or isinstance(exc, DeviceBusy))
                if retry and attempt < self.retries:
                    attempt += 1
                    stats.retries += 1
                    await self._sleep(self.retry_pause_s * (0.5 + self._rng.random()))
                    continue
                stats.failures += 1
                if isinstance(exc, ModbusExceptionResponse) and exc.code in REFUSED_REQUEST_CODES:
                    # An answer about this request (its function or
                    # addresses), not about the unit's health: the caller
                    # knows which points it concerns and says so.
                    log.debug("bus %r unit %s: %s", self.name, unit, exc)
                else:
                    self._report(unit, exc)
                raise
            self._silent_timeouts = 0
            if self._failing:
                self._recovered(unit)
            return reply

    def _maybe_drop_silent_link(self) -> None:
        """A TCP link where every unit stopped answering is probably
        half-open (a DTU or gateway rebooted behind a cellular NAT without
        a FIN/RST): reconnect at once instead of timing out for the ~15
        minutes TCP needs to notice."""
        limit = self.reconnect_after_timeouts
        if limit and self._silent_timeouts >= limit and self._client is not None:
            log.info(
                "bus %r: %d timeouts in a row on every unit; reconnecting %s",
                self.name,
                self._silent_timeouts,
                self._describe(),
            )
            self._silent_timeouts = 0
            self._drop_client()

    async def _transact(
        self,
        client: Any,
        unit: int,
        fc: int,
        call: Callable[[Any], Awaitable[ModbusPDU]],
        on_send: Callable[[], object] | None,
    ) -> ModbusPDU:
        if not self.serialised:
            # pymodbus runs one request at a time per connection anyway; the
            # hub's own lock only makes the wait for it happen before
            # ``on_send``, so a reading is not stamped while it queues.
            async with self._bus_lock:
                if on_send is not None:
                    on_send()
                return await self._exchange(client, unit, fc, call)
        async with self._bus_lock:
            wait = self._last_frame_end + self.frame_pause_s - self._clock()
            if wait > 0:
                await self._sleep(wait)
            if on_send is not None:
                on_send()
            answered = False
            try:
                reply = await self._exchange(client, unit, fc, call)
                answered = True
                return reply
            except (DeviceTimeout, CorruptFrame):
                # A late reply may still be on its way: keep the line quiet
                # and throw away whatever arrives before the next request.
                if self.late_reply_s > 0:
                    await self._sleep(self.late_reply_s)
                current = self._client
                if current is not None and current is client:
                    current.ctx.recv_buffer = b""
                raise
            finally:
                # After an answer the silence runs from its last byte on the
                # wire, not from when the reply was decoded here (the spec's
                # 3.5 characters are between frames; the decoding and the
                # wake-up of the next caller overlap them).
                self._last_frame_end = self._rx_at if answered else self._clock()

    async def _exchange(
        self, client: Any, unit: int, fc: int, call: Callable[[Any], Awaitable[ModbusPDU]]
    ) -> ModbusPDU:
        stats = self.stats
        stats.transactions += 1
        self._rx_bytes = 0
        started = time.perf_counter()
        self._in_flight += 1
        try:
            reply = await call(client)
        except ModbusIOException as exc:
            # pymodbus 3.11 turns a cancellation of the waiting request into
            # ModbusIOException("Request cancelled outside pymodbus."): give
            # the cancellation back, or a stopping gateway waits forever on a
            # poller stuck behind a silent unit.
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                raise asyncio.CancelledError from exc
            if not client.connected:
                raise TransportError(
                    f"{self._describe()}: link lost", device=self.name, unit=unit
                ) from exc
            # Bytes without a frame mean line noise on a serial link; on a
            # TCP hub requests overlap, so the count says nothing there.
            if self.serialised and self._rx_bytes:
                raise CorruptFrame(
                    f"{self._describe()} unit {unit}: bytes received but no valid reply "
                    "(bad CRC or garbage); check wiring, termination, baud rate and parity",
                    device=self.name,
                    unit=unit,
                ) from exc
            raise DeviceTimeout(
                f"{self._describe()} unit {unit}: no answer within {self.timeout_s} s",
                device=self.name,
                unit=unit,
            ) from exc
        except ConnectionException as exc:
            raise TransportError(f"{self._describe()}: {exc}", device=self.name, unit=unit) from exc
        except OSError as exc:
            raise TransportError(f"{self._describe()}: {exc}", device=self.name, unit=unit) from exc
        except ModbusException as exc:
            raise CorruptFrame(
                f"{self._describe()} unit {unit}: {exc}", device=self.name, unit=unit
            ) from exc
        finally:
            self._in_flight -= 1
        latency = time.perf_counter() - started
        rfc = reply.function_code
        if rfc == fc | 0x80:
            raise exception_for(int(reply.exception_code), device=self.name, unit=unit)
        if rfc != fc or (reply.dev_id != unit and unit != 0):
            raise CorruptFrame(
                f"{self._describe()} unit {unit}: reply to function {rfc} from unit "
                f"{reply.dev_id} does not answer function {fc}",
                device=self.name,
                unit=unit,
            )
        stats.observe(latency)
        return reply

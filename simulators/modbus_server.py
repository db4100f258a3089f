"""Modbus devices built from profiles, served by pymodbus 3.11.

A :class:`SimulatedDevice` is a pymodbus device context holding one device's
four data tables, laid out by its profile: each point's engineering value
(from :class:`~simulators.physics.MinePhysics`) encoded with
:func:`drivers.codec.encode` at its address. :meth:`SimulatedDevice.refresh`
re-encodes the values every tick, unless the device is ``frozen``.

A :class:`ModbusBus` is one pymodbus server with several devices by unit id:
a Modbus TCP endpoint (``ModbusTcpServer``) or an RS-485 line
(``ModbusSerialServer`` with the RTU framer, usually on one end of a
:class:`~simulators.ptybridge.PtyPair`). Units not on the bus stay silent,
as on a real line (``ignore_missing_devices``).

How the faults of :mod:`simulators.faults` are shown:

* silent: the context raises pymodbus' ``NoSuchIdException`` so the
  request handler drops the request exactly like one for an absent unit;
* slow: the context awaits ``delay_s`` before answering;
* exception: the context returns the exception code;
* corrupt: the server's ``trace_packet`` hook damages outgoing frames of
  that unit (CRC on RTU, byte count on TCP);
* frozen: :meth:`refresh` stops copying values in.

Device behaviour worth knowing: reads past the highest mapped address get
exception 2 (illegal data address); a ``merge = false`` profile also
answers 2 to reads that cover unmapped registers, which is why the poll
planner must not bridge gaps for it. Writes are accepted on ``writable``
points only and act on the physics (a coil ``run_command`` starts the fan).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusBaseDeviceContext, ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from drivers import codec
from drivers.types import DataType, DeviceProfile, PointSpec, RegisterKind, Value
from simulators.faults import (
    MODBUS_FAULTS,
    FaultBoard,
    FaultKind,
    corrupt_rtu,
    corrupt_tcp,
    unit_of_frame,
)
from simulators.physics import MinePhysics

log = logging.getLogger(__name__)

# pymodbus' table letters, by the function codes that reach each table.
_TABLE = {"c": RegisterKind.COIL, "d": RegisterKind.DISCRETE}
_TABLE |= {"h": RegisterKind.HOLDING, "i": RegisterKind.INPUT}


class SimulatedDevice(ModbusBaseDeviceContext):
    """One Modbus device: profile layout, values from ``physics`` entity
    ``entity`` (default: the device name), faults on ``faults``."""

    def __init__(
        self,
        name: str,
        profile: DeviceProfile,
        unit: int,
        physics: MinePhysics,
        *,
        entity: str | None = None,
    ) -> None:
        if profile.protocol != "modbus":
            raise ValueError(f"device {name!r}: profile {profile.name!r} is not a Modbus profile")
        if not 1 <= unit <= 247:
            raise ValueError(f"device {name!r}: unit id {unit} outside 1..247")
        self.name = name
        self.profile = profile
        self.unit = unit
        self.physics = physics
        self.entity = entity or name
        self.faults = FaultBoard(name, MODBUS_FAULTS)
        self.requests = 0  # answered or not, for tests and the status line
        missing = [p.name for p in profile.points if not physics.has(self.entity, _quantity(p))]
        if missing:
            raise ValueError(
                f"device {name!r} (profile {profile.name!r}): physics entity {self.entity!r} "
                f"has no quantity for point(s) {', '.join(missing)}; set `sim` in the profile"
            )
        self.tables: dict[RegisterKind, list[int]] = {}
        self.mapped: dict[RegisterKind, set[int]] = {}
        for kind in RegisterKind:
            points = [p for p in profile.points if p.kind is kind]
            size = max((p.address + p.width for p in points), default=0)
            self.tables[kind] = [0] * size
            self.mapped[kind] = {p.address + i for p in points for i in range(p.width)}
        self._bad_points: set[str] = set()
        self.refresh(force=True)

    # ------------------------------------------------------------------ values

    def refresh(self, *, force: bool = False) -> None:
        """Copy the physics' current values into the tables (skipped while
        the device is frozen, unless ``force``)."""
        if FaultKind.FROZEN in self.faults and not force:
            return
        bit_words: dict[tuple[RegisterKind, int], int] = {}
        for point in self.profile.points:
            value = self.physics.get(self.entity, _quantity(point))
            table = self.tables[point.kind]
            if point.kind.is_bit:
                table[point.address] = 1 if value else 0
                continue
            try:
                words = codec.encode(value, point)
            except ValueError as exc:
                # Out of the register's range (a pinned test value, say): keep
                # the last good words and say so once, not every tick.
                if point.name not in self._bad_points:
                    log.warning("device %s: cannot encode %s: %s", self.name, point.name, exc)
                    self._bad_points.add(point.name)
                continue
            if point.dtype is DataType.BIT:
                key = (point.kind, point.address)
                bit_words[key] = bit_words.get(key, 0) | words[0]
            else:
                table[point.address : point.address + len(words)] = words
        # Several BIT points share one status word: OR their encoded words.
        for (kind, address), word in bit_words.items():
            self.tables[kind][address] = word

    # ------------------------------------------------------- pymodbus interface

    def reset(self) -> None:
        self.refresh(force=True)

    def _check(self, kind: RegisterKind, address: int, count: int) -> ExcCodes | None:
        table = self.tables[kind]
        if count < 1 or address < 0 or address + count > len(table):
            return ExcCodes.ILLEGAL_ADDRESS
        if not self.profile.merge and any(
            a not in self.mapped[kind] for a in range(address, address + count)
        ):
            return ExcCodes.ILLEGAL_ADDRESS
        return None

    def getValues(
        self, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        kind = _TABLE.get(self.decode(func_code))
        if kind is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if (error := self._check(kind, address, count)) is not None:
            return error
        words = self.tables[kind][address : address + count]
        if kind.is_bit:
            return [bool(w) for w in words]
        return words

    def setValues(
        self, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        kind = _TABLE.get(self.decode(func_code))
        if kind not in (RegisterKind.HOLDING, RegisterKind.COIL):
            return ExcCodes.ILLEGAL_FUNCTION
        if (error := self._check(kind, address, len(values))) is not None:
            return error
        touched = [
            p
            for p in self.profile.points
            if p.kind is kind
            and p.address < address + len(values)
            and address < p.address + p.width
        ]
        if not touched or any(not p.writable for p in touched):
            # Real devices refuse writes to read-only registers this way.
            return ExcCodes.ILLEGAL_ADDRESS
        table = self.tables[kind]
        table[address : address + len(values)] = [int(v) for v in values]
        for point in touched:
            words = table[point.address : point.address + point.width]
            value: Value = bool(words[0]) if kind.is_bit else codec.decode(words, point)
            self.physics.set(self.entity, _quantity(point), value)
        return None

    async def _faulted(self) -> ExcCodes | None:
        """Apply request-time faults; None means answer normally."""
        self.requests += 1
        if FaultKind.SILENT in self.faults:
            # Same path as an absent unit: the handler sends nothing.
            raise NoSuchIdException(f"{self.name}: silent (injected fault)")
        if (slow := self.faults.get(FaultKind.SLOW)) is not None:
            await asyncio.sleep(slow.delay_s)
        if (exc := self.faults.get(FaultKind.EXCEPTION)) is not None:
            return ExcCodes(exc.code)
        return None

    async def async_getValues(
        self, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        if (code := await self._faulted()) is not None:
            return code
        return self.getValues(func_code, address, count)

    async def async_setValues(
        self, func_code: int, address: int, values: list[int] | list[bool]
    ) -> ExcCodes | None:
        if (code := await self._faulted()) is not None:
            return code
        return self.setValues(func_code, address, values)

    def __str__(self) -> str:
        return f"SimulatedDevice({self.name}, unit {self.unit}, {self.profile.name})"


def _quantity(point: PointSpec) -> str:
    return point.sim or point.name


class _AbsentUnit(ModbusBaseDeviceContext):
    """What a Modbus TCP-to-serial gateway answers for a unit that is not on
    its serial side: exception 10 (path unavailable) or 11 (target device
    failed to respond), instead of silence."""

    def __init__(self, code: ExcCodes) -> None:
        self.code = code

    def getValues(self, func_code: int, address: int, count: int = 1) -> ExcCodes:
        return self.code

    def setValues(self, func_code: int, address: int, values: list[int] | list[bool]) -> ExcCodes:
        return self.code


class _GatewayContext(ModbusServerContext):
    """Unit lookup that gives unknown units an :class:`_AbsentUnit`."""

    def __init__(self, devices: dict[int, SimulatedDevice], code: ExcCodes) -> None:
        super().__init__(devices=dict(devices), single=False)
        self._absent = _AbsentUnit(code)

    def __getitem__(self, device_id: int) -> ModbusBaseDeviceContext:
        if device_id in self._devices:
            return self._devices[device_id]
        return self._absent

    def __contains__(self, device_id: object) -> bool:
        return True


class ModbusBus:
    """One pymodbus server carrying ``devices`` (distinct unit ids).

    ``framing`` is ``"tcp"`` (MBAP, for :meth:`serve_tcp`) or ``"rtu"``
    (for :meth:`serve_serial`, and for RTU frames over TCP).
    Units not on the bus stay silent, as on RS-485 and most Modbus TCP
    devices; ``absent_answer=11`` (or 10) makes the endpoint behave like a
    Modbus TCP-to-serial gateway instead, answering that exception code.
    """

    def __init__(
        self,
        name: str,
        devices: Iterable[SimulatedDevice],
        *,
        framing: str = "tcp",
        absent_answer: int | None = None,
    ) -> None:
        if framing not in ("tcp", "rtu"):
            raise ValueError(f"bus {name!r}: framing must be 'tcp' or 'rtu', not {framing!r}")
        self.name = name
        self.framing = framing
        self.devices: dict[int, SimulatedDevice] = {}
        for device in devices:
            if device.unit in self.devices:
                other = self.devices[device.unit].name
                raise ValueError(
                    f"bus {name!r}: unit {device.unit} used by {other!r} and {device.name!r}"
                )
            self.devices[device.unit] = device
        if absent_answer is not None and absent_answer not in (10, 11):
            raise ValueError(f"bus {name!r}: absent_answer must be 10 or 11, not {absent_answer}")
        self.absent_answer = absent_answer
        self.context: ModbusServerContext = (
            _GatewayContext(self.devices, ExcCodes(absent_answer))
            if absent_answer is not None
            else ModbusServerContext(devices=dict(self.devices), single=False)
        )
        self.server: ModbusTcpServer | ModbusSerialServer | None = None
        self.port = 0
        self.serial_port = ""

    def device(self, name: str) -> SimulatedDevice:
        for device in self.devices.values():
            if device.name == name:
                return device
        raise KeyError(f"bus {self.name!r} has no device {name!r}")

    def refresh(self) -> None:
        for device in self.devices.values():
            device.refresh()

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending:
            return data
        device = self.devices.get(unit_of_frame(data, self.framing) or -1)
        if device is None or FaultKind.CORRUPT not in device.faults:
            return data
        return corrupt_tcp(data) if self.framing == "tcp" else corrupt_rtu(data)

    def _framer(self) -> FramerType:
        return FramerType.SOCKET if self.framing == "tcp" else FramerType.RTU

    async def serve_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on ``host:port`` (0: any free port); returns the port."""
        server = ModbusTcpServer(
            self.context,
            framer=self._framer(),
            address=(host, port),
            ignore_missing_devices=True,
            trace_packet=self._trace_packet,
        )
        await server.serve_forever(background=True)
        self.server = server
        listener: Any = server.transport
        self.port = int(listener.sockets[0].getsockname()[1])
        log.info("bus %s: Modbus %s on %s:%d", self.name, self.framing, host, self.port)
        return self.port

    async def serve_serial(
        self,
        serial_port: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
    ) -> None:
        """Answer RTU frames on ``serial_port`` (a tty path)."""
        server = ModbusSerialServer(
            self.context,
            framer=FramerType.RTU,
            port=serial_port,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            ignore_missing_devices=True,
            trace_packet=self._trace_packet,
        )
        await server.serve_forever(background=True)
        self.server = server
        self.serial_port = serial_port
        log.info("bus %s: Modbus RTU on %s at %d baud", self.name, serial_port, baudrate)

    async def close(self) -> None:
        if self.server is not None:
            await self.server.shutdown()
            self.server = None


def build_devices(
    specs: Sequence[tuple[str, DeviceProfile, int]], physics: MinePhysics
) -> list[SimulatedDevice]:
    """Devices for ``(name, profile, unit)`` triples, each driven by the
    physics entity of the same name."""
    return [SimulatedDevice(name, profile, unit, physics) for name, profile, unit in specs]

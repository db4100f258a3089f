"""Modbus hubs: one per physical bus (a TCP endpoint, a serial port, a DTU's
RTU-over-TCP socket), built on the pymodbus 3.11 async clients.

A hub owns one client and one connection, and is shared by every device
(unit id) on its bus. Guarantees:

* **One request at a time** per hub (an ``asyncio.Lock``). On a serial bus
  or RTU-over-TCP link ``frame_pause_s`` of silence is kept between frames
  (RTU: the 3.5-character time of the baud rate and character format plus
  the site's extra pause). Modbus TCP could pipeline, but pymodbus (and most
  field devices) take one request per connection at a time anyway.
* **Readings are stamped on the wire**: ``read(..., on_send=)`` is called
  when the request is sent, after the wait for the bus, so the caller's
  timestamp is not early by other devices' timeouts and retries.
* **Errors are drivers.errors**: no answer -> :class:`DeviceTimeout`;
  exception code 5/6 -> :class:`DeviceBusy`; 10/11 (a gateway answering
  for a silent device) -> :class:`GatewayTargetSilent`; other codes ->
  :class:`ModbusExceptionResponse`; refused / reset / missing port ->
  :class:`TransportError`; bytes that never formed a valid frame (bad CRC,
  garbage) or a reply of the wrong shape -> :class:`CorruptFrame`.
* **Retries**: busy / corrupt / timeout are retried up to ``retries`` times
  after a short jittered pause (reads only; a write is retried only when
  the device said "busy", because a timed-out write may have been applied).
* **Reconnects** with capped, jittered exponential backoff. While backing
  off, calls fail at once with :class:`TransportError`, so a dead bus never
  stalls its callers; other hubs are independent objects and never wait.
* **Late replies are dropped**: after a timeout on a serial or DTU link the
  hub keeps the line quiet for ``late_reply_s`` and discards what arrives,
  and every reply is checked for function code and length, so a late
  answer is never taken for the next request's.
* pymodbus's own retries and reconnect loop are disabled; the hub does both.

The gateway reads :attr:`ModbusHub.stats` (:class:`HubMetrics`).

This module holds the three hubs and :func:`make_hub`; the engine they share
is :class:`drivers.hub.ModbusHub`, with :class:`drivers.backoff.Backoff` and
:class:`drivers.hubmetrics.HubMetrics`. Import all of them from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
from pymodbus.framer import FramerType

from drivers.backoff import Backoff
from drivers.hub import ModbusHub
from drivers.hubmetrics import LATENCY_BUCKETS_S, HubMetrics
from drivers.reach import LinkProblem, serial_problem, tcp_problem, tcp_timed_out

__all__ = [
    "LATENCY_BUCKETS_S",
    "Backoff",
    "HubMetrics",
    "ModbusHub",
    "RtuHub",
    "RtuOverTcpHub",
    "TcpHub",
    "make_hub",
]


class _SocketHub(ModbusHub):
    """A hub on one TCP socket to ``host:port``; the subclass names the
    framing. Other arguments (``timeout_s``, ``retries``, ``frame_pause_s``,
    ``clock``...) are those of :class:`ModbusHub`; ``name`` defaults to
    ``host:port``."""

    framer: FramerType
    link = ""  # what the link is called in messages

    def __init__(self, host: str, port: int, *, name: str = "", **kw: Any) -> None:
        super().__init__(name=name or f"{host}:{port}", **kw)
        self.host, self.port = host, port

    def _describe(self) -> str:
        return f"{self.link} {self.host}:{self.port} (bus {self.name!r})"

    def _new_client(self) -> AsyncModbusTcpClient:
        return AsyncModbusTcpClient(
            self.host, port=self.port, framer=self.framer, **self._client_options()
        )

    async def _connect_problem(self, elapsed_s: float) -> LinkProblem:
        # pymodbus hides the reason; a plain connect gets it (at once when
        # refused; a connect that already used the whole timeout is not tried again).
        if elapsed_s >= self.timeout_s * 0.9:
            return tcp_timed_out(self.host, self.port, self.timeout_s)
        problem = await tcp_problem(self.host, self.port, self.timeout_s)
        return problem or await super()._connect_problem(elapsed_s)


class TcpHub(_SocketHub):
    """Modbus TCP (MBAP framing) to one ``host:port``. Use one hub per
    endpoint: all unit ids behind it share the connection."""

    framer = FramerType.SOCKET
    link = "Modbus TCP"
    reconnect_after_timeouts = 5

    def __init__(self, host: str, port: int = 502, **kw: Any) -> None:
        super().__init__(host, port, **kw)


class RtuOverTcpHub(_SocketHub):
    """Raw RTU frames (with CRC) over a TCP socket, as serial device
    servers / DTUs carry them. Serialised like a serial bus."""

    framer = FramerType.RTU
    link = "RTU over TCP"
    serialised = True
    reconnect_after_timeouts = 5

    def __init__(self, host: str, port: int, *, frame_pause_s: float = 0.01, **kw: Any) -> None:
        super().__init__(host, port, frame_pause_s=frame_pause_s, **kw)


def rtu_silence_s(
    baudrate: int, *, parity: str = "N", stopbits: int = 1, bytesize: int = 8
) -> float:
    """The 3.5-character inter-frame silence of Modbus RTU at this baud rate
    and character format (start bit, data bits, parity bit if any, stop
    bits: 11 bits for the spec's 8E1 or 8N2, 10 for 8N1), fixed at 1.75 ms
    above 19200 baud as the Modbus serial line spec (V1.02, 2.5.1.1) says."""
    if baudrate > 19200:
        return 1.75e-3
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return 3.5 * bits / baudrate


class RtuHub(ModbusHub):
    """Modbus RTU on a local serial port (RS-485 adapter).

    The silence kept between frames is the 3.5-character time of the baud
    rate and character format (:func:`rtu_silence_s`) plus ``extra_pause_s``,
    the pause a site adds for slow devices (``frame_pause_ms``);
    ``local_echo=True`` for adapters that echo what they send.
    """

    serialised = True

    def __init__(
        self,
        serial_port: str,
        *,
        baudrate: int = 9600,
        parity: str = "N",
        stopbits: int = 1,
        bytesize: int = 8,
        timeout_s: float = 1.0,
        retries: int = 1,
        extra_pause_s: float = 0.0,
        local_echo: bool = False,
        name: str = "",
        **kw: Any,
    ) -> None:
        # pyserial would raise these deep inside the connect; say it here.
        if parity not in ("N", "E", "O"):
            raise ValueError(f"{serial_port}: parity must be 'N', 'E' or 'O', got {parity!r}")
        if bytesize not in (7, 8) or stopbits not in (1, 2) or baudrate <= 0:
            raise ValueError(
                f"{serial_port}: need bytesize 7 or 8, stopbits 1 or 2 and baudrate > 0, "
                f"got {bytesize}, {stopbits}, {baudrate}"
            )
        if extra_pause_s < 0:
            raise ValueError(f"{serial_port}: extra_pause_s must be >= 0, got {extra_pause_s}")
        silence = rtu_silence_s(baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize)
        pause = silence + extra_pause_s
        super().__init__(
            name=name or serial_port,
            timeout_s=timeout_s,
            retries=retries,
            frame_pause_s=pause,
            **kw,
        )
        self.serial_port = serial_port
        # Some RS-485 adapters hear their own transmission; pymodbus strips it.
        self.local_echo = local_echo
        self.baudrate, self.parity, self.stopbits, self.bytesize = (
            baudrate,
            parity,
            stopbits,
            bytesize,
        )

    def _describe(self) -> str:
        return f"Modbus RTU {self.serial_port} {self.baudrate} {self.bytesize}{self.parity}{self.stopbits} (bus {self.name!r})"

    def _precheck(self) -> LinkProblem | None:
        # pymodbus only says "failed to connect"; name the usual causes.
        return serial_problem(self.serial_port)

    def _new_client(self) -> AsyncModbusSerialClient:
        return AsyncModbusSerialClient(
            self.serial_port,
            framer=FramerType.RTU,
            baudrate=self.baudrate,
            bytesize=self.bytesize,
            parity=self.parity,
            stopbits=self.stopbits,
            handle_local_echo=self.local_echo,
            **self._client_options(),
        )


_BUS_KEYS = frozenset(
    (
        "type",
        "name",
        "host",
        "port",
        "serial_port",
        "baudrate",
        "parity",
        "stopbits",
        "bytesize",
        "timeout_s",
        "retries",
        "frame_pause_ms",
    )
)


def _as_mapping(bus_cfg: Any) -> dict[str, Any]:
    if isinstance(bus_cfg, Mapping):
        return dict(bus_cfg)
    dump = getattr(bus_cfg, "model_dump", None)  # a pydantic model
    if callable(dump):
        return dict(dump())
    return dict(vars(bus_cfg))


def make_hub(bus_cfg: Any, **kw: Any) -> ModbusHub:
    """A hub from bus configuration: a mapping or an object (pydantic model)
    with ``type`` ("tcp" | "rtu" | "rtu_over_tcp"), ``name``, ``host``,
    ``port``, ``serial_port``, ``baudrate``, ``parity``, ``stopbits``,
    ``bytesize``, ``timeout_s``, ``retries``, ``frame_pause_ms``.

    Keys a hub type does not use (e.g. the baud rate of a DTU's serial side,
    kept by the gateway for load estimates) are ignored; ``kw`` passes
    extra hub arguments (``clock``, ``backoff``...). Type "ascii" is a line
    sensor port, not a Modbus hub: use :func:`drivers.ascii.make_port`.
    """
    cfg = {k: v for k, v in _as_mapping(bus_cfg).items() if k in _BUS_KEYS and v is not None}
    bus_type = cfg.get("type")
    name = str(cfg.get("name", ""))
    common: dict[str, Any] = {"name": name, **kw}
    for key in ("timeout_s", "retries"):
        if key in cfg:
            common[key] = cfg[key]
    pause_ms = cfg.get("frame_pause_ms")
    try:
        if bus_type == "tcp":
            return TcpHub(cfg["host"], int(cfg.get("port", 502)), **common)
        if bus_type == "rtu_over_tcp":
            if pause_ms is not None:
                common["frame_pause_s"] = pause_ms / 1000.0
            return RtuOverTcpHub(cfg["host"], int(cfg["port"]), **common)
        if bus_type == "rtu":
            if pause_ms is not None:  # on top of the 3.5-character silence
                common["extra_pause_s"] = pause_ms / 1000.0
            serial = {k: cfg[k] for k in ("baudrate", "parity", "stopbits", "bytesize") if k in cfg}
            return RtuHub(cfg["serial_port"], **serial, **common)
    except KeyError as exc:
        raise ValueError(
            f"bus {name!r} of type {bus_type!r}: missing key {exc.args[0]!r}"
        ) from None
    if bus_type == "ascii":
        raise ValueError(
            f"bus {name!r} is an ASCII line bus, not Modbus: open it with drivers.ascii.make_port"
        )
    raise ValueError(
        f"bus {name!r}: unknown type {bus_type!r}; use tcp, rtu, rtu_over_tcp or ascii"
    )

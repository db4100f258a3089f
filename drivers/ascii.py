"""Serial ASCII line sensors: one text line per reading, parsed by a named
line format.

Formats shipped (more via :func:`register_format`):

``gas_nmea``
    ``$GASM,03,CH4=0.45,CO=12,O2=20.8,H2S=0.0,T=22.5,RH=85*5A``: talker,
    sensor id, ``KEY=value`` fields, then ``*`` and the NMEA checksum (two
    hex digits, XOR of every character between ``$`` and ``*``). A wrong or
    missing checksum is a :class:`CorruptFrame`. The sensor id is returned
    under the key ``id`` (a string, e.g. ``"03"``).
``kv``
    Generic ``key=value`` pairs separated by commas, semicolons or spaces,
    no checksum: ``CH4=0.45, CO=12 T=22.5``.

Values are ``int`` when they look like integers, ``float`` when they look
like numbers, else the text itself (e.g. ``ERR``): deciding what the
profile expects is :func:`values_for_points`'s job.

:class:`AsciiPort` reads a serial port without threads: pyserial opens the
port non-blocking and the event loop watches its descriptor
(``loop.add_reader``). It reassembles lines across reads, accepts CR, LF and
CR LF, skips garbage, counts everything in :attr:`AsciiPort.stats`, and
reopens the port with capped jittered backoff when it vanishes (a USB
adapter pulled out).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import serial

from drivers.errors import CorruptFrame, DecodeError, DeviceTimeout, DriverError, TransportError
from drivers.modbus import Backoff
from drivers.types import DataType, PointSpec, Value

__all__ = [
    "AsciiMetrics",
    "AsciiPort",
    "GasNmeaFormat",
    "KeyValueFormat",
    "LineFormat",
    "format_gas_nmea",
    "format_names",
    "get_format",
    "make_port",
    "nmea_checksum",
    "register_format",
    "values_for_points",
]

log = logging.getLogger(__name__)


@runtime_checkable
class LineFormat(Protocol):
    """Parses one line (without its CR/LF) into ``{field: value}``.

    ``parse`` raises :class:`CorruptFrame` for a line that is not a valid
    reading (bad checksum, garbage, malformed field); it must not raise
    anything else for bad input.
    """

    name: str

    def parse(self, line: str) -> dict[str, Value]: ...


_FORMATS: dict[str, LineFormat] = {}


def register_format(fmt: LineFormat, *, replace: bool = False) -> LineFormat:
    """Make ``fmt`` available under ``fmt.name``; returns it (usable as a
    class decorator on an instance factory). Re-registering a name raises
    :class:`ValueError` unless ``replace`` is set."""
    if not isinstance(fmt, LineFormat):
        raise TypeError(f"{fmt!r} is not a LineFormat (needs .name and .parse(line))")
    if fmt.name in _FORMATS and not replace:
        raise ValueError(f"line format {fmt.name!r} is already registered; pass replace=True")
    _FORMATS[fmt.name] = fmt
    return fmt


def format_names() -> list[str]:
    return sorted(_FORMATS)


def get_format(name: str) -> LineFormat:
    """The registered format ``name``; the error lists the known names."""
    try:
        return _FORMATS[name]
    except KeyError:
        raise ValueError(
            f"unknown ASCII line format {name!r}; known formats: {', '.join(format_names())}"
        ) from None


_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(
    r"[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?|nan|inf)\Z", re.IGNORECASE
)


def parse_value(text: str) -> Value:
    """``int`` for integer text, ``float`` for numeric text, else the text."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def _fields(pairs: Iterable[str], line: str) -> dict[str, Value]:
    out: dict[str, Value] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise CorruptFrame(f"field {pair!r} is not KEY=value in line {line!r}")
        if key in out:
            raise CorruptFrame(f"field {key!r} appears twice in line {line!r}")
        out[key] = parse_value(raw)
    return out


def nmea_checksum(body: str) -> str:
    """Two upper-case hex digits: XOR of the bytes of ``body`` (the text
    between ``$`` and ``*``)."""
    check = 0
    for byte in body.encode("ascii"):  # UnicodeEncodeError (a ValueError) otherwise
        check ^= byte
    return f"{check:02X}"


class GasNmeaFormat:
    """``$TALKER,ID,KEY=value,...*CS`` with an NMEA XOR checksum."""

    name = "gas_nmea"

    def parse(self, line: str) -> dict[str, Value]:
        start = line.rfind("$")  # line noise before the sentence is skipped
        if start < 0:
            raise CorruptFrame(f"no '$' in line {line!r}")
        sentence = line[start + 1 :].strip()
        if not sentence.isascii():
            raise CorruptFrame(f"non-ASCII characters in line {line!r}")
        body, star, check = sentence.rpartition("*")
        if not star:
            raise CorruptFrame(f"no '*checksum' in line {line!r}")
        expected = nmea_checksum(body)
        if check.strip().upper() != expected:
            raise CorruptFrame(f"checksum {check!r} != {expected} in line {line!r}")
        parts = body.split(",")
        if len(parts) < 3 or not parts[0].isalnum():
            raise CorruptFrame(f"expected $TALKER,ID,KEY=value... in line {line!r}")
        values = _fields(parts[2:], line)
        if "id" in values:
            raise CorruptFrame(f"field 'id' clashes with the sensor id in line {line!r}")
        values["id"] = parts[1]
        return values


class KeyValueFormat:
    """``KEY=value`` pairs separated by commas, semicolons or blanks."""

    name = "kv"
    _SPLIT = re.compile(r"[,;\s]+")

    def parse(self, line: str) -> dict[str, Value]:
        # "KEY = value" is normalised first so spaces can separate pairs.
        text = re.sub(r"\s*=\s*", "=", line.strip())
        pairs = [p for p in self._SPLIT.split(text) if p]
        if not pairs:
            raise CorruptFrame("empty line")
        return _fields(pairs, line)


register_format(GasNmeaFormat())
register_format(KeyValueFormat())


def _format_number(value: Value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float):
        return repr(value)  # shortest text that reads back to the same float
    return str(value)


def format_gas_nmea(
    sensor_id: int | str, values: Mapping[str, Value], *, talker: str = "GASM"
) -> str:
    """A ``gas_nmea`` sentence with checksum, without line ending:
    ``format_gas_nmea(3, {"CH4": 0.45})`` -> ``"$GASM,03,CH4=0.45*.."``."""
    sid = f"{sensor_id:02d}" if isinstance(sensor_id, int) else sensor_id
    parts = [talker, sid]
    for key, value in values.items():
        text = _format_number(value)
        if any(c in key + text for c in ",*$=\r\n") or not key or not (key + text).isascii():
            raise ValueError(f"field {key!r}={text!r} cannot be written in a gas_nmea sentence")
        parts.append(f"{key}={text}")
    body = ",".join(parts)
    return f"${body}*{nmea_checksum(body)}"


_TRUE = frozenset(("1", "true", "on", "yes", "alarm"))
_FALSE = frozenset(("0", "false", "off", "no", "normal"))


def _convert(raw: Value, spec: PointSpec) -> Value:
    dtype = spec.dtype
    if dtype is DataType.STRING:
        return str(raw)
    if dtype in (DataType.BOOL, DataType.BIT):
        if isinstance(raw, bool | int | float):
            return bool(raw)
        word = raw.strip().lower()
        if word in _TRUE or word in _FALSE:
            return word in _TRUE
        raise DecodeError(f"point {spec.name!r}: {raw!r} is not a yes/no value")
    if isinstance(raw, str):
        raise DecodeError(f"point {spec.name!r}: field {spec.key!r} is {raw!r}, not a number")
    if dtype in (DataType.FLOAT32, DataType.FLOAT64):
        number: float | int = float(raw)
    elif isinstance(raw, float) and not raw.is_integer():
        raise DecodeError(f"point {spec.name!r}: {raw!r} is not an integer ({dtype})")
    else:
        number = int(raw)
    if spec.scale == 1.0 and spec.offset == 0.0:
        return number
    return number * spec.scale + spec.offset


def values_for_points(
    values: Mapping[str, Value], points: Iterable[PointSpec]
) -> dict[str, Value | DecodeError]:
    """``{point name: value or DecodeError}`` for the ``points`` of an ASCII
    profile, from one parsed line: each point reads field ``point.key``
    (or its name), converted to the point's type and scaled. A missing or
    unconvertible field gives that point a :class:`DecodeError`."""
    out: dict[str, Value | DecodeError] = {}
    for spec in points:
        key = spec.key or spec.name
        if key not in values:
            out[spec.name] = DecodeError(
                f"point {spec.name!r}: field {key!r} missing from the line"
            )
            continue
        try:
            out[spec.name] = _convert(values[key], spec)
        except DecodeError as exc:
            out[spec.name] = exc
    return out


# ------------------------------------------------------------------ the port


@dataclass
class AsciiMetrics:
    """Counters of an :class:`AsciiPort`; ``last_line_ns`` is the clock
    time of the last good line (0 before the first)."""

    lines: int = 0  # complete lines received (good + corrupt)
    good: int = 0
    corrupt: int = 0
    timeouts: int = 0
    opens: int = 0
    open_failures: int = 0
    lost: int = 0  # times the port vanished
    dropped: int = 0  # lines dropped because nobody read them (queue full)
    last_line_ns: int = 0


_LOST = object()  # queue marker: the port went away


class AsciiPort:
    """One serial port with one line sensor on it.

    ``async with AsciiPort(path, line_format="gas_nmea") as port:`` then
    either ``async for ts_ns, values in port.lines(): ...`` (never raises
    driver errors; they are counted, logged and kept in ``last_error``) or ``await
    port.next_line()`` (raises :class:`DeviceTimeout` after ``timeout_s``
    without a good line, :class:`TransportError` while the port is gone,
    :class:`CorruptFrame` for a bad line). ``ts_ns`` is ``clock_ns()`` when
    the line's terminator arrived.
    """

    def __init__(
        self,
        serial_port: str,
        *,
        line_format: str | LineFormat = "gas_nmea",
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
        timeout_s: float = 5.0,
        name: str = "",
        max_line: int = 1024,
        queue_size: int = 1000,
        backoff: Backoff | None = None,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self.serial_port = serial_port
        self.format = get_format(line_format) if isinstance(line_format, str) else line_format
        self.baudrate, self.bytesize, self.parity, self.stopbits = (
            baudrate,
            bytesize,
            parity,
            stopbits,
        )
        if timeout_s <= 0:
            raise ValueError(f"port {serial_port!r}: timeout_s must be > 0")
        # pyserial would only complain when the port is opened, in a loop callback.
        if parity not in ("N", "E", "O") or bytesize not in (7, 8) or stopbits not in (1, 2):
            raise ValueError(
                f"port {serial_port!r}: need parity N/E/O, bytesize 7 or 8, stopbits 1 or 2; "
                f"got {parity!r}, {bytesize}, {stopbits}"
            )
        self.timeout_s = timeout_s
        self.name = name or serial_port
        self.max_line = max_line
        self.backoff = backoff or Backoff(0.5, 30.0)
        self.stats = AsciiMetrics()
        self._clock_ns = clock_ns
        self._queue: asyncio.Queue[tuple[int, bytes] | object] = asyncio.Queue(queue_size)
        self._serial: serial.Serial | None = None
        self._buffer = bytearray()
        self._discarding = False  # inside an over-long line: skip to its end
        self._retry_at = 0.0  # loop time before which no reopen is tried
        self._failing: set[str] = set()
        self._down_reason = f"{self._describe()}: port not opened yet"
        # Why the last attempt to get a line failed (None after a good line),
        # for callers of lines() that want to report it.
        self.last_error: DriverError | None = None
        self._closed = False

    # ------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> AsciiPort:
        self._closed = False
        self._try_open()  # a missing port is retried later, with backoff
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._closed = True
        self._shut()

    @property
    def is_open(self) -> bool:
        return self._serial is not None

    def _describe(self) -> str:
        return f"ASCII port {self.serial_port} (sensor {self.name!r}, format {self.format.name})"

    def _try_open(self) -> bool:
        loop = asyncio.get_running_loop()
        try:
            if not os.path.exists(self.serial_port):
                raise TransportError(
                    f"{self._describe()}: serial port does not exist; check the adapter and "
                    "the serial_port setting",
                    device=self.name,
                )
            port = serial.Serial(
                self.serial_port,
                baudrate=self.baudrate,
                bytesize=self.bytesize,
                parity=self.parity,
                stopbits=self.stopbits,
                timeout=0,
            )
        except (OSError, serial.SerialException, TransportError) as exc:
            err = (
                exc
                if isinstance(exc, TransportError)
                else TransportError(f"{self._describe()}: {exc}")
            )
            self.stats.open_failures += 1
            self._down_reason = str(err)
            delay = self.backoff.next_delay()
            self._retry_at = loop.time() + delay
            self._fail("port", err, f"; reopening in {delay:.1f} s")
            return False
        self._serial = port
        self._buffer.clear()
        self._discarding = False
        self.stats.opens += 1
        self.backoff.reset()
        loop.add_reader(port.fileno(), self._on_readable)
        self._recover("port")
        return True

    def _shut(self) -> None:
        port, self._serial = self._serial, None
        if port is None:
            return
        with contextlib.suppress(ValueError, OSError):  # fd already gone with the device
            asyncio.get_running_loop().remove_reader(port.fileno())
        with contextlib.suppress(OSError, serial.SerialException):
            port.close()

    def _lost(self, why: str) -> None:
        self.stats.lost += 1
        self._down_reason = f"{self._describe()}: {why}"
        self._shut()
        loop = asyncio.get_running_loop()
        delay = self.backoff.next_delay()
        self._retry_at = loop.time() + delay
        self._fail(
            "port",
            TransportError(f"{self._describe()}: {why}", device=self.name),
            f"; reopening in {delay:.1f} s",
        )
        self._put(_LOST)

    # -------------------------------------------------------------- logging

    def _fail(self, what: str, exc: DriverError, extra: str = "") -> None:
        if what not in self._failing:
            self._failing.add(what)
            log.warning("%s%s; repeats are logged at DEBUG until it recovers", exc, extra)
        else:
            log.debug("%s%s", exc, extra)

    def _recover(self, what: str) -> None:
        if what in self._failing:
            self._failing.discard(what)
            log.info("%s: %s recovered", self._describe(), "port" if what == "port" else "lines")

    # ------------------------------------------------------------- reading

    def _on_readable(self) -> None:
        port = self._serial
        if port is None:
            return
        try:
            data = os.read(port.fileno(), 4096)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: the other end / the adapter is gone
            self._lost(str(exc))
            return
        if not data:
            self._lost("end of file")
            return
        self._split(data)

    def _split(self, data: bytes) -> None:
        buffer = self._buffer
        for chunk in re.split(rb"([\r\n])", data):
            if chunk in (b"\r", b"\n"):
                if self._discarding:
                    self._discarding = False
                elif buffer:
                    self._put((self._clock_ns(), bytes(buffer)))
                buffer.clear()
            elif chunk and not self._discarding:
                buffer += chunk
                if len(buffer) > self.max_line:
                    # no terminator in sight: line noise or a wrong baud rate
                    self.stats.lines += 1
                    self.stats.corrupt += 1
                    buffer.clear()
                    self._discarding = True

    def _put(self, item: tuple[int, bytes] | object) -> None:
        if self._queue.full():  # keep the newest readings, count the loss
            self._queue.get_nowait()
            self.stats.dropped += 1
        self._queue.put_nowait(item)

    def _parse(self, raw: bytes) -> dict[str, Value]:
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise CorruptFrame(
                f"{self._describe()}: non-ASCII bytes in line {raw!r}", device=self.name
            ) from None
        return self.format.parse(text)

    async def next_line(self) -> tuple[int, dict[str, Value]]:
        """The next good line as ``(ts_ns, values)``; see the class doc."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        while True:
            if self._closed:
                raise TransportError(f"{self._describe()}: port is closed", device=self.name)
            if self._serial is None and loop.time() >= self._retry_at:
                self._try_open()
            remaining = deadline - loop.time()
            if self._serial is None:
                wait = min(remaining, self._retry_at - loop.time())
                if remaining <= 0:
                    raise TransportError(
                        f"{self._down_reason} (reopening in "
                        f"{max(0.0, self._retry_at - loop.time()):.1f} s)",
                        device=self.name,
                    )
                await asyncio.sleep(max(0.0, wait))
                continue
            if remaining <= 0:
                self.stats.timeouts += 1
                err = DeviceTimeout(
                    f"{self._describe()}: no line for {self.timeout_s} s", device=self.name
                )
                self._fail("lines", err)
                raise err
            try:
                item = await asyncio.wait_for(self._queue.get(), remaining)
            except TimeoutError:
                continue  # loops back to the timeout branch above
            if item is _LOST:
                continue
            assert isinstance(item, tuple)
            ts_ns, raw = item
            self.stats.lines += 1
            try:
                values = self._parse(raw)
            except CorruptFrame as exc:
                self.stats.corrupt += 1
                exc.device = self.name
                self._fail("lines", CorruptFrame(f"{self._describe()}: {exc}", device=self.name))
                raise
            self.stats.good += 1
            self.stats.last_line_ns = ts_ns
            self.last_error = None
            self._recover("lines")
            return ts_ns, values

    async def lines(self) -> AsyncIterator[tuple[int, dict[str, Value]]]:
        """Good lines, forever (until :meth:`close`). Timeouts, corrupt
        lines and a vanished port are counted, logged and waited out."""
        while not self._closed:
            try:
                item = await self.next_line()
            except (DeviceTimeout, CorruptFrame, TransportError) as exc:
                self.last_error = exc
                continue
            yield item


def make_port(bus_cfg: Any, **kw: Any) -> AsciiPort:
    """An :class:`AsciiPort` from an ``ascii`` bus configuration (mapping or
    pydantic model): ``serial_port``, ``line_format``, ``name``,
    ``baudrate``, ``parity``, ``stopbits``, ``bytesize``, ``timeout_s``."""
    if isinstance(bus_cfg, Mapping):
        cfg = dict(bus_cfg)
    elif callable(getattr(bus_cfg, "model_dump", None)):
        cfg = dict(bus_cfg.model_dump())
    else:
        cfg = dict(vars(bus_cfg))
    if cfg.get("type", "ascii") != "ascii":
        raise ValueError(
            f"bus {cfg.get('name')!r} has type {cfg.get('type')!r}; make_port takes ascii buses"
        )
    if "serial_port" not in cfg:
        raise ValueError(f"bus {cfg.get('name')!r}: missing key 'serial_port'")
    keys = ("baudrate", "parity", "stopbits", "bytesize", "timeout_s", "line_format", "name")
    args = {k: cfg[k] for k in keys if cfg.get(k) is not None}
    return AsciiPort(cfg["serial_port"], **args, **kw)

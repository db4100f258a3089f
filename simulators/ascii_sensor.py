"""A serial line sensor printing ``gas_nmea`` sentences, one per interval.

    $GASM,03,CH4=0.45,CO=12,O2=20.8,NO2=0.1,H2S=0.2,CO2=0.05,T=22.4,RH=82,WS=6.01*5A

``GASM`` is the talker, ``03`` the station number, then ``KEY=value`` fields
(keys from the ``gas_ascii`` profile), then ``*`` and the NMEA checksum: two
upper-case hex digits, the XOR of every character between ``$`` and ``*``.
Lines end in CR LF.

The sensor writes to a serial device path (normally one end of a
:class:`~simulators.ptybridge.PtyPair`; the gateway reads the other end).
Faults (:mod:`simulators.faults`): ``silent`` (nothing is written),
``corrupt`` (a wrong checksum), ``garbage`` (line noise instead of a
sentence), ``frozen`` (the same values again and again).
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Mapping

from drivers.ascii import format_gas_nmea
from drivers.types import DeviceProfile, Value
from simulators.faults import ASCII_FAULTS, FaultBoard, FaultKind
from simulators.lifecycle import ClosesOnExit, stop_tasks
from simulators.physics import MinePhysics

log = logging.getLogger(__name__)

TALKER = "GASM"
# Decimals each key is printed with, as the instrument's display shows them.
DECIMALS: dict[str, int] = {"CH4": 2, "CO": 0, "O2": 1, "NO2": 1, "H2S": 1, "CO2": 2}
DECIMALS |= {"T": 1, "RH": 0, "WS": 2}


def displayed(key: str, value: Value) -> Value:
    """``value`` as the instrument shows it: rounded to the key's decimals
    (an ``int`` for whole-number keys such as CO ppm)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    decimals = DECIMALS.get(key, 2)
    return round(value) if decimals == 0 else round(float(value), decimals)


def sentence(station: int, fields: Mapping[str, Value]) -> str:
    """One ``gas_nmea`` sentence with checksum, without the line ending."""
    return format_gas_nmea(station, {k: displayed(k, v) for k, v in fields.items()}, talker=TALKER)


class AsciiSensor(ClosesOnExit):
    """Writes a sentence to ``serial_path`` every ``interval_s`` seconds with
    the values of ``entity`` in ``physics`` for each point of ``profile``.

    ``emit()`` writes one sentence now (tests call it instead of waiting);
    ``start()`` runs the periodic writer in the current loop.
    """

    def __init__(
        self,
        name: str,
        profile: DeviceProfile,
        physics: MinePhysics,
        serial_path: str,
        *,
        station: int = 3,
        interval_s: float = 1.0,
        entity: str | None = None,
        seed: int = 0,
    ) -> None:
        if profile.protocol != "ascii":
            raise ValueError(f"sensor {name!r}: profile {profile.name!r} is not an ASCII profile")
        self.name = name
        self.profile = profile
        self.physics = physics
        self.serial_path = serial_path
        self.station = station
        self.interval_s = interval_s
        self.entity = entity or name
        self.faults = FaultBoard(name, ASCII_FAULTS)
        self.lines_written = 0
        self._rng = random.Random(seed)
        self._last: dict[str, Value] = {}
        self._fd = -1
        self._task: asyncio.Task[None] | None = None
        missing = [p.name for p in profile.points if not physics.has(self.entity, p.sim or p.name)]
        if missing:
            raise ValueError(
                f"sensor {name!r}: physics entity {self.entity!r} has no quantity for {missing}"
            )

    def fields(self) -> dict[str, Value]:
        """The key=value fields of the next sentence (frozen: the last ones)."""
        if FaultKind.FROZEN in self.faults and self._last:
            return dict(self._last)
        self._last = {
            (p.key or p.name): self.physics.get(self.entity, p.sim or p.name)
            for p in self.profile.points
        }
        return dict(self._last)

    def next_line(self) -> bytes | None:
        """The bytes the sensor puts on the wire next (None: silent)."""
        if FaultKind.SILENT in self.faults:
            return None
        if FaultKind.GARBAGE in self.faults:
            noise = bytes(self._rng.randrange(256) for _ in range(self._rng.randrange(8, 40)))
            return noise.replace(b"\n", b"\x7f") + b"\r\n"
        text = sentence(self.station, self.fields())
        if FaultKind.CORRUPT in self.faults:
            # Any other checksum is wrong: XOR with a non-zero constant.
            wrong = int(text[-2:], 16) ^ 0x5A
            text = f"{text[:-2]}{wrong:02X}"
        return text.encode("ascii") + b"\r\n"

    def open(self) -> None:
        self._fd = os.open(self.serial_path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)

    def emit(self) -> bytes | None:
        """Write the next sentence now; returns what was written."""
        if self._fd < 0:
            self.open()
        line = self.next_line()
        if line is None:
            return None
        try:
            os.write(self._fd, line)
        except BlockingIOError:
            # Nobody drains the line: a real sensor's UART just drops it.
            log.debug("sensor %s: line buffer full, sentence dropped", self.name)
            return None
        self.lines_written += 1
        return line

    async def _run(self) -> None:
        while True:
            self.emit()
            await asyncio.sleep(self.interval_s)

    def start(self) -> None:
        if self._task is None:
            self.open()
            self._task = asyncio.create_task(self._run(), name=f"ascii sensor {self.name}")

    async def close(self) -> None:
        await stop_tasks(self._task)
        self._task = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def __aenter__(self) -> AsciiSensor:
        self.start()
        return self

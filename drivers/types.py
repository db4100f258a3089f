"""Typed description of what a field device exposes: the contract between
profiles, the poll planner, the codec, the simulators and the gateway.

Everything here is frozen: configuration is validated once at load and the
rest of the code only ever sees these objects.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RegisterKind(StrEnum):
    """Modbus data table a point lives in."""

    HOLDING = "holding"  # 4xxxx, function 3 (read) / 6, 16 (write)
    INPUT = "input"  # 3xxxx, function 4
    COIL = "coil"  # 0xxxx, function 1 (read) / 5, 15 (write)
    DISCRETE = "discrete"  # 1xxxx, function 2

    @property
    def is_bit(self) -> bool:
        return self in (RegisterKind.COIL, RegisterKind.DISCRETE)


class DataType(StrEnum):
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # `length` registers, two ASCII bytes each, NUL/space trimmed
    BIT = "bit"  # one bit of a register (`bit` 0..15) or a coil / discrete input
    BOOL = "bool"  # a register read as 0 -> False, anything else -> True


class WordOrder(StrEnum):
    """Byte order of a multi-register value, named by where bytes A (most
    significant) to D (least significant) of a 32-bit value travel.

    ABCD: big-endian words, big-endian bytes (Modbus default).
    CDAB: little-endian words ("word swap"), common on Schneider, Siemens.
    BADC: big-endian words with bytes swapped in each word.
    DCBA: fully little-endian.
    For 64-bit values the same rule extends to four words (ABCDEFGH ...).
    For 16-bit values only the byte swap matters (BADC / DCBA swap bytes).
    """

    ABCD = "ABCD"
    CDAB = "CDAB"
    BADC = "BADC"
    DCBA = "DCBA"


# Registers each fixed-size type occupies.
REGISTER_WIDTH: dict[DataType, int] = {
    DataType.INT16: 1,
    DataType.UINT16: 1,
    DataType.INT32: 2,
    DataType.UINT32: 2,
    DataType.INT64: 4,
    DataType.UINT64: 4,
    DataType.FLOAT32: 2,
    DataType.FLOAT64: 4,
    DataType.BIT: 1,
    DataType.BOOL: 1,
}

MAX_READ_REGISTERS = 125  # Modbus limit for functions 3 and 4
MAX_READ_BITS = 2000  # Modbus limit for functions 1 and 2

Value = float | int | str | bool


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One value a device exposes.

    ``address`` is the 0-based protocol address (what goes on the wire), not
    the 1-based 40001-style reference some manuals print.
    The engineering value is ``raw * scale + offset`` for numeric types.
    """

    name: str
    kind: RegisterKind
    address: int
    dtype: DataType = DataType.UINT16
    order: WordOrder = WordOrder.ABCD
    length: int = 1  # registers, for STRING only
    bit: int | None = None  # 0..15 for BIT on a register
    scale: float = 1.0
    offset: float = 0.0
    unit: str = ""
    description: str = ""
    writable: bool = False  # the gateway never writes a point unless this is set
    deadband: float = 0.0  # report-by-exception: absolute change that counts as new
    max_interval: float | None = None  # seconds: record an unchanged value at least this often
    key: str = ""  # ASCII line sensors: field name in the line (defaults to ``name``)
    sim: str = ""  # simulators: physics quantity that drives this point (empty = by name)

    @property
    def width(self) -> int:
        """Registers (or bits, for coils / discrete inputs) the point occupies."""
        if self.kind.is_bit:
            return 1
        if self.dtype is DataType.STRING:
            return self.length
        return REGISTER_WIDTH[self.dtype]


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A device model: its points and how it likes to be read. Loaded from a
    data file in ``drivers/profiles/`` (see ``drivers.profile``)."""

    name: str
    description: str
    device_class: str  # ventilation | drainage | power | gas | fire | ...
    points: tuple[PointSpec, ...]
    protocol: str = "modbus"  # "modbus" | "ascii" (points of ascii profiles use ``key``)
    merge: bool = True  # False for devices that reject reads spanning gaps
    max_gap: int = 10  # registers of gap allowed inside one merged request

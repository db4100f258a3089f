"""Register <-> value conversion for every DataType and WordOrder.

Shapes and units
----------------
* A register is an ``int`` in ``0..65535`` (one 16-bit Modbus word).
* ``decode(registers, spec)`` takes exactly ``spec.width`` registers (for a
  STRING: ``spec.length``) and returns the engineering value
  ``raw * scale + offset``. Integer types with ``scale == 1`` and
  ``offset == 0`` stay ``int``; otherwise the result is ``float``.
  NaN and infinities of float types are returned as they are: judging them
  is the gateway's business (it marks them bad), not the codec's.
* ``encode(value, spec)`` is the exact inverse (used by simulators and by
  writes of ``writable`` points); it rounds to the nearest raw integer for
  integer types and raises :class:`ValueError` for values out of range.

Word orders
-----------
Bytes of a 32-bit value, most significant first, are A B C D (for 64 bits
A..H). The order names where they travel, register by register, each
register big-endian on the wire:

========  ===================  =====================
order     32-bit registers     64-bit registers
========  ===================  =====================
ABCD      AB CD                AB CD EF GH
CDAB      CD AB                GH EF CD AB
BADC      BA DC                BA DC FE HG
DCBA      DC BA                HG FE DC BA
========  ===================  =====================

16-bit values: ABCD and CDAB are the plain word, BADC and DCBA swap its two
bytes. Strings: two characters per register, first in the high byte; BADC
and DCBA swap each register's bytes (CDAB is treated like ABCD: no device
reverses the words of a string).

Why two struct steps: every order is "pack the registers with endianness P,
then unpack the value with endianness U" (ABCD: >,>; CDAB: <,<; BADC: <,>;
DCBA: >,<). Both Struct objects are compiled once per (dtype, order), so a
decode is two C calls; :class:`BlockDecoder` goes further and packs a whole
response once, then reads each point with one ``unpack_from``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Sequence
from typing import Any

from drivers.errors import DecodeError
from drivers.types import REGISTER_WIDTH, DataType, PointSpec, Value, WordOrder

__all__ = [
    "BlockDecoder",
    "decode",
    "decode_bits",
    "encode",
    "merge_bit",
    "word_endianness",
]

# (pack endianness for registers, unpack endianness for the value) per order.
_ENDIANNESS: dict[WordOrder, tuple[str, str]] = {
    WordOrder.ABCD: (">", ">"),
    WordOrder.CDAB: ("<", "<"),
    WordOrder.BADC: ("<", ">"),
    WordOrder.DCBA: (">", "<"),
}

# struct format letter of each numeric type.
_FORMAT: dict[DataType, str] = {
    DataType.INT16: "h",
    DataType.UINT16: "H",
    DataType.INT32: "i",
    DataType.UINT32: "I",
    DataType.INT64: "q",
    DataType.UINT64: "Q",
    DataType.FLOAT32: "f",
    DataType.FLOAT64: "d",
}

_INT_RANGE: dict[DataType, tuple[int, int]] = {
    DataType.INT16: (-(2**15), 2**15 - 1),
    DataType.UINT16: (0, 2**16 - 1),
    DataType.INT32: (-(2**31), 2**31 - 1),
    DataType.UINT32: (0, 2**32 - 1),
    DataType.INT64: (-(2**63), 2**63 - 1),
    DataType.UINT64: (0, 2**64 - 1),
}

_FLOATS = frozenset((DataType.FLOAT32, DataType.FLOAT64))


def word_endianness(order: WordOrder) -> tuple[str, str]:
    """``(pack, unpack)`` struct endianness characters for ``order``."""
    return _ENDIANNESS[order]


class _NumericCodec:
    """Precompiled structs for one (numeric dtype, order)."""

    __slots__ = ("pack_regs", "pack_value", "unpack_regs", "unpack_value", "width")

    def __init__(self, dtype: DataType, order: WordOrder) -> None:
        pack_end, value_end = _ENDIANNESS[order]
        self.width = REGISTER_WIDTH[dtype]
        regs = struct.Struct(f"{pack_end}{self.width}H")
        val = struct.Struct(f"{value_end}{_FORMAT[dtype]}")
        self.pack_regs = regs.pack
        self.unpack_regs = regs.unpack
        self.unpack_value = val.unpack
        self.pack_value = val.pack


_NUMERIC: dict[tuple[DataType, WordOrder], _NumericCodec] = {
    (dtype, order): _NumericCodec(dtype, order) for dtype in _FORMAT for order in WordOrder
}


def _is_identity(spec: PointSpec) -> bool:
    return spec.scale == 1.0 and spec.offset == 0.0


def _swaps_bytes(order: WordOrder) -> bool:
    return order is WordOrder.BADC or order is WordOrder.DCBA


def _swap16(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def _fail(spec: PointSpec, why: str) -> DecodeError:
    return DecodeError(f"point {spec.name!r} ({spec.dtype}, {spec.order}): {why}")


def _decode_string(registers: Sequence[int], spec: PointSpec) -> str:
    try:
        raw = struct.pack(
            f"{'<' if _swaps_bytes(spec.order) else '>'}{len(registers)}H", *registers
        )
    except struct.error as exc:
        raise _fail(spec, f"register out of 0..65535: {exc}") from exc
    # Devices pad with NUL or spaces; bytes beyond 0x7F are not ASCII, but
    # latin-1 keeps them visible instead of failing the whole point.
    return raw.split(b"\0", 1)[0].decode("latin-1").rstrip(" ")


def decode(registers: Sequence[int], spec: PointSpec) -> Value:
    """Engineering value of ``spec`` from its ``registers`` (exactly
    ``spec.width`` words; for a coil/discrete point: one bit as 0/1/bool).

    Raises :class:`DecodeError` on a wrong register count or a register
    outside ``0..65535``.
    """
    dtype = spec.dtype
    if len(registers) != spec.width:
        raise _fail(spec, f"needs {spec.width} register(s), got {len(registers)}")
    if spec.kind.is_bit:
        return bool(registers[0])
    if dtype is DataType.STRING:
        return _decode_string(registers, spec)
    if dtype is DataType.BOOL:
        return registers[0] != 0
    if dtype is DataType.BIT:
        word = registers[0]
        if _swaps_bytes(spec.order):
            word = _swap16(word)
        return bool((word >> (spec.bit or 0)) & 1)
    codec = _NUMERIC[(dtype, spec.order)]
    try:
        raw = codec.unpack_value(codec.pack_regs(*registers))[0]
    except struct.error as exc:
        raise _fail(spec, f"register out of 0..65535: {exc}") from exc
    if _is_identity(spec):
        return raw
    return raw * spec.scale + spec.offset


def decode_bits(bits: Sequence[bool | int], spec: PointSpec, start: int | None = None) -> bool:
    """Value of a coil / discrete-input point from a block of ``bits`` read
    starting at address ``start`` (default: ``spec.address``, i.e. ``bits``
    begins at the point)."""
    index = spec.address - (spec.address if start is None else start)
    if not 0 <= index < len(bits):
        raise _fail(spec, f"bit address {spec.address} outside the {len(bits)} bits read")
    return bool(bits[index])


def merge_bit(register: int, bit: int, value: bool) -> int:
    """``register`` with ``bit`` (0..15, 0 = least significant) set to
    ``value``; for simulators packing several BIT points into one word."""
    return register | (1 << bit) if value else register & ~(1 << bit) & 0xFFFF


def _raw_number(value: Value, spec: PointSpec) -> int | float:
    if isinstance(value, str):
        raise ValueError(f"point {spec.name!r}: a {spec.dtype} needs a number, got {value!r}")
    number: float | int = value
    if not _is_identity(spec):
        if spec.scale == 0.0:
            raise ValueError(f"point {spec.name!r}: scale 0 cannot be inverted; fix the profile")
        number = (float(value) - spec.offset) / spec.scale
    if spec.dtype in _FLOATS:
        return float(number)
    if isinstance(number, float):
        if not math.isfinite(number):
            raise ValueError(
                f"point {spec.name!r}: {value!r} is not finite; cannot encode as {spec.dtype}"
            )
        number = round(number)
    low, high = _INT_RANGE[spec.dtype]
    if not low <= number <= high:
        raise ValueError(
            f"point {spec.name!r}: raw value {number} (from {value!r}) is outside "
            f"{spec.dtype} range {low}..{high}"
        )
    return int(number)


def encode(value: Value, spec: PointSpec) -> list[int]:
    """Registers (``spec.width`` words, 0..65535) that decode to ``value``.

    BIT on a register yields the word with only that bit set (or 0): use
    :func:`merge_bit` to combine several bits of one register. Coil /
    discrete points yield ``[1]`` or ``[0]``. Strings longer than
    ``2 * length`` characters raise :class:`ValueError`; shorter ones are NUL
    padded. Floats are encoded to the nearest representable value.
    """
    dtype = spec.dtype
    if spec.kind.is_bit or dtype is DataType.BOOL:
        return [1 if value else 0]
    if dtype is DataType.BIT:
        word = (1 << (spec.bit or 0)) if value else 0
        return [_swap16(word) if _swaps_bytes(spec.order) else word]
    if dtype is DataType.STRING:
        data = str(value).encode("latin-1")
        if len(data) > 2 * spec.length:
            raise ValueError(
                f"point {spec.name!r}: string of {len(data)} bytes does not fit "
                f"{spec.length} register(s) ({2 * spec.length} bytes)"
            )
        data = data.ljust(2 * spec.length, b"\0")
        end = "<" if _swaps_bytes(spec.order) else ">"
        return list(struct.unpack(f"{end}{spec.length}H", data))
    codec = _NUMERIC[(dtype, spec.order)]
    raw = _raw_number(value, spec)
    try:
        packed = codec.pack_value(raw)
    except (struct.error, OverflowError) as exc:
        # float32 overflow of a finite float64 lands here.
        raise ValueError(f"point {spec.name!r}: cannot encode {value!r} as {dtype}: {exc}") from exc
    return list(codec.unpack_regs(packed))


# ---------------------------------------------------------------- block decoding

_Reader = Callable[[bytes, bytes, Sequence[int]], Value]


def _block_reader(spec: PointSpec, offset: int) -> _Reader:
    """A function reading ``spec`` at register ``offset`` of a response,
    given the response packed big-endian (``be``) and with each word's bytes
    swapped (``le``), and the raw words."""
    dtype = spec.dtype
    if dtype in _FORMAT:
        pack_end, value_end = _ENDIANNESS[spec.order]
        unpack_from = struct.Struct(f"{value_end}{_FORMAT[dtype]}").unpack_from
        byte_offset = 2 * offset
        use_le = pack_end == "<"
        if _is_identity(spec):
            if use_le:
                return lambda be, le, words: unpack_from(le, byte_offset)[0]
            return lambda be, le, words: unpack_from(be, byte_offset)[0]
        scale, off = spec.scale, spec.offset
        if use_le:
            return lambda be, le, words: unpack_from(le, byte_offset)[0] * scale + off
        return lambda be, le, words: unpack_from(be, byte_offset)[0] * scale + off
    if dtype is DataType.BOOL:
        return lambda be, le, words: words[offset] != 0
    if dtype is DataType.BIT:
        # The bit number counts in the value after the order's byte swap;
        # swapping the word is the same as moving the bit to the other byte.
        shift = (spec.bit or 0) ^ 8 if _swaps_bytes(spec.order) else (spec.bit or 0)
        return lambda be, le, words: bool((words[offset] >> shift) & 1)
    width = spec.width
    return lambda be, le, words: decode(words[offset : offset + width], spec)


class BlockDecoder:
    """Decode many register points out of one response in one pass.

    ``points`` are (spec, offset) pairs, ``offset`` being the point's first
    register relative to the start of the response. Built once per request
    at plan time; :meth:`decode` then packs the response (big-endian, and
    byte-swapped if a point needs it) and reads each numeric point with one
    ``unpack_from``, or a whole run of neighbouring unscaled points of the
    same type and order with one ``unpack_from`` (the same values: the
    per-point format repeated). A point that fails does not spoil the
    others: its slot holds the :class:`DecodeError`.
    """

    __slots__ = ("_be", "_count", "_le", "_readers", "_segments")

    def __init__(self, count: int, points: Sequence[tuple[PointSpec, int]]) -> None:
        self._count = count
        self._be = struct.Struct(f">{count}H").pack
        self._readers = [(spec.name, spec, off, _block_reader(spec, off)) for spec, off in points]
        needs_le = any(
            spec.dtype in _FORMAT and _ENDIANNESS[spec.order][0] == "<" for spec, _off in points
        )
        self._le = struct.Struct(f"<{count}H").pack if needs_le else None
        self._segments = _runs(self._readers)

    def decode(self, words: Sequence[int]) -> dict[str, Value | DecodeError]:
        """``{point name: value or DecodeError}`` for the ``count`` ``words``."""
        if len(words) != self._count:
            err = DecodeError(f"response has {len(words)} registers, expected {self._count}")
            return {name: err for name, _spec, _off, _reader in self._readers}
        try:
            be = self._be(*words)
            le = b"" if self._le is None else self._le(*words)
        except struct.error:
            # A register out of range: fall back to per-point decoding, so
            # only the points that cover it fail.
            return {
                name: _safe_decode(words[off : off + spec.width], spec)
                for name, spec, off, _reader in self._readers
            }
        out: dict[str, Value | DecodeError] = {}
        for names, unpack_from, use_le, byte_offset, readers in self._segments:
            if unpack_from is not None:
                try:
                    values = unpack_from(le if use_le else be, byte_offset)
                    out.update(zip(names, values, strict=True))
                    continue
                except (struct.error, ValueError, IndexError):
                    pass  # point by point below, so the error lands where it belongs
            for name, spec, _off, reader in readers:
                try:
                    out[name] = reader(be, le, words)
                except DecodeError as exc:
                    out[name] = exc
                except (struct.error, ValueError, IndexError) as exc:
                    out[name] = _fail(spec, str(exc))
        return out


_Segment = tuple[
    tuple[str, ...],
    Callable[[bytes, int], tuple[Any, ...]] | None,
    bool,
    int,
    list[tuple[str, PointSpec, int, _Reader]],
]


def _runs(readers: list[tuple[str, PointSpec, int, _Reader]]) -> list[_Segment]:
    """Group the readers, in order, into runs of at least two unscaled
    numeric points of one type and order that follow each other without a
    gap (read with one ``unpack_from``) and single points (their reader)."""

    def run_key(spec: PointSpec) -> tuple[DataType, WordOrder] | None:
        if spec.dtype in _FORMAT and _is_identity(spec):
            return spec.dtype, spec.order
        return None

    groups: list[list[tuple[str, PointSpec, int, _Reader]]] = []
    for item in readers:
        _name, spec, off, _reader = item
        key = run_key(spec)
        if groups and key is not None:
            last = groups[-1][-1][1:3]
            if run_key(last[0]) == key and last[1] + last[0].width == off:
                groups[-1].append(item)
                continue
        groups.append([item])
    out: list[_Segment] = []
    for group in groups:
        spec = group[0][1]
        if len(group) < 2:
            out.append(((), None, False, 0, group))
            continue
        pack_end, value_end = _ENDIANNESS[spec.order]
        unpack = struct.Struct(f"{value_end}{len(group)}{_FORMAT[spec.dtype]}").unpack_from
        names = tuple(name for name, _spec, _off, _reader in group)
        out.append((names, unpack, pack_end == "<", 2 * group[0][2], group))
    return out


def _safe_decode(words: Sequence[int], spec: PointSpec) -> Value | DecodeError:
    try:
        return decode(words, spec)
    except DecodeError as exc:
        return exc

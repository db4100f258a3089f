"""Faults a simulated device can be told to show, switchable at run time.

The kinds are the failures a gateway meets on a real site:

==============  ==============================================================
``silent``      no answer at all (device off, cable cut, wrong unit id)
``slow``        answers, but ``delay_s`` seconds late (overloaded DTU, radio)
``exception``   answers with Modbus exception ``code`` (2 illegal address,
                4 device failure, 6 busy...)
``corrupt``     answers with a damaged frame: bad CRC on RTU, a PDU whose
                byte count lies on TCP; a line with a wrong checksum on ASCII
``frozen``      answers, but its values stop changing (hung PLC scan, stuck
                sensor): the gateway's staleness check must catch it
``garbage``     ASCII only: emits noise instead of sentences
==============  ==============================================================

A :class:`FaultBoard` holds the active faults of one device; several kinds
can be active together (frozen and slow, say). Servers consult the board on
every request, so a change takes effect on the next one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pymodbus.constants import ExcCodes


class FaultKind(StrEnum):
    SILENT = "silent"
    SLOW = "slow"
    EXCEPTION = "exception"
    CORRUPT = "corrupt"
    FROZEN = "frozen"
    GARBAGE = "garbage"  # line sensors


# Names people reach for first, mapped to the kind that does it.
ALIASES = {
    "bad_checksum": FaultKind.CORRUPT,
    "bad_crc": FaultKind.CORRUPT,
    "noise": FaultKind.GARBAGE,
}

MODBUS_FAULTS = frozenset(
    {FaultKind.SILENT, FaultKind.SLOW, FaultKind.EXCEPTION, FaultKind.CORRUPT, FaultKind.FROZEN}
)
ASCII_FAULTS = frozenset({FaultKind.SILENT, FaultKind.CORRUPT, FaultKind.FROZEN, FaultKind.GARBAGE})
VALID_EXCEPTION_CODES = frozenset(int(code) for code in ExcCodes)


@dataclass(frozen=True, slots=True)
class Fault:
    """One active fault: ``delay_s`` for SLOW, ``code`` for EXCEPTION."""

    kind: FaultKind
    delay_s: float = 0.0
    code: int = int(ExcCodes.DEVICE_FAILURE)

    @classmethod
    def make(cls, kind: str | FaultKind, **params: float | int | str) -> Fault:
        """Build and validate a fault from loose parameters (control-port text,
        CLI, tests). Raises ``ValueError`` naming what is wrong."""
        try:
            fault_kind = FaultKind(ALIASES.get(str(kind), kind))
        except ValueError:
            known = ", ".join(k.value for k in FaultKind)
            raise ValueError(f"unknown fault {kind!r}; known: {known}") from None
        allowed = {FaultKind.SLOW: {"delay_s"}, FaultKind.EXCEPTION: {"code"}}.get(
            fault_kind, set()
        )
        unknown = set(params) - allowed
        if unknown:
            raise ValueError(
                f"fault {fault_kind.value!r} takes {sorted(allowed) or 'no parameters'}, "
                f"not {sorted(unknown)}"
            )
        delay_s = float(params.get("delay_s", 2.0 if fault_kind is FaultKind.SLOW else 0.0))
        if delay_s < 0:
            raise ValueError(f"delay_s must be >= 0, got {delay_s}")
        code = int(params.get("code", int(ExcCodes.DEVICE_FAILURE)))
        if code not in VALID_EXCEPTION_CODES:
            raise ValueError(
                f"exception code {code} is not a Modbus exception code; "
                f"use one of {sorted(VALID_EXCEPTION_CODES)}"
            )
        return cls(fault_kind, delay_s=delay_s, code=code)


class FaultBoard:
    """The active faults of one device."""

    def __init__(self, device: str, supported: frozenset[FaultKind] = MODBUS_FAULTS) -> None:
        self.device = device
        self.supported = supported
        self._active: dict[FaultKind, Fault] = {}

    def inject(self, fault: Fault) -> None:
        if fault.kind not in self.supported:
            kinds = ", ".join(sorted(k.value for k in self.supported))
            raise ValueError(
                f"device {self.device!r} cannot show fault {fault.kind.value!r}; it supports: {kinds}"
            )
        self._active[fault.kind] = fault

    def clear(self, kind: FaultKind | str | None = None) -> None:
        """Clear one kind, or every fault when ``kind`` is None."""
        if kind is None:
            self._active.clear()
        else:
            self._active.pop(FaultKind(kind), None)

    def get(self, kind: FaultKind) -> Fault | None:
        return self._active.get(kind)

    def __contains__(self, kind: object) -> bool:
        return kind in self._active

    @property
    def active(self) -> tuple[Fault, ...]:
        return tuple(self._active.values())

    def describe(self) -> str:
        parts = []
        for fault in self._active.values():
            if fault.kind is FaultKind.SLOW:
                parts.append(f"slow({fault.delay_s:g}s)")
            elif fault.kind is FaultKind.EXCEPTION:
                parts.append(f"exception({fault.code})")
            else:
                parts.append(fault.kind.value)
        return ",".join(parts) or "healthy"


# ------------------------------------------------------------------ frame damage


def corrupt_rtu(frame: bytes) -> bytes:
    """The frame with its CRC inverted: intact length, so the master reads
    it whole and must reject it by the check, as with line noise."""
    if len(frame) < 4:
        return bytes(b ^ 0xFF for b in frame)
    return frame[:-2] + bytes(b ^ 0xFF for b in frame[-2:])


def corrupt_tcp(frame: bytes) -> bytes:
    """An MBAP frame whose PDU lies: for read answers, the byte count claims
    more data than follows; otherwise the function code is replaced by an
    undefined one. The MBAP header (transaction id, length) stays valid so
    the client matches it to its request and has to reject the content."""
    if len(frame) < 9:
        return frame
    header, pdu = frame[:7], bytearray(frame[7:])
    if pdu[0] in (1, 2, 3, 4) and len(pdu) >= 2:
        pdu[1] = 0xFF
    else:
        pdu[0] = 0x64  # 100: no such public function
    return header + bytes(pdu)


def unit_of_frame(frame: bytes, framing: str) -> int | None:
    """Unit id carried by a ``tcp`` (MBAP) or ``rtu`` frame."""
    if framing == "tcp":
        return frame[6] if len(frame) > 6 else None
    return frame[0] if frame else None

"""Estimate how much of a serial bus's time a poll plan takes.

RS-485 is half duplex and carries one transaction at a time, so the sum over
all devices on a bus of (time of one poll cycle / poll interval) must stay
well below 1, or cycles overrun and data ages. The estimate is deliberately a
little pessimistic: wire time of request and response at the configured
character format, two 3.5-character silences, the configured pause between
frames, and a typical device turnaround.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from drivers.types import RegisterKind

# How long a typical field device takes between the end of a request and the
# start of its answer. Vendors quote 5-50 ms; 10 ms is common for PLCs and
# meters. It is an estimate input, not a protocol constant.
DEVICE_TURNAROUND_S = 0.010

REQUEST_FRAME_BYTES = 8  # unit, function, address (2), count (2), CRC (2)
RESPONSE_OVERHEAD_BYTES = 5  # unit, function, byte count, CRC (2)

WARN_LOAD = 0.7  # above this share the bus has no room for retries


def char_time_s(baudrate: int, *, parity: str = "N", stopbits: int = 1, bytesize: int = 8) -> float:
    """Seconds one character takes on the wire (start bit + data + parity + stop)."""
    bits = 1 + bytesize + (0 if parity == "N" else 1) + stopbits
    return bits / baudrate


def response_bytes(kind: RegisterKind, count: int) -> int:
    data = math.ceil(count / 8) if kind.is_bit else 2 * count
    return RESPONSE_OVERHEAD_BYTES + data


def request_time_s(
    kind: RegisterKind,
    count: int,
    *,
    baudrate: int,
    parity: str = "N",
    stopbits: int = 1,
    bytesize: int = 8,
    frame_pause_ms: float = 0.0,
) -> float:
    """Estimated wall time of one read transaction on a serial line."""
    ct = char_time_s(baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize)
    wire = (REQUEST_FRAME_BYTES + response_bytes(kind, count)) * ct
    silences = 2 * 3.5 * ct
    return wire + silences + DEVICE_TURNAROUND_S + frame_pause_ms / 1000.0


def cycle_time_s(
    requests: Iterable[tuple[RegisterKind, int]],
    *,
    baudrate: int,
    parity: str = "N",
    stopbits: int = 1,
    bytesize: int = 8,
    frame_pause_ms: float = 0.0,
) -> float:
    """Estimated wall time of one poll cycle: its requests run back to back."""
    return sum(
        request_time_s(
            kind,
            count,
            baudrate=baudrate,
            parity=parity,
            stopbits=stopbits,
            bytesize=bytesize,
            frame_pause_ms=frame_pause_ms,
        )
        for kind, count in requests
    )

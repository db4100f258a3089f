"""Estimate how much of a serial bus's time a poll plan takes.

RS-485 is half duplex and carries one transaction at a time, so the sum over
all devices on a bus of (time of one poll cycle / poll interval) must stay
well below 1, or cycles overrun and data ages. A transaction is: the
request's wire time at the configured character format, the RTU silence
(3.5 characters, fixed at 1.75 ms above 19200 baud: the one the RTU hub
keeps, :func:`drivers.modbus.rtu_silence_s`) after which the device knows
the request ended, its turnaround, the response's wire time, then the
silence and the configured pause the hub keeps before the next frame, and
the gateway's own gap on top of them.

``bench/bus_bench.py`` measures this against a baud-faithful line
(``simulators/seriallink.py``) and the gateway polling as fast as it can.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from drivers.modbus import rtu_silence_s
from drivers.types import RegisterKind

# How long a typical field device takes between the end of a request and the
# start of its answer. Vendors quote 5-50 ms; 10 ms is common for PLCs and
# meters. It is an estimate input, not a protocol constant.
DEVICE_TURNAROUND_S = 0.010

REQUEST_FRAME_BYTES = 8  # unit, function, address (2), count (2), CRC (2)
RESPONSE_OVERHEAD_BYTES = 5  # unit, function, byte count, CRC (2)

# How long the gateway itself takes between the end of a reply and the start
# of its next request beyond the silence it must keep: event-loop wake-ups
# (the reply's bytes, the next poller) and the timer that ends the silence
# firing up to a millisecond late. bench/bus_bench.py measured 2.3-3.7 ms on
# a 2-core VM under load (bench/results/bus.md).
GATEWAY_GAP_S = 0.003

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
    silences = 2 * rtu_silence_s(baudrate, parity=parity, stopbits=stopbits, bytesize=bytesize)
    return wire + silences + DEVICE_TURNAROUND_S + GATEWAY_GAP_S + frame_pause_ms / 1000.0


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

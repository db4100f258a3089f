"""The drivers' small exception hierarchy, and the two functions that decide
what a failed request calls for: sending it again at once
(:func:`worth_resending`) or reopening the link (:func:`needs_reconnect`).
Whether a sink's failed write is transient is another question, answered by
``gateway.sinks.base.is_transient``."""

from __future__ import annotations

from enum import StrEnum


class ErrorKind(StrEnum):
    """Counted separately in the gateway's self-metrics."""

    TIMEOUT = "timeout"
    EXCEPTION = "exception"  # the device answered with a Modbus exception code
    BUSY = "busy"  # exception code 6 (server device busy) or 5 (acknowledge)
    CORRUPT = "corrupt"  # bad CRC, wrong length, unparsable line
    TRANSPORT = "transport"  # connection refused / reset / port missing
    DECODE = "decode"  # answer arrived but a value could not be decoded
    GATEWAY = "gateway"  # exception 10/11: the device behind a gateway or DTU is unreachable


class DriverError(Exception):
    kind: ErrorKind = ErrorKind.TRANSPORT

    def __init__(self, message: str, *, device: str = "", unit: int | None = None) -> None:
        super().__init__(message)
        self.device = device
        self.unit = unit


class DeviceTimeout(DriverError):
    """No answer within the timeout. An absent RTU unit always ends here."""

    kind = ErrorKind.TIMEOUT


class TransportError(DriverError):
    """The link itself failed: connect refused, reset, serial port gone."""

    kind = ErrorKind.TRANSPORT


class CorruptFrame(DriverError):
    kind = ErrorKind.CORRUPT


class DecodeError(DriverError):
    kind = ErrorKind.DECODE


# What each exception code means, said so an operator knows what to check.
EXCEPTION_MEANING = {
    1: "illegal function: the device does not support this register kind",
    2: "illegal data address: these addresses do not exist on the device "
    "(check the address base: 40001 in a manual is address 0)",
    3: "illegal data value: the count is not accepted for this range",
    4: "device failure",
    5: "acknowledge: the device is busy with a long operation",
    6: "device busy: try again",
    8: "memory parity error: the device found its own memory damaged",
    10: "gateway path unavailable: the gateway or DTU has no path to this unit "
    "(unit not configured on it, or its serial side is down)",
    11: "gateway target device failed to respond: the unit behind the gateway or DTU "
    "is silent (check it, its unit id and the serial line behind the gateway)",
}

# Codes that refuse the request itself (its function, addresses or count):
# the device is alive, and only the points of that request are affected.
REFUSED_REQUEST_CODES = frozenset((1, 2, 3))
# Codes that refuse the address range: a merged read that gets one of these
# may hold a point the device lacks, and is worth splitting.
REFUSED_RANGE_CODES = frozenset((2, 3))


class ModbusExceptionResponse(DriverError):
    """The device answered with exception ``code`` (1 illegal function,
    2 illegal data address, 3 illegal data value, 4 device failure,
    5 acknowledge, 6 device busy, 10/11 gateway errors); the message says
    what the code means (:data:`EXCEPTION_MEANING`)."""

    kind = ErrorKind.EXCEPTION

    def __init__(self, code: int, *, device: str = "", unit: int | None = None) -> None:
        meaning = EXCEPTION_MEANING.get(code, "see the device manual")
        super().__init__(f"Modbus exception {code} ({meaning})", device=device, unit=unit)
        self.code = code


class DeviceBusy(ModbusExceptionResponse):
    kind = ErrorKind.BUSY


class GatewayTargetSilent(ModbusExceptionResponse):
    """Exception 10 (gateway path unavailable) or 11 (gateway target device
    failed to respond) from a Modbus gateway or DTU: the gateway answered
    for a device that did not. For the device this is silence, like a
    timeout (comm loss), not an answer."""

    kind = ErrorKind.GATEWAY


def exception_for(
    code: int, *, device: str = "", unit: int | None = None
) -> ModbusExceptionResponse:
    """The exception class for Modbus exception ``code``."""
    if code in (5, 6):
        return DeviceBusy(code, device=device, unit=unit)
    if code in (10, 11):
        return GatewayTargetSilent(code, device=device, unit=unit)
    return ModbusExceptionResponse(code, device=device, unit=unit)


def worth_resending(exc: BaseException) -> bool:
    """Whether the same request should be sent again at once (after a short,
    jittered pause) within the current poll.

    Retry "device busy" and "acknowledge" and corrupt frames (line noise);
    a timeout is retried by the hub's own retry count; any other exception
    code is an answer and retrying it only loads the bus.
    """
    if isinstance(exc, DeviceBusy):
        return True
    return isinstance(exc, (CorruptFrame, DeviceTimeout))


def needs_reconnect(exc: BaseException) -> bool:
    """Whether the transport should be torn down and reopened with backoff."""
    return isinstance(exc, TransportError)

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


class ModbusExceptionResponse(DriverError):
    """The device answered with exception ``code`` (1 illegal function,
    2 illegal data address, 3 illegal data value, 4 device failure,
    5 acknowledge, 6 device busy, 10/11 gateway errors)."""

    kind = ErrorKind.EXCEPTION

    def __init__(self, code: int, *, device: str = "", unit: int | None = None) -> None:
        super().__init__(f"Modbus exception code {code}", device=device, unit=unit)
        self.code = code


class DeviceBusy(ModbusExceptionResponse):
    kind = ErrorKind.BUSY


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

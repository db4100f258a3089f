"""Register read responses decoded in one ``struct`` call.

pymodbus 3.11 decodes a read-registers response one register at a time (a
slice and an ``unpack`` per register) and formats the whole response, its
100 registers included, for a debug line that is usually not printed.
At the benchmark's load (1,250 reads of 100 registers a second) that was
about 5 % of the gateway's CPU. These subclasses of pymodbus's own response
classes (functions 3 and 4) decode the same bytes with one precompiled
``struct.Struct`` per register count and print the register count instead
of every register; everything else (framing, transactions, checks) stays
pymodbus's. The hubs register them on each client they open
(``client.register``, pymodbus's public API for response classes).

``tests/drivers/test_fastpdu.py`` checks that they decode every frame,
malformed ones included, as pymodbus's classes do.
"""

from __future__ import annotations

import functools
import struct
from typing import Any

from pymodbus.exceptions import ModbusIOException
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

__all__ = ["FastHoldingRegistersResponse", "FastInputRegistersResponse", "register_fast_pdus"]


@functools.lru_cache(maxsize=128)
def _words(count: int) -> struct.Struct:
    return struct.Struct(f">{count}H")


def _decode(pdu: Any, data: bytes) -> None:
    if (data_len := int(data[0])) >= len(data):
        raise ModbusIOException(f"byte_count {data_len} > length of packet {len(data)}")
    # an odd byte count: pymodbus's loop reads the whole registers in it, so do we
    pdu.registers = list(_words(data_len // 2).unpack_from(data, 1))


def _str(pdu: Any) -> str:
    return (
        f"{pdu.__class__.__name__}(dev_id={pdu.dev_id}, transaction_id={pdu.transaction_id}, "
        f"address={pdu.address}, count={pdu.count}, registers=<{len(pdu.registers)}>, "
        f"status={pdu.status!s}, retries={pdu.retries})"
    )


class FastHoldingRegistersResponse(ReadHoldingRegistersResponse):
    """Function 3 response; see the module docstring."""

    def decode(self, data: bytes) -> None:
        _decode(self, data)

    def __str__(self) -> str:
        return _str(self)


class FastInputRegistersResponse(ReadInputRegistersResponse):
    """Function 4 response; see the module docstring."""

    def decode(self, data: bytes) -> None:
        _decode(self, data)

    def __str__(self) -> str:
        return _str(self)


def register_fast_pdus(client: Any) -> None:
    """Decode this client's function 3 and 4 responses with the classes above."""
    client.register(FastHoldingRegistersResponse)
    client.register(FastInputRegistersResponse)

"""drivers.fastpdu decodes read-register responses as pymodbus does (same
registers, same failures), and the hubs use it against a real pymodbus
server."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient
from pymodbus.pdu.decoders import DecodePDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersResponse,
    ReadInputRegistersResponse,
)

from drivers.fastpdu import (
    FastHoldingRegistersResponse,
    FastInputRegistersResponse,
    register_fast_pdus,
)


def outcome(cls: type, data: bytes) -> object:
    pdu = cls()
    try:
        pdu.decode(data)
    except Exception as exc:  # the kind of failure is what is compared
        return type(exc)
    return pdu.registers


@settings(max_examples=400, deadline=None)
@given(
    registers=st.lists(st.integers(0, 0xFFFF), max_size=125),
    byte_count=st.one_of(st.none(), st.integers(0, 255)),
    extra=st.binary(max_size=3),
    cut=st.integers(0, 4),
)
def test_same_registers_and_failures_as_pymodbus(
    registers: list[int], byte_count: int | None, extra: bytes, cut: int
) -> None:
    body = struct.pack(f">{len(registers)}H", *registers)
    count = 2 * len(registers) if byte_count is None else byte_count
    data = (bytes([count]) + body + extra)[: max(0, 1 + len(body) + len(extra) - cut)]
    for ours, theirs in (
        (FastHoldingRegistersResponse, ReadHoldingRegistersResponse),
        (FastInputRegistersResponse, ReadInputRegistersResponse),
    ):
        assert outcome(ours, data) == outcome(theirs, data)


def test_str_names_the_count_not_every_register() -> None:
    pdu = FastHoldingRegistersResponse()
    pdu.decode(bytes([4, 0, 1, 0, 2]))
    assert pdu.registers == [1, 2] and "registers=<2>" in str(pdu)


async def test_registered_on_a_client_for_functions_3_and_4_only() -> None:
    client = AsyncModbusTcpClient("127.0.0.1", port=1)
    register_fast_pdus(client)
    decoder: DecodePDU = client.ctx.framer.decoder
    assert decoder.pdu_table[3][1] is FastHoldingRegistersResponse
    assert decoder.pdu_table[4][1] is FastInputRegistersResponse
    # other clients keep pymodbus's classes (the table is copied per decoder)
    other = AsyncModbusTcpClient("127.0.0.1", port=1)
    assert other.ctx.framer.decoder.pdu_table[3][1] is ReadHoldingRegistersResponse
    pdu = decoder.decode(bytes([3, 4, 0, 7, 0xFF, 0xFF]))
    assert isinstance(pdu, FastHoldingRegistersResponse) and pdu.registers == [7, 0xFFFF]


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


async def test_a_hub_reads_through_them_from_a_real_server(tcp_peer: Any) -> None:
    from drivers.modbus import TcpHub
    from drivers.types import RegisterKind

    unit, dev = next(iter(tcp_peer.devices.items()))
    dev.put(RegisterKind.HOLDING, 0, list(range(65400, 65400 + 125)))
    dev.put(RegisterKind.INPUT, 3, [0, 1, 0xFFFF])
    async with TcpHub("127.0.0.1", tcp_peer.port, timeout_s=1.0, name="t") as hub:
        assert hub._client is not None
        assert hub._client.ctx.framer.decoder.pdu_table[3][1] is FastHoldingRegistersResponse
        assert await hub.read(unit, RegisterKind.HOLDING, 0, 125) == list(range(65400, 65525))
        assert await hub.read(unit, RegisterKind.INPUT, 3, 3) == [0, 1, 0xFFFF]

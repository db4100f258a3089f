"""The bus-load estimate of check-config: one transaction's time."""

from __future__ import annotations

import pytest

from drivers.types import RegisterKind
from gateway.busload import DEVICE_TURNAROUND_S, GATEWAY_GAP_S, cycle_time_s, request_time_s

TURNAROUNDS = DEVICE_TURNAROUND_S + GATEWAY_GAP_S  # the device's and the gateway's


def test_a_transaction_is_wire_time_two_silences_turnarounds_and_pause() -> None:
    # 8-byte request + 5 + 2 x 10 bytes of reply at 9600 8N1: 33 characters of 10 bits.
    took = request_time_s(RegisterKind.HOLDING, 10, baudrate=9600, frame_pause_ms=5)
    assert took == pytest.approx(33 * 10 / 9600 + 2 * 3.5 * 10 / 9600 + TURNAROUNDS + 0.005)
    # 8E1 is 11 bits a character, silences included.
    even = request_time_s(RegisterKind.HOLDING, 10, baudrate=9600, parity="E")
    assert even == pytest.approx(40 * 11 / 9600 + TURNAROUNDS)


@pytest.mark.parametrize("baud", [38400, 115200])
def test_above_19200_baud_the_silence_is_fixed_at_1_75_ms(baud: int) -> None:
    # Coils: 8-byte request, 5 + 1 bytes of reply.
    took = request_time_s(RegisterKind.COIL, 8, baudrate=baud)
    assert took == pytest.approx(14 * 10 / baud + 2 * 1.75e-3 + TURNAROUNDS)


def test_a_cycle_is_its_requests_back_to_back() -> None:
    requests = [(RegisterKind.INPUT, 9), (RegisterKind.DISCRETE, 2)]
    one = [request_time_s(k, n, baudrate=19200) for k, n in requests]
    assert cycle_time_s(requests, baudrate=19200) == pytest.approx(sum(one))

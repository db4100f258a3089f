"""ASCII line formats, the format registry, and AsciiPort over real ptys."""

from __future__ import annotations

import asyncio
import functools
import operator
import os
import time
from collections.abc import Iterator

import pytest
from driverpeers import PtyPair
from hypothesis import given
from hypothesis import strategies as st

from drivers.ascii import (
    AsciiPort,
    format_gas_nmea,
    format_names,
    get_format,
    make_port,
    nmea_checksum,
    register_format,
    values_for_points,
)
from drivers.errors import CorruptFrame, DecodeError, DeviceTimeout, TransportError
from drivers.modbus import Backoff
from drivers.profile import find_profile
from drivers.types import DataType, PointSpec, RegisterKind, Value

GAS = get_format("gas_nmea")
KV = get_format("kv")


def test_nmea_checksum_published_vectors() -> None:
    # examples printed in NMEA 0183 references
    assert nmea_checksum("GPGLL,5300.97914,N,00259.98174,E,125926,A") == "28"
    assert nmea_checksum("GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,") == "47"


def test_gas_nmea_parses_a_detector_line() -> None:
    body = "GASM,03,CH4=0.45,CO=12,O2=20.8,H2S=0.0,T=22.5,RH=85"
    check = functools.reduce(operator.xor, body.encode(), 0)
    values = GAS.parse(f"${body}*{check:02x}")  # lower-case hex accepted
    assert values == {
        "id": "03",
        "CH4": 0.45,
        "CO": 12,
        "O2": 20.8,
        "H2S": 0.0,
        "T": 22.5,
        "RH": 85,
    }
    assert type(values["CO"]) is int and type(values["H2S"]) is float
    # line noise before the sentence is skipped, the checksum still decides
    assert GAS.parse(f"\x00\xff#@${body}*{check:02X}  ") == values


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("$GASM,03,CH4=0.45*00", "checksum"),
        ("$GASM,03,CH4=0.45", "no '\\*checksum'"),
        ("GASM,03,CH4=0.45*06", "no '\\$'"),
        (format_gas_nmea(3, {"CH4": 0.45}).replace("0.45", "0.46"), "checksum"),
        (format_gas_nmea(3, {}), "expected"),
        ("$GASM,03,CH4=1,CH4=2*" + nmea_checksum("GASM,03,CH4=1,CH4=2"), "twice"),
        ("$GASM,03,CH4*" + nmea_checksum("GASM,03,CH4"), "not KEY=value"),
    ],
)
def test_gas_nmea_rejects_bad_lines(line: str, why: str) -> None:
    with pytest.raises(CorruptFrame, match=why):
        GAS.parse(line)


keys = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=4).filter(
    lambda k: k != "id"
)
numbers = st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False))


@given(sensor=st.integers(0, 99), fields=st.dictionaries(keys, numbers, min_size=1, max_size=8))
def test_format_gas_nmea_round_trip(sensor: int, fields: dict[str, Value]) -> None:
    line = format_gas_nmea(sensor, fields)
    assert line.startswith("$GASM,") and line[-3] == "*"
    parsed = GAS.parse(line)
    assert parsed.pop("id") == f"{sensor:02d}"
    assert parsed == fields


def test_format_gas_nmea_refuses_unwritable_fields() -> None:
    with pytest.raises(ValueError, match="cannot be written"):
        format_gas_nmea(1, {"A,B": 1})
    with pytest.raises(ValueError, match="cannot be written"):
        format_gas_nmea(1, {"NOTE": "a*b"})


def test_kv_format() -> None:
    assert KV.parse("CH4=0.45, CO=12 T = 22.5;RH=85;state=ERR") == {
        "CH4": 0.45,
        "CO": 12,
        "T": 22.5,
        "RH": 85,
        "state": "ERR",
    }
    for bad in ("hello world", "   ", "=5", "A=1,A=2"):
        with pytest.raises(CorruptFrame):
            KV.parse(bad)


def test_registry_lists_known_names_and_accepts_new_formats() -> None:
    with pytest.raises(ValueError, match="gas_nmea") as info:
        get_format("modbus_ascii")
    assert "kv" in str(info.value)

    class Semicolon:
        name = "test_semicolon_pairs"

        def parse(self, line: str) -> dict[str, Value]:
            return {k: float(v) for k, v in (p.split(":") for p in line.split(";"))}

    register_format(Semicolon())
    assert get_format("test_semicolon_pairs").parse("a:1;b:2") == {"a": 1.0, "b": 2.0}
    assert "test_semicolon_pairs" in format_names()
    with pytest.raises(ValueError, match="already registered"):
        register_format(Semicolon())
    with pytest.raises(TypeError):
        register_format(object())  # type: ignore[arg-type]


def test_values_for_points_follow_the_profile() -> None:
    profile = find_profile("gas_ascii")
    line = format_gas_nmea(3, {"CH4": 0.45, "CO": 12, "O2": 20.8, "T": 22.5, "RH": 85, "WS": "ERR"})
    out = values_for_points(GAS.parse(line), profile.points)
    assert out["ch4"] == 0.45 and out["co"] == 12.0 and isinstance(out["co"], float)
    assert isinstance(out["wind_speed"], DecodeError)  # the sensor printed ERR
    assert isinstance(out["h2s"], DecodeError) and "missing" in str(out["h2s"])
    scaled = PointSpec(
        "t_f", RegisterKind.INPUT, 0, DataType.FLOAT64, scale=1.8, offset=32.0, key="T"
    )
    flag = PointSpec("alarm", RegisterKind.INPUT, 0, DataType.BOOL, key="AL")
    count = PointSpec("n", RegisterKind.INPUT, 0, DataType.UINT16, key="N")
    got = values_for_points({"T": 20.0, "AL": "ON", "N": 2.5}, [scaled, flag, count])
    assert got["t_f"] == pytest.approx(68.0) and got["alarm"] is True
    assert isinstance(got["n"], DecodeError)


# ------------------------------------------------------------------ AsciiPort


@pytest.fixture
def pty() -> Iterator[tuple[int, str]]:
    """(master fd the test writes to, path of the slave the port opens)."""
    master, slave = os.openpty()
    path = os.ttyname(slave)
    yield master, path
    os.close(master)
    os.close(slave)


async def collect(
    port: AsciiPort, n: int, within_s: float = 3.0
) -> list[tuple[int, dict[str, Value]]]:
    out: list[tuple[int, dict[str, Value]]] = []

    async def run() -> None:
        async for item in port.lines():
            out.append(item)
            if len(out) == n:
                return

    await asyncio.wait_for(run(), within_s)
    return out


async def test_port_reassembles_lines_and_skips_garbage(pty: tuple[int, str]) -> None:
    master, path = pty
    good = [format_gas_nmea(3, {"CH4": 0.1 * i, "CO": i}) for i in range(4)]
    bad_checksum = good[0][:-2] + ("00" if good[0][-2:] != "00" else "11")
    stream = (
        b"\x00\xfe\xff garbage\r\n"  # power-up noise with non-ASCII bytes
        + good[0].encode()
        + b"\r\n"  # CR LF
        + bad_checksum.encode()
        + b"\n"
        + good[1].encode()
        + b"\n"  # LF only
        + b"\r\n\r\n"  # empty lines are not readings
        + good[2].encode()
        + b"\r"  # CR only
        + good[3].encode()
        + b"\r\n"
    )
    ticks = iter(range(1, 100))
    async with AsciiPort(
        path, line_format="gas_nmea", timeout_s=2.0, clock_ns=lambda: next(ticks)
    ) as port:
        assert port.is_open
        for i in range(0, len(stream), 7):  # partial lines across reads
            os.write(master, stream[i : i + 7])
            await asyncio.sleep(0.001)
        got = await collect(port, 4)
    assert [v["CO"] for _, v in got] == [0, 1, 2, 3]
    assert [ts for ts, _ in got] == sorted(ts for ts, _ in got)  # stamped on arrival, in order
    assert port.stats.good == 4 and port.stats.corrupt == 2 and port.stats.lines == 6
    assert port.last_error is None  # the last attempt gave a good line
    assert port.stats.last_line_ns == got[-1][0]


async def test_next_line_raises_timeout_and_corrupt(pty: tuple[int, str]) -> None:
    master, path = pty
    async with AsciiPort(path, line_format="kv", timeout_s=0.2) as port:
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match="no line"):
            await port.next_line()
        assert 0.18 <= time.monotonic() - started < 1.0
        os.write(master, b"nonsense\nA=1 B=2\n")
        with pytest.raises(CorruptFrame):
            await port.next_line()
        _, values = await port.next_line()
        assert values == {"A": 1, "B": 2}
        assert port.stats.timeouts == 1


async def test_over_long_line_is_dropped_and_reading_resumes(pty: tuple[int, str]) -> None:
    master, path = pty
    async with AsciiPort(path, line_format="kv", timeout_s=2.0, max_line=64) as port:
        os.write(master, b"X" * 300)  # a wrong baud rate looks like this: no terminator
        await asyncio.sleep(0.05)
        os.write(master, b"still noise\nA=5\n")
        ((_, values),) = await collect(port, 1)
        assert values == {"A": 5}
        assert port.stats.corrupt == 1


async def test_port_that_vanishes_is_reopened(pty_pair: PtyPair) -> None:
    port = AsciiPort(pty_pair.b, line_format="gas_nmea", timeout_s=0.3, backoff=Backoff(0.05, 0.2))
    async with port:
        writer = os.open(pty_pair.a, os.O_WRONLY | os.O_NOCTTY)
        os.write(writer, (format_gas_nmea(1, {"CO": 1}) + "\r\n").encode())
        ((_, first),) = await collect(port, 1)
        assert first["CO"] == 1
        os.close(writer)
        pty_pair.stop()  # adapter unplugged
        await asyncio.sleep(0.5)
        assert not port.is_open and port.stats.lost >= 1
        with pytest.raises(TransportError, match="reopening"):
            await port.next_line()
        pty_pair.start()  # plugged back in (same path)

        async def feed() -> None:
            fd = os.open(pty_pair.a, os.O_WRONLY | os.O_NOCTTY)
            try:
                for _ in range(40):
                    os.write(fd, (format_gas_nmea(1, {"CO": 2}) + "\r\n").encode())
                    await asyncio.sleep(0.05)
            finally:
                os.close(fd)

        feeder = asyncio.create_task(feed())
        ((_, again),) = await collect(port, 1, within_s=3.0)
        feeder.cancel()
        assert again["CO"] == 2
        assert port.stats.opens >= 2


async def test_missing_port_and_make_port(tmp_path: object) -> None:
    port = make_port(
        {
            "type": "ascii",
            "name": "gas1",
            "serial_port": "/dev/does-not-exist",
            "line_format": "kv",
            "timeout_s": 0.1,
        }
    )
    assert port.name == "gas1" and port.format.name == "kv"
    async with port:
        assert not port.is_open and port.stats.open_failures == 1
        with pytest.raises(TransportError, match="does not exist"):
            await port.next_line()
    with pytest.raises(ValueError, match="unknown ASCII line format"):
        make_port({"type": "ascii", "serial_port": "/dev/x", "line_format": "nope"})
    with pytest.raises(ValueError, match="serial_port"):
        make_port({"type": "ascii", "name": "g"})
    with pytest.raises(ValueError, match="parity"):
        make_port({"type": "ascii", "serial_port": "/dev/x", "parity": "Q"})


async def test_lines_keeps_the_last_error_for_the_caller(pty: tuple[int, str]) -> None:
    master, path = pty
    async with AsciiPort(path, line_format="kv", timeout_s=2.0) as port:
        reader = asyncio.create_task(collect(port, 1))
        os.write(master, b"@@@ noise @@@\n")
        for _ in range(100):
            if port.last_error is not None:
                break
            await asyncio.sleep(0.01)
        assert isinstance(port.last_error, CorruptFrame)
        os.write(master, b"A=3\n")
        ((_, values),) = await reader
        assert values == {"A": 3} and port.last_error is None


@given(line=st.text(max_size=120))
def test_parsers_raise_only_corrupt_frame_on_any_input(line: str) -> None:
    for fmt in (GAS, KV):
        try:
            fmt.parse(line)
        except CorruptFrame:
            pass


@given(fields=st.dictionaries(keys, numbers, min_size=1, max_size=5), cut=st.integers(1, 200))
def test_gas_nmea_truncated_line_is_corrupt(fields: dict[str, Value], cut: int) -> None:
    line = format_gas_nmea(7, fields)
    if cut >= len(line):
        return
    with pytest.raises(CorruptFrame):
        GAS.parse(line[:-cut])


async def test_unread_lines_overflow_keeps_the_newest(pty: tuple[int, str]) -> None:
    master, path = pty
    async with AsciiPort(path, line_format="kv", timeout_s=1.0, queue_size=2) as port:
        os.write(master, b"".join(f"N={i}\n".encode() for i in range(5)))
        await asyncio.sleep(0.1)  # nobody reads meanwhile
        got = [v["N"] for _, v in await collect(port, 2)]
        assert got == [3, 4] and port.stats.dropped == 3

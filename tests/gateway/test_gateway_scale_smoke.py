"""The gateway scale benchmark runs (tiny: 8 devices, one saturation step of
minegate + MQTT), so it does not rot; the real run is `make bench-gateway-scale`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.servers import MOSQUITTO, VICTORIA, require_binary

pytestmark = pytest.mark.servers


def test_gateway_scale_smoke(tmp_path: Path) -> None:
    require_binary(MOSQUITTO)
    require_binary(VICTORIA)
    from bench.gateway_scale import main

    code = main(
        ["--quick", "--results", str(tmp_path), "--work", str(tmp_path / "work"), "--scale-devices", "8", "--scale-duration", "3",
         "--scale-warmup", "0.5", "--only", "minegate-mqtt", "--ladder", "500",
         "--sat-devices", "2", "--sat-duration", "2", "--sat-warmup", "0.5"]
    )  # fmt: skip
    doc = json.loads((tmp_path / "gateway_scale.json").read_text())
    assert code == 0, doc["errors"]
    r = doc["scale"]["8"]
    assert r["endpoints"] == 4 and r["offered_values_per_s"] == 80
    assert r["values_per_s"] > 0 and r["sinks"]["influx"]["acked_values_per_s"] > 0
    assert r["gateway_counters"]["polls"] > 0 and 0 < r["peak_rss_mib"] < 1000
    sat = doc["saturation"]["minegate-mqtt"]
    assert sat["steps"][0]["offered_values_per_s"] == 400
    assert sat["saturation_values_per_s"] > 0
    md = (tmp_path / "gateway_scale.md").read_text()
    assert "| 8 |" in md and "minegate-mqtt" in md


def test_one_server_process_on_several_ports() -> None:
    """Unit ids stop at 247 per endpoint: a benchmark server process carries
    more devices on several ports, each answering for every unit."""
    import asyncio
    import subprocess
    import sys

    from pymodbus.client import AsyncModbusTcpClient

    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.gateway_modbus", "--units", "1-3", "--listeners", "3",
         "--max-s", "60"],
        stdout=subprocess.PIPE,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert line.startswith("READY ")
        ports = [int(p) for p in line.split()[1:]]
        assert len(set(ports)) == 3

        async def read_all() -> list[list[int]]:
            out = []
            for port in ports:
                client = AsyncModbusTcpClient("127.0.0.1", port=port)
                assert await client.connect()
                for unit in (1, 3):
                    first = await client.read_holding_registers(0, count=10, device_id=unit)
                    again = await client.read_holding_registers(0, count=10, device_id=unit)
                    assert not first.isError() and not again.isError()
                    assert first.registers != again.registers  # changes on every read
                    out.append(first.registers)
                client.close()
            return out

        got = asyncio.run(read_all())
        # every port has its own devices: the first read of each is the same
        assert got[0] == got[2] == got[4] and got[1] == got[3] == got[5]
    finally:
        proc.terminate()
        proc.wait(10)

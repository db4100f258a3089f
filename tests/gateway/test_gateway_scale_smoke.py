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

"""``minegate platform demo`` (what ``make demo`` runs): the whole chain for a
short run, simulated mines, their gateways, a real mosquitto and the
platform. The printed URL and token work; the page lists the mines; the
suspended mine's "suspected illegal production" (its hoist winding, with
the hoist's readings as evidence), the stopped gateway's
"gateway offline" and the fan mine's main-fan-stopped alarm from its
gateway (critical) appear; the mine page has its charts; the run ends by itself and cleans up."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from .conftest import servers

ROOT = Path(__file__).resolve().parents[2]
DURATION_S = 20  # the scenario's steps at 15, 30, 50 and 85 % of it


def test_demo_shows_the_suspended_mine_and_an_offline_gateway(tmp_path: Path) -> None:
    servers.require_binary(servers.MOSQUITTO)
    port = servers.free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "platform", "demo",
         "--duration", str(DURATION_S), "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
    )  # fmt: skip
    lines: queue.Queue[str] = queue.Queue()
    out: list[str] = []

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            out.append(line)
            lines.put(line)

    threading.Thread(target=read, daemon=True).start()
    try:
        url = token = ""
        while not token:
            line = lines.get(timeout=60)
            if line.startswith("platform: "):
                url = line.split()[1]
            if line.startswith("token: "):
                token = line.split()[1]
        assert url == f"http://127.0.0.1:{port}/"
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"})
        home = client.get("/")
        assert home.status_code == 200
        for code in ("M-QN-1", "M-QN-2", "M-LS-1"):
            assert f"data-mine='{code}'" in home.text or f'data-mine="{code}"' in home.text

        seen: dict[str, dict[str, object]] = {}
        deadline = time.monotonic() + DURATION_S
        kinds = {"suspected_illegal_production", "gateway_offline", "gateway_alarm"}
        while len(seen) < 3 and time.monotonic() < deadline:
            for a in client.get("/api/v1/alerts", params={"state": "firing"}).json():
                if a["kind"] in kinds:
                    seen[a["kind"]] = a
            time.sleep(0.5)
        assert set(seen) == kinds, "".join(out)
        illegal = seen["suspected_illegal_production"]
        mines = {m["code"]: m["id"] for m in client.get("/api/v1/mines").json()}
        assert illegal["mine_id"] == mines["M-QN-2"]
        assert seen["gateway_offline"]["mine_id"] == mines["M-LS-1"]
        fan = seen["gateway_alarm"]
        assert (fan["mine_id"], fan["severity"]) == (mines["M-QN-1"], "critical")
        assert fan["evidence"]["alarm"] in ("main_fan_1.running", "main_fan_2.running")
        fan_page = client.get(f"/mines/{mines['M-QN-1']}").text
        assert fan["summary"] in fan_page and 'data-alarm="main_fan_1.running"' in fan_page
        # the suspended mine's hoist started winding: named, with its readings
        assert illegal["summary"].endswith("running: hoist_1"), illegal
        [hoist] = illegal["evidence"]["running"]
        assert (hoist["device"], hoist["point"], hoist["value"]) == ("hoist_1", "running", True)
        readings = hoist["readings"]
        assert {"speed", "position", "motor_current", "motor_power"} <= set(readings)
        assert readings["speed"]["unit"] == "m/s" and readings["speed"]["ts"].endswith("Z")
        assert illegal["evidence"]["order_no"] == "QN-2026-7"
        assert "power_total_kw" in illegal["evidence"]
        page = client.get(f"/mines/{mines['M-QN-2']}")
        assert "suspected illegal production" in page.text
        assert "running: hoist_1" in page.text and "motor_current" in page.text
        # the producing quarry's crusher runs all along: no alert for it
        every = client.get("/api/v1/alerts").json()
        assert not any(a["kind"] == "suspected_illegal_production" and a["mine_id"] == mines["M-LS-1"]
                       for a in every)  # fmt: skip
        if os.access(servers.VICTORIA, os.X_OK):  # the demo's history server: charts
            fan_mine = client.get(f"/mines/{mines['M-QN-1']}").text
            assert 'data-point="gas_monitor_1/ch4"' in fan_mine
            assert "History unavailable" not in fan_mine
        assert proc.wait(DURATION_S + 30) == 0, "".join(out)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "gateway is back" in "".join(out)
    assert not list(tmp_path.glob("minegate-platform-demo-*")), "the temporary folder is left"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--duration", "0"], "--duration must be > 0 seconds, got 0"),
        (["--port", "0"], "--port must be 1..65535, got 0"),
        (["--data-dir", "{full}"], "is not empty: give a new or empty folder"),
    ],
)
def test_bad_options_are_refused_before_anything_starts(
    args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from gateway.cli import main

    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    argv = ["platform", "demo", *(a.format(full=full) for a in args)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert (full / "keep.txt").read_text() == "mine"

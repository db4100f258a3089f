"""End to end in headless Chromium (Debian's, driven by Playwright): the
platform runs as ``minegate platform serve`` with a real mosquitto; a
gateway process with its last will is killed, the regulator sees the mine
go offline and its alert appear, and acknowledges it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from supervision.db import make_engine
from supervision.db.migrate import upgrade

from .conftest import helpers, servers

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]

GATEWAY = textwrap.dedent(
    """
    import json, sys, time
    import paho.mqtt.client as mqtt
    port = int(sys.argv[1])
    def status(state, reason):
        return json.dumps({"state": state, "reason": reason, "site": "qn1", "gateway": "gw01",
                           "ts": "", "ts_ns": time.time_ns()})
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="gw-qn1")
    c.will_set("minegate/qn1/gw01/status", status("offline", "connection lost"), qos=1, retain=True)
    c.connect("127.0.0.1", port, keepalive=5)
    c.loop_start()
    c.publish("minegate/qn1/gw01/status", status("online", "start"), qos=1, retain=True).wait_for_publish()
    values = {"active_power": {"v": 42.5, "u": "kW", "q": "good"}}
    c.publish("minegate/qn1/gw01/telemetry/power_meter_1", json.dumps(
        {"seq": 1, "kind": "sample", "ts": "", "ts_ns": time.time_ns(), "device": "power_meter_1",
         "values": values})).wait_for_publish()
    print("ready", flush=True)
    time.sleep(600)
    """
)


def _chromium() -> str:
    if not os.access(CHROMIUM, os.X_OK):
        msg = "chromium not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return CHROMIUM


def _wait_http(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"platform exited: {log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"platform not up: {log.read_text()[-3000:]}")


@pytest.fixture
def platform(tmp_path: Path, mosquitto_server: Any, db_url: str) -> Iterator[tuple[str, Any]]:
    """``minegate platform serve`` on SQLite, then on PostgreSQL."""
    import paho.mqtt.publish

    # no retained status left by an earlier run (an empty retained message clears it)
    paho.mqtt.publish.single("minegate/qn1/gw01/status", b"", qos=1, retain=True,
                             hostname="127.0.0.1", port=mosquitto_server.port)  # fmt: skip
    engine = make_engine(db_url)
    upgrade(engine)
    world = helpers.build_world(engine, now_ns=time.time_ns())
    engine.dispose()
    port = servers.free_port()
    cfg = tmp_path / "platform.toml"
    cfg.write_text(
        f'[server]\nport = {port}\npage_refresh_s = 0\n[database]\nurl = "{db_url}"\n'
        f'[mqtt]\nport = {mosquitto_server.port}\nclient_id = "platform-browser-test"\n'
        "session_expiry_s = 0\n[alerting]\nevaluate_interval_s = 0.5\nheartbeat_timeout_s = 600\n"
    )
    log = tmp_path / "serve.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(cfg)],
            stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path,
        )  # fmt: skip
    try:
        _wait_http(f"http://127.0.0.1:{port}/healthz", proc, log)
        yield f"http://127.0.0.1:{port}", world
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_regulator_sees_a_mine_go_offline_and_acknowledges(
    platform: tuple[str, Any], mosquitto_server: Any
) -> None:
    sync_api = helpers.require_module("playwright.sync_api")
    url, world = platform
    gw = subprocess.Popen(
        [sys.executable, "-c", GATEWAY, str(mosquitto_server.port)], stdout=subprocess.PIPE
    )
    try:
        assert gw.stdout is not None and gw.stdout.readline().strip() == b"ready"
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])
            page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()  # a phone
            page.goto(f"{url}/")
            page.fill("input[name=token]", world.tokens["reg-qn"])
            page.click("button[type=submit]")
            card = page.locator("[data-mine='M-QN-1']")
            card.wait_for()
            assert page.locator("[data-mine='M-LS-1']").count() == 0  # another county
            card.locator("a").click()
            sync_api.expect(page.locator("#values")).to_contain_text("42.5 kW", timeout=10_000)
            sync_api.expect(page.locator("body")).to_contain_text("online")

            gw.send_signal(signal.SIGKILL)  # the broker publishes its last will
            gw.wait()
            alert = page.locator("#alerts tr.alert-firing[data-kind='gateway_offline']")
            deadline = time.monotonic() + 15
            while alert.count() == 0:
                assert time.monotonic() < deadline, "no offline alert on the page"
                time.sleep(0.3)
                page.reload()
            sync_api.expect(alert).to_contain_text("connection lost")
            page.goto(f"{url}/")
            sync_api.expect(page.locator("[data-mine='M-QN-1']")).to_contain_text("gateway offline")
            page.locator("[data-mine='M-QN-1'] a").click()
            alert.get_by_role("button", name="Acknowledge").click()
            sync_api.expect(alert).to_contain_text("acknowledged by reg-qn")
            assert alert.get_by_role("button", name="Acknowledge").count() == 0
            browser.close()
    finally:
        if gw.poll() is None:
            gw.kill()
            gw.wait()

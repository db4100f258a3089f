"""The registry and user pages in headless Chromium (Debian's, driven by
Playwright) against ``minegate platform serve``: the city's regulator, on a
phone, adds a mine, sets it suspended with its order, adds a county viewer
and issues their token (shown once); the viewer, logged in from a second
browser context with that token, sees the mine suspended, read-only, and
gets 403 for a change."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from supervision.db import make_engine
from supervision.db.migrate import upgrade

from .conftest import helpers, servers
from .test_browser import _chromium, _wait_http

ROOT = Path(__file__).resolve().parents[2]


def test_city_regulator_manages_and_viewer_reads(tmp_path: Path) -> None:
    sync_api = helpers.require_module("playwright.sync_api")
    expect = sync_api.expect
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    world = helpers.build_world(engine, now_ns=time.time_ns())
    engine.dispose()
    port = servers.free_port()
    cfg = tmp_path / "platform.toml"
    cfg.write_text(
        f'[server]\nport = {port}\npage_refresh_s = 0\n[database]\nurl = "sqlite:///platform.db"\n'
        '[mqtt]\nenabled = false\n[uploads]\ndir = "uploads"\n'
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(cfg)],
            stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/healthz", proc, log)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=_chromium(), args=["--no-sandbox"])

            def login(token: str) -> Any:
                page = browser.new_context(viewport={"width": 390, "height": 844}).new_page()
                page.goto(f"{url}/login")
                page.fill("input[name=token]", token)
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/")
                return page

            reg = login(world.tokens["reg-qz"])
            reg.click("header >> text=Registry")
            reg.click("text=Add a mine")
            form = reg.locator("#mine-form")
            form.locator("input[name=code]").fill("M-QN-7")
            form.locator("input[name=name]").fill("Qinnan manganese mine")
            form.locator("select[name=county]").select_option("QN")
            form.locator("input[name=baseline_power_kw]").fill("40")
            form.locator("button[type=submit]").click()
            expect(reg.locator("h1")).to_contain_text("Mine M-QN-7")
            mine_url = reg.url
            # suspended without the order's number: refused, said next to the field
            form.locator("select[name=status]").select_option("suspended")
            form.locator("button[type=submit]").click()
            expect(reg.locator("[data-field=order_no]")).to_contain_text("order's number")
            form.locator("input[name=order_no]").fill("QN-2026-11")
            form.locator("input[name=order_from]").fill("2026-12-01")
            form.locator("button[type=submit]").click()
            expect(reg.locator("[role=status]")).to_contain_text("Saved.")
            expect(reg.locator("h1 .badge")).to_have_text("suspended")

            reg.click("header >> text=Users")
            reg.click("text=Add a user")
            uf = reg.locator("#user-form")
            uf.locator("input[name=name]").fill("viewer-qn-2")
            uf.locator("select[name=role]").select_option("viewer")
            uf.locator("select[name=area]").select_option("county:QN")
            uf.locator("button[type=submit]").click()
            reg.locator("#issue-token input[name=label]").fill("phone")
            reg.locator("#issue-token button[type=submit]").click()
            token = reg.locator("#new-token").inner_text().strip()
            assert token.startswith("mgp_")
            reg.reload()  # shown once
            assert reg.locator("#new-token").count() == 0
            reg.click("header >> text=Audit")
            expect(reg.locator("#audit")).to_contain_text("status producing → suspended")

            viewer = login(token)
            card = viewer.locator("[data-mine='M-QN-7']")
            expect(card).to_contain_text("suspended")
            assert viewer.locator("header >> text=Registry").count() == 0
            card.locator("a").click()
            expect(viewer.locator("main")).to_contain_text("QN-2026-11")
            assert viewer.locator("form[action^='/manage']").count() == 0
            resp = viewer.goto(mine_url)
            assert resp is not None and resp.status == 403
            viewer.goto(f"{url}/")
            csrf = viewer.locator("input[name=csrf]").first.get_attribute("value")
            mine_id = re.sub(r"\D", "", mine_url.rsplit("/", 1)[-1])
            r = viewer.request.post(
                f"{url}/manage/mines/{mine_id}",
                form={"csrf": csrf or "", "name": "x", "county": "QN", "status": "producing"},
            )
            assert r.status == 403
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert "refused 403 POST /manage/mines/" in log.read_text()

"""The contractor's upload page in headless Chromium (Debian's, driven by
Playwright) against ``minegate platform serve`` (embedded jobs): a
contractor logs in, uploads the sample's violating scan through tus from
the browser, watches the progress, opens the report; a second contractor
sees none of it; the county's regulator sees the mine's latest verdict."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from sqlalchemy import update

from supervision.db import make_engine, make_sessionmaker
from supervision.db.migrate import upgrade

from .conftest import helpers, servers
from .test_browser import _chromium, _wait_http

ROOT = Path(__file__).resolve().parents[2]


def test_contractor_uploads_in_the_browser(tmp_path: Path) -> None:
    sync_api = helpers.require_module("playwright.sync_api")
    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel, Scope
    from supervision.registry.models import Mine
    from survey.sample import write_sample

    sample = write_sample(tmp_path / "sample", density=8.0).directory
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    now = time.time_ns()
    world = helpers.build_world(engine, now_ns=now)
    admin = auth.Principal(0, "admin", "admin", Scope(AreaLevel.ALL), "test")
    with make_sessionmaker(engine)() as db, db.begin():
        db.execute(update(Mine).values(licence_file=str(sample / "licence.toml")))
        for name, mine in (("con-a", "M-QN-1"), ("con-b", "M-LS-1")):
            user = auth.create_user(db, name, "contractor", now_ns=now)
            auth.assign_contractor(db, admin, name, mine, now_ns=now)
            world.tokens[name] = auth.issue_token(db, user, now_ns=now)
    engine.dispose()
    port = servers.free_port()
    cfg = tmp_path / "platform.toml"
    cfg.write_text(
        f'[server]\nport = {port}\n[database]\nurl = "sqlite:///platform.db"\n'
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

            def login(name: str) -> Any:
                page = browser.new_context().new_page()
                page.goto(f"{url}/login")
                page.fill("input[name=token]", world.tokens[name])
                page.click("button[type=submit]")
                page.wait_for_url(f"{url}/")
                return page

            page = login("con-a")
            page.click("text=Surveys")
            assert page.locator("select[name=mine] option").all_inner_texts() == [
                "M-QN-1 · Qinnan iron mine"
            ]
            page.set_input_files("input[type=file]", str(sample / "violation.las"))
            page.click("button:text('Upload')")
            sync_api.expect(page.locator("#progress")).to_contain_text("survey", timeout=30_000)
            sync_api.expect(page.locator("#result")).to_contain_text(
                "VIOLATIONS FOUND", timeout=120_000
            )
            page.click("text=open the report")
            sync_api.expect(page.locator("body")).to_contain_text("licence", timeout=10_000)
            report_url = page.url
            page.goto(f"{url}/surveys")
            sync_api.expect(page.locator("#surveys")).to_contain_text("violations found")

            other = login("con-b")
            other.goto(f"{url}/surveys")
            sync_api.expect(other.locator("main")).to_contain_text("No surveys")
            resp = other.goto(report_url)
            assert resp is not None and resp.status == 404
            # the county's regulator: each mine's latest verdict, no upload form
            reg = login("reg-qn")
            reg.goto(f"{url}/surveys")
            row = reg.locator("#latest tr[data-mine='M-QN-1']")
            sync_api.expect(row).to_contain_text("violations found")
            sync_api.expect(row).to_contain_text("by con-a")
            assert reg.locator("#upload").count() == 0
            # the mine's own page: its latest verdict, the survey's files, the report in place
            reg.goto(f"{url}/mines/{world.mines['M-QN-1']}")
            latest = reg.locator("#latest-survey")
            sync_api.expect(latest).to_contain_text("violations found")
            sync_api.expect(latest).to_contain_text("by con-a")
            sync_api.expect(latest.locator(".violation-kind").first).to_be_visible()
            sync_api.expect(reg.locator("#mine-surveys")).to_contain_text("violation.las")
            latest.locator("text=Open the report").click()
            sync_api.expect(reg.locator("body")).to_contain_text("licence", timeout=10_000)
            assert reg.url.endswith("/report.html")
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""The upload form's drag and drop in headless Chromium (Playwright)
against ``minegate platform serve`` (embedded jobs): a contractor drops the
open-pit sample's files (a real ``drop`` event carrying a DataTransfer of
Files, handled by the page's own drop handler), uploads them by tus,
sees the progress, then the check's verdict with the kinds of violation,
and the mine's latest verdict on the surveys page."""

from __future__ import annotations

import base64
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
FILES = ("dsm_2026-09-01.tif", "dsm_2026-03-01.tif", "ortho_2026-09-01.tif", "design.toml")

#: a DataTransfer holding the files (sent base64), as a drag from the desktop gives
MAKE_DROP = """(files) => {
  const dt = new DataTransfer();
  for (const f of files) {
    const bytes = Uint8Array.from(atob(f.b64), (c) => c.charCodeAt(0));
    dt.items.add(new File([bytes], f.name, { type: "application/octet-stream" }));
  }
  return dt;
}"""
#: every text the progress line shows, kept (they pass quickly)
WATCH = """() => {
  window.seen = [];
  const el = document.getElementById("progress");
  new MutationObserver(() => window.seen.push(el.textContent)).observe(
    el, { childList: true, characterData: true, subtree: true });
}"""


def test_contractor_drops_a_pit_survey(tmp_path: Path, pit_sample: Path) -> None:
    sync_api = helpers.require_module("playwright.sync_api")
    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel, Scope
    from supervision.registry.models import Mine

    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    now = time.time_ns()
    world = helpers.build_world(engine, now_ns=now)
    admin = auth.Principal(0, "admin", "admin", Scope(AreaLevel.ALL), "test")
    with make_sessionmaker(engine)() as db, db.begin():
        db.execute(update(Mine).values(licence_file=str(pit_sample / "licence.toml")))
        user = auth.create_user(db, "con-a", "contractor", now_ns=now)
        auth.assign_contractor(db, admin, "con-a", "M-QN-1", now_ns=now)
        world.tokens["con-a"] = auth.issue_token(db, user, now_ns=now)
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
    files = [
        {"name": n, "b64": base64.b64encode((pit_sample / n).read_bytes()).decode()} for n in FILES
    ]
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
            page.goto(f"{url}/surveys")
            page.evaluate(WATCH)
            dt = page.evaluate_handle(MAKE_DROP, files)
            page.dispatch_event("#drop", "dragenter", {"dataTransfer": dt})
            page.dispatch_event("#drop", "dragover", {"dataTransfer": dt})
            assert "over" in (page.get_attribute("#drop", "class") or "")
            page.dispatch_event("#drop", "drop", {"dataTransfer": dt})
            assert "over" not in (page.get_attribute("#drop", "class") or "")
            sync_api.expect(page.locator("#progress")).to_contain_text("4 file(s) ready")
            sync_api.expect(page.locator("#progress")).to_contain_text("dsm_2026-09-01.tif")
            # nothing chosen in the file input: what is sent is what was dropped
            assert page.eval_on_selector("input[type=file]", "i => i.files.length") == 0
            page.click("button:text('Upload')")
            result = page.locator("#result")
            sync_api.expect(result).to_contain_text("VIOLATIONS FOUND", timeout=180_000)
            sync_api.expect(result).to_contain_text("one_wall")
            sync_api.expect(result).to_contain_text("out_of_order")
            seen: list[str] = page.evaluate("window.seen")
            # the progress of each file's upload, then the check's stages
            for name in FILES:
                assert any(t.startswith(f"{name}: ") and t.endswith(" %") for t in seen), seen
            assert any(t.endswith("100.0 %") for t in seen), seen
            assert any(t.startswith("survey ") and "checked" in t for t in seen), seen
            page.click("text=open the report")
            sync_api.expect(page.locator("body")).to_contain_text("licence", timeout=10_000)
            # the mine's latest verdict, with the kinds, on the surveys page
            page.goto(f"{url}/surveys")
            row = page.locator("#latest tr[data-mine='M-QN-1']")
            sync_api.expect(row).to_contain_text("violations found")
            sync_api.expect(row).to_contain_text("one_wall")
            sync_api.expect(page.locator("#surveys")).to_contain_text("open-pit violation")
            # the mine's own survey page, reached from its row
            row.locator("a", has_text="M-QN-1").click()
            page.wait_for_url(f"{url}/surveys?mine=M-QN-1")
            sync_api.expect(page.locator("main h1").last).to_contain_text("Surveys of M-QN-1")
            sync_api.expect(page.locator("#surveys")).to_contain_text("one_wall")
            page.goto(f"{url}/surveys?mine=M-QN-2")
            sync_api.expect(page.locator("main")).to_contain_text("No surveys")
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

"""``minegate platform serve`` with its own TLS certificate: HTTPS only,
and the session cookie is Secure."""

from __future__ import annotations

import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from supervision.db import make_engine
from supervision.db.migrate import upgrade

from .conftest import helpers, servers

ROOT = Path(__file__).resolve().parents[2]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def test_serve_over_tls(tmp_path: Path) -> None:
    tls = servers.make_tls(tmp_path)
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    world = helpers.build_world(engine, now_ns=time.time_ns())
    engine.dispose()
    port = servers.free_port()
    cfg = tmp_path / "platform.toml"
    cfg.write_text(
        f'[server]\nhost = "127.0.0.1"\nport = {port}\ntls_cert = "{tls.server_cert}"\n'
        f'tls_key = "{tls.server_key}"\n[database]\nurl = "sqlite:///platform.db"\n'
        "[mqtt]\nenabled = false\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(cfg)],
            stdout=out, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    ctx = ssl.create_default_context(cafile=str(tls.ca))
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=ctx), _NoRedirect)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()
            try:
                with opener.open(f"https://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        form = urllib.parse.urlencode({"token": world.tokens["reg-qn"]}).encode()
        try:
            opener.open(f"https://127.0.0.1:{port}/login", data=form, timeout=5)
            raise AssertionError("login did not redirect")
        except urllib.error.HTTPError as exc:
            assert exc.code == 303
            cookie = exc.headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie
        # plain HTTP is not served
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            raise AssertionError("plain HTTP answered")
        except (urllib.error.URLError, ConnectionError, OSError) as exc:
            assert not isinstance(exc, urllib.error.HTTPError)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(10)

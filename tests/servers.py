"""Real servers for tests: mosquitto, influxd 1.x and VictoriaMetrics, each
started on a free loopback port with a generated config in a temp dir.

A plain module: other test folders import it (``from tests.servers import
...`` or by path) and build their own fixtures, or use the ones in
``tests/sinks/conftest.py``. When the environment variable ``CI`` is set a
missing server binary fails the test instead of skipping it.
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MOSQUITTO = "/usr/sbin/mosquitto"
INFLUXD = "/usr/bin/influxd"
VICTORIA = "/usr/bin/victoria-metrics"


def require_binary(path: str) -> str:
    """The binary's path; skip (fail under ``CI``) when it is missing."""
    found = path if os.access(path, os.X_OK) else shutil.which(Path(path).name)
    if not found:
        msg = f"{path} not installed (apt-get install {Path(path).name})"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return found


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def tcp_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=2) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except OSError:
        return 0


class Server:
    """A server child process bound to ``port``; start/stop/restart."""

    def __init__(
        self, name: str, argv: list[str], port: int, workdir: Path, ready: Callable[[], bool]
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.workdir = workdir
        self._ready = ready
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = workdir / f"{name}.log"
        self.scheme = "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> Server:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv, cwd=self.workdir, stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited ({self.proc.returncode}): {self.log_tail()}"
                )
            if self._ready():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout} s: {self.log_tail()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        # the port must be free before a restart binds it again
        deadline = time.monotonic() + 5
        while tcp_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def reload(self) -> None:
        """SIGHUP: re-read configuration (mosquitto: password file)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def restart(self) -> Server:
        self.stop()
        return self.start()

    def log_tail(self, n: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return "(no log)"


# --------------------------------------------------------------------- TLS


@dataclass(frozen=True)
class TlsFiles:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def make_tls(workdir: Path) -> TlsFiles:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a
    client certificate, made with the ``openssl`` command."""
    openssl = shutil.which("openssl")
    if not openssl:
        if os.environ.get("CI"):
            pytest.fail("openssl not installed")
        pytest.skip("openssl not installed")
    d = workdir / "tls"
    d.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=minegate test CA",
        "-keyout", "ca.key", "-out", "ca.crt")  # fmt: skip
    (d / "san.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n"
    )
    for who in ("server", "client"):
        run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", f"/CN={who}",
            "-keyout", f"{who}.key", "-out", f"{who}.csr")  # fmt: skip
        run("x509", "-req", "-in", f"{who}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{who}.crt")  # fmt: skip
    return TlsFiles(
        d / "ca.crt", d / "server.crt", d / "server.key", d / "client.crt", d / "client.key"
    )


# --------------------------------------------------------------- mosquitto


def set_mosquitto_password(passwd_file: Path, user: str, password: str) -> None:
    """Add or change a user in a mosquitto password file (``mosquitto_passwd``);
    a running broker picks it up on :meth:`Server.reload`."""
    tool = require_binary("/usr/bin/mosquitto_passwd")
    subprocess.run([tool, "-b", str(passwd_file), user, password], check=True, capture_output=True)
    passwd_file.chmod(0o600)


def mosquitto(
    workdir: Path,
    *,
    users: dict[str, str] | None = None,
    tls: TlsFiles | None = None,
    require_client_cert: bool = False,
    persistence: bool = False,
) -> Server:
    """A mosquitto broker (not started). ``users`` enables a password file
    and disables anonymous access; ``tls`` makes the listener TLS-only;
    ``persistence`` keeps sessions and retained messages across restarts."""
    binary = require_binary(MOSQUITTO)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    # as root, mosquitto would drop to user "mosquitto", who cannot read our temp dir
    lines = [f"user {pwd.getpwuid(os.getuid()).pw_name}", f"listener {port} 127.0.0.1", "log_dest stderr",
             "log_type error", "log_type warning", "log_type notice"]  # fmt: skip
    # the default (1000) drops QoS 1 messages to a subscriber that falls behind
    lines.append("max_queued_messages 0")
    if persistence:
        lines += ["persistence true", f"persistence_location {workdir}/"]
    else:
        lines.append("persistence false")
    if users:
        pw = workdir / "passwd"
        pw.write_text("")
        for user, password in users.items():
            set_mosquitto_password(pw, user, password)
        lines += ["allow_anonymous false", f"password_file {pw}"]
    else:
        lines.append("allow_anonymous true")
    if tls:
        lines += [f"cafile {tls.ca}", f"certfile {tls.server_cert}", f"keyfile {tls.server_key}"]
        if require_client_cert:
            lines.append("require_certificate true")
    conf = workdir / "mosquitto.conf"
    conf.write_text("\n".join(lines) + "\n")
    return Server("mosquitto", [binary, "-c", str(conf)], port, workdir, lambda: tcp_open(port))


# ------------------------------------------------------------ influxd 1.x


def influxd(workdir: Path, *, auth: bool = False, tls: TlsFiles | None = None) -> Server:
    """An InfluxDB 1.x server (not started); only the HTTP service (HTTPS
    with ``tls``; then ``server.url`` starts with https)."""
    binary = require_binary(INFLUXD)
    workdir.mkdir(parents=True, exist_ok=True)
    port, rpc = free_port(), free_port()
    conf = workdir / "influxdb.conf"
    conf.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{workdir / "meta"}"
[data]
  dir = "{workdir / "data"}"
  wal-dir = "{workdir / "wal"}"
  query-log-enabled = false
  wal-fsync-delay = "0s"
[http]
  enabled = true
  bind-address = "127.0.0.1:{port}"
  auth-enabled = {"true" if auth else "false"}
  https-enabled = {"true" if tls else "false"}
  https-certificate = "{tls.server_cert if tls else ""}"
  https-private-key = "{tls.server_key if tls else ""}"
  log-enabled = false
  max-body-size = 0
[monitor]
  store-enabled = false
[subscriber]
  enabled = false
[continuous_queries]
  enabled = false
[[graphite]]
  enabled = false
[[collectd]]
  enabled = false
[[opentsdb]]
  enabled = false
[[udp]]
  enabled = false
"""
    )
    srv = Server(
        "influxd", [binary, "-config", str(conf)], port, workdir,
        lambda: tcp_open(port) if tls else http_status(f"http://127.0.0.1:{port}/ping") == 204,
    )  # fmt: skip
    srv.scheme = "https" if tls else "http"
    return srv


def _urlopen(req: urllib.request.Request | str, ca: Path | None = None) -> Any:
    ctx = ssl.create_default_context(cafile=str(ca)) if ca else None
    return urllib.request.urlopen(req, timeout=10, context=ctx)


def influx_query(
    url: str, q: str, *, db: str | None = None, auth: tuple[str, str] | None = None,
    post: bool = False, ca: Path | None = None,
) -> list[dict[str, object]]:  # fmt: skip
    """Run InfluxQL; the ``series`` of the first result (epoch=ns).
    Raises ``RuntimeError`` with the server's error."""
    params = {"q": q, "epoch": "ns"}
    if db:
        params["db"] = db
    data = urllib.parse.urlencode(params).encode()
    headers = {}
    if auth:
        headers["Authorization"] = (
            "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        )
    if post:
        req = urllib.request.Request(url + "/query", data=data, headers=headers)
    else:
        req = urllib.request.Request(url + "/query?" + data.decode(), headers=headers)
    try:
        with _urlopen(req, ca) as resp:
            body = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise RuntimeError(f"InfluxQL {q!r}: HTTP {exc.code}: {exc.read()!r}") from exc
    res = body["results"][0]
    if "error" in res:
        raise RuntimeError(f"InfluxQL {q!r}: {res['error']}")
    return list(res.get("series", []))


def influx_rows(
    url: str, db: str, q: str, auth: tuple[str, str] | None = None, ca: Path | None = None
) -> list[dict[str, object]]:
    """Rows of a SELECT as dicts (column -> value), tags included per series."""
    rows: list[dict[str, object]] = []
    for s in influx_query(url, q, db=db, auth=auth, ca=ca):
        tags = s.get("tags") or {}
        cols = s["columns"]
        for vals in s["values"]:  # type: ignore[union-attr]
            row = dict(zip(cols, vals, strict=True))  # type: ignore[call-overload]
            row.update(tags)  # type: ignore[arg-type]
            rows.append(row)
    return rows


# -------------------------------------------------------- VictoriaMetrics


def victoria(
    workdir: Path, *, auth: tuple[str, str] | None = None, tls: TlsFiles | None = None
) -> Server:
    """A single-node VictoriaMetrics (not started); HTTPS with ``tls``."""
    binary = require_binary(VICTORIA)
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    argv = [binary, f"-storageDataPath={workdir / 'data'}", f"-httpListenAddr=127.0.0.1:{port}",
            "-loggerLevel=ERROR", "-search.latencyOffset=0s", "-retentionPeriod=100y"]  # fmt: skip
    if auth:
        argv += [f"-httpAuth.username={auth[0]}", f"-httpAuth.password={auth[1]}"]
    if tls:
        argv += ["-tls", f"-tlsCertFile={tls.server_cert}", f"-tlsKeyFile={tls.server_key}"]
    url = f"http://127.0.0.1:{port}"
    srv = Server(
        "victoria-metrics", argv, port, workdir,
        lambda: tcp_open(port) if tls else http_status(url + "/health") in (200, 401),
    )  # fmt: skip
    srv.scheme = "https" if tls else "http"
    return srv


def vm_export(url: str, match: str, ca: Path | None = None) -> list[dict[str, object]]:
    """Series matching ``match`` from ``/api/v1/export`` (JSON lines), after
    forcing a flush so just-written samples are visible."""
    _urlopen(url + "/internal/force_flush", ca).read()
    q = urllib.parse.urlencode({"match[]": match, "start": "0"})
    with _urlopen(f"{url}/api/v1/export?{q}", ca) as resp:
        text = resp.read().decode()
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def redis_server(workdir: Path) -> Server:
    """Debian's redis-server on a free loopback port, no persistence."""
    exe = require_binary("/usr/bin/redis-server")
    port = free_port()
    argv = [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(workdir)]  # fmt: skip
    return Server("redis", argv, port, workdir, lambda: tcp_open(port)).start()

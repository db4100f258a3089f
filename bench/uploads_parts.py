"""The servers of the uploads benchmark: a platform (``minegate platform
serve`` on a fresh database, Redis, the registry with one mine and its
licence, an admin token), its ``minegate platform worker`` processes, and
nginx accepting plain HTTP PUTs (the raw ceiling a user could pick
instead). Every process is started through :class:`Children`, in its own
process group, and stopped at the end."""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.gateway_procs import Children, descendants, wait_for

ROOT = Path(__file__).resolve().parents[1]
MINE = "M-BENCH-1"


class BenchError(RuntimeError):
    pass


def servers() -> Any:
    return importlib.import_module("tests.servers")


@dataclass
class Platform:
    home: Path
    url: str
    config: Path
    token: str
    db_url: str
    proc: subprocess.Popen[bytes]
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def uploads(self) -> Path:
        return self.home / "uploads"

    def pids(self) -> list[int]:
        return descendants(self.proc.pid)

    def api(self, method: str, path: str, **kw: Any) -> Any:
        import httpx

        r = httpx.request(
            method, self.url + path, headers={"Authorization": f"Bearer {self.token}"},
            timeout=120, **kw,
        )  # fmt: skip
        if r.status_code >= 400:
            raise BenchError(f"{method} {path}: {r.status_code} {r.text[:300]}")
        return r.json()


def _registry(db_url: str, licence: Path) -> str:
    """One mine with its licence, one admin; the admin's token."""
    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel
    from supervision.db import make_engine, make_sessionmaker
    from supervision.db.migrate import upgrade
    from supervision.registry import service as reg

    engine = make_engine(db_url)
    upgrade(engine)
    now = time.time_ns()
    with make_sessionmaker(engine)() as db, db.begin():
        reg.add_region(db, "BR", "Bench region")
        reg.add_city(db, "BR", "BC", "Bench city")
        reg.add_county(db, "BC", "BK", "Bench county")
        mine = reg.add_mine(db, "BK", MINE, "Bench mine")
        mine.licence_file = str(licence)
        user = auth.create_user(db, "bench-admin", "admin", area=AreaLevel.ALL, now_ns=now)
        token = auth.issue_token(db, user, now_ns=now)
    engine.dispose()
    return token


class Databases:
    """A SQLite file per platform, or a new database on one PostgreSQL
    server (``tests/supervision/pg.py``, as the tests start it)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.pg: Any = None
        self.n = 0

    def new(self, home: Path) -> str:
        if self.kind == "sqlite":
            return f"sqlite:///{home / 'platform.db'}"
        import psycopg

        if self.pg is None:
            pg_mod: Any = importlib.import_module("tests.supervision.pg")
            self.pg = pg_mod.PostgresServer(servers().free_port()).start()
        self.n += 1
        name = f"uploads_bench_{self.n}"
        dsn = f"host=127.0.0.1 port={self.pg.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        return str(self.pg.url(name))

    def pids(self) -> list[int]:
        if self.pg is None:
            return []
        with contextlib.suppress(OSError, ValueError):
            return descendants(int((self.pg.data / "postmaster.pid").read_text().split()[0]))
        return []

    def close(self) -> None:
        if self.pg is not None:
            self.pg.stop()
            self.pg = None


def start_platform(
    children: Children, home: Path, db_url: str, licence: Path, *, multipart_mb: float
) -> Platform:
    """Redis and ``minegate platform serve`` (jobs on Dramatiq) in ``home``."""
    home.mkdir(parents=True, exist_ok=True)
    srv = servers()
    redis_port = srv.free_port()
    children.start(
        "redis",
        ["/usr/bin/redis-server", "--port", str(redis_port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", str(home)],
        log=home / "redis.log",
    )  # fmt: skip
    if not wait_for(lambda: srv.tcp_open(redis_port), 20):
        raise BenchError("redis-server did not start")
    token = _registry(db_url, licence)
    port = srv.free_port()
    config = home / "platform.toml"
    config.write_text(
        f'[server]\nport = {port}\n[database]\nurl = "{db_url}"\n[mqtt]\nenabled = false\n'
        f'[uploads]\ndir = "{home / "uploads"}"\nmultipart_max_mb = {multipart_mb}\n'
        "max_mb = {admin = 20480}\n"
        f'[jobs]\nengine = "dramatiq"\nredis_url = "redis://127.0.0.1:{redis_port}/0"\n'
        "lease_s = 60\npoll_s = 1\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}
    env.pop("MINEGATE_TOKEN", None)
    argv = [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(config)]
    proc = children.start("serve", argv, log=home / "serve.log", cwd=home, env=env)
    url = f"http://127.0.0.1:{port}"
    if not wait_for(lambda: srv.http_status(url + "/healthz") == 200, 90, 0.2):
        raise BenchError(
            f"platform serve did not start: {(home / 'serve.log').read_text()[-2000:]}"
        )
    return Platform(home, url, config, token, db_url, proc, env)


def start_workers(children: Children, plat: Platform, n: int) -> list[subprocess.Popen[bytes]]:
    """``n`` worker processes (one check at a time each), ready when they
    said so (imports done, connected to Redis)."""
    argv = [sys.executable, "-m", "gateway.cli", "platform", "worker", "--config", str(plat.config)]  # fmt: skip
    new = [
        children.start(f"worker{len(plat.workers) + i}", argv, cwd=plat.home, env=plat.env,
                       log=plat.home / f"worker{len(plat.workers) + i}.log")
        for i in range(n)
    ]  # fmt: skip
    plat.workers += new
    logs = [plat.home / f"worker{len(plat.workers) - n + i}.log" for i in range(n)]
    ready = wait_for(lambda: all("worker started" in p.read_text() for p in logs), 120, 0.2)
    if not ready:
        raise BenchError(f"workers did not start: {logs[0].read_text()[-2000:]}")
    return new


def stop_workers(children: Children, plat: Platform) -> None:
    for w in plat.workers:
        children.stop(w, grace_s=30)
    plat.workers = []


NGINX_CONF = """
daemon off;
{user}worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {root}/body;
    proxy_temp_path {root}/proxy;
    fastcgi_temp_path {root}/fastcgi;
    uwsgi_temp_path {root}/uwsgi;
    scgi_temp_path {root}/scgi;
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 0;
        location /put/ {{
            root {root}/data;
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


def start_nginx(children: Children, root: Path) -> tuple[str, subprocess.Popen[bytes]] | None:
    """Debian's nginx (``nginx-light``: its DAV module takes PUT) on a free
    port, or None when it is not installed."""
    exe = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if exe is None:
        return None
    root.mkdir(parents=True, exist_ok=True)
    (root / "data" / "put").mkdir(parents=True, exist_ok=True)
    port = servers().free_port()
    conf = root / "nginx.conf"
    # as root its workers would be www-data, which cannot write in a private scratch dir
    user = "user root;\n" if os.getuid() == 0 else ""
    conf.write_text(NGINX_CONF.format(root=root, port=port, user=user))
    proc = children.start("nginx", [exe, "-c", str(conf), "-p", str(root)], log=root / "nginx.log")
    if not wait_for(lambda: servers().tcp_open(port), 20):
        raise BenchError(f"nginx did not start: {(root / 'error.log').read_text()[-1000:]}")
    return f"http://127.0.0.1:{port}/put", proc


class CountingProxy:
    """A TCP relay on loopback that counts the bytes clients send through
    it (HTTP headers included): what an upload really put on the wire."""

    def __init__(self, target_port: int) -> None:
        import socket
        import threading

        self.target = target_port
        self.sent = 0
        self._lock = threading.Lock()
        self._srv = socket.create_server(("127.0.0.1", 0))
        self.port = self._srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="proxy").start()

    def _accept(self) -> None:
        import socket
        import threading

        while True:
            try:
                c, _ = self._srv.accept()
            except OSError:
                return
            s = socket.create_connection(("127.0.0.1", self.target))
            threading.Thread(target=self._pump, args=(c, s, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(s, c, False), daemon=True).start()

    def _pump(self, src: Any, dst: Any, count: bool) -> None:
        import socket

        try:
            while data := src.recv(1 << 16):
                if count:
                    with self._lock:
                        self.sent += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def take(self) -> int:
        """Bytes counted since the last take."""
        with self._lock:
            n, self.sent = self.sent, 0
        return n

    def close(self) -> None:
        self._srv.close()

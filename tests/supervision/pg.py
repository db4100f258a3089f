"""A throwaway PostgreSQL server for the platform tests (Debian's
``postgresql`` binaries, ``initdb`` + ``pg_ctl`` in a temp dir on a free
loopback port). As root the server runs as the ``postgres`` user, which
owns the temp dir. Skips (fails under ``CI``) when PostgreSQL is missing."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest


def pg_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        msg = "PostgreSQL not installed (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return Path(found[-1]).parent


class PostgresServer:
    def __init__(self, port: int) -> None:
        self.bin = pg_bin()
        self.port = port
        self.dir = Path(tempfile.mkdtemp(prefix="minegate-pg-"))
        self.data = self.dir / "data"
        self.as_root = os.getuid() == 0

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=60)

    def start(self) -> PostgresServer:
        if self.as_root:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        res = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")  # fmt: skip
        if res.returncode:
            raise RuntimeError(f"initdb failed: {res.stderr[-2000:]}")
        opts = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        res = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", opts, "-l", str(self.dir / "log"), "-w", "start")  # fmt: skip
        if res.returncode:
            log = (self.dir / "log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"pg_ctl start failed: {res.stderr[-1000:]} {log}")
        return self

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{dbname}"

    def stop(self) -> None:
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.dir, ignore_errors=True)

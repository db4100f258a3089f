"""The demo's mosquitto and VictoriaMetrics, on free loopback ports."""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

MOSQUITTO = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")
VICTORIA = "/usr/bin/victoria-metrics"


class DemoError(Exception):
    """Something the demo needs is missing; the message says what to do."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """A mosquitto broker on a free loopback port; yields the port."""
    import getpass

    binary = next((b for b in MOSQUITTO if Path(b).exists()), shutil.which("mosquitto"))
    if binary is None:
        raise DemoError("mosquitto not found: run 'make setup' (or apt-get install mosquitto)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        "persistence false\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\n"
    )
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _tcp_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"mosquitto did not start; see {workdir / 'mosquitto.log'}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def victoria_metrics(workdir: Path) -> Iterator[str | None]:
    """A VictoriaMetrics on a free loopback port for the charts; yields its
    URL, or None when it is not installed (the demo runs without charts)."""
    if not Path(VICTORIA).exists():
        yield None
        return
    port = free_port()
    log = (workdir / "victoria-metrics.log").open("wb")
    proc = subprocess.Popen(
        [VICTORIA, f"-storageDataPath={workdir / 'victoria-metrics'}",
         f"-httpListenAddr=127.0.0.1:{port}", "-loggerLevel=ERROR",
         "-search.latencyOffset=0s"],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while not _tcp_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(
                    f"victoria-metrics did not start; see {workdir / 'victoria-metrics.log'}"
                )
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0

"""Parts of the platform benchmark: the registry it loads, the webhook
receiver that times the alerts, the alarm stream, the platform instances
(``minegate platform serve`` in child processes) and what they report."""

from __future__ import annotations

import json
import os
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt

from bench.gateway_procs import Children, wait_for
from bench.platform_load import PREFIX, alarm_message, seq_base, site_name
from gateway.sinks.mqtt_schema import MqttEncoder

ROOT = Path(__file__).resolve().parents[1]
#: the kinds of applied messages that are the gateways' data (statuses go
#: to every instance and are counted apart)
DATA_KINDS = ("snapshot", "stat", "alarm")
SECRET = "bench-webhook-secret-0123456789"


class BenchError(RuntimeError):
    pass


# ------------------------------------------------------------------ registry


def build_registry(url: str, gateways: int, victims: int) -> str:
    """Migrate the database at ``url``, register ``gateways`` mines of one
    gateway each (``mine-00000/gw01`` ...) and ``victims`` more
    (``victim-1/gw01`` ...) in one county, and an admin; return the admin's
    API token (for the ingest counters)."""
    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel
    from supervision.db import make_engine, make_sessionmaker
    from supervision.db.migrate import upgrade
    from supervision.registry import service as reg
    from supervision.registry.models import Gateway, Mine

    engine = make_engine(url)
    try:
        upgrade(engine)
        now = time.time_ns()
        with make_sessionmaker(engine)() as db, db.begin():
            reg.add_region(db, "BR", "Bench region")
            reg.add_city(db, "BR", "BC", "Bench city")
            county = reg.add_county(db, "BC", "BK", "Bench county")
            sites = [site_name(i) for i in range(gateways)]
            sites += [f"victim-{i + 1}" for i in range(victims)]
            mines = [Mine(county_id=county.id, code=f"M-{s}", name=s, status="producing") for s in sites]  # fmt: skip
            db.add_all(mines)
            db.flush()
            db.add_all(
                Gateway(
                    mine_id=m.id,
                    site=s,
                    name="gw01",
                    topic_key=reg.topic_key(s, "gw01"),
                    created_ns=now,
                )
                for m, s in zip(mines, sites, strict=True)
            )
            user = auth.create_user(db, "bench-admin", "admin", area=AreaLevel.ALL, now_ns=now)
            return auth.issue_token(db, user, now_ns=now)
    finally:
        engine.dispose()


# ----------------------------------------------------------- webhook receiver


@dataclass
class Received:
    mono: float
    event: str
    kind: str
    gateway: str


class WebhookReceiver:
    """A local HTTP server taking the platform's webhook POSTs; every one
    is kept with its arrival time (monotonic clock of this process)."""

    def __init__(self) -> None:
        self.got: list[Received] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.monotonic()
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
                receiver.take(now, body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def take(self, now: float, body: bytes) -> None:
        try:
            doc = json.loads(body)
        except ValueError:
            return
        items = doc.get("events", [doc]) if doc.get("group") else [doc]
        with self.cond:
            for ev in items:
                alert = ev.get("alert", {})
                gw = str(alert.get("evidence", {}).get("gateway", ""))
                self.got.append(Received(now, ev.get("event", ""), alert.get("kind", ""), gw))
            self.cond.notify_all()

    def wait_offline(self, gateway: str, after: float, timeout_s: float) -> float | None:
        """Arrival time of the first ``gateway_offline`` fired for ``gateway``."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while True:
                for r in self.got:
                    if r.mono >= after and r.kind == "gateway_offline" and r.gateway == gateway:
                        return r.mono
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------- alarm stream


@dataclass
class AlarmStream:
    """Raises an alarm on one gateway after another at ``rate`` per second
    (each cleared ``clear_after_s`` later), from this process, so the time
    of each raise is known here; the latency is its ``gateway_alarm`` alert
    arriving at the webhook receiver."""

    port: int
    gateways: int
    rate: float
    clear_after_s: float = 2.0
    raised: dict[str, list[float]] = field(default_factory=dict)  # label -> raise times
    published: int = 0
    stop: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-alarms-{os.getpid()}")  # fmt: skip
        self.client.max_inflight_messages_set(1000)
        self.client.connect("127.0.0.1", self.port, keepalive=60)
        self.client.loop_start()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        encs = {}
        seqs: dict[int, int] = {}
        base = seq_base() + 1  # odd: the load generator's are even
        clears: list[tuple[float, int]] = []
        t0 = time.monotonic()
        k = 0
        while not self.stop.is_set():
            now = time.monotonic()
            while clears and clears[0][0] <= now:
                _, g = clears.pop(0)
                self._publish(encs[g], g, seqs, base, "cleared")
            if now >= t0 + k / self.rate:
                g = k % self.gateways
                if g not in encs:
                    encs[g] = MqttEncoder(PREFIX, site_name(g), "gw01")
                label = f"{site_name(g)}/gw01"
                self.raised.setdefault(label, []).append(time.monotonic())
                self._publish(encs[g], g, seqs, base, "raised")
                clears.append((now + self.clear_after_s, g))
                k += 1
            time.sleep(0.005)
        self.client.disconnect()
        self.client.loop_stop()

    def _publish(self, enc: MqttEncoder, g: int, seqs: dict[int, int], base: int, state: str) -> None:  # fmt: skip
        seqs[g] = seqs.get(g, base) + 2
        topic, body = alarm_message(enc, seqs[g], time.time_ns(), state)
        self.client.publish(topic, body, qos=1)
        self.published += 1

    def latencies(self, got: Sequence[Received], since: float) -> list[float]:
        """Raise → webhook seconds of the alarms raised after ``since``."""
        out = []
        taken: set[tuple[str, float]] = set()
        for r in got:
            if r.kind != "gateway_alarm" or r.event != "fired":
                continue
            times = [t for t in self.raised.get(r.gateway, []) if t <= r.mono]
            if not times or times[-1] < since or (r.gateway, times[-1]) in taken:
                continue
            taken.add((r.gateway, times[-1]))
            out.append(r.mono - times[-1])
        return out


# ------------------------------------------------------------------ instances


@dataclass
class Instance:
    name: str
    port: int
    log: Path
    pid: int


def platform_toml(db_url: str, http_port: int, mqtt_port: int, name: str, webhook: str) -> str:
    return (
        f'[server]\nport = {http_port}\npage_refresh_s = 0\n'
        f'[database]\nurl = "{db_url}"\n'
        f'[mqtt]\nport = {mqtt_port}\nclient_id = "bench-{name}"\nsession_expiry_s = 0\n'
        'shared_group = "bench"\n'
        "[alerting]\nheartbeat_timeout_s = 900\n"
        f'[[notify.webhooks]]\nname = "bench"\nurl = "{webhook}"\nsecret = "{SECRET}"\n'
        'events = ["fired"]\n'
    )  # fmt: skip


def start_instances(
    children: Children, work: Path, count: int, db_url: str, mqtt_port: int, webhook: str
) -> list[Instance]:
    from tests.servers import free_port  # the project's launcher helpers

    out = []
    for i in range(count):
        name = f"i{i + 1}"
        port = free_port()
        cfg = work / f"platform-{name}.toml"
        cfg.write_text(platform_toml(db_url, port, mqtt_port, name, webhook))
        log = work / f"platform-{name}.log"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(cfg)]
        proc = children.start(f"platform-{name}", argv, log=log, cwd=work, env=env)
        out.append(Instance(name, port, log, proc.pid))
    for inst in out:
        if not wait_for(lambda inst=inst: "subscribed to" in _text(inst.log), 60, 0.1):
            raise BenchError(f"platform {inst.name} did not subscribe: {_text(inst.log)[-2000:]}")
    return out


def _text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def ingest_stats(inst: Instance, token: str) -> dict[str, dict[str, int]]:
    req = urllib.request.Request(
        f"http://127.0.0.1:{inst.port}/api/v1/ingest/stats",
        headers={"Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(req, timeout=30) as r:
        doc: dict[str, dict[str, int]] = json.load(r)
    return doc


def applied_data(stats: dict[str, dict[str, int]]) -> int:
    return sum(stats.get("applied", {}).get(k, 0) for k in DATA_KINDS)


#: what ``AlarmStream`` publishes: the gateway's ``alarms/active/<alarm>``
#: copy, a raise (``alarm``) or the empty clear (``alarm_clear``); that
#: topic is subscribed plainly, so every instance applies each one
ALARM_KINDS = ("alarm", "alarm_clear")


def applied_once(stats: list[dict[str, dict[str, int]]]) -> int:
    """Messages applied by the instances together, each counted once: the
    shared-subscription data summed, the alarm stream (every instance's
    copy) from the instance that applied most of it."""
    data = sum(s.get("applied", {}).get(k, 0) for s in stats for k in ("snapshot", "stat"))
    alarms = [sum(s.get("applied", {}).get(k, 0) for k in ALARM_KINDS) for s in stats]
    return data + max(alarms, default=0)


# ----------------------------------------------------------- load generator


class LoadProcess:
    """``bench.platform_load load`` in a child process; its per-second
    report lines are read by a thread (the latest is ``self.last``)."""

    def __init__(self, children: Children, work: Path, port: int, gateways: int, duration_s: float, interval_s: float, connections: int) -> None:  # fmt: skip
        import subprocess

        argv = [sys.executable, "-m", "bench.platform_load", "load", "--port", str(port),
                "--gateways", str(gateways), "--duration", str(duration_s),
                "--interval", str(interval_s), "--connections", str(connections)]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.children = children
        self.proc = children.start("load", argv, log=work / "load.log", cwd=work, env=env, stdout=subprocess.PIPE)  # fmt: skip
        self.last: dict[str, Any] = {"t": 0.0, "due": 0, "sent": 0, "acked": 0, "statuses": 0}
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self.last = json.loads(line)
            except ValueError:
                continue

    def snapshot(self) -> dict[str, Any]:
        return dict(self.last)

    def stop(self) -> None:
        self.children.stop(self.proc, grace_s=5.0)

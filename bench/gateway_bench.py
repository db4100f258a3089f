"""Gateway benchmark: minegate against modpoll and thingsboard-gateway.

Usage: python -m bench.gateway_bench [--devices 50] [--duration 30] [--quick]
                                     [--only minegate,modpoll,thingsboard]

One run starts the shared peers once (several pymodbus server processes
with N devices of 100 holding registers, one Mosquitto, a subscriber, and a
VictoriaMetrics for the InfluxDB pass), then runs each tool in turn against
them at the same offered load (every device read every ``--poll-ms``, one
read of 100 registers):

* ``minegate`` + MQTT sink (local store on), then an outage of the broker
  and the backlog drain; ``minegate`` + InfluxDB v2 sink to VictoriaMetrics,
  then an outage of VictoriaMetrics and its drain;
* ``modpoll`` (MQTT only, no storage), one process per server endpoint;
* ``thingsboard-gateway`` (modbus connector, MQTT, memory storage).

For each: values/s delivered, values per CPU-second of the tool's processes,
peak RSS, latency from poll to server acknowledgement (p50, p99). Results go
to ``bench/results/gateway.json`` and ``.md`` (with ``--quick``: to
``bench/_work/gateway/``) and a table on stdout. ``docs/benchmarks.md``
describes the method. Every child process is stopped at the end, on error
and on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import itertools
import json
import os
import platform
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import gateway_report as report
from bench.gateway_procs import (
    Children,
    descendants,
    peak_rss_mib,
    reset_peak,
    tree_cpu_seconds,
    wait_for,
)
from bench.gateway_sub import percentile
from bench.gateway_tools import (
    MODPOLL_SPEC,
    TB_SPECS,
    Endpoint,
    devices_of,
    ensure_venv,
    minegate_config,
    modpoll_argv,
    modpoll_csv,
    package_version,
    thingsboard_config,
)
from bench.gateway_watch import StoreWatcher

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work"
TOOLS = ("minegate", "modpoll", "thingsboard")
VENV_BIN = Path(sys.executable).parent


class BenchError(RuntimeError):
    pass


# --- the subscriber process ------------------------------------------------------


class Subscriber:
    """``bench.gateway_sub`` in a child process, driven over its stdin/stdout."""

    def __init__(self, children: Children, mqtt_port: int, log: Path, max_s: float) -> None:
        self.proc = children.start(
            "subscriber",
            [sys.executable, "-m", "bench.gateway_sub", "--port", str(mqtt_port), "--max-s", f"{max_s:.0f}"],
            log=log,
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        self._read(20.0)

    def _read(self, timeout_s: float) -> dict[str, Any]:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            raise BenchError("the MQTT subscriber did not answer")
        line = self.proc.stdout.readline()
        if not line:
            raise BenchError(f"the MQTT subscriber exited ({self.proc.poll()})")
        out: dict[str, Any] = json.loads(line)
        return out

    def command(self, cmd: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write((cmd + "\n").encode())
        self.proc.stdin.flush()
        return self._read(20.0)

    def rate(self, tool: str, seconds: float) -> float:
        """Values/s of ``tool`` over the next ``seconds``."""
        self.command(f"start {tool}")
        time.sleep(seconds)
        return float(self.command(f"stop {tool}")["values"]) / seconds


# --- measuring ----------------------------------------------------------------------


def check_alive(procs: list[subprocess.Popen[bytes]], what: str, log: Path) -> None:
    for p in procs:
        if p.poll() is not None:
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            raise BenchError(f"{what} exited with code {p.returncode}; log {log}:\n{tail}")


def wait_flowing(
    probe: Any, procs: list[subprocess.Popen[bytes]], what: str, log: Path, timeout_s: float
) -> float:
    """Wait (bounded) until ``probe()`` reports values/s > 0; returns the rate."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check_alive(procs, what, log)
        rate = float(probe())
        if rate > 0:
            return rate
    raise BenchError(f"{what}: no values delivered within {timeout_s:.0f} s (log: {log})")


def measure(
    tool: str,
    procs: list[subprocess.Popen[bytes]],
    duration_s: float,
    sub: Subscriber | None,
    watcher: StoreWatcher | None,
    peers: list[int],
    log: Path,
) -> dict[str, Any]:
    """One measuring window: CPU, peak RSS, delivered values and latency."""
    roots = [p.pid for p in procs]
    peak_reset = reset_peak([p for r in roots for p in descendants(r)])
    cpu0, peers0 = tree_cpu_seconds(roots), tree_cpu_seconds(peers)
    if sub is not None:
        sub.command(f"start {tool}")
    t0, m0 = time.time(), time.monotonic()
    while time.monotonic() - m0 < duration_s:
        time.sleep(min(1.0, duration_s - (time.monotonic() - m0)))
        check_alive(procs, tool, log)
    counted = sub.command(f"stop {tool}") if sub is not None else None
    t1, m1 = time.time(), time.monotonic()
    cpu1, peers1 = tree_cpu_seconds(roots), tree_cpu_seconds(peers)
    window = m1 - m0
    cpu = cpu1 - cpu0
    out: dict[str, Any] = {
        "window_s": round(window, 2),
        "cpu_s": round(cpu, 2),
        "cpu_cores": round(cpu / window, 3),
        "peak_rss_mib": round(peak_rss_mib(roots), 1),
        "peak_rss_since": "window start" if peak_reset else "process start",
        "peers_cpu_cores": round((peers1 - peers0) / window, 3),
        "processes": len(roots),
    }
    if counted is not None:
        out["mqtt"] = {k: v for k, v in counted.items() if k not in ("first_rx", "last_rx")}
        out["values"] = counted["values"]
        out["latency_p50_ms"] = counted["latency_p50_ms"]
        out["latency_p99_ms"] = counted["latency_p99_ms"]
        out["latency_source"] = "subscriber"
    if watcher is not None:
        s0, s1 = watcher.at(t0), watcher.at(t1)
        lat = sorted(watcher.latencies(t0, t1))
        acked = (s1.acked_values - s0.acked_values) if s0 and s1 else 0
        pend = [s.pending_values for s in watcher.between(t0, t1)]
        out["store"] = {
            "acked_sample_values": acked,
            "ack_latency_p50_ms": _pct_ms(lat, 50),
            "ack_latency_p99_ms": _pct_ms(lat, 99),
            "ack_latency_samples": len(lat),
            "pending_values_max": max(pend, default=0),
            "watch_error": watcher.error,
        }
        if counted is None:
            out["values"] = acked
            out["latency_p50_ms"] = out["store"]["ack_latency_p50_ms"]
            out["latency_p99_ms"] = out["store"]["ack_latency_p99_ms"]
            out["latency_source"] = "store acks"
    out["values_per_s"] = round(out.get("values", 0) / window, 1)
    out["values_per_cpu_s"] = round(out.get("values", 0) / cpu, 1) if cpu > 0 else None
    return out


def _pct_ms(sorted_s: list[float], q: float) -> float | None:
    value = percentile(sorted_s, q)
    return None if value is None else round(value * 1000.0, 1)


def outage_and_drain(
    server: Any,
    watcher: StoreWatcher,
    gateway: subprocess.Popen[bytes],
    log: Path,
    outage_s: float,
    timeout_s: float,
) -> dict[str, Any]:
    """Stop ``server`` for ``outage_s`` while polling goes on, restart it,
    and time the drain of the backlog: until the sink's cursor passes the
    last record stored before the restart, from one catch-up batch before
    the first new ack."""
    server.stop()
    down = time.time()
    m0 = time.monotonic()
    while time.monotonic() - m0 < outage_s:
        time.sleep(0.5)
        check_alive([gateway], "minegate", log)
    server.start()
    up = time.time()
    at_up = watcher.last()
    if at_up is None:
        raise BenchError("store watcher has no samples")
    backlog_end = watcher.last_seq()
    out: dict[str, Any] = {
        "outage_s": round(up - down, 1),
        "backlog_values_at_restart": at_up.pending_values,
        "backlog_last_seq": backlog_end,
    }
    moved = wait_for(
        lambda: (s := watcher.last()) is not None and s.cursor > at_up.cursor, timeout_s
    )
    if not moved:
        out["error"] = f"no ack within {timeout_s:.0f} s of the restart"
        return out
    resume = watcher.between(up, time.time())
    first = next(i for i, s in enumerate(resume) if s.cursor > at_up.cursor)
    start = resume[first - 1] if first > 0 else at_up

    def drained() -> bool:
        check_alive([gateway], "minegate", log)
        s = watcher.last()
        return s is not None and s.cursor >= backlog_end

    done = wait_for(drained, timeout_s, step_s=0.05)
    end = watcher.last()
    assert end is not None
    # The first ack lands when the first catch-up batch is through, so the
    # drain began about one batch earlier: go back by the median time
    # between acks during the drain (not before the restart).
    steps = [s for s in watcher.between(start.t, end.t) if s.cursor > start.cursor]
    moves = [b.t for a, b in itertools.pairwise([start, *steps]) if b.cursor > a.cursor]
    gaps = sorted(b - a for a, b in itertools.pairwise(moves))
    batch_s = gaps[len(gaps) // 2] if gaps else moves[0] - up
    began = max(up, moves[0] - batch_s)
    span = end.t - began
    values = end.acked_all_values - start.acked_all_values
    out.update(
        {
            "reconnect_s": round(began - up, 2),
            "caught_up": done,
            "acks_during_drain": len(moves),
            "drain_s": round(span, 2),
            "drained_values": values,
            "drain_values_per_s": round(values / span, 1) if span > 0 else None,
            "backlog_values_at_end": end.pending_values,
            "from_restart_values_per_s": round(values / (end.t - up), 1),
        }
    )
    if not done:
        out["error"] = f"backlog not drained within {timeout_s:.0f} s"
    return out


# --- the tools ----------------------------------------------------------------------


def run_minegate(
    ctx: Context, sink: str, outage_server: Any, influx_url: str | None
) -> dict[str, Any]:
    name = f"minegate-{sink}"
    wdir = ctx.work / name
    shutil.rmtree(wdir, ignore_errors=True)
    cfg = minegate_config(
        wdir / "site.toml",
        wdir / "data",
        ctx.endpoints,
        poll_interval_s=ctx.poll_s,
        mqtt_port=ctx.mqtt.port if sink == "mqtt" else None,
        influx_url=influx_url,
        bus_per_device=ctx.args.minegate_buses == "device",
    )
    log = wdir / "minegate.log"
    proc = ctx.children.start(
        name,
        [str(VENV_BIN / "minegate"), "run", "--config", str(cfg), "--log-level", "warning"],
        log=log,
        cwd=ROOT,
    )
    sink_name = "mqtt" if sink == "mqtt" else "influx"
    watcher = StoreWatcher(wdir / "data" / "minegate.sqlite", sink_name, max_s=ctx.max_s)
    watcher.start()
    try:
        if sink == "mqtt":
            probe: Any = lambda: ctx.sub.rate("minegate", 1.0)  # noqa: E731
        else:
            probe = lambda: _watch_rate(watcher, 1.0)  # noqa: E731
        wait_flowing(probe, [proc], name, log, 60.0)
        time.sleep(ctx.warmup_s)
        res = measure(
            "minegate",
            [proc],
            ctx.duration_s,
            ctx.sub if sink == "mqtt" else None,
            watcher,
            ctx.peer_pids(),
            log,
        )
        res.update({"tool": name, "sink": sink, "store": res.get("store", {})})
        if ctx.outage_s > 0:
            print(f"  {name}: {res['values_per_s']:,.0f} values/s; outage of {sink} server ...")
            res["drain"] = outage_and_drain(
                outage_server,
                watcher,
                proc,
                log,
                ctx.outage_s,
                ctx.drain_timeout_s,
            )
        code = ctx.children.stop(proc, signal.SIGTERM, grace_s=30.0)
        res["exit_code"] = code
        res["gateway_metrics"] = gateway_metrics(wdir / "data")
        return res
    finally:
        watcher.stop()
        if proc.poll() is None:
            ctx.children.stop(proc)


def gateway_metrics(data_dir: Path) -> dict[str, Any]:
    """The gateway's own totals for the whole run (``minegate status --json``):
    polls, overruns, request latency as its pollers saw it."""
    try:
        res = subprocess.run(
            [str(VENV_BIN / "minegate"), "status", "--data-dir", str(data_dir), "--json"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        status = json.loads(res.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        return {"error": str(exc)}
    metrics = status.get("metrics", {})
    out = {k: v for k, v in metrics.items() if k.startswith(("total.", "store.", "queue."))}
    out["counters"] = status.get("counters", {})
    return out


def _watch_rate(watcher: StoreWatcher, seconds: float) -> float:
    s0 = watcher.last()
    time.sleep(seconds)
    s1 = watcher.last()
    if s0 is None or s1 is None:
        return 0.0
    return (s1.acked_values - s0.acked_values) / seconds


def run_modpoll(ctx: Context) -> dict[str, Any]:
    wdir = ctx.work / "modpoll"
    shutil.rmtree(wdir, ignore_errors=True)
    bindir = ensure_venv(
        WORK / "venv-modpoll", (MODPOLL_SPEC,), "modpoll", WORK / "venv-modpoll.log"
    )
    ctx.versions["modpoll"] = package_version(bindir, "modpoll")
    ctx.versions["modpoll_pymodbus"] = package_version(bindir, "pymodbus")
    log = wdir / "modpoll.log"
    procs = []
    devices = devices_of(ctx.endpoints)
    for k, ep in enumerate(ctx.endpoints):
        csv = modpoll_csv(wdir / f"devices-{k + 1}.csv", [d for d in devices if d.port == ep.port])
        argv = modpoll_argv(
            bindir, csv, ep.port, ctx.mqtt.port, ctx.poll_s, f"modpoll-bench-{k + 1}"
        )
        procs.append(ctx.children.start(f"modpoll-{k + 1}", argv, log=log, cwd=wdir))
    try:
        wait_flowing(lambda: ctx.sub.rate("modpoll", 1.0), procs, "modpoll", log, 60.0)
        time.sleep(ctx.warmup_s)
        res = measure("modpoll", procs, ctx.duration_s, ctx.sub, None, ctx.peer_pids(), log)
        res.update({"tool": "modpoll", "sink": "mqtt"})
        return res
    finally:
        for p in procs:
            ctx.children.stop(p, signal.SIGINT, grace_s=10.0)


def run_thingsboard(ctx: Context) -> dict[str, Any]:
    wdir = ctx.work / "thingsboard"
    shutil.rmtree(wdir, ignore_errors=True)
    bindir = ensure_venv(WORK / "venv-tb", TB_SPECS, "thingsboard-gateway", WORK / "venv-tb.log")
    ctx.versions["thingsboard-gateway"] = package_version(bindir, "thingsboard-gateway")
    ctx.versions["thingsboard_pymodbus"] = package_version(bindir, "pymodbus")
    conf = thingsboard_config(
        wdir / "config", devices_of(ctx.endpoints), ctx.mqtt.port, max(1, round(ctx.poll_s * 1000))
    )
    # Its update check posts to updates.thingsboard.io at start: send it to a
    # closed loopback port instead, so the benchmark's traffic stays local.
    no_net = "http://127.0.0.1:9"
    env = dict(
        os.environ,
        TB_GW_CONFIG_DIR=str(conf.parent) + "/",
        HTTP_PROXY=no_net,
        HTTPS_PROXY=no_net,
        http_proxy=no_net,
        https_proxy=no_net,
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    log = wdir / "thingsboard.log"
    proc = ctx.children.start(
        "thingsboard", [str(bindir / "thingsboard-gateway")], log=log, cwd=wdir, env=env
    )
    try:
        wait_flowing(lambda: ctx.sub.rate("thingsboard", 1.0), [proc], "thingsboard", log, 120.0)
        time.sleep(ctx.warmup_s)
        res = measure("thingsboard", [proc], ctx.duration_s, ctx.sub, None, ctx.peer_pids(), log)
        res.update({"tool": "thingsboard", "sink": "mqtt"})
        return res
    finally:
        ctx.children.stop(proc, signal.SIGINT, grace_s=15.0)


# --- shared peers -------------------------------------------------------------------


class Context:
    def __init__(self, args: argparse.Namespace, work: Path, children: Children) -> None:
        self.args = args
        self.work = work
        self.children = children
        self.duration_s: float = args.duration
        self.warmup_s: float = args.warmup
        self.outage_s: float = args.outage
        self.drain_timeout_s: float = args.drain_timeout
        self.poll_s: float = args.poll_ms / 1000.0
        self.offered = args.devices * 100 / self.poll_s
        self.max_s = 3600.0
        self.endpoints: list[Endpoint] = []
        self.server_procs: list[subprocess.Popen[bytes]] = []
        self.versions: dict[str, str] = {}
        self.mqtt: Any = None
        self.vm: Any = None
        self.sub: Subscriber = None  # type: ignore[assignment]

    def peer_pids(self) -> list[int]:
        pids = [p.pid for p in self.server_procs]
        for server in (self.mqtt, self.vm):
            if server is not None and server.proc is not None:
                pids.append(server.proc.pid)
        if self.sub is not None:
            pids.append(self.sub.proc.pid)
        return pids


def start_modbus_servers(ctx: Context, devices: int, servers: int) -> None:
    per = [devices // servers + (1 if i < devices % servers else 0) for i in range(servers)]
    log = ctx.work / "modbus-servers.log"
    for count in per:
        if count == 0:
            continue
        proc = ctx.children.start(
            "modbus",
            [sys.executable, "-m", "bench.gateway_modbus", "--units", f"1-{count}", "--max-s", f"{ctx.max_s:.0f}"],
            log=log,
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            raise BenchError(f"Modbus server did not start: {line!r}; see {log}")
        ctx.server_procs.append(proc)
        ctx.endpoints.append(Endpoint(int(line.split()[1]), tuple(range(1, count + 1))))


@contextlib.contextmanager
def peers(ctx: Context, need_vm: bool) -> Iterator[None]:
    # tests.servers: the project's launchers of real servers (imported by
    # name, so that type checking this file does not check the tests)
    servers: Any = importlib.import_module("tests.servers")

    try:
        start_modbus_servers(ctx, ctx.args.devices, ctx.args.servers)
        ctx.mqtt = servers.mosquitto(ctx.work / "mosquitto")
        # a subscriber that falls behind for a moment must not lose messages
        with (ctx.work / "mosquitto" / "mosquitto.conf").open("a") as fh:
            fh.write("max_queued_messages 0\n")
        ctx.mqtt.start()
        if need_vm:
            ctx.vm = servers.victoria(ctx.work / "victoria-metrics")
            ctx.vm.start()
        ctx.sub = Subscriber(ctx.children, ctx.mqtt.port, ctx.work / "subscriber.log", ctx.max_s)
        yield
    finally:
        if ctx.sub is not None:
            with contextlib.suppress(BenchError, OSError, ValueError):
                ctx.sub.command("quit")
        for server in (ctx.vm, ctx.mqtt):
            if server is not None:
                server.stop()
        ctx.children.stop_all()


def versions(ctx: Context) -> dict[str, str]:
    import importlib.metadata as md

    out = {
        "python": platform.python_version(),
        "minegate": md.version("minegate") + "+" + _git_rev(),
        "pymodbus": md.version("pymodbus"),
        "aiomqtt": md.version("aiomqtt"),
        "paho-mqtt": md.version("paho-mqtt"),
        "influxdb-client": md.version("influxdb-client"),
    }
    for deb in ("mosquitto", "victoria-metrics"):  # Debian packages
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            res = subprocess.run(
                ["dpkg-query", "-W", "-f", "${Version}", deb],
                capture_output=True,
                text=True,
                timeout=10,
            )
            out[deb] = res.stdout.strip() or "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        res = subprocess.run(
            ["git", "status", "--porcelain", "--", "drivers", "gateway"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        dirty = [line[3:] for line in res.stdout.splitlines() if line.strip()]
        # the gateway code measured is the working tree, which may differ from HEAD
        out["minegate_uncommitted"] = ", ".join(dirty) or "none"
    out.update(ctx.versions)
    return out


def _git_rev() -> str:
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        res = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return res.stdout.strip() or "?"
    return "?"


# --- main ---------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="minegate vs modpoll vs thingsboard-gateway")
    ap.add_argument(
        "--devices", type=int, default=None, help="simulated devices (default 50; quick 10)"
    )
    ap.add_argument("--servers", type=int, default=None, help="Modbus server processes (default 5)")
    ap.add_argument("--duration", type=float, default=None, help="measuring window, s (default 30)")
    ap.add_argument("--warmup", type=float, default=None, help="after values flow, s (default 8)")
    ap.add_argument("--poll-ms", type=float, default=40.0, help="poll period of every device, ms")
    ap.add_argument(
        "--outage", type=float, default=None, help="server outage, s (0: none; default 25)"
    )
    ap.add_argument("--minegate-buses", choices=("device", "server"), default="device",
                    help="minegate: one bus (TCP connection) per device, or per server endpoint")  # fmt: skip
    ap.add_argument("--drain-timeout", type=float, default=120.0, help="bound on the drain wait, s")
    ap.add_argument("--only", default="minegate,modpoll,thingsboard",
                    help="comma list of minegate, minegate-mqtt, minegate-influx, modpoll, thingsboard")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="small, short run; results in bench/_work")
    ap.add_argument("--results", type=Path, default=None, help="directory for gateway.json/.md")
    args = ap.parse_args(argv)
    q = args.quick
    defaults = {"devices": (10, 50), "servers": (2, 5), "duration": (8.0, 30.0),
                "warmup": (3.0, 8.0), "outage": (6.0, 25.0)}  # fmt: skip
    for key, (quick, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if q else full)
    if args.results is None:
        args.results = WORK / "gateway" if q else ROOT / "bench" / "results"
    wanted = {w.strip() for w in args.only.split(",") if w.strip()}
    known = {"minegate", "minegate-mqtt", "minegate-influx", "modpoll", "thingsboard"}
    if wanted - known:
        ap.error(f"--only: unknown {sorted(wanted - known)}; use {sorted(known)}")
    if "minegate" in wanted:
        wanted |= {"minegate-mqtt", "minegate-influx"}
    args.wanted = wanted
    if not 1 <= args.devices <= 247 * args.servers:
        ap.error("--devices must be 1..247 per server process")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = WORK / "gateway"
    work.mkdir(parents=True, exist_ok=True)
    children = Children()
    ctx = Context(args, work, children)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    started = time.time()
    load_before = os.getloadavg()
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    print(
        f"gateway bench: {args.devices} devices on {args.servers} Modbus servers, "
        f"one read of 100 registers every {args.poll_ms:g} ms "
        f"(offered {ctx.offered:,.0f} values/s), window {args.duration:g} s"
    )
    try:
        with peers(ctx, need_vm="minegate-influx" in args.wanted):
            plan: list[tuple[str, Any]] = []
            if "minegate-mqtt" in args.wanted:
                plan.append(("minegate-mqtt", lambda: run_minegate(ctx, "mqtt", ctx.mqtt, None)))
            if "minegate-influx" in args.wanted:
                plan.append(
                    ("minegate-influx", lambda: run_minegate(ctx, "influx", ctx.vm, ctx.vm.url))
                )
            if "modpoll" in args.wanted:
                plan.append(("modpoll", lambda: run_modpoll(ctx)))
            if "thingsboard" in args.wanted:
                plan.append(("thingsboard", lambda: run_thingsboard(ctx)))
            for name, run in plan:
                print(f"- {name} ...", flush=True)
                try:
                    results[name] = run()
                    r = results[name]
                    print(
                        f"  {name}: {r['values_per_s']:,.0f} values/s, "
                        f"{r['values_per_cpu_s'] or 0:,.0f} values/CPU-s, "
                        f"p99 {r['latency_p99_ms']} ms",
                        flush=True,
                    )
                except (BenchError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
                    errors[name] = str(exc)
                    print(f"  {name} FAILED: {exc}", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        print("interrupted: stopping every process", file=sys.stderr)
        return 130
    doc = {
        "benchmark": "gateway",
        "quick": args.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "machine": report.machine(load_before),
        "versions": versions(ctx),
        "workload": {
            "devices": args.devices,
            "modbus_server_processes": args.servers,
            "registers_per_read": 100,
            "poll_period_ms": args.poll_ms,
            "offered_values_per_s": round(ctx.offered),
            "window_s": args.duration,
            "warmup_s": args.warmup,
            "outage_s": args.outage,
            "values": "every register changes on every read; minegate deadband 0",
        },
        "results": results,
        "errors": errors,
    }
    doc["targets"] = report.targets(doc)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "gateway.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.results / "gateway.md").write_text(report.markdown(doc))
    print()
    print(report.table(doc))
    print(f"\nresults: {args.results / 'gateway.json'}, {args.results / 'gateway.md'}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

"""Gateway at scale: many devices, and the saturation throughput of each tool.

Usage: python -m bench.gateway_scale [--quick] [--cases scale,saturation]

Two parts, sharing one Mosquitto, one VictoriaMetrics and one subscriber:

* **scale** (``--scale-devices 500,2000``): minegate with its store and both
  sinks on (MQTT QoS 1 and InfluxDB v2), N devices of 10 holding registers
  each (``bench/gateway_profiles/bench_holding10.toml``), every device read
  every second, on 4 Modbus server processes (``bench.gateway_modbus``, each
  on as many ports as its devices need: unit ids stop at 247 per endpoint).
  Reported: peak RSS of the gateway over the whole run (start-up included),
  CPU, values/s, polls and overruns (the gateway's own counters), the store
  backlog of each sink over the window (its slope), and the poll-to-ack
  latency of each sink in the first and the second half of the window: a
  gateway that falls behind shows overruns, a growing backlog or a latency
  that climbs.
* **saturation** (``--ladder 40,20,10,5``): 50 devices of 100 registers on
  5 server processes (the workload of ``bench.gateway_bench``), each tool
  (minegate + MQTT, minegate + InfluxDB, modpoll, thingsboard-gateway) run
  at poll periods from the ladder, offering 125,000 to 1,000,000 values/s,
  until the values it delivers stop rising (less than ``--flat`` more than
  its best so far): the best is its saturation throughput.

Results: ``bench/results/gateway_scale.json`` and ``.md`` (``--quick``:
``bench/_work/gateway_scale/``). Method: ``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import math
import os
import select
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import gateway_bench as gb
from bench import gateway_report, gateway_scale_report
from bench.gateway_procs import Children, descendants, peak_rss_mib, status_kib
from bench.gateway_tools import Endpoint, minegate_config
from bench.gateway_watch import StoreWatcher

ROOT = gb.ROOT
WORK = gb.WORK
SCALE_PROFILE, SCALE_POINTS = "bench_holding10", 10
SAT_DEVICES, SAT_POINTS = 50, 100
MAX_UNITS = 247
SAT_TOOLS = ("minegate-mqtt", "minegate-influx", "modpoll", "thingsboard")


# --- Modbus servers ---------------------------------------------------------------


def start_servers(ctx: gb.Context, devices: int, processes: int) -> None:
    """``devices`` spread over ``processes`` server processes, each on as
    many ports as its share needs (at most 247 unit ids per port)."""
    stop_servers(ctx)
    per_proc = [devices // processes + (1 if i < devices % processes else 0) for i in range(processes)]  # fmt: skip
    log = ctx.work / "modbus-servers.log"
    for count in per_proc:
        if count == 0:
            continue
        ports = math.ceil(count / MAX_UNITS)
        units = math.ceil(count / ports)
        proc = ctx.children.start(
            "modbus",
            [sys.executable, "-m", "bench.gateway_modbus", "--units", f"1-{units}",
             "--listeners", str(ports), "--max-s", f"{ctx.max_s:.0f}"],
            log=log,
            cwd=ROOT,
            stdout=subprocess.PIPE,
        )  # fmt: skip
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30.0)
        line = proc.stdout.readline().decode() if ready else ""
        if not line.startswith("READY "):
            raise gb.BenchError(f"Modbus server did not start: {line!r}; see {log}")
        ctx.server_procs.append(proc)
        left = count
        for port in line.split()[1:]:
            n = min(units, left)
            left -= n
            ctx.endpoints.append(Endpoint(int(port), tuple(range(1, n + 1))))


def stop_servers(ctx: gb.Context) -> None:
    for proc in ctx.server_procs:
        ctx.children.stop(proc, grace_s=5.0)
    ctx.server_procs.clear()
    ctx.endpoints.clear()


@contextlib.contextmanager
def shared_peers(ctx: gb.Context) -> Iterator[None]:
    """Mosquitto, VictoriaMetrics and the subscriber for the whole run."""
    servers: Any = importlib.import_module("tests.servers")  # the project's launchers
    try:
        ctx.mqtt = servers.mosquitto(ctx.work / "mosquitto")
        with (ctx.work / "mosquitto" / "mosquitto.conf").open("a") as fh:
            fh.write("max_queued_messages 0\n")  # a slow subscriber loses nothing
        ctx.mqtt.start()
        ctx.vm = servers.victoria(ctx.work / "victoria-metrics")
        ctx.vm.start()
        ctx.sub = gb.Subscriber(ctx.children, ctx.mqtt.port, ctx.work / "subscriber.log", ctx.max_s)
        yield
    finally:
        if ctx.sub is not None:
            with contextlib.suppress(gb.BenchError, OSError, ValueError):
                ctx.sub.command("quit")
        for server in (ctx.vm, ctx.mqtt):
            if server is not None:
                server.stop()
        ctx.children.stop_all()


# --- the scale case ---------------------------------------------------------------


def metric_totals(data_dir: Path, window_s: float) -> dict[str, float]:
    """The gateway's own counters over its last ``window_s`` of running,
    from the METRIC records in its store (read after it stopped): the
    increase of ``total.polls``, ``total.overruns`` and
    ``total.failed_polls`` between the first and the last record of that
    span (each record gives its counters and its time together), and the
    span. The periodic records only: the one written at the stop comes
    after the pollers ended."""
    from gateway.store.codec import decode_payload

    conn = sqlite3.connect(f"file:{data_dir / 'minegate.sqlite'}?mode=ro", uri=True, timeout=5)
    try:
        names = dict(conn.execute("SELECT id, point FROM names").fetchall())
        rows = conn.execute(
            "SELECT ts_ns, payload FROM records WHERE kind = 'metric' ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()
    wanted = ("total.polls", "total.overruns", "total.failed_polls", "total.latency_mean_ms",
              "total.latency_p99_ms")  # fmt: skip
    points: list[dict[str, float]] = []
    for ts_ns, payload in rows:
        ids, values, _ = decode_payload(payload)
        got = {names[i]: v for i, v in zip(ids, values, strict=True) if names.get(i) in wanted}
        points.append({"ts_s": ts_ns / 1e9, **{k: float(v or 0) for k, v in got.items()}})
    # the last record is the one written at the stop, after the pollers
    # ended: not part of the polling
    points = points[:-1]
    if len(points) < 2:
        return {}
    last = points[-1]
    inside = [p for p in points if p["ts_s"] >= last["ts_s"] - window_s - 1.0]
    first = inside[0] if len(inside) >= 2 else points[-2]
    out = {k: last.get(k, 0.0) - first.get(k, 0.0) for k in wanted[:3]}
    out["span_s"] = last["ts_s"] - first["ts_s"]
    out["latency_mean_ms"] = last.get("total.latency_mean_ms", 0.0)
    out["latency_p99_ms"] = last.get("total.latency_p99_ms", 0.0)
    return out


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, y), per second (0 with fewer than 2 points)."""
    if len(points) < 2:
        return 0.0
    n = len(points)
    mt = sum(t for t, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    return sum((t - mt) * (y - my) for t, y in points) / den if den > 0 else 0.0


def _sink_view(w: StoreWatcher, t0: float, t1: float) -> dict[str, Any]:
    mid = (t0 + t1) / 2
    first, second = sorted(w.latencies(t0, mid)), sorted(w.latencies(mid, t1))
    samples = w.between(t0, t1)
    s0, s1 = w.at(t0), w.at(t1)
    acked = (s1.acked_values - s0.acked_values) if s0 and s1 else 0
    pending = [(s.t, float(s.pending_values)) for s in samples]
    return {
        "acked_values_per_s": round(acked / (t1 - t0), 1),
        "ack_p50_ms": [gb._pct_ms(first, 50), gb._pct_ms(second, 50)],
        "ack_p99_ms": [gb._pct_ms(first, 99), gb._pct_ms(second, 99)],
        "backlog_values_start_end": [
            int(pending[0][1]) if pending else None,
            int(pending[-1][1]) if pending else None,
        ],
        "backlog_max_values": int(max((p for _, p in pending), default=0)),
        "backlog_slope_values_per_s": round(_slope(pending), 1),
        "watch_error": w.error,
    }


def run_scale(ctx: gb.Context, devices: int, duration_s: float, warmup_s: float) -> dict[str, Any]:
    """minegate, store + MQTT + InfluxDB sinks, ``devices`` x 10 points at 1 s."""
    args = ctx.args
    start_servers(ctx, devices, args.scale_servers)
    name = f"scale-{devices}"
    wdir = ctx.work / name
    shutil.rmtree(wdir, ignore_errors=True)
    cfg = minegate_config(
        wdir / "site.toml",
        wdir / "data",
        ctx.endpoints,
        poll_interval_s=args.scale_poll_s,
        mqtt_port=ctx.mqtt.port,
        influx_url=ctx.vm.url,
        bus_per_device=args.minegate_buses == "device",
        profile=SCALE_PROFILE,
        extra=("[metrics]", f"interval_s = {args.metrics_s:g}", ""),
    )
    log = wdir / "minegate.log"
    proc = ctx.children.start(
        name,
        [str(gb.VENV_BIN / "minegate"), "run", "--config", str(cfg), "--log-level", "warning"],
        log=log,
        cwd=ROOT,
    )
    store = wdir / "data" / "minegate.sqlite"
    watchers = {s: StoreWatcher(store, s, period_s=0.1, max_s=ctx.max_s) for s in ("mqtt", "influx")}  # fmt: skip
    for w in watchers.values():
        w.start()
    offered = devices * SCALE_POINTS / args.scale_poll_s
    try:
        gb.wait_flowing(lambda: ctx.sub.rate("minegate", 1.0), [proc], name, log, 120.0)
        time.sleep(warmup_s)
        start_peak = peak_rss_mib([proc.pid])  # start-up and warm-up (reset by measure)
        res = gb.measure("minegate", [proc], duration_s, ctx.sub, watchers["mqtt"], ctx.peer_pids(), log)  # fmt: skip
        t1 = time.time()
        t0 = t1 - res["window_s"]
        rss_now = sum(status_kib(p, "VmRSS") for p in descendants(proc.pid)) / 1024.0
        code = ctx.children.stop(proc, signal.SIGTERM, grace_s=30.0)
    finally:
        for w in watchers.values():
            w.stop()
        if proc.poll() is None:
            ctx.children.stop(proc)
    m = metric_totals(wdir / "data", res["window_s"])
    if not m:
        raise gb.BenchError(f"{name}: the gateway stored no metrics records (log: {log})")
    out = {
        "tool": "minegate (store + MQTT + InfluxDB)",
        "devices": devices,
        "server_processes": len(ctx.server_procs),
        "endpoints": len(ctx.endpoints),
        "offered_values_per_s": round(offered),
        "window_s": res["window_s"],
        "values_per_s": res["values_per_s"],
        "cpu_cores": res["cpu_cores"],
        "peak_rss_mib": round(max(start_peak, res["peak_rss_mib"]), 1),
        "peak_rss_startup_mib": round(start_peak, 1),
        "peak_rss_window_mib": res["peak_rss_mib"],
        "rss_end_mib": round(rss_now, 1),
        "peers_cpu_cores": res["peers_cpu_cores"],
        "latency_p50_ms": res["latency_p50_ms"],
        "latency_p99_ms": res["latency_p99_ms"],
        "gateway_counters": {
            "span_s": round(m["span_s"], 1),
            "polls": round(m["total.polls"]),
            "polls_expected": round(devices * m["span_s"] / args.scale_poll_s),
            "overruns": round(m["total.overruns"]),
            "failed_polls": round(m["total.failed_polls"]),
            "request_latency_mean_ms": m["latency_mean_ms"],
            "request_latency_p99_ms": m["latency_p99_ms"],
        },
        "sinks": {s: _sink_view(w, t0, t1) for s, w in watchers.items()},
        "exit_code": code,
    }
    return out


# --- the saturation ramp -------------------------------------------------------------


def run_saturation(ctx: gb.Context) -> dict[str, Any]:
    args = ctx.args
    start_servers(ctx, args.sat_devices, args.sat_servers)
    ctx.args.devices = sum(len(ep.units) for ep in ctx.endpoints)
    runs: dict[str, Any] = {}
    for tool in args.sat_tools:
        steps: list[dict[str, Any]] = []
        best = 0.0
        for poll_ms in args.ladder:
            ctx.poll_s = poll_ms / 1000.0
            ctx.args.poll_ms = poll_ms
            ctx.offered = ctx.args.devices * SAT_POINTS / ctx.poll_s
            print(f"- {tool} at {poll_ms:g} ms (offered {ctx.offered:,.0f} values/s) ...", flush=True)  # fmt: skip
            try:
                r = _run_tool(ctx, tool)
            except (gb.BenchError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
                steps.append({"poll_ms": poll_ms, "error": str(exc)})
                print(f"  {tool} FAILED: {exc}", file=sys.stderr, flush=True)
                break
            step = {
                "poll_ms": poll_ms,
                "offered_values_per_s": round(ctx.offered),
                "values_per_s": r["values_per_s"],
                "values_per_cpu_s": r["values_per_cpu_s"],
                "cpu_cores": r["cpu_cores"],
                "peers_cpu_cores": r["peers_cpu_cores"],
                "peak_rss_mib": r["peak_rss_mib"],
                "latency_p99_ms": r["latency_p99_ms"],
            }
            if "store" in r:
                step["backlog_max_values"] = r["store"].get("pending_values_max")
            steps.append(step)
            print(f"  {r['values_per_s']:,.0f} values/s, {r['cpu_cores']} cores", flush=True)
            if r["values_per_s"] < best * (1 + args.flat):
                break  # no longer rising: saturated
            best = max(best, r["values_per_s"])
        ok = [s for s in steps if "values_per_s" in s]
        top = max(ok, key=lambda s: s["values_per_s"], default=None)
        runs[tool] = {
            "steps": steps,
            "saturation_values_per_s": top["values_per_s"] if top else None,
            "at_poll_ms": top["poll_ms"] if top else None,
            "saturated": len(ok) >= 2 and ok[-1]["values_per_s"] < (best * (1 + args.flat)),
        }
    stop_servers(ctx)
    return runs


def _run_tool(ctx: gb.Context, tool: str) -> dict[str, Any]:
    if tool == "minegate-mqtt":
        return gb.run_minegate(ctx, "mqtt", ctx.mqtt, None)
    if tool == "minegate-influx":
        return gb.run_minegate(ctx, "influx", ctx.vm, ctx.vm.url)
    if tool == "modpoll":
        return gb.run_modpoll(ctx)
    return gb.run_thingsboard(ctx)


# --- main -----------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="minegate at scale, and saturation throughput")
    ap.add_argument("--cases", default="scale,saturation", help="scale, saturation or both")
    ap.add_argument("--scale-devices", default=None, help="comma list (default 500,2000)")
    ap.add_argument("--scale-servers", type=int, default=4, help="server processes (default 4)")
    ap.add_argument("--scale-poll-s", type=float, default=1.0, help="poll period, s")
    ap.add_argument("--scale-duration", type=float, default=None, help="window, s (default 60)")
    ap.add_argument("--scale-warmup", type=float, default=None, help="warm-up, s (default 15)")
    ap.add_argument("--metrics-s", type=float, default=None,
                    help="the gateway's metrics interval, s (default 10, its default)")  # fmt: skip
    ap.add_argument("--ladder", default=None, help="poll periods, ms (default 40,20,10,5)")
    ap.add_argument("--flat", type=float, default=0.05, help="saturated below this gain")
    ap.add_argument("--sat-devices", type=int, default=None, help="devices (default 50)")
    ap.add_argument("--sat-servers", type=int, default=5, help="server processes (default 5)")
    ap.add_argument("--sat-duration", type=float, default=None, help="window, s (default 15)")
    ap.add_argument("--sat-warmup", type=float, default=None, help="warm-up, s (default 5)")
    ap.add_argument("--only", default=",".join(SAT_TOOLS), help="saturation tools, comma list")
    ap.add_argument("--minegate-buses", choices=("device", "server"), default="device",
                    help="one bus (TCP connection) per device, or per server endpoint")  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="tiny, short run; results in bench/_work")
    ap.add_argument("--results", type=Path, default=None, help="directory for the results")
    ap.add_argument("--work", type=Path, default=WORK / "gateway_scale", help="scratch directory")
    args = ap.parse_args(argv)
    q = args.quick
    defaults = {"scale_devices": ("20", "500,2000"), "scale_duration": (4.0, 60.0),
                "scale_warmup": (1.0, 15.0), "metrics_s": (1.0, 10.0), "ladder": ("200,100", "40,20,10,5"),
                "sat_duration": (3.0, 15.0), "sat_devices": (6, SAT_DEVICES), "sat_warmup": (1.0, 5.0)}  # fmt: skip
    for key, (quick, full) in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, quick if q else full)
    args.cases = {c.strip() for c in args.cases.split(",") if c.strip()}
    if args.cases - {"scale", "saturation"}:
        ap.error("--cases: scale, saturation")
    try:
        args.scale_devices = [int(x) for x in str(args.scale_devices).split(",") if x]
        args.ladder = [float(x) for x in str(args.ladder).split(",") if x]
    except ValueError as exc:
        ap.error(f"--scale-devices / --ladder: numbers separated by commas ({exc})")
    args.sat_tools = [t.strip() for t in args.only.split(",") if t.strip()]
    if set(args.sat_tools) - set(SAT_TOOLS):
        ap.error(f"--only: one of {', '.join(SAT_TOOLS)}")
    if any(not 1 <= d <= MAX_UNITS * 64 * args.scale_servers for d in args.scale_devices):
        ap.error("--scale-devices: 1 .. 247 x 64 ports x --scale-servers")
    if args.results is None:
        args.results = WORK / "gateway_scale" if q else ROOT / "bench" / "results"
    # what gateway_bench.Context reads
    args.duration, args.warmup, args.outage, args.drain_timeout = (
        args.sat_duration, args.sat_warmup, 0.0, 60.0)  # fmt: skip
    args.poll_ms, args.devices = args.ladder[0], args.sat_devices
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.work.resolve()  # the servers run in other directories
    work.mkdir(parents=True, exist_ok=True)
    children = Children()
    ctx = gb.Context(args, work, children)

    def on_term(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        return _main(args, ctx)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _main(args: argparse.Namespace, ctx: gb.Context) -> int:
    started, load_before = time.time(), os.getloadavg()
    scale: dict[str, Any] = {}
    saturation: dict[str, Any] = {}
    errors: dict[str, str] = {}
    try:
        with shared_peers(ctx):
            if "scale" in args.cases:
                for n in args.scale_devices:
                    print(f"- scale: {n} devices x {SCALE_POINTS} points every {args.scale_poll_s:g} s ...", flush=True)  # fmt: skip
                    try:
                        r = run_scale(ctx, n, args.scale_duration, args.scale_warmup)
                        scale[str(n)] = r
                        print(f"  peak RSS {r['peak_rss_mib']} MiB, {r['cpu_cores']} cores, "
                              f"{r['values_per_s']:,.0f} values/s", flush=True)  # fmt: skip
                    except (
                        gb.BenchError,
                        RuntimeError,
                        OSError,
                        subprocess.SubprocessError,
                    ) as exc:
                        errors[f"scale-{n}"] = str(exc)
                        print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
                stop_servers(ctx)
            if "saturation" in args.cases:
                saturation = run_saturation(ctx)
                errors.update({f"saturation-{t}": s["steps"][-1]["error"] for t, s in saturation.items()
                               if s["steps"] and "error" in s["steps"][-1]})  # fmt: skip
    except KeyboardInterrupt:
        print("interrupted: stopping every process", file=sys.stderr)
        return 130
    doc = {
        "benchmark": "gateway_scale",
        "quick": args.quick,
        "started_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "elapsed_s": round(time.time() - started, 1),
        "machine": gateway_report.machine(load_before),
        "versions": gb.versions(ctx),
        "workload": {
            "scale": {
                "points_per_device": SCALE_POINTS,
                "poll_period_s": args.scale_poll_s,
                "server_processes": args.scale_servers,
                "window_s": args.scale_duration,
                "warmup_s": args.scale_warmup,
                "sinks": ["mqtt (QoS 1)", "influxdb_v2"],
                "minegate_buses": args.minegate_buses,
            },
            "saturation": {
                "devices": args.devices,
                "registers_per_read": SAT_POINTS,
                "server_processes": args.sat_servers,
                "ladder_poll_ms": args.ladder,
                "window_s": args.sat_duration,
                "warmup_s": args.sat_warmup,
                "flat": args.flat,
            },
        },
        "scale": scale,
        "saturation": saturation,
        "errors": errors,
    }
    doc["targets"] = gateway_scale_report.targets(doc)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "gateway_scale.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.results / "gateway_scale.md").write_text(gateway_scale_report.markdown(doc))
    print()
    print(gateway_scale_report.markdown(doc))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

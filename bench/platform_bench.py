"""The supervision platform under many gateways: throughput, CPU, memory,
alert latency, offline detection, and how many gateways one instance carries.

    python -m bench.platform_bench            # the full run (about 10 minutes)
    python -m bench.platform_bench --quick    # tiny N, SQLite only: the smoke test's run

Each case starts a fresh mosquitto on loopback, a fresh database (a SQLite
file, or a new database on a PostgreSQL server started like the tests
start it: ``initdb`` + ``pg_ctl`` in a temp dir), registers the gateways,
and starts ``minegate platform serve`` once or twice (two instances share
the data topics through the MQTT 5 shared subscription
``$share/bench/...``), with a webhook receiver (a local HTTP server in this
process) subscribed to ``fired`` events. Then:

* a load generator (``bench.platform_load``, a child process) publishes as
  N gateways of 50 points (5 devices x 10) in the gateway's MQTT schema: a
  retained ``online`` status each, a snapshot per device every 20 s, 5-minute
  statistics per device;
* an alarm stream from this process raises an alarm on one gateway after
  another (6 an hour per gateway, cleared 2 s later): each must come out of
  the platform as a ``gateway_alarm`` alert at the webhook receiver: that
  time is the **alert latency** (MQTT publish → webhook POST received);
* victims (``bench.platform_load victim``: one gateway each with its own
  connection and last will) are SIGKILLed: the time until the receiver gets
  their ``gateway_offline`` alert is the **offline detection time**;
* over a measuring window after a warm-up: messages handled per second
  (the instances' own ``/api/v1/ingest/stats``, data messages: snapshots,
  statistics, alarms), per CPU-second of the platform processes
  (utime + stime from /proc, threads included), RSS (``VmRSS``/``VmHWM``),
  the CPU of the database server and the broker for context; after the
  load stops, the time until everything published is applied (nothing may
  be missing).

The **ceiling**: one instance, N ramped up in steps until it falls behind:
at the step's end more than 5 s of load waits, or more than 1 s waits and
it handled less than 95 % of what was published in the step. A step where
the load generator itself could not keep its schedule ends the ramp too
(said so in the results: then the machine, not the platform, was the limit).

Results: ``bench/results/platform.json`` and ``platform.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.gateway_procs import Children, cpu_seconds, descendants, status_kib, wait_for
from bench.gateway_report import machine
from bench.platform_parts import (
    AlarmStream,
    BenchError,
    Instance,
    LoadProcess,
    WebhookReceiver,
    applied_data,
    applied_once,
    build_registry,
    ingest_stats,
    start_instances,
)
from bench.platform_report import markdown, targets

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
ALARMS_PER_GATEWAY_HOUR = 6.0
WARMUP_S = 5.0
WARMUP_QUICK_S = 1.5
BEHIND_SHARE = 0.95
BEHIND_BACKLOG_S = 5.0


@dataclass(frozen=True)
class Case:
    name: str
    db: str  # sqlite | postgresql
    instances: int
    gateways: int
    window_s: float
    victims: int = 0


FULL = (
    Case("sqlite-1x1000", "sqlite", 1, 1000, 40, victims=3),
    Case("sqlite-2x1000", "sqlite", 2, 1000, 30),
    Case("pg-1x1000", "postgresql", 1, 1000, 40, victims=3),
    Case("pg-2x1000", "postgresql", 2, 1000, 30),
    Case("pg-2x10000", "postgresql", 2, 10000, 40),
)
QUICK = (
    Case("sqlite-1x4", "sqlite", 1, 4, 2),
    Case("sqlite-2x4", "sqlite", 2, 4, 2, victims=1),
    Case("pg-1x4", "postgresql", 1, 4, 2),
    Case("pg-2x4", "postgresql", 2, 4, 2, victims=1),
)
RAMP_FULL = (2000, 4000, 8000, 12000, 16000)
RAMP_QUICK = (4,)


class Bench:
    def __init__(self, work: Path, quick: bool, interval_s: float) -> None:
        self.work = work
        self.quick = quick
        self.interval_s = interval_s
        self.warmup_s = WARMUP_QUICK_S if quick else WARMUP_S
        self.children = Children()
        self.receiver = WebhookReceiver()
        self.servers: Any = importlib.import_module("tests.servers")
        self.pg: Any = None
        self._dbs = 0

    def close(self) -> None:
        self.children.stop_all()
        self.receiver.close()
        if self.pg is not None:
            self.pg.stop()

    # ---------------------------------------------------------------- setup

    def database(self, kind: str, work: Path) -> str:
        if kind == "sqlite":
            return f"sqlite:///{work / 'platform.db'}"
        import psycopg

        if self.pg is None:
            pg_mod: Any = importlib.import_module("tests.supervision.pg")
            self.pg = pg_mod.PostgresServer(self.servers.free_port()).start()
        self._dbs += 1
        name = f"bench_{self._dbs}"
        dsn = f"host=127.0.0.1 port={self.pg.port} user=postgres dbname=postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {name}")
        return str(self.pg.url(name))

    def db_pids(self, kind: str) -> list[int]:
        if kind != "postgresql" or self.pg is None:
            return []
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.pg.data / "postmaster.pid").read_text().split()[0])
            return descendants(pid)
        return []

    # --------------------------------------------------------------- a case

    def sample(self, insts: list[Instance], token: str, load: LoadProcess, alarms: AlarmStream, kind: str, broker: int) -> dict[str, Any]:  # fmt: skip
        return {
            "t": time.monotonic(),
            "gen": load.snapshot(),
            "alarms": alarms.published,
            "stats": [ingest_stats(i, token) for i in insts],
            "cpu": [cpu_seconds(descendants(i.pid)) for i in insts],
            "db_cpu": cpu_seconds(self.db_pids(kind)),
            "broker_cpu": cpu_seconds([broker]),
            "load_cpu": cpu_seconds(descendants(load.proc.pid)),
        }

    def offline_probe(self, port: int, site: str, work: Path) -> float | None:
        import subprocess

        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        argv = [sys.executable, "-m", "bench.platform_load", "victim", "--port", str(port), "--site", site]  # fmt: skip
        proc = self.children.start(site, argv, log=work / f"{site}.log", env=env, stdout=subprocess.PIPE)  # fmt: skip
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != b"ready":
            self.children.stop(proc)
            return None
        time.sleep(1.0)  # the platform has its online status
        t_kill = time.monotonic()
        self.children.stop(proc, sig=9, grace_s=5)
        got = self.receiver.wait_offline(f"{site}/gw01", t_kill, 30.0)
        return None if got is None else got - t_kill

    def run_case(self, case: Case) -> dict[str, Any]:
        work = self.work / case.name
        work.mkdir(parents=True, exist_ok=True)
        broker = self.servers.mosquitto(work / "mosquitto").start()
        try:
            return self._run_case(case, work, broker)
        finally:
            self.children.stop_all()
            broker.stop()

    def _run_case(self, case: Case, work: Path, broker: Any) -> dict[str, Any]:
        url = self.database(case.db, work)
        t = time.monotonic()
        token = build_registry(url, case.gateways, case.victims)
        registry_s = time.monotonic() - t
        insts = start_instances(self.children, work, case.instances, url, broker.port, self.receiver.url)  # fmt: skip
        rate = max(0.5, case.gateways * ALARMS_PER_GATEWAY_HOUR / 3600)
        alarms = AlarmStream(broker.port, case.gateways, rate, clear_after_s=1.0 if self.quick else 2.0)  # fmt: skip
        duration = self.warmup_s + case.window_s + 1.0
        load = LoadProcess(self.children, work, broker.port, case.gateways, duration, self.interval_s, 1 if self.quick else 4)  # fmt: skip
        alarms.start()
        time.sleep(self.warmup_s)
        a = self.sample(insts, token, load, alarms, case.db, broker.proc.pid)
        offline: list[float | None] = []

        def probes() -> None:
            for v in range(case.victims):
                offline.append(self.offline_probe(broker.port, f"victim-{v + 1}", work))

        prober = threading.Thread(target=probes, daemon=True)
        prober.start()
        time.sleep(case.window_s)
        b = self.sample(insts, token, load, alarms, case.db, broker.proc.pid)
        rss = [status_kib(i.pid, "VmRSS") / 1024 for i in insts]
        hwm = [status_kib(i.pid, "VmHWM") / 1024 for i in insts]
        alarms.stop.set()
        alarms.thread.join(10)
        load.proc.wait(60)
        load.thread.join(5)
        prober.join(120)
        final = load.snapshot()
        published = final["acked"] - final["statuses"] + alarms.published
        t_stop = time.monotonic()
        last: list[int] = [0]

        def drained() -> bool:
            last[0] = applied_once([ingest_stats(i, token) for i in insts])
            return last[0] >= published

        done = wait_for(drained, 60.0 if not self.quick else 20.0, 0.25)
        drain_s = time.monotonic() - t_stop
        time.sleep(0.5 if self.quick else 3.0)  # the last alerts reach the receiver
        with self.receiver.cond:
            got = list(self.receiver.got)
        lat = alarms.latencies(got, since=a["t"])
        end = [ingest_stats(i, token) for i in insts]
        res = summarise(case, a, b, rss, hwm)
        res |= {
            "registry_s": round(registry_s, 1),
            "alarm_rate_per_s": round(rate, 2),
            "published_total": published,
            "applied_total": last[0],
            "missing_after_drain": max(0, published - last[0]),
            "drained": done,
            "drain_s": round(drain_s, 1),
            "dropped": _dropped(end),
            "alert_latency": _latency(lat, alarms.published),
            "offline_detection_s": [None if x is None else round(x, 3) for x in offline],
        }
        return res

    # ------------------------------------------------------------ the ramp

    def ramp(self, kind: str, steps: tuple[int, ...], step_s: float) -> dict[str, Any]:
        work = self.work / f"ramp-{kind}"
        work.mkdir(parents=True, exist_ok=True)
        broker = self.servers.mosquitto(work / "mosquitto").start()
        out: list[dict[str, Any]] = []
        try:
            url = self.database(kind, work)
            token = build_registry(url, max(steps), 0)
            insts = start_instances(self.children, work, 1, url, broker.port, self.receiver.url)
            alarms = AlarmStream(broker.port, steps[0], 2.0 if not self.quick else 0.5)
            alarms.start()
            before = 0  # data published by the earlier steps' generators
            for n in steps:
                load = LoadProcess(self.children, work, broker.port, n, self.warmup_s + step_s + 1.0, self.interval_s, 1 if self.quick else 4)  # fmt: skip
                time.sleep(self.warmup_s)
                a = self.sample(insts, token, load, alarms, kind, broker.proc.pid)
                time.sleep(step_s)
                b = self.sample(insts, token, load, alarms, kind, broker.proc.pid)
                rss = [status_kib(i.pid, "VmRSS") / 1024 for i in insts]
                hwm = [status_kib(i.pid, "VmHWM") / 1024 for i in insts]
                step = summarise(Case(f"ramp-{n}", kind, 1, n, step_s), a, b, rss, hwm, before)
                load.proc.wait(60)
                load.thread.join(5)
                out.append(step)
                print(_line(step), flush=True)
                if step["behind"] or step["generator_limited"]:
                    break
                final = load.snapshot()
                before += final["acked"] - final["statuses"]
                # the next step starts from an empty backlog
                target = before + alarms.published - 20  # alarms still on their way
                wait_for(lambda t=target: applied_data(ingest_stats(insts[0], token)) >= t, 15, 0.25)  # fmt: skip
            alarms.stop.set()
            alarms.thread.join(10)
        finally:
            self.children.stop_all()
            broker.stop()
        carried = [s["gateways"] for s in out if not s["behind"] and not s["generator_limited"]]
        limit = next((s for s in out if s["behind"] or s["generator_limited"]), None)
        return {
            "db": kind,
            "step_s": step_s,
            "steps": out,
            "carried_gateways": max(carried) if carried else None,
            "stopped_by": None
            if limit is None
            else ("platform behind" if limit["behind"] else "load generator"),
        }


def _rate(a: dict[str, Any], b: dict[str, Any], key: str) -> float:
    return float(b["gen"][key] - a["gen"][key])


def summarise(case: Case, a: dict[str, Any], b: dict[str, Any], rss: list[float], hwm: list[float], before: int = 0) -> dict[str, Any]:  # fmt: skip
    w = b["t"] - a["t"]
    wg = (b["gen"]["t"] - a["gen"]["t"]) or w  # the generator's reports are its own instants
    alarms = (b["alarms"] - a["alarms"]) / w
    published = _rate(a, b, "acked") / wg + alarms
    due = _rate(a, b, "due") / wg + alarms
    per = [applied_data(sb) - applied_data(sa) for sa, sb in zip(a["stats"], b["stats"], strict=True)]  # fmt: skip
    cpu = [cb - ca for ca, cb in zip(a["cpu"], b["cpu"], strict=True)]
    handled = sum(per) / w
    total_pub = before + b["gen"]["acked"] - b["gen"]["statuses"] + b["alarms"]
    backlog = max(0, total_pub - sum(applied_data(s) for s in b["stats"]))
    # falling behind: the backlog grows (handled short of published, and
    # more than a second of load waiting), or is more than 5 s of load
    behind = backlog > BEHIND_BACKLOG_S * published or (
        handled < BEHIND_SHARE * published and backlog > published
    )
    return {
        "case": case.name,
        "db": case.db,
        "instances": case.instances,
        "gateways": case.gateways,
        "window_s": round(w, 1),
        "published_per_s": round(published, 1),
        "scheduled_per_s": round(due, 1),
        "handled_per_s": round(handled, 1),
        "handled_share_per_instance": [round(p / sum(per), 3) if sum(per) else None for p in per],
        "cpu_cores_per_instance": [round(c / w, 3) for c in cpu],
        "cpu_cores_platform": round(sum(cpu) / w, 3),
        "handled_per_cpu_s": round(sum(per) / sum(cpu), 1) if sum(cpu) else None,
        "db_cpu_cores": round((b["db_cpu"] - a["db_cpu"]) / w, 3),
        "broker_cpu_cores": round((b["broker_cpu"] - a["broker_cpu"]) / w, 3),
        "load_cpu_cores": round((b.get("load_cpu", 0) - a.get("load_cpu", 0)) / w, 3),
        "rss_mib_per_instance": [round(x, 1) for x in rss],
        "peak_rss_mib_per_instance": [round(x, 1) for x in hwm],
        "backlog_at_end": backlog,
        "behind": behind,
        "generator_limited": published < BEHIND_SHARE * due,
    }


def _dropped(stats: list[dict[str, dict[str, int]]]) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in stats:
        for k, v in s.get("dropped", {}).items():
            out[k] = out.get(k, 0) + v
    return out


def _latency(lat: list[float], raised: int) -> dict[str, Any]:
    if not lat:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None}
    lat = sorted(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]
    return {
        "n": len(lat),
        "p50_ms": round(statistics.median(lat) * 1000, 1),
        "p99_ms": round(p99 * 1000, 1),
        "max_ms": round(lat[-1] * 1000, 1),
    }


def _line(r: dict[str, Any]) -> str:
    return (
        f"{r['case']:<16} {r['gateways']:>6} gw  published {r['published_per_s']:>7.1f}/s  "
        f"handled {r['handled_per_s']:>7.1f}/s  cpu {r['cpu_cores_platform']:.2f} cores  "
        f"{r['handled_per_cpu_s'] or 0:>7.0f}/cpu-s  backlog {r['backlog_at_end']}"
        + ("  BEHIND" if r["behind"] else "")
        + ("  (generator limited)" if r["generator_limited"] else "")
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.platform_bench", description=__doc__.split("\n\n")[0])  # fmt: skip
    ap.add_argument("--quick", action="store_true", help="tiny N, SQLite only, seconds long")
    ap.add_argument("--results", type=Path, default=RESULTS, help="where platform.json/md go")
    ap.add_argument("--no-ramp", action="store_true", help="skip the ceiling ramp")
    ap.add_argument("--only", default="", help="comma-separated case names (default: all)")
    ap.add_argument("--ramp-db", default="sqlite,postgresql", help="databases to ramp on")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()
    interval = 2.0 if args.quick else 20.0
    cases = QUICK if args.quick else FULL
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {c.name for c in cases}
        if unknown:
            ap.error(f"--only: no case {', '.join(sorted(unknown))}; cases: {', '.join(c.name for c in cases)}")  # fmt: skip
        cases = tuple(c for c in cases if c.name in wanted)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="minegate-platform-bench-") as tmp:
        bench = Bench(Path(tmp), args.quick, interval)
        results: dict[str, Any] = {}
        errors: dict[str, str] = {}
        ramps: list[dict[str, Any]] = []
        try:
            for case in cases:
                try:
                    r = results[case.name] = bench.run_case(case)
                    print(_line(r), flush=True)
                    print(f"{'':<16} alert latency {r['alert_latency']}, offline {r['offline_detection_s']}", flush=True)  # fmt: skip
                except (BenchError, RuntimeError, OSError) as exc:
                    errors[case.name] = str(exc)
                    print(f"{case.name}: FAILED: {exc}", file=sys.stderr, flush=True)
            if not args.no_ramp:
                for kind in args.ramp_db.split(","):
                    try:
                        ramps.append(bench.ramp(kind, RAMP_QUICK if args.quick else RAMP_FULL, 2.0 if args.quick else 12.0))  # fmt: skip
                    except (BenchError, RuntimeError, OSError) as exc:
                        errors[f"ramp-{kind}"] = str(exc)
                        print(f"ramp-{kind}: FAILED: {exc}", file=sys.stderr, flush=True)
        finally:
            bench.close()
    doc: dict[str, Any] = {
        "benchmark": "platform",
        "quick": args.quick,
        "machine": machine(load_before),
        "elapsed_s": round(time.monotonic() - started, 1),
        "workload": {
            "points_per_gateway": 50,
            "devices_per_gateway": 5,
            "snapshot_interval_s": interval,
            "stat_interval_s": 300,
            "alarms_per_gateway_hour": ALARMS_PER_GATEWAY_HOUR,
            "warmup_s": WARMUP_QUICK_S if args.quick else WARMUP_S,
            "cases": [asdict(c) for c in cases],
        },
        "results": results,
        "ramps": ramps,
        "errors": errors,
    }
    doc["targets"] = targets(doc)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "platform.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.results / "platform.md").write_text(markdown(doc))
    print(f"results in {args.results}/platform.json and platform.md ({doc['elapsed_s']} s)")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

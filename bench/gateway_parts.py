"""CPU cost of each stage a polled value goes through in minegate, in
isolation: the companion of ``bench.gateway_bench`` for finding where the
gateway's CPU goes.

Usage: python -m bench.gateway_parts [--records 2000]

One record = one read of the benchmark device (100 uint16 registers, the
profile ``bench/gateway_profiles/bench_holding100.toml``). For each stage it
prints the best of three runs in microseconds of CPU per record and per
value. No network: the Modbus client and the MQTT client are measured by
``bench.gateway_bench`` as part of the whole process.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.gateway_tools import Endpoint, minegate_config
from gateway.config import load_config
from gateway.metrics import GatewayMetrics
from gateway.model import Record
from gateway.quality import DeviceRecorder
from gateway.sinks.lineproto import LineEncoder
from gateway.sinks.mqtt_schema import MqttEncoder
from gateway.stats import Snapshotter, StatsAggregator
from gateway.store import Store

PERIOD_NS = 40_000_000


def best_us(fn: Callable[[], object], n: int, repeat: int = 3) -> float:
    """Best CPU time of ``fn()`` over ``repeat`` runs, in us per item of ``n``."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best / n * 1e6


def run(n: int) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        site = minegate_config(
            tmp / "site.toml",
            tmp / "data",
            [Endpoint(5020, (1,))],
            poll_interval_s=PERIOD_NS / 1e9,
            mqtt_port=1883,
        )
        device = load_config(site).devices[0]
        plan = device.plan
        assert plan is not None
        req = plan.requests[0]
        words = [[(i + a) & 0xFFFF for a in range(100)] for i in range(n)]

        def decode() -> None:
            for w in words:
                plan.decode(req, w)

        out.append(("drivers PollPlan.decode (100 uint16)", best_us(decode, n)))
        readings: list[dict[str, Any]] = [plan.decode(req, w) for w in words]
        metrics = GatewayMetrics(latency_window=1000)
        t0 = time.time_ns()

        def recorder(observe: Callable[[Record], None] | None) -> DeviceRecorder:
            return DeviceRecorder(
                device.name,
                device.points,
                device.stale_after_s,
                device.config.comm_loss_after,
                metrics.device(device.name),
                observe,
            )

        def record(observe: Callable[[Record], None] | None) -> Callable[[], None]:
            def go() -> None:
                r = recorder(observe)
                for i, values in enumerate(readings):
                    r.values_record(t0 + i * PERIOD_NS, values)

            return go

        stats = StatsAggregator(300, clock=time.time_ns)
        snaps = Snapshotter(20.0, clock=time.time_ns)

        def observe(rec: Record) -> None:
            stats.add(rec)
            snaps.add(rec)

        out.append(("quality DeviceRecorder.values_record (RBE incl.)", best_us(record(None), n)))
        out.append(("  + stats and snapshots (runtime._observe)", best_us(record(observe), n)))
        r = recorder(None)
        records = [r.values_record(t0 + i * PERIOD_NS, v) for i, v in enumerate(readings)]
        recs = [x for x in records if x is not None]
        with Store(tmp / "store.sqlite") as store:
            store.register_sink("bench")

            def append() -> None:
                for i in range(0, len(recs), 100):  # ~ one writer batch at 500 records/s
                    store.append(recs[i : i + 100])

            out.append(("store Store.append (100 records per transaction)", best_us(append, n)))

            def take_ack() -> None:
                for _ in range(n // 200 + 1):
                    batch = store.take("bench", 200)
                    if not batch:
                        return
                    store.ack("bench", batch[-1].seq)

            out.append(
                (
                    "store Store.take(200) + ack, backlog (from the table)",
                    best_us(take_ack, n, repeat=1),
                )
            )

        with Store(tmp / "live.sqlite") as store:
            store.register_sink("bench")

            def live() -> float:
                # the live case: the runner takes what the writer just
                # appended (served from memory); only take + ack timed
                spent = 0.0
                for i in range(0, len(recs), 100):
                    store.append([copy.copy(r) for r in recs[i : i + 100]])
                    t0 = time.process_time()
                    batch = store.take("bench", 200)
                    store.ack("bench", batch[-1].seq)
                    spent += time.process_time() - t0
                return spent

            best = min(live() for _ in range(3))
            out.append(("store Store.take(200) + ack, live (from memory)", best / n * 1e6))
        enc = MqttEncoder("bench/minegate", "bench", "gw1")

        def mqtt() -> None:
            for rec in recs:
                enc.encode(rec)

        out.append(("sinks MqttEncoder.encode (JSON)", best_us(mqtt, n)))
        line = LineEncoder("bench", "gw1")
        out.append(("sinks LineEncoder.encode_batch", best_us(lambda: line.encode_batch(recs), n)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="CPU per stage of a polled record in minegate")
    ap.add_argument("--records", type=int, default=2000)
    args = ap.parse_args(argv)
    rows = run(args.records)
    print(f"{'stage':52s} {'us/record':>10s} {'us/value':>9s}")
    for label, us in rows:
        print(f"{label:52s} {us:10.1f} {us / 100:9.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

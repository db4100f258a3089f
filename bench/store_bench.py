"""Micro-benchmark of gateway.store: append and take+ack throughput.

Usage: python -m bench.store_bench [--records 20000] [--batch 20] [--sync FULL]
       python -m bench.store_bench --live 10 [--rate 2000]

Prints records/s and values/s for append (records of 100 values, appended
``--batch`` at a time, as the runtime does once per poll cycle) and for a
sink taking batches of 500 and acking each, plus the CPU time per record,
which gives the share of one core the store needs at 2,000 records/s.

``--live S`` instead runs for S seconds the way the gateway does: a writer
thread appending ``--rate`` records/s in one transaction every ``--tick-ms``
(the runtime's ``store.batch_ms``, 200 ms by default) while a sink thread
takes and acks, and reports the process CPU share and how far the sink lagged.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import threading
import time
from pathlib import Path

from gateway.model import Quality, Record, RecordKind
from gateway.store import Store

POINTS = [f"point_{i:03d}" for i in range(100)]
UNITS = ["%", "ppm", "m/s", "Pa", "degC"] * 20
DEVICES = [f"dev{i:03d}" for i in range(200)]


def make_records(n: int, t0: int) -> list[Record]:
    rnd = random.Random(1)
    out = []
    for i in range(n):
        values: list[float | int | str | bool | None] = [rnd.random() * 100 for _ in POINTS]
        if i % 4 == 0:  # a quarter of the devices report raw integer registers
            values[::3] = [rnd.randrange(65536) for _ in values[::3]]
        qualities = [Quality.GOOD] * len(POINTS)
        if i % 50 == 0:
            qualities[7] = Quality.BAD
        out.append(
            Record(
                RecordKind.SAMPLE,
                DEVICES[i % len(DEVICES)],
                t0 + i * 500_000,
                POINTS,
                values,
                UNITS,
                qualities,
            )
        )
    return out


def run(n_records: int, batch: int, sync: str, take_batch: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.time_ns()
        records = make_records(n_records, t0)
        store = Store(Path(tmp) / "bench.db", synchronous=sync)
        store.register_sink("bench")
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(0, n_records, batch):
            store.append(records[i : i + batch])
        append_wall = time.perf_counter() - wall
        append_cpu = time.process_time() - cpu

        wall, cpu = time.perf_counter(), time.process_time()
        taken = 0
        while True:
            got = store.take("bench", take_batch)
            if not got:
                break
            taken += len(got)
            store.ack("bench", got[-1].seq)
        take_wall = time.perf_counter() - wall
        take_cpu = time.process_time() - cpu
        assert taken == n_records, (taken, n_records)
        store.close()  # checkpoints the WAL: the file alone is the store
        size = (Path(tmp) / "bench.db").stat().st_size
    values = n_records * len(POINTS)
    return {
        "append_rec_s": n_records / append_wall,
        "append_val_s": values / append_wall,
        "append_cpu_share_at_2000": append_cpu / n_records * 2000,
        "take_rec_s": n_records / take_wall,
        "take_val_s": values / take_wall,
        "take_cpu_share_at_2000": take_cpu / n_records * 2000,
        "bytes_per_record": size / n_records,
    }


def run_live(
    seconds: float, rate: int, sync: str, take_batch: int, tick_ms: float
) -> dict[str, float]:
    n_records = int(seconds * rate)
    records = make_records(n_records, time.time_ns())
    tick_s = tick_ms / 1000
    per_tick = max(1, int(rate * tick_s))
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.db", synchronous=sync)
        store.register_sink("bench")
        done = threading.Event()
        max_lag = 0
        taken = 0

        def writer() -> None:
            start = time.perf_counter()
            for k, i in enumerate(range(0, n_records, per_tick)):
                store.append(records[i : i + per_tick])
                delay = start + (k + 1) * tick_s - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
            done.set()

        def sink() -> None:
            nonlocal max_lag, taken
            while True:
                finished = done.is_set()
                got = store.take("bench", take_batch)
                if got:
                    taken += len(got)
                    store.ack("bench", got[-1].seq)
                    max_lag = max(max_lag, store.backlog("bench")[0])
                elif finished:
                    return
                else:
                    time.sleep(0.005)

        wall, cpu = time.perf_counter(), time.process_time()
        threads = [threading.Thread(target=writer), threading.Thread(target=sink)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - wall
        cpu = time.process_time() - cpu
        store.close()
    assert taken == n_records, (taken, n_records)
    return {"rate": n_records / wall, "cpu_share": cpu / wall, "max_lag": max_lag}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=20, help="records per append call")
    parser.add_argument("--take-batch", type=int, default=500, help="records per take")
    parser.add_argument("--sync", default="FULL", help="PRAGMA synchronous: FULL or NORMAL")
    parser.add_argument("--live", type=float, default=0.0, help="seconds of a live run")
    parser.add_argument("--rate", type=int, default=2000, help="records/s of a live run")
    parser.add_argument("--tick-ms", type=float, default=200, help="ms between live appends")
    args = parser.parse_args()
    if args.live:
        live = run_live(args.live, args.rate, args.sync, args.take_batch, args.tick_ms)
        print(
            f"live {args.live:.0f} s at {args.rate} records/s x {len(POINTS)} values, "
            f"one append every {args.tick_ms:g} ms, "
            f"synchronous={args.sync}: achieved {live['rate']:,.0f} records/s, "
            f"process CPU {live['cpu_share']:.0%} of a core (writer + sink), "
            f"sink backlog at most {live['max_lag']:.0f} records"
        )
        return
    r = run(args.records, args.batch, args.sync, args.take_batch)
    print(
        f"records={args.records} x {len(POINTS)} values, append batch={args.batch}, "
        f"take batch={args.take_batch}, synchronous={args.sync}"
    )
    print(
        f"append:   {r['append_rec_s']:10,.0f} records/s {r['append_val_s']:12,.0f} values/s   "
        f"CPU at 2,000 rec/s: {r['append_cpu_share_at_2000']:.0%} of a core"
    )
    print(
        f"take+ack: {r['take_rec_s']:10,.0f} records/s {r['take_val_s']:12,.0f} values/s   "
        f"CPU at 2,000 rec/s: {r['take_cpu_share_at_2000']:.0%} of a core"
    )
    print(f"on disk:  {r['bytes_per_record']:,.0f} bytes/record")


if __name__ == "__main__":
    main()

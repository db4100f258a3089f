"""Micro-benchmark of gateway.store: append and take+ack throughput.

Usage: python -m bench.store_bench [--records 20000] [--batch 20] [--sync FULL]

Prints records/s and values/s for append (records of 100 values, appended
``--batch`` at a time, as the runtime does once per poll cycle) and for a
sink taking batches of 500 and acking each, plus the CPU time per record,
which gives the share of one core the store needs at 2,000 records/s.
"""

from __future__ import annotations

import argparse
import random
import tempfile
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
        size = store.size_bytes()

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
        store.close()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=20, help="records per append call")
    parser.add_argument("--take-batch", type=int, default=500, help="records per take")
    parser.add_argument("--sync", default="FULL", help="PRAGMA synchronous: FULL or NORMAL")
    args = parser.parse_args()
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

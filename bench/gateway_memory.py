"""Where the gateway's memory goes with many devices (tracemalloc).

Usage: python -m bench.gateway_memory [--devices 500] [--seconds 20] [--top 25]

Starts the Modbus servers of ``bench.gateway_scale`` (4 processes, 10
holding registers per device), a Mosquitto and a VictoriaMetrics, then runs
the gateway *in this process* (store, MQTT and InfluxDB sinks on, every
device polled every second) with ``tracemalloc`` on: one snapshot once the
gateway has started, one after ``--seconds``. It prints the allocations
alive at the end grouped by source file (what is held: per-device objects,
clients, buffers), the growth between the two snapshots by line (what
accumulates), and the RSS, with the allocated bytes divided by the device
count. tracemalloc slows the gateway down and sees only Python's own
allocations (not SQLite's page cache or the interpreter's code objects),
so the RSS here is not the benchmark's: it shows *where*, the benchmark
measures *how much*.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import sys
import tracemalloc
from pathlib import Path
from typing import Any

from bench import gateway_bench as gb
from bench.gateway_procs import Children
from bench.gateway_scale import SCALE_PROFILE, start_servers
from bench.gateway_tools import minegate_config

WORK = gb.WORK / "gateway_memory"


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return 0.0


def _short(path: str) -> str:
    for marker in ("site-packages/", "/lib/python3", "/work/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path


async def _run(cfg: Path, seconds: float, top: int, devices: int) -> str:
    from gateway.config import load_config
    from gateway.runtime import Gateway

    config = load_config(cfg)
    gateway = Gateway(config)
    task = asyncio.create_task(gateway.run())
    await asyncio.wait_for(gateway.started.wait(), 60)
    await asyncio.sleep(3.0)
    first = tracemalloc.take_snapshot()
    rss0 = _rss_mib()
    await asyncio.sleep(seconds)
    last = tracemalloc.take_snapshot()
    rss1 = _rss_mib()
    gateway.request_stop()
    await asyncio.wait_for(task, 60)
    filt = [tracemalloc.Filter(False, tracemalloc.__file__)]
    first, last = first.filter_traces(filt), last.filter_traces(filt)
    held = last.statistics("filename")
    total = sum(s.size for s in held)
    lines = [
        f"{devices} devices; RSS {rss0:.1f} MiB after start-up, {rss1:.1f} MiB after "
        f"{seconds:g} s; Python allocations alive {total / 2**20:.1f} MiB "
        f"({total / devices / 1024:.1f} KiB per device)",
        "",
        "Held at the end, by file:",
    ]
    for s in held[:top]:
        lines.append(f"  {s.size / 2**20:8.2f} MiB {s.count:9,d} blocks  {_short(str(s.traceback[0].filename))}")  # fmt: skip
    lines += ["", "Growth over the window, by line:"]
    for d in last.compare_to(first, "lineno")[:top]:
        frame = d.traceback[0]
        lines.append(f"  {d.size_diff / 2**20:+8.2f} MiB {d.count_diff:+9,d} blocks  {_short(frame.filename)}:{frame.lineno}")  # fmt: skip
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=500)
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--buses", choices=("device", "server"), default="device")
    args = ap.parse_args(argv)
    ns = argparse.Namespace(duration=1.0, warmup=0.0, outage=0.0, drain_timeout=1.0,
                            poll_ms=1000.0, devices=args.devices)  # fmt: skip
    children = Children()
    ctx = gb.Context(ns, WORK, children)
    servers: Any = importlib.import_module("tests.servers")
    mqtt = vm = None
    try:
        start_servers(ctx, args.devices, 4)
        mqtt = servers.mosquitto(WORK / "mosquitto")
        mqtt.start()
        vm = servers.victoria(WORK / "victoria-metrics")
        vm.start()
        cfg = minegate_config(
            WORK / "site.toml", WORK / "data", ctx.endpoints, poll_interval_s=1.0,
            mqtt_port=mqtt.port, influx_url=vm.url, bus_per_device=args.buses == "device",
            profile=SCALE_PROFILE,
        )  # fmt: skip
        with contextlib.suppress(FileNotFoundError):
            (WORK / "data" / "minegate.sqlite").unlink()
        tracemalloc.start(1)
        print(asyncio.run(_run(cfg, args.seconds, args.top, args.devices)))
    finally:
        for server in (vm, mqtt):
            if server is not None:
                server.stop()
        children.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The RS-485 bus at wire speed: how much of a Modbus RTU line the gateway
keeps busy, and how well its bus-load estimate predicts it.

    python -m bench.bus_bench                 # 1, 8, 32 devices at 9600 and 19200 baud
    python -m bench.bus_bench --quick         # short windows; results in bench/_work/bus/

For each case the benchmark runs, in this process, a simulated RS-485 line
(:class:`simulators.seriallink.SerialLink`: characters at the baud rate and
character format, the 3.5-character silences, each device's turnaround)
with N devices from the built-in profiles behind it (a pymodbus serial
server), and the real gateway in a child process (``bench.bus_gateway``:
``minegate run``'s hubs, pollers and store) polling them with an interval
that asks for about 20 times what the line carries, so the line never waits
for a poll. Over a measuring window it reports:

* **bus utilisation** = wire time of the frames / elapsed time (both
  directions; the rest is silences, the devices' turnaround and gaps);
* **the share of the achievable**: the time the protocol needs for the
  transactions carried (wire + two silences + the devices' turnaround, the
  least any master could take) / elapsed time;
* **the gateway's estimate** (``gateway/busload.py``, what check-config
  uses) of the time of the transactions carried against the time they
  took. check-config's load is a sum of these transaction times over the
  poll plans, so its error is this one for the same mix of requests (a
  "measured load" per poll round is not defined on a saturated bus: the
  hub's lock serves the devices one request each in turn, so a device with
  one request per cycle completes more cycles than one with three);
* **where the time between frames went**, from the link's frame log:
  silences, turnaround, the gateway beyond the silence it must keep, the
  simulator's own lag.

Results: ``bench/results/bus.json`` and ``bus.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.bus_report import markdown, table
from bench.gateway_procs import Children, cpu_seconds, descendants
from bench.gateway_report import machine
from drivers.types import RegisterKind
from gateway import busload
from gateway.config import load_config
from simulators.layout import BusLayout, DeviceLayout, MineLayout
from simulators.mine import SimulatedMine
from simulators.seriallink import SerialLink, WireFrame

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / "_work" / "bus"

#: Built-in Modbus profiles, in the order devices are given them.
PROFILES = ("gas_monitor", "aux_fan", "smoke", "drainage", "fire_water", "power_meter", "main_fan")
#: check-config must accept the site file: validate it at this interval.
VALIDATION_INTERVAL_S = 3600.0
#: ask this many times what the line carries (the bus must never wait)
OVERASK = 20.0
TARGET_UTILISATION = 0.90
TARGET_ESTIMATE_ERROR = 0.05

_KINDS = {1: RegisterKind.COIL, 2: RegisterKind.DISCRETE, 3: RegisterKind.HOLDING}
_KINDS[4] = RegisterKind.INPUT


class BenchError(RuntimeError):
    pass


def bus_layout(devices: int, baud: int, turnaround_ms: float) -> MineLayout:
    """One RS-485 bus of ``devices`` devices cycling through the built-in
    profiles, each driven by the default mine's entity of its profile."""
    members = tuple(
        DeviceLayout(
            f"{PROFILES[i % len(PROFILES)]}_{i + 1}",
            PROFILES[i % len(PROFILES)],
            unit=i + 1,
            entity=f"{PROFILES[i % len(PROFILES)]}_1",
            poll_interval_s=VALIDATION_INTERVAL_S,
        )
        for i in range(devices)
    )
    line = BusLayout(
        "rs485",
        "rtu",
        members,
        baudrate=baud,
        timeout_s=1.0,
        retries=1,
        turnaround_ms=turnaround_ms,
        frame_pause_ms=0.0,
    )
    return MineLayout("bus-bench", (line,))


@dataclass
class Window:
    elapsed_s: float
    frames: list[WireFrame]
    requests: int
    replies: int
    wire_s: float
    early_requests: int
    gateway_cpu_s: float


def _request_of(frame: WireFrame) -> tuple[RegisterKind, int] | None:
    data = frame.data
    if len(data) != 8 or data[1] not in _KINDS:
        return None
    return _KINDS[data[1]], int.from_bytes(data[4:6], "big")


def analyse(
    window: Window, link: SerialLink, est_round_s: float, requests_per_round: int, interval_s: float
) -> dict[str, Any]:
    """The window's figures: utilisation, estimate against measurement, and
    where the time between frames went (seconds summed over the window)."""
    fmt = link.fmt
    silence, turnaround = fmt.silence_s, link.turnaround_s
    frames = window.frames
    est_s = protocol_s = 0.0
    parts = dict.fromkeys(
        ("silence", "turnaround", "device_extra", "gateway", "link_lag", "other"), 0.0
    )
    answered = unanswered = 0
    for i, frame in enumerate(frames):
        nxt = frames[i + 1] if i + 1 < len(frames) else None
        if nxt is None:
            break
        gap = nxt.start - frame.end
        if frame.request and not nxt.request:  # the device's side of a transaction
            answered += 1
            need = silence + turnaround
            parts["silence"] += min(gap, silence)
            parts["turnaround"] += min(max(0.0, gap - silence), turnaround)
            parts["device_extra"] += max(0.0, gap - need)
            req = _request_of(frame)
            if req is not None:
                est_s += busload.request_time_s(*req, baudrate=fmt.baudrate)
                protocol_s += fmt.wire_s(frame.size + nxt.size) + 2 * silence + turnaround
        elif not frame.request and nxt.request:  # the master's side
            parts["silence"] += min(gap, silence)
            rest = max(0.0, gap - silence)
            lag = min(rest, max(0.0, frame.delivered - frame.end))
            parts["link_lag"] += lag
            parts["gateway"] += rest - lag
        else:  # a request without an answer (a timeout), or two replies
            unanswered += frame.request
            parts["other"] += gap
    span = frames[-1].end - frames[0].start if frames else 0.0
    wire_in_span = sum(f.end - f.start for f in frames)
    return {
        "window_s": round(window.elapsed_s, 3),
        "transactions": answered,
        "unanswered": unanswered,
        "requests": window.requests,
        "replies": window.replies,
        "early_requests": window.early_requests,
        "wire_s": round(window.wire_s, 4),
        "utilisation": window.wire_s / window.elapsed_s,
        "achievable_share": protocol_s / span if span else None,
        "protocol_limit_utilisation": wire_in_span / protocol_s if protocol_s else None,
        "estimate_s": est_s,
        "measured_s": span,
        "estimate_error": est_s / span - 1 if span else None,
        "estimated_round_s": est_round_s,
        "requests_per_round": requests_per_round,
        "poll_interval_s": interval_s,
        "estimated_load": est_round_s / interval_s,
        "gaps_s": {k: round(v, 4) for k, v in parts.items()},
        "gaps_share": {k: v / span for k, v in parts.items()} if span else {},
        "gateway_gap_ms_mean": 1000 * parts["gateway"] / answered if answered else None,
        "link_max_lag_ms": 1000 * link.max_lag_s,
        "gateway_cpu_share": window.gateway_cpu_s / window.elapsed_s,
    }


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:] if log.exists() else ""


async def _wait(pred: Any, timeout_s: float, proc: Any, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if proc.poll() is not None:
            tail = _tail(log)
            raise BenchError(f"the gateway exited ({proc.returncode}) before {what}:\n{tail}")
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} within {timeout_s:.0f} s; see {log}")
        await asyncio.sleep(0.05)


async def run_case(
    devices: int,
    baud: int,
    turnaround_ms: float,
    args: argparse.Namespace,
    work: Path,
    children: Children,
) -> dict[str, Any]:
    case = work / f"{devices}dev-{baud}-{turnaround_ms:g}ms"
    case.mkdir(parents=True, exist_ok=True)
    layout = bus_layout(devices, baud, turnaround_ms)
    async with SimulatedMine(layout, tick_s=1.0, bus_timing=True) as mine:
        link = mine.serial_link("rs485")
        site = case / "site.toml"
        site.write_text(mine.site_config_toml(case / "data"))
        config = load_config(site)  # what check-config says, at a load it accepts
        est_round = config.bus_load["rs485"] * VALIDATION_INTERVAL_S
        per_round = sum(d.requests_per_poll for d in config.devices)
        interval = max(0.001, round(est_round / OVERASK, 4))
        log = case / "gateway.log"
        argv = [sys.executable, "-m", "bench.bus_gateway", str(site), str(interval)]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = children.start("gateway", argv, log=log, cwd=ROOT, env=env)
        try:
            await _wait(lambda: link.replies > 0, 60.0, proc, "reply on the line", log)
            await asyncio.sleep(args.warmup)
            pids = descendants(proc.pid)
            c0, cpu0 = link.counters(), cpu_seconds(pids)
            link.record_frames(1_000_000)
            await asyncio.sleep(args.duration)
            c1, cpu1 = link.counters(), cpu_seconds(pids)
            frames = list(link.frames)
            link.record_frames(0)
        finally:
            await asyncio.to_thread(children.stop, proc)
    d = c1 - c0
    window = Window(d.at, frames, d.requests, d.replies, d.wire_s, d.early_requests, cpu1 - cpu0)
    result = analyse(window, link, est_round, per_round, interval)
    result.update(
        devices=devices,
        baudrate=baud,
        line=str(link.fmt),
        profiles=sorted({m.profile for m in layout.buses[0].devices}),
        turnaround_ms=turnaround_ms,
    )
    return result


def versions() -> dict[str, str]:
    import importlib.metadata as md
    import platform
    import subprocess

    rev = "?"
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    return {
        "python": platform.python_version(),
        "minegate": f"{md.version('minegate')}+{rev}",
        "pymodbus": md.version("pymodbus"),
        "pyserial": md.version("pyserial"),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="minegate on a baud-faithful RS-485 line")
    ap.add_argument("--devices", default="1,8,32", help="device counts, comma-separated")
    ap.add_argument("--bauds", default="9600,19200", help="baud rates, comma-separated")
    ap.add_argument("--duration", type=float, default=20.0, help="measuring window, s")
    ap.add_argument("--warmup", type=float, default=3.0, help="s after the first reply")
    ap.add_argument(
        "--turnaround-ms",
        type=float,
        default=busload.DEVICE_TURNAROUND_S * 1000,
        help="each device's turnaround (default: the estimate's typical device)",
    )
    ap.add_argument(
        "--instant-devices",
        default="8",
        help="device counts also run with devices that answer at once (turnaround 0): "
        "the gateway against the protocol alone; '' for none",
    )
    ap.add_argument("--quick", action="store_true", help="4 s windows, results in bench/_work/bus")
    ap.add_argument("--results", type=Path, default=None, help="directory for bus.json/bus.md")
    ap.add_argument("--work", type=Path, default=None, help="scratch directory")
    args = ap.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = min(args.duration, 4.0), min(args.warmup, 1.0)
    if args.results is None:
        args.results = WORK if args.quick else RESULTS
    try:
        args.device_counts = [int(x) for x in args.devices.split(",")]
        args.instant_counts = [int(x) for x in args.instant_devices.split(",") if x.strip()]
        args.baud_rates = [int(x) for x in args.bauds.split(",")]
    except ValueError:
        ap.error("--devices and --bauds take integers separated by commas, e.g. 1,8,32")
    if any(n < 1 or n > 247 for n in args.device_counts + args.instant_counts):
        ap.error("--devices: each count must be 1..247 (RTU unit ids)")
    if args.duration <= 0 or args.warmup < 0 or args.turnaround_ms < 0:
        ap.error("--duration must be > 0, --warmup and --turnaround-ms >= 0")
    return args


async def run_all(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    children = Children()
    results = []
    try:
        plan = [(n, b, args.turnaround_ms) for b in args.baud_rates for n in args.device_counts]
        plan += [(n, b, 0.0) for b in args.baud_rates for n in args.instant_counts]
        for devices, baud, turnaround in plan:
            print(f"{devices} device(s) at {baud} baud, {turnaround:g} ms turnaround", flush=True)
            results.append(await run_case(devices, baud, turnaround, args, work, children))
    finally:
        await asyncio.to_thread(children.stop_all)
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.time()
    with contextlib.ExitStack() as stack:
        if args.work is None:
            WORK.mkdir(parents=True, exist_ok=True)
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(dir=WORK)))
        else:
            work = args.work
        try:
            cases = asyncio.run(run_all(args, work))
        except BenchError as exc:
            print(f"bus benchmark failed: {exc}", file=sys.stderr)
            return 1
    doc = {
        "run_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
        "seconds": round(time.time() - started, 1),
        "machine": machine(load_before),
        "versions": versions(),
        "settings": {
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "turnaround_ms": args.turnaround_ms,
            "overask": OVERASK,
            "targets": {
                "utilisation": TARGET_UTILISATION,
                "estimate_error": TARGET_ESTIMATE_ERROR,
            },
        },
        "cases": cases,
    }
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "bus.json").write_text(json.dumps(doc, indent=2) + "\n")
    (args.results / "bus.md").write_text(markdown(doc))
    print(table(doc))
    print(f"results in {args.results}/bus.json and bus.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())

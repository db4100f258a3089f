"""``minegate demo``: a simulated mine and the real gateway against it.

Starts :class:`simulators.mine.SimulatedMine` in-process (Modbus TCP, RTU on a
pty pair, a DTU, an ASCII gas sensor), writes the site file it generates to
the data directory, and runs the unmodified gateway runtime on it. On a
terminal a live table shows every point's value, unit, quality and age; a
small scenario plays so the coupling and the failure handling are visible:

* main fan 1 stops: airflow falls and methane in the return climbs;
* gas monitor 2 goes silent (an unplugged outstation): after a few cycles it
  is shown as comm_loss, and the RS-485 line's other devices keep polling;
* it comes back and values flow again.

Without a terminal, or with ``--duration``, it runs headless and prints one
progress line every few seconds. At the end it prints what was polled,
stored and failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.live import Live
from rich.table import Table

from gateway.config import SiteConfig, load_config
from gateway.logs import setup_logging
from gateway.runtime import Gateway
from gateway.status import QUALITY_STYLE, format_age, format_value

HEADLESS_DEFAULT_S = 30.0
PROGRESS_EVERY_S = 2.0
NS = 1_000_000_000


@dataclass(frozen=True)
class Step:
    at_s: float
    say: str
    act: Callable[[object], None]


def scenario(duration_s: float | None) -> list[Step]:
    """What happens when. Long runs follow a fixed timeline (fan stop at 30 s);
    short runs compress it so the effects still show."""
    if duration_s is None or duration_s >= 90:
        t_fan, t_silent, t_back = 30.0, 45.0, 75.0
    else:
        t_fan, t_silent, t_back = 0.25 * duration_s, 0.35 * duration_s, 0.75 * duration_s

    def stop_fan(mine: object) -> None:
        mine.operate("main_fan_1", "running", 0)  # type: ignore[attr-defined]

    def silence(mine: object) -> None:
        mine.inject("gas_monitor_2", "silent")  # type: ignore[attr-defined]

    def restore(mine: object) -> None:
        mine.clear("gas_monitor_2")  # type: ignore[attr-defined]

    return [
        Step(t_fan, "main fan 1 stops: watch airflow fall and CH4 in the return climb", stop_fan),
        Step(t_silent, "gas monitor 2 goes silent (unplugged outstation)", silence),
        Step(t_back, "gas monitor 2 is reconnected", restore),
    ]


def live_table(config: SiteConfig, gateway: Gateway, now_ns: int, note: str) -> Table:
    classes = {d.name: d.device_class for d in config.devices}
    table = Table(title=f"minegate demo - {config.site.name}", caption=note, expand=False)
    for col in ("device", "class", "point", "value", "unit", "quality", "age"):
        table.add_column(col, justify="right" if col in ("value", "age") else "left")
    latest = gateway.store.latest() if gateway.store is not None else []
    previous = ""
    for s in latest:
        if s.device not in classes:
            continue
        first = s.device != previous
        previous = s.device
        style = QUALITY_STYLE.get(s.quality.value, "")
        table.add_row(
            s.device if first else "",
            classes[s.device] if first else "",
            s.point,
            format_value(s.value),
            s.unit,
            f"[{style}]{s.quality.value}[/]",
            format_age(max(0.0, (now_ns - s.ts_ns) / NS)),
            end_section=False,
        )
    return table


def progress_line(gateway: Gateway, elapsed_s: float) -> str:
    t = gateway.metrics.totals()
    lost = [n for n, d in gateway.metrics.devices.items() if d.state == "comm_loss"]
    return (
        f"t={elapsed_s:5.1f}s polls={t.polls} values polled={t.readings} "
        f"stored={gateway.metrics.writer.values_stored} failed requests={t.error_total}"
        + (f" comm_loss={','.join(sorted(lost))}" if lost else "")
    )


async def _demo(duration_s: float | None, data_dir: Path, tui: bool, console: Console) -> int:
    from simulators.mine import SimulatedMine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with SimulatedMine(seed=7) as mine:
        site = data_dir / "site.toml"
        site.write_text(mine.site_config_toml(data_dir))
        config = load_config(site)
        console.print(f"simulated mine running; gateway config written to {site}")
        gateway = Gateway(config)
        run = asyncio.create_task(gateway.run(), name="gateway")
        started = time.monotonic()
        steps = scenario(duration_s)
        note = "Ctrl-C to stop" if duration_s is None else f"{duration_s:g} s run"
        try:
            await asyncio.wait(
                [asyncio.create_task(gateway.started.wait()), run],
                return_when=asyncio.FIRST_COMPLETED,
            )
            live = (
                Live(console=console, refresh_per_second=2, vertical_overflow="crop")
                if tui
                else None
            )
            last_progress = 0.0
            with live if live is not None else contextlib.nullcontext():
                while not stop.is_set() and not run.done():
                    elapsed = time.monotonic() - started
                    if duration_s is not None and elapsed >= duration_s:
                        break
                    while steps and elapsed >= steps[0].at_s:
                        step = steps.pop(0)
                        step.act(mine)
                        note = f"t={elapsed:.0f}s: {step.say}"
                        console.print(note) if live is None else None
                    if live is not None:
                        live.update(live_table(config, gateway, time.time_ns(), note))
                    elif elapsed - last_progress >= PROGRESS_EVERY_S:
                        last_progress = elapsed
                        console.print(progress_line(gateway, elapsed))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), 1.0)
        finally:
            gateway.request_stop()
            await run
    t = gateway.metrics.totals()
    console.print(
        f"demo finished: {t.readings} values polled in {t.polls} poll cycles, "
        f"{gateway.metrics.writer.values_stored} values stored "
        f"({gateway.metrics.writer.records_stored} records), "
        f"{t.error_total} requests failed; data in {data_dir} "
        f"(inspect with: minegate status --data-dir {data_dir})"
    )
    return 0


def run_demo(*, duration_s: float | None, data_dir: Path, tui: bool = True) -> int:
    """Entry point of ``minegate demo``; returns the exit code."""
    console = Console()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    interactive = tui and sys.stdout.isatty() and duration_s is None
    # Log lines would tear the live table apart: send them to a file then.
    setup_logging("text", "WARNING", file=data_dir / "demo.log" if interactive else None)
    if duration_s is None and not sys.stdout.isatty():
        duration_s = HEADLESS_DEFAULT_S
    return asyncio.run(_demo(duration_s, data_dir, interactive, console))

"""``minegate demo``: a simulated mine and the real gateway against it.

Starts :class:`simulators.mine.SimulatedMine` in-process (Modbus TCP, RTU on a
pty pair, a DTU, an ASCII gas sensor), writes the site file it generates to
the data directory, and runs the unmodified gateway runtime on it. On a
terminal a live table shows the active alarms (docs/alarms.md: the default
alarms of the fans, pumps and feeders) and every point's value, unit,
quality and age; a small scenario plays so the coupling and the failure handling are visible:

* main fan 1 stops (a critical alarm): airflow falls and methane in the
  return climbs;
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

from rich.columns import Columns
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.config import SiteConfig, load_config
from gateway.logs import setup_logging
from gateway.model import Record, Sample
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


class LiveReadings:
    """The last reading of every point as the pollers see it, before report
    by exception: the store keeps a value only when it changed, so its
    timestamps would make a steady, healthy point look old. Age here is the
    time since the point was last read (or since its device was lost)."""

    def __init__(self) -> None:
        self.samples: dict[tuple[str, str], Sample] = {}

    def observe(self, record: Record) -> None:
        for s in record.samples():
            self.samples[(s.device, s.point)] = s


def live_view(
    config: SiteConfig, gateway: Gateway, now_ns: int, note: str, readings: LiveReadings
) -> Group:
    """One small table per device, laid out in columns so a whole mine fits
    a terminal; the scenario note and the counters on top."""
    classes = {d.name: d.device_class for d in config.devices}
    by_device: dict[str, list[Sample]] = {}
    latest = sorted(readings.samples.values(), key=lambda s: (s.device, s.point))
    for s in latest:
        if s.device in classes:
            by_device.setdefault(s.device, []).append(s)
    tables = []
    for device in (d.name for d in config.devices):
        state = gateway.metrics.device(device).state
        title_style = "bold red" if state == "comm_loss" else "bold"
        table = Table(
            title=f"[{title_style}]{device}[/] ({classes[device]})",
            show_header=False,
            box=None,
            padding=(0, 1),
        )
        table.add_column("point")
        table.add_column("value", justify="right")
        table.add_column("unit")
        table.add_column("quality")
        table.add_column("age", justify="right")
        for s in by_device.get(device, []):
            style = QUALITY_STYLE.get(s.quality.value, "")
            table.add_row(
                s.point,
                format_value(s.value),
                s.unit,
                f"[{style}]{s.quality.value}[/]",
                format_age(max(0.0, (now_ns - s.ts_ns) / NS)),
            )
        tables.append(table)
    header = Text.from_markup(
        f"[bold]minegate demo[/] - site {config.site.name} - {note}\n"
        + progress_line(gateway, None)
    )
    alarms = alarm_table(gateway, now_ns)
    if alarms is not None:  # active alarms first, as in minegate status
        return Group(header, alarms, Columns(tables, padding=(1, 3)))
    return Group(header, Columns(tables, padding=(1, 3)))


def alarm_table(gateway: Gateway, now_ns: int) -> Table | None:
    if gateway.alarms is None:
        return None
    from gateway.alarms.annunciation import active_table
    from gateway.alarms.persist import dump

    return active_table(dump(gateway.alarms.engine, now_ns), now_ns)


def progress_line(gateway: Gateway, elapsed_s: float | None) -> str:
    t = gateway.metrics.totals()
    lost = [n for n, d in gateway.metrics.devices.items() if d.state == "comm_loss"]
    when = "" if elapsed_s is None else f"t={elapsed_s:5.1f}s "
    active = [v.id for v in gateway.alarms.engine.alarms()] if gateway.alarms is not None else []
    return (
        f"{when}polls={t.polls} values polled={t.readings} "
        f"stored={gateway.metrics.writer.values_stored} failed requests={t.error_total}"
        + (f" comm_loss={','.join(sorted(lost))}" if lost else "")
        + (f" alarms={','.join(active[:5])}" if active else "")
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
        readings = LiveReadings()
        gateway.add_observer(readings.observe)
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
                        live.update(live_view(config, gateway, time.time_ns(), note, readings))
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
    # Without a terminal nothing knows the width: never break a line (the
    # last one ends with a command to copy).
    console = Console(soft_wrap=not sys.stdout.isatty())
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    interactive = tui and sys.stdout.isatty() and duration_s is None
    # Log lines would tear the live table apart: send them to a file then.
    setup_logging("text", "WARNING", file=data_dir / "demo.log" if interactive else None)
    if duration_s is None and not sys.stdout.isatty():
        duration_s = HEADLESS_DEFAULT_S
    return asyncio.run(_demo(duration_s, data_dir, interactive, console))

"""The demo's scenario and its entry point."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from supervision.demo.servers import (
    VICTORIA,
    DemoError,
    free_port,
    mosquitto,
    port_free,
    victoria_metrics,
)
from supervision.demo.world import (
    DEMO_USER,
    FAN_MINE,
    FAN_MINE_VOLUME_M3,
    HOIST,
    MINES,
    OFFLINE_MINE,
    SUSPENDED_MINE,
    build_registry,
    layout_for,
    platform_toml,
    site_toml,
)

HEADLESS_DEFAULT_S = 120.0  # long enough for the fan mine's methane to pass 1 %
PROGRESS_EVERY_S = 5.0
#: on a terminal, when the stopped fans restart (CH4 has passed 1 % by then)
FANS_RESTART_S = 240.0
# --- the scenario ---------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    at_s: float
    say: str
    act: Callable[[Demo], Any]


def scenario(duration_s: float | None) -> list[Step]:
    """What happens when: a fixed timeline on a terminal, compressed into a
    set duration without one."""
    if duration_s is None or duration_s >= 150:
        t = (20.0, 35.0, 60.0, 110.0)
    else:
        t = (0.15 * duration_s, 0.3 * duration_s, 0.5 * duration_s, 0.85 * duration_s)
    steps = [
        Step(
            t[0],
            f"{FAN_MINE}: both main fans stop; methane in the return climbs",
            lambda d: d.stop_fans(FAN_MINE),
        ),
        Step(
            t[1],
            f"{SUSPENDED_MINE} (suspended): at night its hoist starts winding ore: "
            "production under a suspension order",
            lambda d: d.start_hoist(SUSPENDED_MINE),
        ),
        Step(
            t[2],
            f"{OFFLINE_MINE}: the gateway stops (offline)",
            lambda d: d.stop_gateway(OFFLINE_MINE),
        ),
        Step(t[3], f"{OFFLINE_MINE}: the gateway is back", lambda d: d.start_gateway(OFFLINE_MINE)),
    ]
    if duration_s is None:  # on a terminal: the fans come back, the alarms clear
        steps.append(Step(FANS_RESTART_S, f"{FAN_MINE}: the main fans restart; methane falls",
                          lambda d: d.start_fans(FAN_MINE)))  # fmt: skip
    return steps


@dataclass
class Demo:
    workdir: Path
    mqtt_port: int
    history_url: str | None
    sims: dict[str, Any] = field(default_factory=dict)
    gateways: dict[str, Any] = field(default_factory=dict)
    runs: dict[str, asyncio.Task[None]] = field(default_factory=dict)

    def power_kw(self, code: str) -> float:
        sim = self.sims[code]
        return sum(float(sim.value(m, "active_power")) for m in ("power_meter_1", "power_meter_2"))

    def ch4(self, code: str) -> float:
        return float(self.sims[code].value("gas_monitor_1", "ch4"))

    def stop_fans(self, code: str) -> None:
        for fan in ("main_fan_1", "main_fan_2"):
            self.sims[code].operate(fan, "running", 0)

    def start_fans(self, code: str) -> None:
        for fan in ("main_fan_1", "main_fan_2"):
            self.sims[code].operate(fan, "running", 1)

    def start_hoist(self, code: str) -> None:
        self.sims[code].operate(HOIST, "running", 1)

    def hoist_speed(self, code: str) -> float:
        return float(self.sims[code].value(HOIST, "speed"))

    def start_gateway(self, code: str) -> None:
        from gateway.config import load_config
        from gateway.runtime import Gateway

        mine = next(m for m in MINES if m.code == code)
        data_dir = self.workdir / mine.site
        data_dir.mkdir(exist_ok=True)
        site = data_dir / "site.toml"
        site.write_text(
            site_toml(mine, self.sims[code], data_dir, self.mqtt_port, self.history_url)
        )
        gw = Gateway(load_config(site))
        self.gateways[code] = gw
        self.runs[code] = asyncio.create_task(gw.run(), name=f"gateway-{mine.site}")

    async def stop_gateway(self, code: str) -> None:
        self.gateways[code].request_stop()
        await self.runs.pop(code)

    async def stop_all(self) -> None:
        for code in list(self.runs):
            await self.stop_gateway(code)


def _uvicorn_server(app: Any, port: int) -> Any:
    import uvicorn

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:  # the demo handles Ctrl-C
            yield

    return Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                 access_log=False, server_header=False))  # fmt: skip


def open_alerts(engine: Any, *, resolved_too: bool = False) -> list[tuple[str, str, str]]:
    """(mine code, kind, summary) of the alerts firing now (or of every
    alert of the run)."""
    from sqlalchemy import select

    from supervision.alerting.models import Alert
    from supervision.registry.models import Mine

    query = select(Mine.code, Alert.kind, Alert.summary).join(Mine, Mine.id == Alert.mine_id)
    if not resolved_too:
        query = query.where(Alert.resolved_ns.is_(None))
    with engine.connect() as c:
        rows = c.execute(query.order_by(Alert.id)).all()
    return [(r[0], r[1], r[2]) for r in rows]


async def _run(
    duration_s: float | None, workdir: Path, port: int, say: Callable[[str], None]
) -> int:
    from simulators.mine import SimulatedMine
    from supervision.app import create_app
    from supervision.config import parse_config
    from supervision.db import make_engine

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    with mosquitto(workdir) as mqtt_port, victoria_metrics(workdir) as history_url:
        demo = Demo(workdir, mqtt_port, history_url)
        async with contextlib.AsyncExitStack() as stack:
            for i, m in enumerate(MINES):
                demo.sims[m.code] = await stack.enter_async_context(
                    SimulatedMine(layout_for(m), seed=11 + i, bus_timing=False)
                )
            # a small gassy district: its return answers a fan stop within a minute
            demo.sims[FAN_MINE].physics.mine_volume_m3 = FAN_MINE_VOLUME_M3
            await asyncio.sleep(1.5)  # a few physics ticks: the power meters settle
            baselines = {code: demo.power_kw(code) for code in demo.sims}
            db = workdir / "platform.db"
            cfg_text = platform_toml(port, mqtt_port, db, history_url)
            (workdir / "platform.toml").write_text(cfg_text)
            token = build_registry(f"sqlite:///{db}", baselines)
            config = parse_config(cfg_text, str(workdir / "platform.toml"), workdir)
            engine = make_engine(config.database.url)
            app = create_app(config, engine=engine, on_failure=lambda reason: stop.set())
            server = _uvicorn_server(app, port)
            serving = asyncio.create_task(server.serve(), name="platform")
            while not server.started:
                if serving.done():
                    raise DemoError(f"the platform did not start on port {port}: see {workdir}")
                await asyncio.sleep(0.05)
            for m in MINES:
                demo.start_gateway(m.code)
            url = f"http://127.0.0.1:{port}/"
            say(f"platform: {url}  (log in with the token below; user {DEMO_USER}, "
                "the Qinzhou city regulator)")  # fmt: skip
            say(f"token: {token}")
            say(f"mines: {', '.join(f'{m.code} {m.name}' for m in MINES)}; "
                f"{SUSPENDED_MINE} suspended, baseline {baselines[SUSPENDED_MINE]:.0f} kW")  # fmt: skip
            if history_url is None:
                say(f"no charts: {VICTORIA} is not installed (make setup installs it)")
            say("Ctrl-C to stop" if duration_s is None else f"running for {duration_s:g} s")
            try:
                await _play(demo, engine, duration_s, stop, say)
            finally:
                await demo.stop_all()
                fired = open_alerts(engine, resolved_too=True)
                say(f"demo stopped; alerts of the run: "
                    f"{'; '.join(f'{c} {k}' for c, k, _ in fired) or 'none'}")  # fmt: skip
                server.should_exit = True
                await serving
                engine.dispose()
    failed = app.state.ctx.extra.get("failed")
    if failed:
        say(f"platform failed: {failed}")
        return 1
    return 0


async def _play(demo: Demo, engine: Any, duration_s: float | None, stop: asyncio.Event,
                say: Callable[[str], None]) -> None:  # fmt: skip
    steps = scenario(duration_s)
    started = time.monotonic()
    last = -PROGRESS_EVERY_S
    while not stop.is_set():
        elapsed = time.monotonic() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        while steps and elapsed >= steps[0].at_s:
            step = steps.pop(0)
            say(f"t={elapsed:4.0f}s  {step.say}")
            result = step.act(demo)
            if asyncio.iscoroutine(result):
                await result
        if elapsed - last >= PROGRESS_EVERY_S:
            last = elapsed
            alerts = open_alerts(engine)
            say(
                f"t={elapsed:4.0f}s  {FAN_MINE} CH4 {demo.ch4(FAN_MINE):.2f} %  "
                f"{SUSPENDED_MINE} {demo.power_kw(SUSPENDED_MINE):.0f} kW, "
                f"hoist {demo.hoist_speed(SUSPENDED_MINE):.1f} m/s  "
                f"alerts: {'; '.join(f'{c} {k}' for c, k, _ in alerts) or 'none'}"
            )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)


def run_platform_demo(
    *, duration_s: float | None, port: int = 8080, data_dir: Path | None = None
) -> int:
    """Entry point of ``minegate platform demo``; returns the exit code."""
    from gateway.logs import setup_logging

    def say(line: str) -> None:
        print(line, flush=True)

    if duration_s is None and not sys.stdout.isatty():
        duration_s = HEADLESS_DEFAULT_S
    if not port_free(port):
        taken, port = port, free_port()
        say(f"port {taken} is taken; the page is on {port} instead (--port to choose)")
    keep = data_dir is not None
    workdir = (data_dir or Path(tempfile.mkdtemp(prefix="minegate-platform-demo-"))).resolve()
    if keep and workdir.exists() and any(workdir.iterdir()):
        print(f"minegate platform demo: --data-dir {workdir} is not empty: give a new or "
              "empty folder", file=sys.stderr)  # fmt: skip
        return 2
    workdir.mkdir(parents=True, exist_ok=True)
    setup_logging("text", "WARNING", file=workdir / "demo.log")
    try:
        return asyncio.run(_run(duration_s, workdir, port, say))
    except DemoError as exc:
        print(f"minegate platform demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"demo files (database, site files, logs) in {workdir}")

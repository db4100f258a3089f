"""``minegate platform demo``: the whole chain on one machine.

Three simulated mines (:class:`simulators.mine.SimulatedMine`, Modbus TCP),
the unmodified gateway runtime on each, publishing over MQTT to a mosquitto
started on a free loopback port, and the platform (web page, ingest, alert
evaluator) in this process on a temporary ``platform.toml`` and SQLite
database. It prints the page's URL and a login token, then plays a
scenario (:func:`scenario`) that shows on the page:

* Qinnan coal mine is under a suspension order; its power draw rises above
  its baseline: "suspected illegal production" with the evidence;
* Qinnan iron mine's main fans stop: airflow falls and methane in the
  return climbs (visible in the latest values; the gateway's alarm on it
  comes with the alarm engine, see :func:`gateway_alarm_rules`);
* Lingshan quarry's gateway stops: "gateway offline"; later it comes back.

With a terminal it runs until Ctrl-C; without one (or with ``--duration``)
it ends after a set time. The gateway-only demo is ``minegate demo``.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

HEADLESS_DEFAULT_S = 60.0
PROGRESS_EVERY_S = 5.0
MOSQUITTO = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")
DEMO_USER = "reg-qz"  # the city's regulator: sees every demo mine


class DemoError(Exception):
    """Something the demo needs is missing; the message says what to do."""


@dataclass(frozen=True)
class DemoMine:
    code: str
    site: str
    name: str
    county: str
    suspended: bool = False


MINES = (
    DemoMine("M-QN-1", "qinnan-1", "Qinnan iron mine", "QN"),
    DemoMine("M-QN-2", "qinnan-2", "Qinnan coal mine", "QN", suspended=True),
    DemoMine("M-LS-1", "lingshan-1", "Lingshan quarry", "LS"),
)
FAN_MINE, SUSPENDED_MINE, OFFLINE_MINE = (m.code for m in MINES)
GATEWAY = "gw1"
#: what the suspended mine starts drawing on its -80 m substation (kW)
EXTRA_LOAD_KW = 400.0
#: the fan mine's well-mixed volume upstream of its return monitor (the
#: simulator's default, 20,000 m3, takes minutes to show a fan stop)
FAN_MINE_VOLUME_M3 = 2000.0
#: tolerance above the measured baseline: pumps start and stop
POWER_MARGIN_KW = 150.0


def layout_for(site: str) -> Any:
    """A small mine on Modbus TCP only (three mines and their gateways in
    one process on a small machine): fans, power meters, a return-airway
    gas monitor."""
    from simulators.layout import BusLayout, DeviceLayout, MineLayout

    return MineLayout(
        name=site,
        buses=(
            BusLayout(
                "vent-tcp",
                "tcp",
                (
                    DeviceLayout("main_fan_1", "main_fan", 1, "No.1 return shaft fan house"),
                    DeviceLayout("main_fan_2", "main_fan", 2, "No.2 return shaft fan house"),
                ),
            ),
            BusLayout(
                "power-tcp",
                "tcp",
                (
                    DeviceLayout("power_meter_1", "power_meter", 1, "Main substation, 6 kV"),
                    DeviceLayout("power_meter_2", "power_meter", 2, "-80 m substation, 660 V"),
                ),
            ),
            BusLayout(
                "env-tcp",
                "tcp",
                (DeviceLayout("gas_monitor_1", "gas_monitor", 1, "Main return airway, -80 m"),),
            ),
        ),
    )


def gateway_alarm_rules(mine: DemoMine) -> str:
    """Site-file text appended to each gateway's configuration: the hook for
    the gateway's alarm engine (issue 11). Its CH4 rules on ``gas_monitor_1``
    go here; the gateway then publishes ``alarms/<device>`` and the platform
    shows them as ``gateway_alarm`` alerts with no change on its side."""
    return ""


def site_toml(mine: DemoMine, sim: Any, data_dir: Path, mqtt_port: int) -> str:
    return (
        sim.site_config_toml(data_dir, gateway=GATEWAY) + "\n[[sinks]]\n"
        'name = "platform"\ntype = "mqtt"\n'
        f'host = "127.0.0.1"\nport = {mqtt_port}\nqos = 1\ntopic_prefix = "minegate"\n'
        + gateway_alarm_rules(mine)
    )


def platform_toml(port: int, mqtt_port: int, db: Path) -> str:
    return (
        f'[server]\nhost = "127.0.0.1"\nport = {port}\npage_refresh_s = 5\n'
        f'[database]\nurl = "sqlite:///{db}"\n'
        f'[mqtt]\nport = {mqtt_port}\nclient_id = "minegate-platform-demo"\n'
        "session_expiry_s = 0\n"
        "[alerting]\nevaluate_interval_s = 1\nheartbeat_timeout_s = 30\n"
        "[alerting.suspended_watch]\n"
        "# the suspended coal mine must keep ventilating: its fans are in its baseline\n"
        'production_devices = ["*hoist*", "*crusher*", "*conveyor*"]\n'
        f"power_margin_kw = {POWER_MARGIN_KW}\n"
    )


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
    return [
        Step(
            t[0],
            f"{FAN_MINE}: both main fans stop; methane in the return climbs",
            lambda d: d.stop_fans(FAN_MINE),
        ),
        Step(
            t[1],
            f"{SUSPENDED_MINE} (suspended): {EXTRA_LOAD_KW:g} kW more on the -80 m "
            "substation: production under a suspension order",
            lambda d: d.add_load(SUSPENDED_MINE, EXTRA_LOAD_KW),
        ),
        Step(
            t[2],
            f"{OFFLINE_MINE}: the gateway stops (offline)",
            lambda d: d.stop_gateway(OFFLINE_MINE),
        ),
        Step(t[3], f"{OFFLINE_MINE}: the gateway is back", lambda d: d.start_gateway(OFFLINE_MINE)),
    ]


# --- the pieces -----------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def mosquitto(workdir: Path) -> Iterator[int]:
    """A mosquitto broker on a free loopback port; yields the port."""
    import getpass

    binary = next((b for b in MOSQUITTO if Path(b).exists()), shutil.which("mosquitto"))
    if binary is None:
        raise DemoError("mosquitto not found: run 'make setup' (or apt-get install mosquitto)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"user {getpass.getuser()}\nlistener {port} 127.0.0.1\nallow_anonymous true\n"
        "persistence false\nmax_queued_messages 0\nlog_dest stderr\nlog_type error\n"
    )
    log = (workdir / "mosquitto.log").open("wb")
    proc = subprocess.Popen([binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while not _tcp_open(port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"mosquitto did not start; see {workdir / 'mosquitto.log'}")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _tcp_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def build_registry(db_url: str, baselines: dict[str, float]) -> str:
    """Regions, counties, the mines and their gateways, and the city
    regulator; returns the regulator's token."""
    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel
    from supervision.db import make_engine, make_sessionmaker
    from supervision.db.migrate import upgrade
    from supervision.registry import service as reg

    engine = make_engine(db_url)
    try:
        upgrade(engine)
        now = time.time_ns()
        with make_sessionmaker(engine)() as db, db.begin():
            reg.add_region(db, "GX", "Guangxi")
            reg.add_city(db, "GX", "QZ", "Qinzhou")
            reg.add_county(db, "QZ", "QN", "Qinnan")
            reg.add_county(db, "QZ", "LS", "Lingshan")
            for m in MINES:
                order: dict[str, Any] = {}
                if m.suspended:
                    order = {"status": "suspended", "order_no": "QN-2026-7",
                             "order_from": date.today() - timedelta(days=30)}  # fmt: skip
                reg.add_mine(db, m.county, m.code, m.name,
                             baseline_power_kw=round(baselines[m.code], 1), **order)  # fmt: skip
                reg.add_gateway(db, m.code, m.site, GATEWAY, now_ns=now)
            user = auth.create_user(db, DEMO_USER, "regulator", area=AreaLevel.CITY,
                                    area_code="QZ", now_ns=now)  # fmt: skip
            return auth.issue_token(db, user, label="demo", now_ns=now)
    finally:
        engine.dispose()


@dataclass
class Demo:
    workdir: Path
    mqtt_port: int
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

    def add_load(self, code: str, kw: float) -> None:
        sim = self.sims[code]
        sim.operate("power_meter_2", "base_kw", float(sim.value("power_meter_2", "base_kw")) + kw)

    def start_gateway(self, code: str) -> None:
        from gateway.config import load_config
        from gateway.runtime import Gateway

        mine = next(m for m in MINES if m.code == code)
        data_dir = self.workdir / mine.site
        data_dir.mkdir(exist_ok=True)
        site = data_dir / "site.toml"
        site.write_text(site_toml(mine, self.sims[code], data_dir, self.mqtt_port))
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


def open_alerts(db_url_engine: Any) -> list[tuple[str, str, str]]:
    """(mine code, kind, summary) of the alerts firing now."""
    from sqlalchemy import select

    from supervision.alerting.models import Alert
    from supervision.registry.models import Mine

    with db_url_engine.connect() as c:
        rows = c.execute(
            select(Mine.code, Alert.kind, Alert.summary)
            .join(Mine, Mine.id == Alert.mine_id)
            .where(Alert.resolved_ns.is_(None))
            .order_by(Alert.id)
        ).all()
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

    with mosquitto(workdir) as mqtt_port:
        demo = Demo(workdir, mqtt_port)
        async with contextlib.AsyncExitStack() as stack:
            for i, m in enumerate(MINES):
                demo.sims[m.code] = await stack.enter_async_context(
                    SimulatedMine(layout_for(m.site), seed=11 + i, bus_timing=False)
                )
            # a small gassy district: its return answers a fan stop within a minute
            demo.sims[FAN_MINE].physics.mine_volume_m3 = FAN_MINE_VOLUME_M3
            await asyncio.sleep(1.5)  # a few physics ticks: the power meters settle
            baselines = {code: demo.power_kw(code) for code in demo.sims}
            db = workdir / "platform.db"
            cfg_text = platform_toml(port, mqtt_port, db)
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
            say("Ctrl-C to stop" if duration_s is None else f"running for {duration_s:g} s")
            try:
                await _play(demo, engine, duration_s, stop, say)
            finally:
                await demo.stop_all()
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
                f"{SUSPENDED_MINE} {demo.power_kw(SUSPENDED_MINE):.0f} kW  "
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

"""The demo's mines, their gateways' site files, the platform's
configuration and registry."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

DEMO_USER = "reg-qz"  # the city's regulator: sees every demo mine


@dataclass(frozen=True)
class DemoMine:
    code: str
    site: str
    name: str
    county: str
    suspended: bool = False
    #: its production machine (simulators.production), on the main 6 kV
    #: substation's meter: "hoist" (stopped) or "crusher" (running)
    machine: str = ""


MINES = (
    DemoMine("M-QN-1", "qinnan-1", "Qinnan iron mine", "QN"),
    DemoMine("M-QN-2", "qinnan-2", "Qinnan coal mine", "QN", suspended=True, machine="hoist"),
    DemoMine("M-LS-1", "lingshan-1", "Lingshan quarry", "LS", machine="crusher"),
)
FAN_MINE, SUSPENDED_MINE, OFFLINE_MINE = (m.code for m in MINES)
GATEWAY = "gw1"
#: the suspended mine's winder, which starts at night
HOIST = "hoist_1"
#: the fan mine's well-mixed volume upstream of its return monitor (the
#: simulator's default, 20,000 m3, takes minutes to show a fan stop)
FAN_MINE_VOLUME_M3 = 1000.0
#: tolerance above the measured baseline: pumps start and stop
POWER_MARGIN_KW = 150.0


def layout_for(mine: DemoMine) -> Any:
    """A small mine on Modbus TCP only (three mines and their gateways in
    one process on a small machine): fans, power meters, a return-airway
    gas monitor, and the mine's production machine if it has one (the
    coal mine's skip winder ``hoist_1``, stopped; the quarry's
    ``crusher_1``, running), fed from the main substation's meter. The
    gateway's default alarms (docs/alarms.md) do the rest:
    the main fans (device class ``ventilation``) raise ``main_fan_N.running``
    (critical) when they stop; the gas monitor, of ``location_class
    "return_airway"``, raises ``gas_monitor_1.ch4_high`` (high) and the
    latched ``gas_monitor_1.ch4_power_off`` (critical) at 1.0 % methane."""
    from simulators.layout import BusLayout, DeviceLayout, MineLayout
    from simulators.physics import DEFAULT_ENTITIES, EntitySpec

    entities = dict(DEFAULT_ENTITIES)
    plant: tuple[BusLayout, ...] = ()
    if mine.machine:
        device = f"{mine.machine}_1"
        where = "Main shaft winder house" if mine.machine == "hoist" else "Primary crushing station"
        plant = (BusLayout("plant-tcp", "tcp", (DeviceLayout(device, mine.machine, 1, where),)),)
        meter = entities["power_meter_1"]
        feeds = (*meter.options["feeds"], device)
        entities["power_meter_1"] = EntitySpec("power_meter", {**meter.options, "feeds": feeds})
        entities[device] = EntitySpec(mine.machine, {"running": mine.machine == "crusher"})
    return MineLayout(
        name=mine.site,
        entities=entities,
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
                (
                    DeviceLayout(
                        "gas_monitor_1",
                        "gas_monitor",
                        1,
                        "Main return airway, -80 m",
                        location_class="return_airway",
                    ),
                ),
            ),
            *plant,
        ),
    )


def site_toml(
    mine: DemoMine, sim: Any, data_dir: Path, mqtt_port: int, history_url: str | None
) -> str:
    """The gateway's site file: the simulator's devices, an MQTT sink to the
    platform and, with VictoriaMetrics running, a history sink for charts."""
    text = sim.site_config_toml(data_dir, gateway=GATEWAY) + (
        '\n[[sinks]]\nname = "platform"\ntype = "mqtt"\n'
        f'host = "127.0.0.1"\nport = {mqtt_port}\nqos = 1\ntopic_prefix = "minegate"\n'
    )
    if history_url:
        text += (
            '\n[[sinks]]\nname = "history"\ntype = "influxdb_v2"\n'
            f'url = "{history_url}"\norg = "demo"\nbucket = "minegate"\n'
        )
    return text


def platform_toml(port: int, mqtt_port: int, db: Path, history_url: str | None) -> str:
    history = (
        f'[history]\nbackend = "victoriametrics"\nurl = "{history_url}"\n'
        'window_h = 0.1\nbuckets = 18\ncharts = ["ch4", "airflow", "active_power"]\n'
        if history_url
        else ""
    )
    return history + (
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

"""Models of the simulated mine's equipment, one small class per device kind.

Each model holds its own state, advances it in :meth:`Equipment.step` from the
shared :class:`Airways` and :class:`Supply` of the mine, and exposes its
quantities by the names the device profiles use (``drivers/profiles``), so a
profile point maps to a quantity by name (or by its ``sim`` field).

Units follow the profiles: airflow m3/min, velocity m/s, pressure Pa (fan)
or MPa (fire main), currents A, power kW, energy kWh, gas % or ppm.
Numbers are plausible defaults for a medium underground mine, not data of any
real site; every one of them is a constructor argument.

Nothing here reads a clock: time only advances by the ``dt_s`` given to
``step``, and randomness comes from the ``random.Random`` passed in, so a
seeded run is reproducible.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import ClassVar

from drivers.types import Value

SQRT3 = math.sqrt(3.0)


def approach(current: float, target: float, tau_s: float, dt_s: float) -> float:
    """First-order lag: move ``current`` toward ``target`` with time constant
    ``tau_s``; exact for any ``dt_s``, so big virtual steps stay stable."""
    if tau_s <= 0.0:
        return target
    return target + (current - target) * math.exp(-dt_s / tau_s)


@dataclass
class Airways:
    """Mine-wide ventilation state, recomputed every step from the main fans."""

    nominal_airflow: float = 9000.0  # m3/min, all main fans at full speed
    airflow: float = 9000.0  # m3/min now
    natural_fraction: float = 0.02  # natural draught left with every fan stopped
    return_ch4: float = 0.30  # % in the main return
    fire_intensity: float = 0.0  # 0..1, from smoke sources (adds CO)

    @property
    def ventilation_ratio(self) -> float:
        """Airflow as a fraction of nominal, 0..~1."""
        return self.airflow / self.nominal_airflow if self.nominal_airflow else 0.0


@dataclass
class Supply:
    """Which feeders are energised: a load on an open feeder is unpowered."""

    unpowered: set[str] = field(default_factory=set)


class Equipment:
    """Base class: state in ``q`` (quantity name -> value), pinned overrides,
    and the operator actions the model understands (``actions``)."""

    kind = ""
    actions: frozenset[str] = frozenset()

    def __init__(self, name: str) -> None:
        self.name = name
        self.q: dict[str, Value] = {}
        self.pinned: dict[str, Value] = {}

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        raise NotImplementedError

    def act(self, quantity: str, value: Value) -> None:
        """An operator action (start, stop, open...). Subclasses extend."""
        self.q[quantity] = value

    def electrical_kw(self) -> float:
        """Active power the equipment draws, for the feeder's meter."""
        return 0.0

    def values(self) -> dict[str, Value]:
        merged = dict(self.q)
        merged.update(self.pinned)
        return merged


class MainFan(Equipment):
    """Axial main fan. Speed follows the run command with a spin-up and a
    longer coast-down; airflow, pressure and current follow the speed by the
    fan laws (Q ~ n, p ~ n^2, P ~ n^3)."""

    kind = "main_fan"
    actions = frozenset({"running", "fault"})

    def __init__(
        self,
        name: str,
        *,
        rated_airflow: float = 4500.0,  # m3/min
        rated_pressure: float = 2200.0,  # Pa
        rated_current: float = 36.0,  # A at 6 kV, 315 kW
        rated_kw: float = 315.0,
        drift_area_m2: float = 12.0,
        model: str = "FBCDZ-8-No26",
        running_hours: float = 12000.0,
    ) -> None:
        super().__init__(name)
        self.rated_airflow = rated_airflow
        self.rated_pressure = rated_pressure
        self.rated_current = rated_current
        self.rated_kw = rated_kw
        self.drift_area_m2 = drift_area_m2
        self.speed = 1.0  # fraction of rated speed
        self.motor_temp = 68.0
        self.bearing_temp = 52.0
        self.hours = running_hours
        self.q.update(running=True, fault=0, model=model)
        self._publish(random.Random(0))

    def act(self, quantity: str, value: Value) -> None:
        super().act(quantity, value)
        if quantity == "fault" and value:
            self.q["running"] = False  # a fault trips the starter
        if quantity == "running":
            self.q["running"] = bool(value)

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        if self.name in supply.unpowered:
            self.q["running"] = False
        running = bool(self.q["running"])
        # Spin-up ~15 s (soft starter); coast-down of a big rotor ~40 s.
        self.speed = approach(self.speed, 1.0 if running else 0.0, 15.0 if running else 40.0, dt_s)
        if running:
            self.hours += dt_s / 3600.0
        load = self.speed**3
        self.motor_temp = approach(self.motor_temp, 25.0 + 43.0 * load, 900.0, dt_s)
        self.bearing_temp = approach(self.bearing_temp, 25.0 + 27.0 * self.speed, 1200.0, dt_s)
        self._publish(rng)

    def _publish(self, rng: random.Random) -> None:
        airflow = self.rated_airflow * self.speed * (1.0 + rng.gauss(0.0, 0.004))
        airflow = max(airflow, 0.0)
        running = bool(self.q["running"])
        self.q.update(
            airflow=airflow,
            wind_speed=airflow / 60.0 / self.drift_area_m2,
            negative_pressure=max(self.rated_pressure * self.speed**2 + rng.gauss(0.0, 5.0), 0.0),
            motor_current=(
                self.rated_current * (0.25 + 0.75 * self.speed**3) * (1.0 + rng.gauss(0.0, 0.005))
                if running
                else 0.0
            ),
            motor_temperature=self.motor_temp,
            bearing_temperature=self.bearing_temp,
            running_hours=int(self.hours),
        )

    def electrical_kw(self) -> float:
        return self.rated_kw * (0.2 + 0.8 * self.speed**3) if self.q["running"] else 0.0


class AuxFan(Equipment):
    """Local fan ventilating a blind heading through a duct. The heading is a
    small well-mixed volume with its own methane inflow; the gas/power
    interlock trips when the fan stops or heading CH4 reaches ``lockout_ch4``."""

    kind = "aux_fan"
    actions = frozenset({"running", "fault"})

    def __init__(
        self,
        name: str,
        *,
        rated_airflow: float = 300.0,  # m3/min through the duct
        heading_volume_m3: float = 250.0,
        heading_area_m2: float = 12.0,
        heading_ch4_inflow: float = 0.5,  # m3/min of CH4 from the face
        rated_current: float = 32.0,  # A at 660 V, 2 x 15 kW
        rated_kw: float = 30.0,
        lockout_ch4: float = 1.5,
    ) -> None:
        super().__init__(name)
        self.rated_airflow = rated_airflow
        self.heading_volume_m3 = heading_volume_m3
        self.heading_area_m2 = heading_area_m2
        self.heading_ch4_inflow = heading_ch4_inflow
        self.rated_current = rated_current
        self.rated_kw = rated_kw
        self.lockout_ch4 = lockout_ch4
        self.speed = 1.0
        self.heading_ch4 = 0.05 + 100.0 * heading_ch4_inflow / rated_airflow
        self.q.update(running=True, fault=0)
        self._publish(random.Random(0), Airways())

    def act(self, quantity: str, value: Value) -> None:
        super().act(quantity, value)
        if quantity == "fault" and value:
            self.q["running"] = False
        if quantity == "running":
            self.q["running"] = bool(value)

    def duct_airflow(self, air: Airways) -> float:
        """Fresh air the duct brings; it draws from the through-flow of the
        main fans, so with them stopped it only recirculates."""
        return self.rated_airflow * self.speed * min(1.0, air.ventilation_ratio)

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        if self.name in supply.unpowered:
            self.q["running"] = False
        self.speed = approach(self.speed, 1.0 if self.q["running"] else 0.0, 5.0, dt_s)
        # Well-mixed heading: V dc/dt = 100 G - Q (c - c_in), exact over dt.
        fresh = max(self.duct_airflow(air), 1.0)  # 1 m3/min of diffusion at worst
        intake_ch4 = 0.02
        steady = intake_ch4 + 100.0 * self.heading_ch4_inflow / fresh
        tau_s = 60.0 * self.heading_volume_m3 / fresh
        self.heading_ch4 = approach(self.heading_ch4, steady, tau_s, dt_s)
        self._publish(rng, air)

    def _publish(self, rng: random.Random, air: Airways) -> None:
        running = bool(self.q["running"])
        velocity = self.duct_airflow(air) / 60.0 / self.heading_area_m2
        self.q.update(
            wind_speed=max(velocity * (1.0 + rng.gauss(0.0, 0.01)), 0.0),
            motor_current=self.rated_current * self.speed if running else 0.0,
            heading_ch4=self.heading_ch4,
            gas_power_lockout=(not running) or self.heading_ch4 >= self.lockout_ch4,
        )

    def electrical_kw(self) -> float:
        return self.rated_kw * self.speed if self.q["running"] else 0.0


class PumpStation(Equipment):
    """Sump with three pumps. Level integrates inflow minus pumped flow.
    In ``auto`` the standby pump starts at the high setpoint and all stop at
    the low one; any remote pump command switches the station to manual."""

    kind = "drainage"
    actions = frozenset(
        {"pump1_running", "pump2_running", "pump3_running", "auto", "inflow"}
        | {"pump1_fault", "pump2_fault", "pump3_fault", "high_level_setpoint"}
    )
    PUMPS = (1, 2, 3)

    def __init__(
        self,
        name: str,
        *,
        sump_area_m2: float = 80.0,
        inflow: float = 120.0,  # m3/h of mine water
        pump_capacity: float = 150.0,  # m3/h each
        pump_current: float = 25.0,  # A at 6 kV, 220 kW
        pump_kw: float = 220.0,
        level: float = 2.0,
        low_level: float = 1.0,
        high_level: float = 3.5,
    ) -> None:
        super().__init__(name)
        self.sump_area_m2 = sump_area_m2
        self.pump_capacity = pump_capacity
        self.pump_current = pump_current
        self.pump_kw = pump_kw
        self.low_level = low_level
        self.level = level
        self.total = 152_340.0
        self.q.update(auto=True, inflow=inflow, high_level_setpoint=high_level)
        for n in self.PUMPS:
            self.q[f"pump{n}_running"] = n == 1
            self.q[f"pump{n}_fault"] = False
        self._publish(random.Random(0))

    def act(self, quantity: str, value: Value) -> None:
        if quantity.endswith("_running"):
            self.q["auto"] = False  # a remote command takes the station to manual
            value = bool(value)
        if quantity.endswith("_fault"):
            value = bool(value)
            if value:
                self.q[quantity.replace("_fault", "_running")] = False
        super().act(quantity, value)

    def _running(self) -> list[int]:
        return [n for n in self.PUMPS if self.q[f"pump{n}_running"]]

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        if self.name in supply.unpowered:
            for n in self.PUMPS:
                self.q[f"pump{n}_running"] = False
        if self.q["auto"]:
            self._auto_control()
        # Pumps cannot run dry: they deliver nothing below the foot valve.
        outflow = self.pump_capacity * len(self._running()) if self.level > 0.2 else 0.0
        inflow = float(self.q["inflow"]) * (1.0 + rng.gauss(0.0, 0.01))
        self.level = max(0.0, self.level + (inflow - outflow) * dt_s / 3600.0 / self.sump_area_m2)
        self.total += outflow * dt_s / 3600.0
        self._publish(rng)

    def _auto_control(self) -> None:
        healthy = [n for n in self.PUMPS if not self.q[f"pump{n}_fault"]]
        running = self._running()
        if self.level >= float(self.q["high_level_setpoint"]):
            for n in healthy:
                if n not in running:
                    self.q[f"pump{n}_running"] = True
                    break
        elif self.level <= self.low_level and len(running) > 0:
            for n in running:
                self.q[f"pump{n}_running"] = False
        elif not running and self.level > self.low_level + 0.5 and healthy:
            self.q[f"pump{healthy[0]}_running"] = True

    def _publish(self, rng: random.Random) -> None:
        running = self._running()
        flow = self.pump_capacity * len(running) if self.level > 0.2 else 0.0
        self.q.update(
            sump_level=self.level,
            discharge_flow=max(flow * (1.0 + rng.gauss(0.0, 0.01)), 0.0) if flow else 0.0,
            total_discharge=self.total,
        )
        for n in self.PUMPS:
            on = n in running
            self.q[f"pump{n}_current"] = (
                self.pump_current * (1.0 + rng.gauss(0.0, 0.01)) if on else 0.0
            )

    def electrical_kw(self) -> float:
        return self.pump_kw * len(self._running())


class FireMain(Equipment):
    """Fire-water main fed from a surface tank: opening a valve draws flow and
    drops the pressure (p = p_static - k Q^2); the jockey pump refills."""

    kind = "fire_water"
    actions = frozenset({"valve1_open", "valve2_open", "deluge_valve_open"})
    VALVE_FLOW: ClassVar[dict[str, float]] = {
        "valve1_open": 36.0,
        "valve2_open": 36.0,
        "deluge_valve_open": 60.0,
    }  # m3/h

    def __init__(
        self,
        name: str,
        *,
        static_pressure: float = 1.20,  # MPa at the shaft bottom
        drop_per_flow2: float = 6.0e-5,  # MPa per (m3/h)^2
        tank_area_m2: float = 100.0,
        tank_level: float = 4.5,
        refill: float = 20.0,  # m3/h from the jockey pump
    ) -> None:
        super().__init__(name)
        self.static_pressure = static_pressure
        self.drop_per_flow2 = drop_per_flow2
        self.tank_area_m2 = tank_area_m2
        self.full_level = tank_level
        self.level = tank_level
        self.refill = refill
        self.pressure = static_pressure
        for valve in self.VALVE_FLOW:
            self.q[valve] = False
        self._publish(random.Random(0), 0.0)

    def act(self, quantity: str, value: Value) -> None:
        super().act(quantity, bool(value))

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        flow = sum((f for v, f in self.VALVE_FLOW.items() if self.q[v]), 0.0)
        target = max(self.static_pressure - self.drop_per_flow2 * flow**2, 0.05)
        self.pressure = approach(self.pressure, target, 3.0, dt_s)
        jockey = self.level < self.full_level - 0.05 or flow > 0
        refill = self.refill if jockey else 0.0
        self.level = min(
            self.full_level, self.level + (refill - flow) * dt_s / 3600.0 / self.tank_area_m2
        )
        self.level = max(self.level, 0.0)
        self.q["jockey_pump_running"] = jockey
        self._publish(rng, flow)

    def _publish(self, rng: random.Random, flow: float) -> None:
        self.q.update(
            main_pressure=max(self.pressure + rng.gauss(0.0, 0.003), 0.0),
            tank_level=self.level,
            hydrant_flow=flow,
        )
        self.q.setdefault("jockey_pump_running", False)


class SmokeSensor(Equipment):
    """Optical smoke sensor. ``fire`` (0..1) is the operator's way to light a
    belt fire upstream: obscuration rises, and the fire's CO reaches the gas
    monitors through :class:`Airways`."""

    kind = "smoke"
    actions = frozenset({"fire", "detector_fault"})

    def __init__(self, name: str, *, alarm_level: float = 1.5, full_fire: float = 8.0) -> None:
        super().__init__(name)
        self.alarm_level = alarm_level  # %/m
        self.full_fire = full_fire  # %/m with fire = 1
        self.obscuration = 0.02
        self.q.update(fire=0.0, detector_fault=False)
        self._publish(random.Random(0))

    def act(self, quantity: str, value: Value) -> None:
        super().act(quantity, bool(value) if quantity == "detector_fault" else float(value))

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        fire = float(self.q["fire"])
        air.fire_intensity = max(air.fire_intensity, fire)
        self.obscuration = approach(self.obscuration, 0.02 + self.full_fire * fire, 60.0, dt_s)
        self._publish(rng)

    def _publish(self, rng: random.Random) -> None:
        reading = max(self.obscuration + rng.gauss(0.0, 0.005), 0.0)
        faulty = bool(self.q["detector_fault"])
        self.q.update(
            obscuration=0.0 if faulty else reading,
            smoke_alarm=(not faulty) and reading >= self.alarm_level,
        )


class Annunciator(Equipment):
    """Beacon and horn driven by coils (the gateway's alarm outputs): they
    show what was last written."""

    kind = "annunciator"
    actions = frozenset({"beacon", "horn"})

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.q.update(beacon=False, horn=False)

    def act(self, quantity: str, value: Value) -> None:
        super().act(quantity, bool(value))

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        if self.name in supply.unpowered:
            self.q.update(beacon=False, horn=False)

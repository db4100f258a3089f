"""A coupled, deterministic model of an underground mine's services.

``MinePhysics(seed)`` holds named pieces of equipment ("entities", normally
one per simulated device, e.g. ``main_fan_1``) and advances them together in
``step(dt_s)``; the device servers read quantities with ``get(entity,
quantity)`` by the profile point names. The couplings are the ones a
supervisor expects to see:

* main fans stop -> mine airflow decays over tens of seconds -> methane in
  the return climbs toward ``100 * G / Q`` (inflow of CH4 over airflow, a
  well-mixed volume), O2 drops, CO2 and temperature rise; restarting the fans
  flushes it out again;
* the local fan draws from the main fans' airflow, so its heading fills with
  gas when either stops;
* pumps stop -> sump level rises with the mine-water inflow;
* every motor's load shows on its feeder's power meter (currents, kW,
  integrated kWh); opening a feeder breaker de-energises its loads;
* opening a fire valve drops the fire-main pressure; a belt fire (smoke
  sensor ``fire``) raises smoke and CO.

No wall clock inside: time only moves by the ``dt_s`` passed to ``step``;
noise comes from one ``random.Random(seed)``, so a run is reproducible.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from drivers.types import Value
from simulators.equipment import (
    SQRT3,
    Airways,
    Annunciator,
    AuxFan,
    Equipment,
    FireMain,
    MainFan,
    PumpStation,
    SmokeSensor,
    Supply,
    approach,
)
from simulators.production import Crusher, Hoist


class GasMonitor(Equipment):
    """Environment outstation at a ``location``: ``return`` (main return
    airway), ``heading`` (downstream of the local fan ``aux_fan``) or
    ``intake``. Slow gases drift as mean-reverting random walks."""

    kind = "gas_monitor"
    actions = frozenset({"sensor_fault"})
    AIRWAY_AREA_M2: ClassVar[dict[str, float]] = {"return": 25.0, "intake": 20.0}

    def __init__(self, name: str, *, location: str = "return", aux_fan: str = "") -> None:
        super().__init__(name)
        if location not in ("return", "heading", "intake"):
            raise ValueError(f"gas monitor {name!r}: unknown location {location!r}")
        if location == "heading" and not aux_fan:
            raise ValueError(f"gas monitor {name!r}: a heading monitor needs aux_fan=")
        self.location = location
        self.aux_fan_name = aux_fan
        self.aux_fan: AuxFan | None = None
        self.walk = {"co": 4.0, "no2": 0.1, "h2s": 0.2, "co2": 0.0, "temperature": 0.0, "rh": 0.0}
        self.q.update(sensor_fault=False)

    def act(self, quantity: str, value: Value) -> None:
        super().act(quantity, bool(value))

    def _drift(self, key: str, mean: float, sigma: float, dt_s: float, rng: random.Random) -> float:
        # Ornstein-Uhlenbeck step with a 10-minute reversion time.
        tau = 600.0
        x = approach(self.walk[key], mean, tau, dt_s)
        x += rng.gauss(0.0, sigma) * math.sqrt(min(dt_s, tau) / tau)
        self.walk[key] = x
        return x

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        ratio = min(air.ventilation_ratio, 1.2)
        stale = 1.0 - min(ratio, 1.0)
        if self.location == "heading" and self.aux_fan is not None:
            ch4 = self.aux_fan.heading_ch4
            wind = float(self.aux_fan.q["wind_speed"])
            stale = max(stale, 1.0 - self.aux_fan.speed)
        elif self.location == "return":
            ch4 = air.return_ch4
            wind = air.airflow / 60.0 / self.AIRWAY_AREA_M2["return"]
        else:
            ch4 = 0.02
            wind = air.airflow / 60.0 / self.AIRWAY_AREA_M2["intake"]
        ch4 = max(ch4 + rng.gauss(0.0, 0.005), 0.0)
        fire_co = 0.0 if self.location == "intake" else 150.0 * air.fire_intensity / max(ratio, 0.1)
        co = self._drift("co", 4.0, 1.0, dt_s, rng) * (1.0 + 2.0 * stale) + fire_co
        self.q.update(
            ch4=ch4,
            co=max(co, 0.0),
            o2=max(20.9 - 0.209 * ch4 - 0.8 * stale + rng.gauss(0.0, 0.02), 0.0),
            no2=max(self._drift("no2", 0.1, 0.05, dt_s, rng), 0.0),
            h2s=max(self._drift("h2s", 0.2, 0.1, dt_s, rng), 0.0),
            co2=max(0.05 + 0.4 * stale + self._drift("co2", 0.0, 0.01, dt_s, rng), 0.0),
            temperature=22.0 + 3.0 * stale + self._drift("temperature", 0.0, 0.3, dt_s, rng),
            humidity=min(max(82.0 + self._drift("rh", 0.0, 2.0, dt_s, rng), 0.0), 100.0),
            wind_speed=max(wind * (1.0 + rng.gauss(0.0, 0.01)), 0.0),
            ch4_alarm=ch4 >= 1.0,
        )


class PowerMeter(Equipment):
    """Three-phase meter on a feeder: sums the active power of the loads
    it feeds plus a ``base_kw`` (lighting, hoist idle, compressors...), derives
    currents from the apparent power, integrates energy. Opening (or
    tripping) the breaker de-energises every fed load."""

    kind = "power_meter"
    actions = frozenset(
        {"breaker_closed", "breaker_tripped", "earth_leakage", "undervoltage", "base_kw"}
    )

    def __init__(
        self,
        name: str,
        *,
        feeds: Iterable[str] = (),
        nominal_v: float = 6000.0,
        rated_kw: float = 2000.0,
        base_kw: float = 300.0,
        energy_kwh: float = 1_234_567.8,
        reactive_kvarh: float = 456_789.0,
        ct_ratio: int = 200,
    ) -> None:
        super().__init__(name)
        self.feeds = tuple(feeds)
        self.loads: list[Equipment] = []
        self.nominal_v = nominal_v
        self.rated_kw = rated_kw
        self.energy = energy_kwh
        self.reactive_energy = reactive_kvarh
        self.q.update(
            breaker_closed=True,
            breaker_tripped=False,
            earth_leakage=False,
            undervoltage=False,
            base_kw=base_kw,
            ct_ratio=ct_ratio,
        )

    def act(self, quantity: str, value: Value) -> None:
        if quantity == "base_kw":
            super().act(quantity, float(value))
            return
        super().act(quantity, bool(value))
        if quantity == "breaker_tripped" and value:
            self.q["breaker_closed"] = False
        if quantity == "breaker_closed" and value:
            self.q["breaker_tripped"] = False

    def step(self, dt_s: float, air: Airways, supply: Supply, rng: random.Random) -> None:
        closed = bool(self.q["breaker_closed"])
        kw = float(self.q["base_kw"]) + sum(load.electrical_kw() for load in self.loads)
        kw = kw * (1.0 + rng.gauss(0.0, 0.003)) if closed else 0.0
        pf = 0.70 + 0.18 * min(1.0, kw / self.rated_kw) if kw > 0 else 1.0
        kvar = kw * math.tan(math.acos(pf))
        volts = self.nominal_v * (1.02 - 0.04 * kw / self.rated_kw) if closed else 0.0
        amps = (kw / pf) * 1000.0 / (SQRT3 * volts) if closed and volts > 0 else 0.0
        self.energy += kw * dt_s / 3600.0
        self.reactive_energy += kvar * dt_s / 3600.0
        phases = {}
        for i, (vname, iname) in enumerate(
            (("voltage_ab", "current_a"), ("voltage_bc", "current_b"), ("voltage_ca", "current_c"))
        ):
            imbalance = 1.0 + 0.01 * (i - 1)  # a slightly unbalanced feeder, as they are
            phases[vname] = max(volts * (1.0 + rng.gauss(0.0, 0.001)), 0.0) if closed else 0.0
            phases[iname] = amps * imbalance
        self.q.update(
            phases,
            active_power=kw,
            reactive_power=kvar,
            power_factor=pf,
            frequency=50.0 + rng.gauss(0.0, 0.01) if closed else 0.0,
            active_energy=self.energy,
            reactive_energy=self.reactive_energy,
        )


KINDS: dict[str, type[Equipment]] = {
    cls.kind: cls
    for cls in (
        MainFan,
        AuxFan,
        PumpStation,
        PowerMeter,
        GasMonitor,
        FireMain,
        SmokeSensor,
        Annunciator,
        Hoist,
        Crusher,
    )
}
# Profiles whose devices share a model (the ASCII gas sensor is a gas monitor).
KINDS["gas_ascii"] = GasMonitor


@dataclass(frozen=True)
class EntitySpec:
    """What to build for one entity: a model ``kind`` (a key of ``KINDS``,
    which are the built-in profile names) and keyword ``options``."""

    kind: str
    options: Mapping[str, Any] = field(default_factory=dict)


DEFAULT_ENTITIES: dict[str, EntitySpec] = {
    "main_fan_1": EntitySpec("main_fan", {"model": "FBCDZ-8-No26"}),
    "main_fan_2": EntitySpec("main_fan", {"model": "FBCDZ-8-No24", "running_hours": 8300.0}),
    "aux_fan_1": EntitySpec("aux_fan"),
    "drainage_1": EntitySpec("drainage"),
    "drainage_2": EntitySpec("drainage", {"inflow": 60.0, "level": 1.6}),
    "power_meter_1": EntitySpec(
        "power_meter",
        {"feeds": ("main_fan_1", "main_fan_2", "drainage_1", "drainage_2")},
    ),
    "power_meter_2": EntitySpec(
        "power_meter",
        {
            "feeds": ("aux_fan_1",),
            "nominal_v": 660.0,
            "rated_kw": 250.0,
            "base_kw": 80.0,
            "energy_kwh": 98_765.4,
            "reactive_kvarh": 40_321.0,
            "ct_ratio": 300,
        },
    ),
    "gas_monitor_1": EntitySpec("gas_monitor", {"location": "return"}),
    "gas_monitor_2": EntitySpec("gas_monitor", {"location": "heading", "aux_fan": "aux_fan_1"}),
    "gas_ascii_1": EntitySpec("gas_ascii", {"location": "return"}),
    "fire_water_1": EntitySpec("fire_water"),
    # the beacon/horn of the alarm outputs; no device of the default layout
    # serves it (the alarm tests add one)
    "annunciator_1": EntitySpec("annunciator"),
    "smoke_1": EntitySpec("smoke"),
    # production machinery, stopped (a suspended mine's demo starts its
    # hoist; a quarry runs its crusher): no device of the default layout
    # serves them and no meter feeds them unless a layout says so
    "hoist_1": EntitySpec("hoist"),
    "crusher_1": EntitySpec("crusher"),
}


class MinePhysics:
    """The whole mine, advanced in lock-step by :meth:`step`.

    ``entities`` maps entity names to :class:`EntitySpec` (or a bare kind
    name); the default is :data:`DEFAULT_ENTITIES`. ``ch4_inflow`` (m3/min of
    methane into the general body) and ``mine_volume_m3`` (the well-mixed
    volume upstream of the return monitor) set how fast gas builds up.
    """

    def __init__(
        self,
        seed: int = 1,
        entities: Mapping[str, EntitySpec | str] | None = None,
        *,
        ch4_inflow: float = 24.0,
        mine_volume_m3: float = 20_000.0,
    ) -> None:
        self.rng = random.Random(seed)
        self.time_s = 0.0
        self.ch4_inflow = ch4_inflow
        self.mine_volume_m3 = mine_volume_m3
        self.equipment: dict[str, Equipment] = {}
        for name, spec in (DEFAULT_ENTITIES if entities is None else entities).items():
            spec = EntitySpec(spec) if isinstance(spec, str) else spec
            if spec.kind not in KINDS:
                raise ValueError(
                    f"entity {name!r}: unknown kind {spec.kind!r}; known: {', '.join(sorted(KINDS))}"
                )
            self.equipment[name] = KINDS[spec.kind](name, **dict(spec.options))
        self._wire()
        fans = self._of(MainFan)
        nominal = sum(f.rated_airflow for f in fans) or 1.0
        self.air = Airways(nominal_airflow=nominal, airflow=nominal)
        self.air.return_ch4 = self._return_ch4_steady()
        self.supply = Supply()
        self.step(0.0)

    def _of(self, cls: type[Equipment]) -> list[Any]:
        return [e for e in self.equipment.values() if isinstance(e, cls)]

    def _wire(self) -> None:
        """Resolve references between entities (meter feeds, heading fans)."""
        for meter in self._of(PowerMeter):
            for load in meter.feeds:
                if load not in self.equipment:
                    raise ValueError(f"power meter {meter.name!r} feeds unknown entity {load!r}")
                meter.loads.append(self.equipment[load])
        for monitor in self._of(GasMonitor):
            if monitor.aux_fan_name:
                fan = self.equipment.get(monitor.aux_fan_name)
                if not isinstance(fan, AuxFan):
                    raise ValueError(
                        f"gas monitor {monitor.name!r}: {monitor.aux_fan_name!r} is not an aux fan"
                    )
                monitor.aux_fan = fan

    def _return_ch4_steady(self) -> float:
        return 0.02 + 100.0 * self.ch4_inflow / max(self.air.airflow, 1.0)

    def step(self, dt_s: float) -> None:
        """Advance every entity by ``dt_s`` seconds of mine time (>= 0)."""
        if dt_s < 0:
            raise ValueError(f"dt_s must be >= 0, got {dt_s}")
        self.time_s += dt_s
        rng, air = self.rng, self.air
        self.supply.unpowered = {
            load for m in self._of(PowerMeter) if not m.q["breaker_closed"] for load in m.feeds
        }
        for fan in self._of(MainFan):
            fan.step(dt_s, air, self.supply, rng)
        fans_flow = sum(float(f.q["airflow"]) for f in self._of(MainFan))
        air.airflow = max(fans_flow, air.natural_fraction * air.nominal_airflow)
        # Well-mixed mine volume: V dc/dt = 100 G - Q (c - c_intake), exact over dt.
        tau_s = 60.0 * self.mine_volume_m3 / max(air.airflow, 1.0)
        air.return_ch4 = approach(air.return_ch4, self._return_ch4_steady(), tau_s, dt_s)
        air.fire_intensity = 0.0
        for cls in (
            AuxFan,
            PumpStation,
            FireMain,
            SmokeSensor,
            GasMonitor,
            Hoist,  # before the meters: they read its power of this step
            Crusher,
            PowerMeter,
            Annunciator,
        ):
            for item in self._of(cls):
                item.step(dt_s, air, self.supply, rng)

    # ------------------------------------------------------------------ access

    @property
    def entities(self) -> list[str]:
        return list(self.equipment)

    def kind(self, entity: str) -> str:
        return self._entity(entity).kind

    def _entity(self, entity: str) -> Equipment:
        try:
            return self.equipment[entity]
        except KeyError:
            known = ", ".join(self.equipment)
            raise KeyError(f"no simulated entity {entity!r}; known: {known}") from None

    def has(self, entity: str, quantity: str) -> bool:
        return entity in self.equipment and quantity in self.equipment[entity].values()

    def get(self, entity: str, quantity: str) -> Value:
        values = self._entity(entity).values()
        try:
            return values[quantity]
        except KeyError:
            raise KeyError(
                f"entity {entity!r} has no quantity {quantity!r}; it has: {', '.join(sorted(values))}"
            ) from None

    def snapshot(self, entity: str) -> dict[str, Value]:
        return self._entity(entity).values()

    def set(self, entity: str, quantity: str, value: Value) -> None:
        """Operator action: start/stop, open/close, fault... For a quantity
        the model does not actuate (e.g. ``ch4``) the value is pinned, as if
        the sensor read it, until :meth:`release`."""
        item = self._entity(entity)
        if quantity in item.actions:
            item.act(quantity, value)
        elif quantity in item.values():
            item.pinned[quantity] = value
        else:
            raise KeyError(
                f"entity {entity!r} has no quantity {quantity!r}; "
                f"actions: {', '.join(sorted(item.actions))}"
            )

    def release(self, entity: str, quantity: str | None = None) -> None:
        """Drop pinned values (all of the entity's, or one)."""
        item = self._entity(entity)
        if quantity is None:
            item.pinned.clear()
        else:
            item.pinned.pop(quantity, None)

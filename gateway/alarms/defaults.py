"""Default alarm rules: per location class (where a sensor hangs) and per
device class (what a device is).

A device with ``location_class = "working_face"`` (or heading_face,
return_airway, high_gas_intake, intake, machine_room, sump) gets the rules of
its class for every point it has; a device of profile class
``ventilation``, ``drainage``, ``power``, ``hoist`` or ``processing`` gets
its discrete-state alarms. Every number is a
default, never law: ``[alarm_classes.<class>]`` overrides it per site by its
key (``ch4_high = 0.8``), and an ``[[alarms]]`` rule with the generated name
(``<device>.<key>``, e.g. ``gas-a1.ch4_high``) replaces the rule outright.

Sources: the CH4, CO, NO2, H2S, SO2, O2 and CO2 numbers are the coal-mine
safety rules / AQ 1029 practice gathered in the project's domain notes
(DOMAIN.md, "Safety monitoring thresholds"); wind speed and temperature are
marked unconfirmed there. The restore levels below the alarm levels (a 5 %
deadband) and the physical ranges are this project's choices, so a reading
hovering at the level does not chatter; both are overridable.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.types import Value
from gateway.alarms.rules import Priority

DEADBAND = 0.05  # restore = level -/+ 5 % of it, unless the table says otherwise


@dataclass(frozen=True)
class Default:
    """One default rule: ``key`` is its override name (``<point>_<kind>``)."""

    point: str
    kind: str  # high | low | power_off | state
    level: Value
    priority: Priority
    source: str
    restore: float | None = None  # None: DEADBAND from the level

    @property
    def key(self) -> str:
        return self.point if self.kind == "state" else f"{self.point}_{self.kind}"

    def restore_for(self, level: float) -> float:
        """The restore level for an alarm at ``level`` (the table's own, or
        the deadband), never on the wrong side of a level a site moved."""
        rising = self.kind in ("high", "power_off")
        if self.restore is not None:
            return min(self.restore, level) if rising else max(self.restore, level)
        return round(level * (1 - DEADBAND if rising else 1 + DEADBAND), 6)


_RULES = "DOMAIN.md (coal-mine safety rules, AQ 1029)"
_UNCONFIRMED = "DOMAIN.md (unconfirmed)"
H, C, M = Priority.HIGH, Priority.CRITICAL, Priority.MEDIUM

_TOXIC = (
    Default("co", "high", 24.0, H, _RULES),
    Default("no2", "high", 2.5, H, _RULES),
    Default("h2s", "high", 6.6, H, _RULES),
    Default("so2", "high", 5.0, H, _RULES),
)
_FACE = (
    Default("ch4", "high", 1.0, H, _RULES),
    Default("ch4", "power_off", 1.5, C, _RULES, restore=1.0),
    *_TOXIC,
    Default("wind_speed", "low", 0.25, M, _UNCONFIRMED),
    Default("wind_speed", "high", 4.0, M, _UNCONFIRMED),
    Default("temperature", "high", 26.0, M, _UNCONFIRMED),
)
_INTAKE_AIR = (
    Default("o2", "low", 20.0, H, _RULES, restore=20.0),
    Default("co2", "high", 0.5, H, _RULES),
)

#: location class -> default rules
LOCATION_CLASSES: dict[str, tuple[Default, ...]] = {
    "working_face": _FACE,
    "heading_face": _FACE,
    "return_airway": (
        Default("ch4", "high", 1.0, H, _RULES),
        Default("ch4", "power_off", 1.0, C, _RULES, restore=1.0),
        *_TOXIC,
    ),
    "high_gas_intake": (
        Default("ch4", "high", 0.5, H, _RULES),
        Default("ch4", "power_off", 0.5, C, _RULES, restore=0.5),
        *_TOXIC,
        *_INTAKE_AIR,
    ),
    "intake": (*_TOXIC, *_INTAKE_AIR),
    "machine_room": (Default("temperature", "high", 30.0, M, _UNCONFIRMED),),
    "sump": (),  # the drainage device class brings the pump alarms
}

#: profile device class -> default discrete-state rules
DEVICE_CLASSES: dict[str, tuple[Default, ...]] = {
    "ventilation": (
        Default("running", "state", False, C, "main fan stopped (AQ 2031, DOMAIN.md)"),
        Default("fault", "state", True, H, "profile"),
    ),
    "drainage": (
        Default("pump1_fault", "state", True, M, "profile"),
        Default("pump2_fault", "state", True, M, "profile"),
        Default("pump3_fault", "state", True, M, "profile"),
    ),
    "power": (Default("breaker_tripped", "state", True, H, "feeder tripped (profile)"),),
    # a trip code (0 = healthy): any non-zero code is a trip
    "hoist": (Default("fault", "state", True, H, "hoist safety circuit tripped (profile)"),),
    "processing": (Default("fault", "state", True, M, "crusher tripped (profile)"),),
}

#: physical range of a gas sensor: a reading outside it is a sensor fault,
#: never a gas alarm (a failed head reads its fault value, e.g. 655.35)
PHYSICAL_RANGES: dict[str, tuple[float, float]] = {
    "ch4": (0.0, 100.0),
    "co": (0.0, 2000.0),
    "o2": (0.0, 30.0),
    "no2": (0.0, 100.0),
    "h2s": (0.0, 500.0),
    "so2": (0.0, 100.0),
    "co2": (0.0, 10.0),
}


def defaults_for(location_class: str, device_class: str) -> tuple[Default, ...]:
    return (*LOCATION_CLASSES.get(location_class, ()), *DEVICE_CLASSES.get(device_class, ()))


def override_keys(location_class: str) -> list[str]:
    return [d.key for d in LOCATION_CLASSES.get(location_class, ())]

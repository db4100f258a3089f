"""Alarm scenarios: scripted changes of the simulated mine, to test and
demonstrate the gateway's alarms (docs/alarms.md).

A :class:`Scenario` is a list of :class:`Step` at mine-time offsets; each
step sets a quantity of a physics entity (an operator action, a fault, or a
pinned sensor value) or releases a pinned one. :func:`play` applies them to
a running :class:`~simulators.mine.SimulatedMine` while advancing mine time
``speed`` times faster than the wall clock, so minutes of a mine's life
pass in seconds of a test.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from drivers.types import Value
from simulators.physics import MinePhysics


@dataclass(frozen=True)
class Step:
    at_s: float  # mine time from the start of the scenario
    entity: str
    quantity: str
    value: Value | None  # None: release a pinned value

    def apply(self, physics: MinePhysics) -> None:
        if self.value is None:
            physics.release(self.entity, self.quantity)
        else:
            physics.set(self.entity, self.quantity, self.value)


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    steps: tuple[Step, ...]
    duration_s: float


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            "fan_stop",
            "both main fans stop: airflow decays, methane in the return climbs; "
            "the fans restart after 20 minutes and flush it out",
            (
                Step(0, "main_fan_1", "running", False),
                Step(0, "main_fan_2", "running", False),
                Step(1200, "main_fan_1", "running", True),
                Step(1200, "main_fan_2", "running", True),
            ),
            2400,
        ),
        Scenario(
            "pump_fail",
            "every pump of drainage_1 faults: the sump rises with the inflow",
            tuple(Step(0, "drainage_1", f"pump{n}_fault", True) for n in (1, 2, 3)),
            3600,
        ),
        Scenario(
            "feeder_trip",
            "the main substation feeder trips: its loads (fans, pumps) stop",
            (Step(0, "power_meter_1", "breaker_tripped", True),),
            600,
        ),
        Scenario(
            "sensor_fault",
            "the return methane head fails to its fault value (0xFFFF x 0.01 = 655.35 %)",
            (
                Step(0, "gas_monitor_1", "sensor_fault", True),
                Step(0, "gas_monitor_1", "ch4", 655.35),
            ),
            120,
        ),
        Scenario(
            "calibration",
            "the return methane head is calibrated: 2.0 % test gas for 3 minutes, then released",
            (Step(0, "gas_monitor_1", "ch4", 2.0), Step(180, "gas_monitor_1", "ch4", None)),
            240,
        ),
        Scenario(
            "feed_stays_live",
            "methane at the power-off level while the area's feeder stays closed "
            "(the feed sensor still shows power: feed abnormal)",
            (
                Step(0, "gas_monitor_2", "ch4", 1.6),
                Step(0, "power_meter_2", "breaker_closed", True),
            ),
            120,
        ),
    )
}


async def play(
    mine: object, scenario: Scenario, *, speed: float = 60.0, tick_s: float = 0.1
) -> None:
    """Apply ``scenario`` to a running mine (``SimulatedMine``), advancing
    mine time ``speed`` times faster than the wall clock."""
    physics: MinePhysics = mine.physics  # type: ignore[attr-defined]
    advance = mine.advance  # type: ignore[attr-defined]
    pending = sorted(scenario.steps, key=lambda s: s.at_s)
    t = 0.0
    while True:
        while pending and pending[0].at_s <= t:
            pending.pop(0).apply(physics)
        if t >= scenario.duration_s:
            return
        await asyncio.sleep(tick_s)
        advance(tick_s * speed)
        t += tick_s * speed


def step_to(physics: MinePhysics, scenario: Scenario, until_s: float, dt_s: float = 1.0) -> None:
    """Apply ``scenario`` to bare physics up to ``until_s`` (no servers):
    for unit tests of the scenarios themselves."""
    pending = sorted(scenario.steps, key=lambda s: s.at_s)
    t = 0.0
    while t <= until_s:
        while pending and pending[0].at_s <= t:
            pending.pop(0).apply(physics)
        physics.step(dt_s)
        t += dt_s

"""The mine physics on virtual time: couplings a supervisor relies on."""

from __future__ import annotations

import pytest

from drivers.profile import find_profile, list_profiles
from simulators.physics import DEFAULT_ENTITIES, KINDS, EntitySpec, MinePhysics


def run(physics: MinePhysics, seconds: float, dt: float = 1.0) -> None:
    for _ in range(round(seconds / dt)):
        physics.step(dt)


def test_main_fans_stop_methane_climbs_then_clears() -> None:
    mine = MinePhysics(seed=3)
    run(mine, 60)
    before = float(mine.get("gas_monitor_1", "ch4"))
    airflow_before = float(mine.get("main_fan_1", "airflow"))
    mine.set("main_fan_1", "running", False)
    mine.set("main_fan_2", "running", False)
    run(mine, 30)
    # The rotor coasts down over tens of seconds, not at once.
    coasting = float(mine.get("main_fan_1", "airflow"))
    assert 0.1 * airflow_before < coasting < 0.8 * airflow_before
    run(mine, 570)
    assert float(mine.get("main_fan_1", "airflow")) < 0.01 * airflow_before
    assert float(mine.get("main_fan_1", "wind_speed")) < 0.1
    peak = float(mine.get("gas_monitor_1", "ch4"))
    assert peak > before + 0.5, (before, peak)
    assert float(mine.get("gas_monitor_1", "o2")) < 20.9 - 0.1
    assert float(mine.get("main_fan_1", "motor_current")) == 0.0
    # The heading behind the local fan fills too: its air comes from the mains.
    assert float(mine.get("gas_monitor_2", "ch4")) > 1.0
    assert mine.get("gas_monitor_2", "ch4_alarm") is True
    mine.set("main_fan_1", "running", True)
    mine.set("main_fan_2", "running", True)
    run(mine, 900)
    assert float(mine.get("gas_monitor_1", "ch4")) < before + 0.05


def test_one_fan_stopped_halves_airflow_and_raises_methane() -> None:
    mine = MinePhysics(seed=4)
    q0 = mine.air.airflow
    ch4_0 = float(mine.get("gas_monitor_1", "ch4"))
    mine.set("main_fan_2", "running", 0)
    run(mine, 1200, dt=5.0)
    assert mine.air.airflow == pytest.approx(q0 / 2, rel=0.05)
    # Steady state of a well-mixed volume: concentration ~ inflow / airflow.
    assert float(mine.get("gas_monitor_1", "ch4")) == pytest.approx(2 * ch4_0, rel=0.15)


def test_aux_fan_stop_fills_heading_and_trips_interlock() -> None:
    mine = MinePhysics(seed=5)
    assert mine.get("aux_fan_1", "gas_power_lockout") is False
    mine.set("aux_fan_1", "running", 0)
    run(mine, 5)
    assert mine.get("aux_fan_1", "gas_power_lockout") is True
    run(mine, 300)
    assert float(mine.get("gas_monitor_2", "ch4")) > 1.0
    assert mine.get("gas_monitor_2", "ch4_alarm") is True
    assert float(mine.get("aux_fan_1", "wind_speed")) < 0.05


def test_pumps_stop_level_rises_pumps_start_level_falls() -> None:
    mine = MinePhysics(seed=6)
    level0 = float(mine.get("drainage_1", "sump_level"))
    for n in (1, 2, 3):
        mine.set("drainage_1", f"pump{n}_running", False)
    assert mine.get("drainage_1", "auto") is False  # a remote command means manual
    run(mine, 1800, dt=10.0)
    level1 = float(mine.get("drainage_1", "sump_level"))
    inflow_m3 = 120.0 * 0.5  # half an hour at 120 m3/h
    assert level1 - level0 == pytest.approx(inflow_m3 / 80.0, rel=0.05)
    assert float(mine.get("drainage_1", "discharge_flow")) == 0.0
    assert float(mine.get("drainage_1", "pump1_current")) == 0.0
    mine.set("drainage_1", "pump1_running", True)
    mine.set("drainage_1", "pump2_running", True)
    run(mine, 1800, dt=10.0)
    assert float(mine.get("drainage_1", "sump_level")) < level1 - 1.0
    assert float(mine.get("drainage_1", "pump2_current")) > 20.0


def test_auto_drainage_starts_standby_pump_at_high_level() -> None:
    mine = MinePhysics(seed=6)
    mine.set("drainage_1", "inflow", 400.0)  # a water inrush
    run(mine, 3 * 3600, dt=30.0)
    running = [mine.get("drainage_1", f"pump{n}_running") for n in (1, 2, 3)]
    assert all(running)
    assert mine.get("drainage_1", "auto") is True


def test_power_meter_follows_motor_loads_and_integrates_energy() -> None:
    mine = MinePhysics(seed=8)
    p0 = float(mine.get("power_meter_1", "active_power"))
    i0 = float(mine.get("power_meter_1", "current_a"))
    fan_kw = mine.equipment["main_fan_1"].electrical_kw()
    mine.set("main_fan_1", "running", 0)
    run(mine, 300)
    p1 = float(mine.get("power_meter_1", "active_power"))
    assert p0 - p1 == pytest.approx(fan_kw, rel=0.05)
    assert float(mine.get("power_meter_1", "current_a")) < i0
    # Energy is the integral of the power the meter showed (the pumps'
    # auto control switches them meanwhile, so the power is not constant).
    e0 = float(mine.get("power_meter_1", "active_energy"))
    shown_kwh = 0.0
    for _ in range(360):
        mine.step(10.0)
        shown_kwh += float(mine.get("power_meter_1", "active_power")) * 10.0 / 3600.0
    e1 = float(mine.get("power_meter_1", "active_energy"))
    assert e1 - e0 == pytest.approx(shown_kwh, rel=1e-9)
    assert shown_kwh > 0.5 * p1
    # P = sqrt(3) V I pf
    v = float(mine.get("power_meter_1", "voltage_ab"))
    i = float(mine.get("power_meter_1", "current_b"))
    pf = float(mine.get("power_meter_1", "power_factor"))
    assert 3**0.5 * v * i * pf / 1000 == pytest.approx(
        float(mine.get("power_meter_1", "active_power")), rel=0.02
    )


def test_open_breaker_deenergises_its_loads() -> None:
    mine = MinePhysics(seed=9)
    mine.set("power_meter_2", "breaker_tripped", True)
    run(mine, 10)
    assert mine.get("power_meter_2", "breaker_closed") is False
    assert float(mine.get("power_meter_2", "active_power")) == 0.0
    assert mine.get("aux_fan_1", "running") is False
    # Closing the breaker does not restart the fan: someone has to.
    mine.set("power_meter_2", "breaker_closed", True)
    run(mine, 10)
    assert mine.get("aux_fan_1", "running") is False
    assert float(mine.get("power_meter_2", "active_power")) > 0.0


def test_fire_valve_drops_main_pressure_and_smoke_raises_co() -> None:
    mine = MinePhysics(seed=10)
    p0 = float(mine.get("fire_water_1", "main_pressure"))
    mine.set("fire_water_1", "deluge_valve_open", True)
    run(mine, 30)
    assert float(mine.get("fire_water_1", "main_pressure")) < p0 - 0.15
    assert float(mine.get("fire_water_1", "hydrant_flow")) == 60.0
    co0 = float(mine.get("gas_monitor_1", "co"))
    mine.set("smoke_1", "fire", 0.5)
    run(mine, 300)
    assert mine.get("smoke_1", "smoke_alarm") is True
    assert float(mine.get("gas_monitor_1", "co")) > co0 + 24.0


def test_same_seed_same_run_other_seed_other_noise() -> None:
    a, b, c = MinePhysics(seed=11), MinePhysics(seed=11), MinePhysics(seed=12)
    for mine in (a, b, c):
        mine.set("main_fan_2", "running", 0)
        run(mine, 120)
    for entity in a.entities:
        assert a.snapshot(entity) == b.snapshot(entity)
    assert a.get("gas_monitor_1", "co") != c.get("gas_monitor_1", "co")


def test_pinned_reading_overrides_until_released() -> None:
    mine = MinePhysics(seed=1)
    mine.set("gas_monitor_1", "ch4", 1.6)
    run(mine, 10)
    assert mine.get("gas_monitor_1", "ch4") == 1.6
    mine.release("gas_monitor_1", "ch4")
    assert float(mine.get("gas_monitor_1", "ch4")) < 1.0


def test_unknown_names_are_errors_that_say_what_exists() -> None:
    mine = MinePhysics(seed=1)
    with pytest.raises(KeyError, match="known: main_fan_1"):
        mine.get("main_fan_9", "airflow")
    with pytest.raises(KeyError, match="has no quantity"):
        mine.set("main_fan_1", "rpm", 1)
    with pytest.raises(ValueError, match="unknown kind"):
        MinePhysics(entities={"x": EntitySpec("conveyor")})
    with pytest.raises(ValueError, match=">= 0"):
        mine.step(-1.0)


@pytest.mark.parametrize("name", sorted(list_profiles()))
def test_every_builtin_profile_point_has_a_physics_quantity(name: str) -> None:
    """A profile is only simulated if the physics produces every point."""
    prof = find_profile(name)
    assert name in KINDS, f"profile {name} has no physics model"
    entity = next(e for e, spec in DEFAULT_ENTITIES.items() if spec.kind == name)
    mine = MinePhysics(seed=1)
    for point in prof.points:
        assert mine.has(entity, point.sim or point.name), f"{name}.{point.name}"

"""The alarm scenarios do to the simulated mine what they say."""

from __future__ import annotations

from simulators.physics import MinePhysics
from simulators.scenarios import SCENARIOS, step_to


def run(name: str, until_s: float) -> MinePhysics:
    physics = MinePhysics(seed=1)
    step_to(physics, SCENARIOS[name], until_s)
    return physics


def test_fan_stop_methane_climbs_then_is_flushed() -> None:
    assert float(MinePhysics(seed=1).get("gas_monitor_1", "ch4")) < 0.5
    stopped = run("fan_stop", 900)
    assert float(stopped.get("gas_monitor_1", "ch4")) > 1.0
    assert stopped.get("main_fan_1", "running") is False
    restarted = run("fan_stop", 2000)
    assert float(restarted.get("gas_monitor_1", "ch4")) < 0.5


def test_pump_fail_sump_rises() -> None:
    before = float(MinePhysics(seed=1).get("drainage_1", "sump_level"))
    after = run("pump_fail", 1800)
    assert float(after.get("drainage_1", "sump_level")) > before + 0.3
    assert after.get("drainage_1", "pump1_running") is False


def test_feeder_trip_stops_the_loads() -> None:
    p = run("feeder_trip", 60)
    assert p.get("power_meter_1", "breaker_tripped") is True
    assert p.get("main_fan_1", "running") is False


def test_sensor_fault_and_calibration_and_live_feed() -> None:
    assert run("sensor_fault", 10).get("gas_monitor_1", "ch4") == 655.35
    assert run("calibration", 60).get("gas_monitor_1", "ch4") == 2.0
    assert float(run("calibration", 240).get("gas_monitor_1", "ch4")) < 0.5
    live = run("feed_stays_live", 30)
    assert (
        live.get("gas_monitor_2", "ch4") == 1.6
        and live.get("power_meter_2", "breaker_closed") is True
    )

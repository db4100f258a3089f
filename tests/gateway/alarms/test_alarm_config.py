"""Alarm rules compiled from the site file: defaults per location and
device class, site overrides, replacement by name, glob points. (The
check-config errors are the data case config_cases/alarm_checks.)"""

from __future__ import annotations

from pathlib import Path

from gateway.alarms.rules import LimitRule, PowerOffRule, Priority, SensorFaultRule, StateRule
from gateway.config import load_config

SITE = """
[site]
name = "t"

[[buses]]
name = "b"
type = "tcp"
host = "127.0.0.1"
port = 5020

[[devices]]
name = "gas-a1"
bus = "b"
unit = 1
profile = "gas_monitor"
location_class = "working_face"

[[devices]]
name = "gas-r1"
bus = "b"
unit = 3
profile = "gas_monitor"
location_class = "return_airway"

[[devices]]
name = "fan"
bus = "b"
unit = 2
profile = "main_fan"

[[devices]]
name = "feeder"
bus = "b"
unit = 4
profile = "power_meter"

[[devices]]
name = "hoist"
bus = "b"
unit = 5
profile = "hoist"

[[devices]]
name = "crusher"
bus = "b"
unit = 6
profile = "crusher"

[alarm_classes.working_face]
ch4_high = 0.8

[[alarms]]
name = "gas-a1.ch4_power_off"
kind = "power_off"
point = "gas-a1.ch4"
limit = 1.2
feed = "feeder.breaker_closed"
feed_after_s = 5

[[alarms]]
name = "co_everywhere"
kind = "high"
point = "gas-*.co"
limit = 30
deadband = 2
range = [0, 2000]
"""


def rules_of(tmp_path: Path) -> dict[str, object]:
    (tmp_path / "site.toml").write_text(SITE)
    config = load_config(tmp_path / "site.toml")
    return {r.name: r for r in config.alarm_rules}


def test_defaults_overrides_and_replacements(tmp_path: Path) -> None:
    rules = rules_of(tmp_path)
    face = rules["gas-a1.ch4_high"]
    assert isinstance(face, LimitRule) and face.limit == 0.8 and face.restore == 0.76
    ret = rules["gas-r1.ch4_power_off"]  # return airway: power off at 1.0 (AQ 1029)
    assert isinstance(ret, PowerOffRule) and ret.limit == 1.0 and ret.latched
    assert ret.priority is Priority.CRITICAL
    replaced = rules["gas-a1.ch4_power_off"]
    assert isinstance(replaced, PowerOffRule) and replaced.limit == 1.2
    assert replaced.feed is not None and str(replaced.feed) == "feeder.breaker_closed"
    fan = rules["fan.running"]
    assert isinstance(fan, StateRule) and fan.value is False
    assert isinstance(rules["feeder.breaker_tripped"], StateRule)
    assert isinstance(rules["gas-a1.ch4_fault"], SensorFaultRule)
    assert "fan.comm_loss" in rules
    hoist, crusher = rules["hoist.fault"], rules["crusher.fault"]  # trip codes: non-zero trips
    assert isinstance(hoist, StateRule) and hoist.value is True
    assert hoist.priority is Priority.HIGH
    assert isinstance(crusher, StateRule) and crusher.priority is Priority.MEDIUM
    assert "hoist.comm_loss" in rules and "crusher.comm_loss" in rules


def test_glob_point_gives_one_alarm_per_point(tmp_path: Path) -> None:
    rules = rules_of(tmp_path)
    for dev in ("gas-a1", "gas-r1"):
        rule = rules[f"co_everywhere:{dev}.co"]
        assert isinstance(rule, LimitRule) and rule.restore == 28
        assert isinstance(rules[f"co_everywhere:{dev}.co.fault"], SensorFaultRule)


def test_an_overridden_level_keeps_its_restore_on_the_right_side(tmp_path: Path) -> None:
    site = SITE.replace('location_class = "return_airway"', 'location_class = "high_gas_intake"')
    site += "\n[alarm_classes.high_gas_intake]\nch4_power_off = 0.4\no2_low = 20.5\n"
    (tmp_path / "site.toml").write_text(site)
    rules = {r.name: r for r in load_config(tmp_path / "site.toml").alarm_rules}
    po = rules["gas-r1.ch4_power_off"]
    assert isinstance(po, PowerOffRule) and (po.limit, po.restore) == (0.4, 0.4)  # table: 0.5
    o2 = rules["gas-r1.o2_low"]
    assert isinstance(o2, LimitRule) and (o2.limit, o2.restore) == (20.5, 20.5)  # table: 20


def test_no_defaults_for_a_device_without_its_class_points(tmp_path: Path) -> None:
    """A device of class power without the breaker points (the benchmark's
    100-register device) gets no alarm at all, not even comm loss."""
    bench = Path(__file__).parents[3] / "bench" / "gateway_profiles"
    (tmp_path / "site.toml").write_text(
        f"""
[site]
name = "t"
profile_dirs = ["{bench}"]

[[buses]]
name = "b"
type = "tcp"
host = "127.0.0.1"
port = 5020

[[devices]]
name = "d1"
bus = "b"
unit = 1
profile = "bench_holding100"
"""
    )
    config = load_config(tmp_path / "site.toml")
    assert config.devices[0].device_class == "power"
    assert config.alarm_rules == ()

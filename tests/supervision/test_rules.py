"""Alert rules as pure functions, on hand-made facts."""

from __future__ import annotations

from datetime import date

from supervision.alerting.rules import (
    AlarmFact,
    GatewayFact,
    MineFact,
    ValueFact,
    evaluate_rules,
    gateway_offline,
    suspended_mine_watch,
)
from supervision.config import AlertingSection

from .helpers import T0

S = 1_000_000_000
CFG = AlertingSection.model_validate({"heartbeat_timeout_s": 60})


def gw(last_seen: int | None, state: str | None = None, reason: str | None = None) -> GatewayFact:
    return GatewayFact(1, 10, "s/g", T0, last_seen, state, reason, T0 if state else None)


def test_offline_by_last_will() -> None:
    [a] = gateway_offline([gw(T0 + 5 * S, "offline", "connection lost")], T0 + 6 * S, 60)
    assert a.kind == "gateway_offline" and a.fingerprint == "gateway_offline:1"
    assert "connection lost" in a.summary and a.evidence["reason"] == "connection lost"


def test_offline_by_missing_heartbeat_only_after_the_timeout() -> None:
    assert gateway_offline([gw(T0, "online")], T0 + 60 * S, 60) == []
    [a] = gateway_offline([gw(T0, "online")], T0 + 61 * S, 60)
    assert "no message" in a.summary
    # never heard of since registration: counted from then
    assert gateway_offline([gw(None)], T0 + 30 * S, 60) == []
    assert len(gateway_offline([gw(None)], T0 + 61 * S, 60)) == 1


def test_a_platform_back_from_downtime_gives_gateways_a_timeout_first() -> None:
    silent_while_we_were_down = gw(T0, "online")
    started = T0 + 3600 * S
    assert gateway_offline([silent_while_we_were_down], started + 60 * S, 60, started) == []
    assert len(gateway_offline([silent_while_we_were_down], started + 61 * S, 60, started)) == 1


MINE = MineFact(10, "M1", "Mine one", "suspended", "ORD-1", date(2026, 11, 1), None, 50.0)


def v(device: str, point: str, value: object, quality: str = "good") -> ValueFact:
    num = float(value) if isinstance(value, int | float) else None
    return ValueFact(10, 1, device, point, value, num, "kW", quality, T0)


def test_suspended_mine_drawing_power_above_baseline() -> None:
    today = date(2026, 12, 1)
    assert suspended_mine_watch([MINE], [v("pm", "active_power", 45.0)], today, CFG) == []
    [a] = suspended_mine_watch(
        [MINE], [v("pm", "active_power", 45.0), v("pm2", "active_power", 30.0)], today, CFG
    )
    assert a.kind == "suspected_illegal_production" and a.severity == "critical"
    assert a.evidence["power_total_kw"] == 75.0 and a.evidence["order_no"] == "ORD-1"
    assert {e["device"] for e in a.evidence["power"]} == {"pm", "pm2"}
    assert a.evidence["power_above_baseline"] is True
    # the live number is evidence only: the summary stays while the draw moves
    assert a.summary.endswith(": power above its baseline 50 kW")
    [b] = suspended_mine_watch([MINE], [v("pm", "active_power", 80.0)], today, CFG)
    assert b.summary == a.summary and b.evidence["power_total_kw"] == 80.0


def test_a_running_hoist_is_named_with_its_readings() -> None:
    """The hoist's running state names it in the summary, whatever its
    power does in its winding cycle; its speed, position and current are
    evidence, with their times."""
    today = date(2026, 12, 1)
    hoist = [
        v("hoist_1", "running", True),
        ValueFact(10, 1, "hoist_1", "speed", 7.9, 7.9, "m/s", "good", T0 + 3),
        ValueFact(10, 1, "hoist_1", "position", 212.0, 212.0, "m", "good", T0 + 3),
        ValueFact(10, 1, "hoist_1", "motor_current", 91.0, 91.0, "A", "good", T0 + 3),
        ValueFact(10, 1, "crusher_1", "throughput", 0.0, 0.0, "t/h", "good", T0),  # not running
    ]
    for power in (30.0, 900.0):  # dwelling, then lifting
        [a] = suspended_mine_watch([MINE], [*hoist, v("pm", "active_power", power)], today, CFG)
        assert a.summary.endswith(": running: hoist_1")
        assert a.evidence["power_above_baseline"] is (power > 50)
    [running] = a.evidence["running"]
    assert running["device"] == "hoist_1" and running["ts"] == "2026-12-01T00:00:00Z"
    assert running["readings"]["speed"] == {
        "value": 7.9,
        "unit": "m/s",
        "ts": "2026-12-01T00:00:00Z",
    }
    assert set(running["readings"]) == {"speed", "position", "motor_current"}


def test_suspended_mine_running_its_hoist_or_main_fan() -> None:
    today = date(2026, 12, 1)
    [a] = suspended_mine_watch(
        [MINE], [v("main_fan_1", "running", True), v("aux_fan_1", "running", True)], today, CFG
    )
    assert [e["device"] for e in a.evidence["running"]] == [
        "main_fan_1"
    ]  # aux fan is no production
    assert suspended_mine_watch([MINE], [v("hoist", "running", False)], today, CFG) == []
    # a value of bad quality is no evidence
    assert suspended_mine_watch([MINE], [v("hoist", "running", True, "stale")], today, CFG) == []


def test_no_watch_outside_the_order_or_for_producing_mines() -> None:
    power = [v("pm", "active_power", 500.0)]
    assert suspended_mine_watch([MINE], power, date(2026, 10, 31), CFG) == []
    ended = MineFact(10, "M1", "m", "suspended", None, date(2026, 1, 1), date(2026, 6, 30), 50.0)
    assert suspended_mine_watch([ended], power, date(2026, 12, 1), CFG) == []
    producing = MineFact(10, "M1", "m", "producing", None, None, None, 50.0)
    assert suspended_mine_watch([producing], power, date(2026, 12, 1), CFG) == []


def test_forwarded_alarms_fire_with_priority_until_quiet() -> None:
    def fact(alarm: str, state: str, severity: str = "high", message: str = "") -> AlarmFact:
        return AlarmFact(10, 1, "s/g", alarm, "gas", "ch4", state, severity, "raise", "li",
                         message, 1.05, T0)  # fmt: skip

    facts = [fact("gas.ch4_high", "active_acked", "high", "gas.ch4_high: acknowledged by li"),
             fact("gas.ch4_power_off", "active_unacked", "critical")]  # fmt: skip
    quiet = ("normal", "rtn_unacked", "shelved", "suppressed", "out_of_service")
    facts += [fact(f"q{i}", s) for i, s in enumerate(quiet)]
    specs = evaluate_rules(now_ns=T0, gateways=[], mines=[], values=[], alarms=facts, config=CFG)
    assert list(specs) == ["gateway_alarm:1:gas.ch4_high", "gateway_alarm:1:gas.ch4_power_off"]
    high, power_off = specs.values()
    assert (high.severity, high.summary) == ("high", "gas.ch4_high: acknowledged by li")
    assert (power_off.severity, power_off.summary) == (
        "critical",
        "gas.ch4_power_off: active_unacked",
    )

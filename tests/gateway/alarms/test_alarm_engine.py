"""The engine on virtual time: each rule kind, delays, hysteresis, comm
loss, sensor faults, calibration (out of service), feed check, commands."""

from __future__ import annotations

import pytest

from drivers.types import Value
from gateway.alarms.engine import AlarmEngine
from gateway.alarms.expr import parse
from gateway.alarms.rules import (
    ExprRule,
    LimitKind,
    LimitRule,
    PointRef,
    PowerOffRule,
    QualityKind,
    QualityRule,
    RateRule,
    Rule,
    SensorFaultRule,
    StateRule,
)
from gateway.alarms.state import Event, Refused, Status, Transition
from gateway.model import Quality, Record, RecordKind

S = 1_000_000_000
CH4 = PointRef("gas", "ch4")


class Clock:
    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


def sample(device: str, t: float, q: Quality = Quality.GOOD, **values: Value | None) -> Record:
    return Record(
        RecordKind.SAMPLE, device, int(t * S), list(values), list(values.values()),
        [""] * len(values), [q] * len(values),
    )  # fmt: skip


def feed(
    engine: AlarmEngine, device: str, series: list[tuple[float, Value]], point: str = "ch4"
) -> list[Transition]:
    out: list[Transition] = []
    for t, v in series:
        out += engine.observe(sample(device, t, **{point: v}))
    return out


def high(**kw: object) -> LimitRule:
    args: dict[str, object] = dict(
        name="ch4", point=CH4, kind=LimitKind.HIGH, limit=1.0, restore=0.9
    )
    args.update(kw)
    return LimitRule(**args)  # type: ignore[arg-type]


def events(trs: list[Transition]) -> list[tuple[str, str]]:
    return [(t.alarm, t.after.value) for t in trs]


def test_hysteresis_no_flapping_at_the_threshold() -> None:
    e = AlarmEngine([high()])
    noisy = [(i, 1.0 + (0.02 if i % 2 else -0.02)) for i in range(1, 40)]
    trs = feed(e, "gas", noisy)
    assert events(trs) == [("ch4", "active_unacked")]  # raised once, never cleared at 0.98
    assert events(feed(e, "gas", [(50, 0.89)])) == [("ch4", "rtn_unacked")]


def test_without_deadband_the_same_noise_chatters() -> None:
    e = AlarmEngine([high(restore=1.0)])
    trs = feed(e, "gas", [(i, 1.0 + (0.02 if i % 2 else -0.02)) for i in range(1, 11)])
    assert len(trs) == 10  # the test above would fail without the deadband


def test_on_delay_needs_the_condition_to_hold_throughout() -> None:
    e = AlarmEngine([high(on_delay_s=3)])
    assert feed(e, "gas", [(0, 1.2), (1, 1.2), (2, 0.5), (3, 1.2), (5, 1.2)]) == []
    assert events(feed(e, "gas", [(6, 1.2)])) == [("ch4", "active_unacked")]


def test_on_delay_expires_between_readings_on_tick() -> None:
    clock = Clock()
    e = AlarmEngine([high(on_delay_s=2)], clock=clock)
    assert feed(e, "gas", [(0, 1.5)]) == []
    clock.now = 1 * S
    assert e.tick() == []
    clock.now = 2 * S
    assert events(e.tick()) == [("ch4", "active_unacked")]


def test_off_delay() -> None:
    e = AlarmEngine([high(off_delay_s=5)])
    feed(e, "gas", [(0, 1.5)])
    assert feed(e, "gas", [(1, 0.5), (4, 0.5)]) == []
    assert events(feed(e, "gas", [(6, 0.5)])) == [("ch4", "rtn_unacked")]


def test_low_low_limit() -> None:
    e = AlarmEngine(
        [
            LimitRule(
                name="o2",
                point=PointRef("gas", "o2"),
                kind=LimitKind.LOW_LOW,
                limit=18.0,
                restore=18.5,
            )
        ]
    )
    trs = feed(e, "gas", [(0, 20.9), (1, 17.9), (2, 18.2), (3, 18.6)], point="o2")
    assert events(trs) == [("o2", "active_unacked"), ("o2", "rtn_unacked")]


def test_sensor_fault_value_is_never_a_gas_alarm() -> None:
    rng = (0.0, 100.0)
    e = AlarmEngine(
        [high(valid_range=rng), SensorFaultRule(name="ch4.fault", point=CH4, valid_range=rng)]
    )
    trs = feed(e, "gas", [(0, 0.3), (1, 655.35)])
    assert events(trs) == [("ch4.fault", "active_unacked")]
    assert e.states["ch4"].status is Status.NORMAL
    bad = e.observe(sample("gas", 2, Quality.BAD, ch4=None))
    assert bad == []  # still faulted, nothing new
    assert events(feed(e, "gas", [(3, 0.3)])) == [("ch4.fault", "rtn_unacked")]


def test_comm_loss_rule_and_gas_rule_holds_its_state() -> None:
    rules: list[Rule] = [
        high(),
        QualityRule(name="gas.comm", point=CH4, kind=QualityKind.COMM_LOSS),
    ]
    e = AlarmEngine(rules)
    feed(e, "gas", [(0, 1.5)])
    lost = e.observe(sample("gas", 1, Quality.COMM_LOSS, ch4=None, co=None))
    assert events(lost) == [("gas.comm", "active_unacked")]
    assert e.states["ch4"].condition  # no value: the gas alarm neither clears nor re-raises
    back = feed(e, "gas", [(2, 0.2)])
    assert sorted(events(back)) == [("ch4", "rtn_unacked"), ("gas.comm", "rtn_unacked")]


def test_stale_rule() -> None:
    e = AlarmEngine([QualityRule(name="frozen", point=CH4, kind=QualityKind.STALE)])
    assert events([*e.observe(sample("gas", 0, Quality.STALE, ch4=0.3))]) == [
        ("frozen", "active_unacked")
    ]


def test_calibration_out_of_service_raises_nothing_and_is_recorded() -> None:
    clock = Clock()
    e = AlarmEngine([high()], clock=clock)
    trs = e.command("gas.ch4", Event.REMOVE, "li", note="calibration")
    assert events(trs) == [("ch4", "out_of_service")] and trs[0].user == "li"
    assert feed(e, "gas", [(1, 2.0), (60, 2.0), (120, 0.3)]) == []
    back = e.command("gas.ch4", Event.RESTORE, "li")
    assert events(back) == [("ch4", "normal")]


def test_out_of_service_by_the_device_flag() -> None:
    rule = high(out_of_service_when=parse("gas.calibrating"))
    e = AlarmEngine([rule])
    trs = e.observe(sample("gas", 0, ch4=2.0, calibrating=True))
    assert events(trs) == [("ch4", "out_of_service")]
    assert e.out_of_service_points("gas") == {"ch4": 1}  # its samples are marked
    trs = e.observe(sample("gas", 1, ch4=0.2, calibrating=False))
    assert events(trs) == [("ch4", "normal")]
    assert e.out_of_service_points("gas") is None


def test_points_out_of_service_counted_per_alarm_and_across_a_restart() -> None:
    e = AlarmEngine([high(), high(name="ch4_hh", limit=1.5, restore=1.4)])
    e.command("gas.ch4", Event.REMOVE, "li")
    assert e.out_of_service_points("gas") == {"ch4": 2}
    e.command("ch4", Event.RESTORE, "li")  # one alarm back: the point is still out
    assert e.out_of_service_points("gas") == {"ch4": 1}
    restarted = AlarmEngine([high(), high(name="ch4_hh", limit=1.5, restore=1.4)], states=e.states)
    assert restarted.out_of_service_points("gas") == {"ch4": 1}


def test_rate_of_change() -> None:
    e = AlarmEngine([RateRule(name="rise", point=CH4, per_min=0.2, window_s=60)])
    trs = feed(e, "gas", [(t, 0.3 + 0.005 * t) for t in range(0, 61, 5)])  # 0.3 %/min
    assert events(trs) == [("rise", "active_unacked")]
    assert trs[0].value == pytest.approx(0.3)


def test_discrete_state_and_combined_condition() -> None:
    rules: list[Rule] = [
        StateRule(name="fan.stopped", point=PointRef("fan", "running"), value=False),
        ExprRule(name="gas_without_fan", when=parse("gas.ch4 >= 0.8 and fan.running == false")),
    ]
    e = AlarmEngine(rules)
    assert events(e.observe(sample("fan", 0, running=False))) == [("fan.stopped", "active_unacked")]
    assert e.observe(sample("gas", 1, ch4=0.5)) == []
    assert events(e.observe(sample("gas", 2, ch4=0.9))) == [("gas_without_fan", "active_unacked")]


def test_combined_condition_does_not_clear_on_missing_data() -> None:
    e = AlarmEngine([ExprRule(name="x", when=parse("gas.ch4 >= 0.8 and fan.running == false"))])
    e.observe(sample("fan", 0, running=False))
    e.observe(sample("gas", 1, ch4=0.9))
    assert e.observe(sample("fan", 2, Quality.COMM_LOSS, running=None)) == []
    assert e.states["x"].condition


def test_power_off_latches_and_feed_check() -> None:
    clock = Clock()
    rule = PowerOffRule(
        name="po", point=CH4, limit=1.5, restore=1.0, latched=True,
        feed=PointRef("feeder", "breaker_closed"), feed_after_s=10,
    )  # fmt: skip
    e = AlarmEngine([rule], clock=clock)
    e.observe(sample("feeder", 0, breaker_closed=True))
    assert events(feed(e, "gas", [(1, 1.6)])) == [("po", "active_unacked")]
    with pytest.raises(Refused, match="still holds"):
        e.command("po", Event.RESET, "li")
    clock.now = 5 * S
    assert e.tick() == []
    clock.now = 11 * S
    assert events(e.tick()) == [("po.feed", "active_unacked")]
    # power cut: feed abnormal returns; methane falls but the power-off stays latched
    assert events(e.observe(sample("feeder", 12, breaker_closed=False))) == [
        ("po.feed", "rtn_unacked")
    ]
    feed(e, "gas", [(20, 0.4)])
    assert e.states["po"].status is Status.ACTIVE_UNACKED
    assert events(e.command("po", Event.RESET, "li")) == [("po", "rtn_unacked")]


def test_no_feed_abnormal_when_power_is_cut_in_time() -> None:
    clock = Clock()
    rule = PowerOffRule(name="po", point=CH4, limit=1.5, restore=1.0, latched=True,
                        feed=PointRef("feeder", "breaker_closed"), feed_after_s=10)  # fmt: skip
    e = AlarmEngine([rule], clock=clock)
    e.observe(sample("feeder", 0, breaker_closed=True))
    feed(e, "gas", [(1, 1.6)])
    e.observe(sample("feeder", 3, breaker_closed=False))
    clock.now = 30 * S
    assert e.tick() == []


def test_shelve_expires_on_tick() -> None:
    clock = Clock()
    e = AlarmEngine([high()], clock=clock)
    feed(e, "gas", [(0, 1.5)])
    e.command("ch4", Event.SHELVE, "li", until_ns=60 * S)
    clock.now = 61 * S
    trs = e.tick()
    assert events(trs) == [("ch4", "active_unacked")] and trs[0].event is Event.UNSHELVE


def test_unknown_alarm_is_refused() -> None:
    e = AlarmEngine([high()])
    with pytest.raises(Refused, match="no alarm named 'nope'"):
        e.command("nope", Event.ACK, "li")


def test_observe_touches_only_the_rules_of_the_points_read() -> None:
    rules = [high(name=f"r{i}", point=PointRef(f"d{i}", "ch4")) for i in range(1000)]
    e = AlarmEngine(rules)
    calls = []
    cond = e.conditions["r7"]
    inner = cond.test
    cond.test = lambda *a: calls.append(1) or inner(*a)  # type: ignore[method-assign]
    for c in e.conditions.values():
        if c.id != "r7":
            c.test = lambda *a: pytest.fail("a rule of another point was evaluated")  # type: ignore[method-assign]
    e.observe(sample("d7", 0, ch4=2.0))
    assert calls == [1]

"""Transitions as ALARM records: the point and value that decided them,
the alarm, states, priority, who; combined and rate alarms."""

from __future__ import annotations

from gateway.alarms.engine import AlarmEngine
from gateway.alarms.expr import parse
from gateway.alarms.records import to_record
from gateway.alarms.rules import ExprRule, LimitKind, LimitRule, PointRef, Priority, RateRule, Rule
from gateway.alarms.state import Event
from gateway.model import Quality, Record, RecordKind

S = 1_000_000_000


def reading(device: str, t: float, **values: float) -> Record:
    n = len(values)
    return Record(RecordKind.SAMPLE, device, int(t * S), list(values), list(values.values()),
                  ["%"] * n, [Quality.GOOD] * n)  # fmt: skip


def records(e: AlarmEngine, rec: Record) -> list[Record]:
    return [to_record(tr, e.conditions[tr.alarm], "%") for tr in e.observe(rec)]


def test_limit_alarm_record_and_operator_record() -> None:
    rule = LimitRule(name="ch4", point=PointRef("gas", "ch4"), kind=LimitKind.HIGH, limit=1.0,
                     restore=0.95, priority=Priority.CRITICAL, message="CH4 in the return")  # fmt: skip
    e = AlarmEngine([rule], clock=lambda: 9 * S)
    (rec,) = records(e, reading("gas", 5, ch4=1.2))
    assert (rec.kind, rec.device, rec.ts_ns, rec.points, rec.values, rec.units) == (
        RecordKind.ALARM, "gas", 5 * S, ["ch4"], [1.2], ["%"],
    )  # fmt: skip
    f = rec.fields
    assert (f["alarm"], f["point"], f["severity"], f["state"], f["from"], f["event"], f["limit"]) == (
        "ch4", "ch4", "critical", "active_unacked", "normal", "raise", 1.0,
    )  # fmt: skip
    assert f["message"] == "CH4 in the return: raised (ch4 1.2 %, limit 1)"
    (ack,) = e.command("ch4", Event.ACK, "li", note="crew withdrawn")
    rec = to_record(ack, e.conditions["ch4"], "%")
    assert rec.values == [] and rec.ts_ns == 9 * S
    assert rec.fields["user"] == "li" and rec.fields["note"] == "crew withdrawn"
    assert rec.fields["message"].endswith("acknowledged by li: crew withdrawn")


def test_combined_and_rate_alarms() -> None:
    rules: list[Rule] = [
        ExprRule(name="both", when=parse("a.ch4 > 1 and b.ch4 > 1")),
        RateRule(name="rise", point=PointRef("a", "ch4"), per_min=0.5, window_s=10),
    ]
    e = AlarmEngine(rules)
    records(e, reading("b", 0, ch4=1.5))
    out = records(e, reading("a", 0, ch4=1.5))
    out += records(e, reading("a", 10, ch4=1.7))
    by = {r.fields["alarm"]: r for r in out}
    assert (
        by["both"].device == "alarms"
        and by["both"].points == []
        and "point" not in by["both"].fields
    )
    rise = by["rise"]
    assert rise.device == "a" and rise.points == []  # a rate is not a reading of the point
    assert rise.fields["rate_per_min"] == 1.2 and rise.fields["limit"] == 0.5


def test_one_type_per_field_for_influxdb() -> None:
    """`limit` is always a number; a watched state or a range goes to
    `expected` as text (InfluxDB refuses a field whose type changes)."""
    from gateway.alarms.rules import SensorFaultRule, StateRule

    rules: list[Rule] = [
        StateRule(name="fan", point=PointRef("fan", "running"), value=False),
        SensorFaultRule(name="fault", point=PointRef("gas", "ch4"), valid_range=(0.0, 100.0)),
        LimitRule(name="hi", point=PointRef("gas", "ch4"), kind=LimitKind.HIGH, limit=1, restore=1),
    ]
    e = AlarmEngine(rules)
    out = records(
        e, Record(RecordKind.SAMPLE, "fan", 0, ["running"], [False], [""], [Quality.GOOD])
    )
    out += records(e, reading("gas", 1, ch4=655.35))
    out += records(e, reading("gas", 2, ch4=2.0))
    by = {r.fields["alarm"]: r.fields for r in out}
    assert by["fan"]["expected"] == "false" and "limit" not in by["fan"]
    assert by["fault"]["expected"] == "0..100" and "limit" not in by["fault"]
    assert by["hi"]["limit"] == 1.0 and isinstance(by["hi"]["limit"], float)

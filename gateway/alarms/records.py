"""Alarm transitions as ALARM records (the layout is in docs/schema.md).

One record per transition: ``device`` and the single point are the point
the alarm is about (its value, unit and quality when the transition carries
a value), and ``fields`` say which alarm, what happened and who did it::

    alarm, point, severity (the priority: low|medium|high|critical),
    state (the status after), from (the status before), event,
    limit (a number) or expected (text: a state, a range), user, note,
    latched, shelved_until_ns, rate_per_min, message
"""

from __future__ import annotations

from drivers.types import Value
from gateway.alarms.conditions import Condition
from gateway.alarms.rules import RateRule
from gateway.alarms.state import Status, Transition
from gateway.model import Quality, Record, RecordKind

#: the source of alarms that are about no single point (combined conditions)
ALARMS_SOURCE = "alarms"

_EVENT_WORDS = {
    "raise": "raised",
    "clear": "cleared",
    "ack": "acknowledged",
    "reset": "reset",
    "shelve": "shelved",
    "unshelve": "unshelved",
    "suppress": "suppressed by design",
    "unsuppress": "no longer suppressed",
    "remove": "out of service",
    "restore": "back in service",
}


def message(tr: Transition, cond: Condition, unit: str) -> str:
    rule = cond.rule
    what = rule.message or cond.id
    text = f"{what}: {_EVENT_WORDS.get(tr.event.value, tr.event.value)}"
    origin = cond.origin
    if tr.value is not None and origin is not None:
        text += f" ({origin.point} {_fmt(tr.value)}{' ' + unit if unit else ''}"
        text += f", limit {_fmt(tr.limit)})" if tr.limit is not None else ")"
    if tr.after is not Status.NORMAL and tr.latched_on and tr.after.value.startswith("active"):
        text += "; latched until reset"
    if tr.user and not tr.user.startswith("("):
        text += f" by {tr.user}"
    if tr.note:
        text += f": {tr.note}"
    return text


def _fmt(v: Value | None) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def to_record(tr: Transition, cond: Condition, unit: str = "") -> Record:
    origin = cond.origin
    device = origin.device if origin is not None else ALARMS_SOURCE
    points: list[str] = []
    values: list[Value | None] = []
    units: list[str] = []
    qualities: list[Quality] = []
    fields: dict[str, object] = {"alarm": tr.alarm}
    if isinstance(cond.rule, RateRule):
        # the value is a rate, not a reading of the point
        if isinstance(tr.value, int | float):
            fields["rate_per_min"] = float(tr.value)
    elif origin is not None and tr.value is not None and not isinstance(tr.value, str):
        points, values, units, qualities = [origin.point], [tr.value], [unit], [Quality.GOOD]
    if origin is not None:
        fields["point"] = origin.point
    fields.update(
        severity=cond.rule.priority.label,
        state=tr.after.value,
        event=tr.event.value,
    )
    fields["from"] = tr.before.value
    # one type per field name, as InfluxDB fixes a field's type at its first
    # write: numeric limits in `limit`, anything else (a state, a range) as
    # text in `expected`
    if isinstance(tr.limit, int | float) and not isinstance(tr.limit, bool):
        fields["limit"] = float(tr.limit)
    elif tr.limit is not None:
        fields["expected"] = str(tr.limit).lower() if isinstance(tr.limit, bool) else str(tr.limit)
    if tr.user:
        fields["user"] = tr.user
    if tr.note:
        fields["note"] = tr.note
    if tr.latched_on:
        fields["latched"] = True
    if tr.shelved_until_ns is not None:
        fields["shelved_until_ns"] = tr.shelved_until_ns
    fields["message"] = message(tr, cond, unit)
    return Record(RecordKind.ALARM, device, tr.ts_ns, points, values, units, qualities, fields)

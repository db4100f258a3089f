"""Gateway MQTT messages (docs/schema.md) to typed messages, or a reason
to drop them. Pure: no database, no clock; every check on untrusted input
is here, so the rest of ingest handles only well-formed data.

Topics: ``<prefix>/<site>/<gateway>/<leaf>``, leaves as the gateway's
``gateway/sinks/mqtt_schema.py`` writes them.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

from gateway.sinks.mqtt_schema import topic_segment

QUALITIES = frozenset({"good", "stale", "bad", "comm_loss"})
MAX_NAME = 200
MAX_UNIT = 32
MAX_TEXT = 1000
MAX_POINTS = 2000
INT64_MAX = 2**63 - 1
#: the gateway's alarm states (docs/alarms.md) that raise nothing on the
#: platform: the condition is over (``normal``; ``rtn_unacked`` until the
#: mine acknowledges it), or the mine's operator or its design took the
#: alarm out of annunciation; the mine page lists all but ``normal``
QUIET_STATES = frozenset({"normal", "rtn_unacked", "shelved", "suppressed", "out_of_service"})
ALARM_STATES = QUIET_STATES | {"active_unacked", "active_acked"}
#: alarm topics the platform does not read: the gateway's operator
#: commands and their answers (docs/alarms.md) share ``alarms/+``
ALARM_CONTROL = ("commands", "replies")
#: leaves whose records carry a seq but nothing the platform keeps (yet)
SEQ_ONLY = {"stats": "stat", "events": "event", "metrics": "metric", "survey": "finding"}
#: the FINDING of a whole survey check (survey/findings.py); its incidents
#: come as "survey_incident" findings, which the platform does not keep
CHECK_MEASUREMENT = "survey_check"


class Dropped(Exception):
    """The message is not used; ``reason`` is a short counter label."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class PointValue:
    point: str
    value: object  # None, bool, int, float or str
    unit: str
    quality: str

    @property
    def number(self) -> float | None:
        v = self.value
        if isinstance(v, bool):
            return 1.0 if v else 0.0
        if isinstance(v, int | float) and not isinstance(v, bool):
            f = float(v)
            return f if math.isfinite(f) else None
        return None


@dataclass(frozen=True, slots=True)
class Message:
    """One parsed message. ``kind``: status, sample, snapshot, alarm,
    alarm_clear (the empty retained ``alarms/active/<alarm>``), stat, event,
    metric, survey_check, finding (other findings), survey_alert, or ignored
    (the gateway's alarm commands and replies: not for the platform)."""

    topic_key: str  # "<site>/<gateway>" as in the topic
    kind: str
    seq: int | None = None
    ts_ns: int | None = None
    device: str = ""
    values: tuple[PointValue, ...] = ()
    # status
    state: str = ""
    reason: str = ""
    # alarm: ``alarm`` is its id as a topic level (the key it is stored
    # under, so the empty retained message that clears it finds it);
    # ``retained`` for the ``alarms/active/<alarm>`` copy of a transition
    alarm: str = ""
    retained: bool = False
    alarm_point: str = ""
    alarm_state: str = ""
    severity: str = ""
    event: str = ""
    user: str = ""
    text: str = ""  # alarm or finding message
    # finding of a survey check (kind "survey_check"): device is the check id
    licence: str = ""
    violation: bool = False


def _int(obj: dict[str, object], key: str) -> int:
    v = obj.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not 0 <= v <= INT64_MAX:
        raise Dropped("bad_field", f"{key!r} must be an integer 0..2**63-1, got {type(v).__name__}")
    return v


def _str(obj: dict[str, object], key: str, limit: int, default: str | None = None) -> str:
    v = obj.get(key, default)
    if not isinstance(v, str) or len(v) > limit or "\x00" in v:
        raise Dropped("bad_field", f"{key!r} must be a string of at most {limit} characters")
    return v


def _values(obj: dict[str, object]) -> tuple[PointValue, ...]:
    raw = obj.get("values")
    if not isinstance(raw, dict):
        raise Dropped("bad_field", "'values' must be an object")
    if len(raw) > MAX_POINTS:
        raise Dropped("too_many_points", f"{len(raw)} points, at most {MAX_POINTS}")
    out = []
    for point, entry in raw.items():
        if len(point) > MAX_NAME or "\x00" in point or not isinstance(entry, dict):
            raise Dropped("bad_field", f"values[{point[:50]!r}] must be an object")
        v = entry.get("v")
        if isinstance(v, float) and not math.isfinite(v):
            v = None
        if isinstance(v, str) and (len(v) > MAX_TEXT or "\x00" in v):
            raise Dropped("bad_field", f"values[{point!r}].v is a string too long")
        if v is not None and not isinstance(v, bool | int | float | str):
            raise Dropped("bad_field", f"values[{point!r}].v must be a number, boolean or string")
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > INT64_MAX:
            raise Dropped("bad_field", f"values[{point!r}].v is out of range")
        q = entry.get("q")
        if q not in QUALITIES:
            raise Dropped("bad_field", f"values[{point!r}].q must be one of {sorted(QUALITIES)}")
        u = entry.get("u", "")
        if not isinstance(u, str) or len(u) > MAX_UNIT or "\x00" in u:
            raise Dropped("bad_field", f"values[{point!r}].u must be a short string")
        out.append(PointValue(point, v, u, str(q)))
    return tuple(out)


def parse(topic: str, payload: bytes, *, prefix: str, max_bytes: int) -> Message:
    """The message on ``topic``; raises :class:`Dropped` with the reason."""
    if len(payload) > max_bytes:
        raise Dropped("too_large", f"{len(payload)} bytes, at most {max_bytes}")
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        raise Dropped("unknown_topic", "outside the prefix")
    # NUL cannot be stored by PostgreSQL: refuse it everywhere, here first
    parts = topic[len(head) :].split("/")
    if len(parts) < 3 or not parts[0] or not parts[1] or "\x00" in topic:
        raise Dropped("unknown_topic", "expected <prefix>/<site>/<gateway>/<leaf>")
    key = f"{parts[0]}/{parts[1]}"
    leaf = parts[2:]
    if len(leaf) == 2 and leaf[0] == "alarms" and leaf[1] in ALARM_CONTROL:
        return Message(key, "ignored")
    active = len(leaf) == 3 and leaf[:2] == ["alarms", "active"] and leaf[2] != ""
    if active and not payload:
        # the gateway empties the retained copy when the alarm is normal
        return Message(key, "alarm_clear", alarm=leaf[2], retained=True)
    try:
        obj = json.loads(payload)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise Dropped("bad_json", str(exc)[:200]) from None
    if not isinstance(obj, dict):
        raise Dropped("bad_json", "payload is not a JSON object")

    if leaf == ["status"]:
        state = _str(obj, "state", 16)
        if state not in ("online", "offline"):
            raise Dropped("bad_field", "'state' must be online or offline")
        return Message(
            key,
            "status",
            ts_ns=_int(obj, "ts_ns"),
            state=state,
            reason=_str(obj, "reason", 200, ""),
        )
    if leaf == ["alerts", "survey"]:
        return Message(key, "survey_alert", ts_ns=_int(obj, "ts_ns"))
    if len(leaf) == 2 and leaf[0] in ("telemetry", "snapshot"):
        return Message(
            key,
            "sample" if leaf[0] == "telemetry" else "snapshot",
            seq=_int(obj, "seq"),
            ts_ns=_int(obj, "ts_ns"),
            device=_str(obj, "device", MAX_NAME),
            values=_values(obj),
        )
    if (len(leaf) == 2 and leaf[0] == "alarms") or active:
        return _alarm(key, obj, retained=active)
    if len(leaf) == 2 and leaf[0] == "survey":
        fields = obj.get("fields")
        if isinstance(fields, dict) and fields.get("measurement") == CHECK_MEASUREMENT:
            tags = fields.get("tags")
            if not isinstance(tags, dict):
                raise Dropped("bad_field", "a survey check finding needs fields.tags")
            alert = fields.get("alert")
            if not isinstance(alert, bool):
                raise Dropped("bad_field", "fields.alert must be true or false")
            return Message(
                key,
                "survey_check",
                seq=_int(obj, "seq"),
                ts_ns=_int(obj, "ts_ns"),
                device=_str(obj, "device", MAX_NAME),
                values=_values(obj) if "values" in obj else (),
                text=_str(fields, "message", MAX_TEXT, ""),
                licence=_str(tags, "licence", MAX_NAME),
                violation=alert,
            )
    if (len(leaf) == 2 and leaf[0] in ("stats", "survey")) or (
        len(leaf) == 1 and leaf[0] in ("events", "metrics")
    ):
        return Message(key, SEQ_ONLY[leaf[0]], seq=_int(obj, "seq"), ts_ns=_int(obj, "ts_ns"))
    raise Dropped("unknown_topic", "/".join(leaf)[:100])


def _alarm(key: str, obj: dict[str, object], *, retained: bool) -> Message:
    """An ALARM record (docs/schema.md): one transition of the alarm
    ``fields.alarm``, its state and priority after it."""
    fields = obj.get("fields")
    if not isinstance(fields, dict):
        raise Dropped("bad_field", "an alarm needs 'fields' (alarm, severity, state)")
    state = _str(fields, "state", 32)
    if state not in ALARM_STATES:
        raise Dropped("bad_field", f"fields.state {state[:40]!r} is not one of {sorted(ALARM_STATES)}")  # fmt: skip
    return Message(
        key,
        "alarm",
        seq=_int(obj, "seq"),
        ts_ns=_int(obj, "ts_ns"),
        device=_str(obj, "device", MAX_NAME),
        values=_values(obj) if "values" in obj else (),
        alarm=topic_segment(_str(fields, "alarm", MAX_NAME)),
        retained=retained,
        alarm_point=_str(fields, "point", MAX_NAME, ""),
        alarm_state=state,
        severity=_str(fields, "severity", 32),
        event=_str(fields, "event", 32, ""),
        user=_str(fields, "user", MAX_NAME, ""),
        text=_str(fields, "message", MAX_TEXT, ""),
    )

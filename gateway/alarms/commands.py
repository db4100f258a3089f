"""Operator commands on alarms: parse, authorise, apply, audit, reply.

One request is a JSON object, from the local socket (``minegate alarms``)
or the MQTT command topic::

    {"user": "li.wei", "cmd": "ack", "alarm": "gas-a1.ch4_high", "note": "...",
     "hours": 2, "off": false, "id": "any correlation id"}

``cmd`` is ``ack``, ``shelve`` (``hours``, at most ``max_shelve_h``;
``off = true`` unshelves), ``reset``, ``oos`` (an alarm, a ``device.point``
or a device; ``off = true`` returns it to service) or ``list``. The user
must be one of ``[[alarm_control.users]]`` and hold the right named like
the command (``list`` is every known user's). Authorisation is here, in
one place, default deny. Every request, accepted or refused, becomes an
audit EVENT record ``alarm_command`` (who, what, on what, the answer).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from gateway.alarms.engine import AlarmEngine, AlarmView
from gateway.alarms.state import Event, Refused, Transition
from gateway.model import Quality, Record, RecordKind

COMMANDS = ("ack", "shelve", "reset", "oos", "list")
AUDIT_SOURCE = "alarms"
NS = 1_000_000_000


@dataclass(frozen=True)
class Outcome:
    reply: dict[str, Any]
    transitions: list[Transition]
    audit: Record


def view_dict(v: AlarmView) -> dict[str, Any]:
    return {
        "alarm": v.id,
        "state": v.status.value,
        "priority": v.priority.label,
        "device": v.device,
        "point": v.point,
        "value": v.value,
        "limit": v.limit,
        "since_ns": v.since_ns,
        "latched": v.latched_on,
        "shelved_until_ns": v.shelved_until_ns,
        "message": v.message,
    }


class CommandDesk:
    """Applies operator requests to one engine."""

    def __init__(
        self,
        engine: AlarmEngine,
        users: Mapping[str, frozenset[str]],
        *,
        max_shelve_h: float,
        clock: Callable[[], int],
    ) -> None:
        self.engine = engine
        self.users = users
        self.max_shelve_h = max_shelve_h
        self.clock = clock

    def handle(self, request: object, channel: str) -> Outcome:
        reply: dict[str, Any]
        transitions: list[Transition] = []
        req = request if isinstance(request, dict) else {}
        try:
            reply, transitions = self._handle(request)
        except Refused as exc:
            reply = {"ok": False, "error": str(exc)}
        if "id" in req:
            reply["id"] = req["id"]
        audit = self._audit(req, reply, channel)
        return Outcome(reply, transitions, audit)

    def _handle(self, request: object) -> tuple[dict[str, Any], list[Transition]]:
        if not isinstance(request, dict):
            raise Refused("malformed command: send one JSON object with user, cmd and alarm")
        unknown = set(request) - {"user", "cmd", "alarm", "note", "hours", "off", "id"}
        if unknown:
            raise Refused(f"malformed command: unknown keys {sorted(unknown)}")
        user, cmd = request.get("user"), request.get("cmd")
        if not isinstance(user, str) or not user:
            raise Refused("malformed command: `user` (a string) is required")
        if cmd not in COMMANDS:
            raise Refused(f"malformed command: `cmd` must be one of {', '.join(COMMANDS)}")
        rights = self.users.get(user)
        if rights is None:
            raise Refused(f"unknown user {user!r}: add them to [[alarm_control.users]]")
        if cmd != "list" and cmd not in rights:
            raise Refused(f"user {user!r} has no right to {cmd}")
        if cmd == "list":
            return {"ok": True, "alarms": [view_dict(v) for v in self.engine.alarms()]}, []
        target = request.get("alarm")
        if not isinstance(target, str) or not target:
            raise Refused("malformed command: `alarm` (a string) is required")
        note = request.get("note", "")
        if not isinstance(note, str):
            raise Refused("malformed command: `note` must be a string")
        off = request.get("off", False)
        if not isinstance(off, bool):
            raise Refused("malformed command: `off` must be true or false")
        until = None
        if cmd == "ack":
            event = Event.ACK
        elif cmd == "reset":
            event = Event.RESET
        elif cmd == "oos":
            event = Event.RESTORE if off else Event.REMOVE
        else:
            event = Event.UNSHELVE if off else Event.SHELVE
            if not off:
                hours = request.get("hours")
                if isinstance(hours, bool) or not isinstance(hours, int | float) or hours <= 0:
                    raise Refused("malformed command: shelve needs `hours` > 0")
                if hours > self.max_shelve_h:
                    raise Refused(
                        f"shelving is limited to {self.max_shelve_h:g} h ([alarm_control] max_shelve_h)"
                    )
                until = self.clock() + int(hours * 3600 * NS)
        trs = self.engine.command(target, event, user, until_ns=until, note=note)
        done = [{"alarm": t.alarm, "state": t.after.value} for t in trs]
        return {"ok": True, "done": done}, trs

    def _audit(self, req: dict[str, Any], reply: dict[str, Any], channel: str) -> Record:
        fields: dict[str, object] = {
            "event": "alarm_command",
            "channel": channel,
            "user": str(req.get("user", "")),
            "cmd": str(req.get("cmd", "")),
            "alarm": str(req.get("alarm", "")),
            "ok": bool(reply.get("ok")),
        }
        if not reply.get("ok"):
            fields["error"] = reply.get("error", "")
        if req.get("note"):
            fields["note"] = str(req["note"])
        return Record(
            RecordKind.EVENT,
            AUDIT_SOURCE,
            self.clock(),
            ["event"],
            ["alarm_command"],
            [""],
            [Quality.GOOD],
            fields=fields,
        )

"""The alarm engine: evaluates the rules on each reading as it is produced.

``AlarmEngine(rules, clock=...)`` compiles every rule into conditions
(``gateway.alarms.conditions``) indexed by the points they read, so
:meth:`observe` costs O(conditions touched by the record), never O(rules).
It keeps the latest reading of every point a rule reads, applies on- and
off-delays, the muting expressions (suppression by design, out of service
while a device reports calibration) and the pure state machine
(``gateway.alarms.state``), and returns the :class:`Transition` list to
record. :meth:`tick` (called a few times a second) fires delays that expire
between readings and shelves that expire; :meth:`command` applies an
operator's acknowledge, shelve, reset or out-of-service.

No I/O and no wall clock of its own: observe() goes by the record's
timestamp, tick() and command() by the injected ``clock``, so tests run on
virtual time.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from drivers.types import Value
from gateway.alarms.conditions import Condition, Reading, compile_rule
from gateway.alarms.rules import PointRef, Priority, QualityKind, QualityRule, Rule
from gateway.alarms.state import (
    AlarmState,
    Event,
    Input,
    Refused,
    Status,
    Transition,
    transition,
)
from gateway.model import Quality, Record, RecordKind

DESIGN_USER = "(by design)"  # the user of transitions the rules themselves make
EXPIRY_USER = "(shelf expired)"

_OBSERVED = (RecordKind.SAMPLE, RecordKind.SNAPSHOT)


@dataclass(frozen=True, slots=True)
class AlarmView:
    """One alarm as ``minegate alarms list`` and ``status`` show it."""

    id: str
    status: Status
    priority: Priority
    device: str
    point: str
    value: Value | None
    limit: Value | None
    since_ns: int
    latched_on: bool
    shelved_until_ns: int | None
    message: str


class AlarmEngine:
    def __init__(
        self,
        rules: Iterable[Rule],
        *,
        clock: Callable[[], int] = time.time_ns,
        states: Mapping[str, AlarmState] | None = None,
    ) -> None:
        self.clock = clock
        self._readings: dict[tuple[str, str], Reading] = {}
        self._comm_lost: dict[str, bool] = {}
        self.states: dict[str, AlarmState] = {}
        self.conditions: dict[str, Condition] = {}
        self._by_point: dict[tuple[str, str], list[Condition]] = {}
        self._by_device: dict[str, list[Condition]] = {}  # comm-loss rules
        self._dependents: dict[str, list[Condition]] = {}
        self._pending: set[str] = set()  # ids with a delay running
        self._shelved: set[str] = set()
        self._muted_by_design: dict[str, set[Event]] = {}  # id -> {SUPPRESS, REMOVE}
        # device -> point -> how many of its alarms are out of service
        self._oos_points: dict[str, dict[str, int]] = {}
        for rule in rules:
            for cond in compile_rule(rule, self._comm_lost, self._alarm_on):
                if cond.id in self.conditions:
                    raise ValueError(f"two alarms named {cond.id!r}")
                self.conditions[cond.id] = cond
                self.states[cond.id] = AlarmState()
                watched = [*cond.inputs, *rule.muting_inputs()]
                for ref in dict.fromkeys(watched):
                    self._by_point.setdefault((ref.device, ref.point), []).append(cond)
                if (
                    isinstance(rule, QualityRule)
                    and rule.kind is QualityKind.COMM_LOSS
                    and cond.origin is not None
                ):
                    self._by_device.setdefault(cond.origin.device, []).append(cond)
                if cond.depends_on is not None:
                    self._dependents.setdefault(cond.depends_on, []).append(cond)
        for aid, st in (states or {}).items():
            if aid in self.states:  # alarms removed from the config are forgotten
                self.states[aid] = st
                if st.shelved_until_ns is not None:
                    self._shelved.add(aid)
                if st.out_of_service:
                    self._count_out_of_service(self.conditions[aid], 1)

    # -- inputs --------------------------------------------------------------

    def observe(self, record: Record) -> list[Transition]:
        """Take one reading (a SAMPLE record, before report by exception, or
        a comm-loss record) and return the transitions it causes."""
        if record.kind not in _OBSERVED:
            return []
        dev = record.device
        ts = record.ts_ns
        touched: dict[str, Condition] = {}
        by_point = self._by_point
        readings = self._readings
        qualities = record.qualities
        for p, v, q in zip(record.points, record.values, qualities, strict=True):
            key = (dev, p)
            conds = by_point.get(key)
            if conds is None:
                continue  # no rule reads this point: not even kept
            readings[key] = Reading(v, q, ts)
            for c in conds:
                touched[c.id] = c
        comm = self._by_device.get(dev)
        if comm is not None and qualities:
            self._comm_lost[dev] = qualities.count(Quality.COMM_LOSS) == len(qualities)
            for c in comm:
                touched[c.id] = c
        out: list[Transition] = []
        for c in touched.values():
            self._evaluate(c, record.ts_ns, out)
        return out

    def tick(self, now_ns: int | None = None) -> list[Transition]:
        """Delays that ran out and shelves that expired, at ``now_ns``
        (default: the clock)."""
        now = self.clock() if now_ns is None else now_ns
        out: list[Transition] = []
        for aid in sorted(self._shelved):
            until = self.states[aid].shelved_until_ns
            if until is not None and until <= now:
                self._apply(self.conditions[aid], Input(Event.UNSHELVE, now, user=EXPIRY_USER), out)
        for aid in sorted(self._pending):
            self._evaluate(self.conditions[aid], now, out)
        return out

    def command(
        self,
        target: str,
        event: Event,
        user: str,
        *,
        until_ns: int | None = None,
        note: str = "",
    ) -> list[Transition]:
        """An operator's command on one alarm, or (out of service and
        return to service) on every alarm of a ``device.point`` or
        ``device``. Raises :class:`Refused` when it does not apply."""
        ids = self.resolve(target, allow_points=event in (Event.REMOVE, Event.RESTORE))
        now = self.clock()
        out: list[Transition] = []
        errors: list[str] = []
        for aid in ids:
            inp = Input(event, now, user=user, until_ns=until_ns, note=note)
            try:
                self._apply(self.conditions[aid], inp, out)
            except Refused as exc:
                if len(ids) == 1:
                    raise
                errors.append(f"{aid}: {exc}")
        if not out:
            raise Refused("; ".join(errors) or "nothing to do")
        return out

    def resolve(self, target: str, *, allow_points: bool = False) -> list[str]:
        if target in self.conditions:
            return [target]
        if allow_points:
            ids = [
                aid
                for aid, c in self.conditions.items()
                if c.origin is not None and (str(c.origin) == target or c.origin.device == target)
            ]
            if ids:
                return ids
        matches = [aid for aid in self.conditions if fnmatch.fnmatchcase(aid, target)]
        if matches and any(ch in target for ch in "*?["):
            return matches
        what = "alarm, device.point or device" if allow_points else "alarm"
        raise Refused(f"no {what} named {target!r}: see `minegate alarms list`")

    # -- views ---------------------------------------------------------------

    def out_of_service_points(self, device: str) -> Mapping[str, int] | None:
        """The points of ``device`` with an alarm out of service (None: no
        such point, the common case, found with one dict lookup)."""
        return self._oos_points.get(device)

    def view(self, aid: str) -> AlarmView:
        c = self.conditions[aid]
        st = self.states[aid]
        origin = c.origin or PointRef("", "")
        return AlarmView(
            aid,
            st.status,
            c.rule.priority,
            origin.device,
            origin.point,
            c.value,
            c.limit,
            st.since_ns,
            st.latched_on,
            st.shelved_until_ns,
            c.rule.message,
        )

    def alarms(self, *, everything: bool = False) -> list[AlarmView]:
        """Alarms not in normal (all with ``everything``), highest priority
        first, then oldest first."""
        views = [
            self.view(aid)
            for aid, st in self.states.items()
            if everything or st.status is not Status.NORMAL
        ]
        return sorted(views, key=lambda v: (-v.priority, v.since_ns, v.id))

    # -- internals -----------------------------------------------------------

    def _alarm_on(self, aid: str) -> bool:
        st = self.states.get(aid)
        return st is not None and st.alarm_on

    def _evaluate(self, c: Condition, now: int, out: list[Transition]) -> None:
        # markers set by design go on before the condition is judged and off
        # after it, so a reading taken under calibration is never annunciated
        muting = c.rule.suppress_when is not None or c.rule.out_of_service_when is not None
        if muting:
            self._mute_by_design(c, now, out, entering=True)
        self._judge(c, now, out)
        if muting:
            self._mute_by_design(c, now, out, entering=False)

    def _judge(self, c: Condition, now: int, out: list[Transition]) -> None:
        st = self.states[c.id]
        holds, value, limit = c.test(self._readings, st.condition, now)
        if value is not None:
            c.value, c.limit = value, limit
        if holds is None or holds == st.condition:
            if c.pending_since is not None:
                c.pending_since = None
                self._pending.discard(c.id)
            return
        delay = c.on_delay_ns if holds else c.off_delay_ns
        if c.pending_since is None:
            c.pending_since = now
        if now - c.pending_since < delay:
            self._pending.add(c.id)
            return
        c.pending_since = None
        self._pending.discard(c.id)
        ev = Event.RAISE if holds else Event.CLEAR
        self._apply(c, Input(ev, now, value=value, limit=limit, user=DESIGN_USER), out)

    def _mute_by_design(
        self, c: Condition, now: int, out: list[Transition], *, entering: bool
    ) -> None:
        rule = c.rule
        by_design = self._muted_by_design.setdefault(c.id, set())
        look = self._lookup
        for expr, on, off in (
            (rule.suppress_when, Event.SUPPRESS, Event.UNSUPPRESS),
            (rule.out_of_service_when, Event.REMOVE, Event.RESTORE),
        ):
            if expr is None:
                continue
            holds = expr.evaluate(look)
            if entering and holds is True and on not in by_design:
                st = self.states[c.id]
                if on is Event.REMOVE and st.out_of_service:
                    continue  # an operator already took it out of service
                by_design.add(on)
                note = f"{expr.text} holds"
                self._apply(c, Input(on, now, user=DESIGN_USER, note=note), out)
            elif not entering and holds is False and on in by_design:
                by_design.discard(on)
                note = f"{expr.text} no longer holds"
                self._apply(c, Input(off, now, user=DESIGN_USER, note=note), out)

    def _lookup(self, device: str, point: str) -> Value | None:
        r = self._readings.get((device, point))
        return r.value if r is not None and r.quality is Quality.GOOD else None

    def _apply(self, c: Condition, inp: Input, out: list[Transition]) -> None:
        old = self.states[c.id]
        new, tr = transition(c.id, old, inp, latched=c.latched)
        self.states[c.id] = new
        if new.shelved_until_ns is not None:
            self._shelved.add(c.id)
        else:
            self._shelved.discard(c.id)
        if tr is not None:
            out.append(tr)
        if old.out_of_service != new.out_of_service:
            self._count_out_of_service(c, 1 if new.out_of_service else -1)
        if old.alarm_on != new.alarm_on:
            for dep in self._dependents.get(c.id, ()):
                self._evaluate(dep, inp.ts_ns, out)

    def _count_out_of_service(self, c: Condition, delta: int) -> None:
        origin = c.origin
        if origin is None:  # a combined condition is about no one point
            return
        points = self._oos_points.setdefault(origin.device, {})
        n = points.get(origin.point, 0) + delta
        if n > 0:
            points[origin.point] = n
            return
        points.pop(origin.point, None)
        if not points:
            del self._oos_points[origin.device]

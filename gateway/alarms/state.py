"""The alarm state machine of ISA-18.2 / OPC UA Part 9, as a pure function.

An alarm's state is a small frozen value (:class:`AlarmState`);
:func:`transition` takes a state and one :class:`Input` and returns the next
state and the :class:`Transition` to record (or ``None`` when nothing
happened). No clock, no I/O: the engine supplies the time in the input.

Displayed states (:class:`Status`)::

    normal --raise--> active_unacked --ack--> active_acked --clear--> normal
                          |                                   ^
                        clear                                 |
                          v                                   |
                     rtn_unacked ---------------ack-----------+

plus three markers kept beside the alarm: ``shelved`` (by an operator, with
an expiry), ``suppressed`` (by design, by logic) and ``out_of_service``
(maintenance, calibration). While any marker is set the alarm is not
annunciated: its condition is still followed, but changes are not recorded;
when the last marker goes and the condition holds, the alarm is annunciated
again as a new, unacknowledged occurrence.

A **latched** alarm stays active after its condition clears until an
operator resets it (power-off). Acknowledging never clears a latch;
resetting needs the condition gone.

Operator commands that do not apply (acknowledge an alarm that waits for no
acknowledgement, reset one that is not latched...) raise :class:`Refused`
with the reason, which the command channel sends back to the operator.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from drivers.types import Value


class Status(StrEnum):
    NORMAL = "normal"
    ACTIVE_UNACKED = "active_unacked"
    ACTIVE_ACKED = "active_acked"
    RTN_UNACKED = "rtn_unacked"
    SHELVED = "shelved"
    SUPPRESSED = "suppressed"
    OUT_OF_SERVICE = "out_of_service"


class Event(StrEnum):
    RAISE = "raise"  # the condition holds (after its on-delay)
    CLEAR = "clear"  # the condition no longer holds (after its off-delay)
    ACK = "ack"
    RESET = "reset"  # release a latched alarm whose condition has cleared
    SHELVE = "shelve"
    UNSHELVE = "unshelve"  # by an operator, or the shelf expired
    SUPPRESS = "suppress"
    UNSUPPRESS = "unsuppress"
    REMOVE = "remove"  # out of service
    RESTORE = "restore"  # back in service


#: events an operator sends (always recorded, who and when)
OPERATOR_EVENTS = frozenset(
    {Event.ACK, Event.RESET, Event.SHELVE, Event.UNSHELVE, Event.REMOVE, Event.RESTORE}
)


class Refused(Exception):
    """An operator command that does not apply to the alarm's state."""


@dataclass(frozen=True, slots=True)
class AlarmState:
    condition: bool = False  # the process condition holds (delays applied)
    latched_on: bool = False  # raised, latched, not yet reset
    acked: bool = True  # False: an occurrence waits for acknowledgement
    shelved_until_ns: int | None = None
    suppressed: bool = False
    out_of_service: bool = False
    since_ns: int = 0  # when the displayed status last changed

    @property
    def alarm_on(self) -> bool:
        return self.condition or self.latched_on

    @property
    def muted(self) -> bool:
        return self.out_of_service or self.shelved_until_ns is not None or self.suppressed

    @property
    def status(self) -> Status:
        if self.out_of_service:
            return Status.OUT_OF_SERVICE
        if self.shelved_until_ns is not None:
            return Status.SHELVED
        if self.suppressed:
            return Status.SUPPRESSED
        if self.alarm_on:
            return Status.ACTIVE_ACKED if self.acked else Status.ACTIVE_UNACKED
        return Status.NORMAL if self.acked else Status.RTN_UNACKED


@dataclass(frozen=True, slots=True)
class Input:
    event: Event
    ts_ns: int
    value: Value | None = None
    limit: Value | None = None
    user: str = ""
    until_ns: int | None = None  # SHELVE
    note: str = ""


@dataclass(frozen=True, slots=True)
class Transition:
    """One recorded change: the alarm, what happened, the status before and
    after, the value and limit that decided it, who and when."""

    alarm: str
    event: Event
    before: Status
    after: Status
    ts_ns: int
    value: Value | None = None
    limit: Value | None = None
    user: str = ""
    note: str = ""
    latched_on: bool = False
    shelved_until_ns: int | None = None


def transition(
    alarm: str, state: AlarmState, inp: Input, *, latched: bool
) -> tuple[AlarmState, Transition | None]:
    """The next state of ``alarm`` after ``inp`` and what to record.

    ``latched`` is the rule's latch flag. Raises :class:`Refused` for an
    operator command that does not apply."""
    ev = inp.event
    new = _apply(state, inp, latched=latched)
    before, after = state.status, new.status
    if after != before:
        new = replace(new, since_ns=inp.ts_ns)
    changed = after != before
    if not (changed or ev in OPERATOR_EVENTS or _visible_condition_change(state, new)):
        return new, None
    return new, Transition(
        alarm,
        ev,
        before,
        after,
        inp.ts_ns,
        inp.value,
        inp.limit,
        inp.user,
        inp.note,
        new.latched_on,
        new.shelved_until_ns,
    )


def _visible_condition_change(old: AlarmState, new: AlarmState) -> bool:
    # A latched alarm whose condition clears keeps its status, but the
    # operator must learn it may now be reset.
    return old.condition != new.condition and not new.muted


def _apply(s: AlarmState, inp: Input, *, latched: bool) -> AlarmState:
    ev = inp.event
    if ev is Event.RAISE:
        if s.condition:
            return s
        if s.muted:  # followed, not annunciated, not latched
            return replace(s, condition=True)
        on = replace(s, condition=True, latched_on=s.latched_on or latched)
        return replace(on, acked=False)
    if ev is Event.CLEAR:
        if not s.condition:
            return s
        return replace(s, condition=False)
    if ev is Event.ACK:
        if s.muted:
            raise Refused(f"the alarm is {s.status}: nothing to acknowledge")
        if s.acked:
            raise Refused(f"the alarm is {s.status}: it waits for no acknowledgement")
        return replace(s, acked=True)
    if ev is Event.RESET:
        if not s.latched_on:
            raise Refused("the alarm is not latched: nothing to reset")
        if s.condition:
            raise Refused("the condition still holds: reset it once it has cleared")
        return replace(s, latched_on=False)
    if ev is Event.SHELVE:
        if s.out_of_service:
            raise Refused("the alarm is out of service: return it to service first")
        if inp.until_ns is None or inp.until_ns <= inp.ts_ns:
            raise Refused("shelving needs an expiry in the future")
        return replace(s, shelved_until_ns=inp.until_ns)
    if ev is Event.UNSHELVE:
        if s.shelved_until_ns is None:
            raise Refused("the alarm is not shelved")
        return _unmuted(replace(s, shelved_until_ns=None), s, latched)
    if ev is Event.SUPPRESS:
        return replace(s, suppressed=True)
    if ev is Event.UNSUPPRESS:
        return _unmuted(replace(s, suppressed=False), s, latched) if s.suppressed else s
    if ev is Event.REMOVE:
        if s.out_of_service:
            raise Refused("the alarm is already out of service")
        return replace(s, out_of_service=True)
    if ev is Event.RESTORE:
        if not s.out_of_service:
            raise Refused("the alarm is in service")
        return _unmuted(replace(s, out_of_service=False), s, latched)
    raise ValueError(f"unknown event {ev!r}")


def _unmuted(new: AlarmState, old: AlarmState, latched: bool) -> AlarmState:
    """Leaving a marker: if no marker is left, a holding condition is
    annunciated as a new occurrence (and latches); otherwise nothing waits
    for an acknowledgement."""
    if new.muted or not old.muted:
        return new
    latched_on = new.latched_on or (latched and new.condition)
    return replace(new, latched_on=latched_on, acked=not (new.condition or latched_on))

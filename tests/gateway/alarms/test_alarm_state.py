"""The pure ISA-18.2 state machine: each transition and refusal."""

from __future__ import annotations

import pytest

from gateway.alarms.state import AlarmState, Event, Input, Refused, Status, transition


def run(events: list[tuple[Event, dict[str, object]]], *, latched: bool = False) -> list[Status]:
    st = AlarmState()
    out = []
    for i, (ev, kw) in enumerate(events):
        st, _ = transition("a", st, Input(ev, i, **kw), latched=latched)  # type: ignore[arg-type]
        out.append(st.status)
    return out


def test_raise_ack_clear_and_raise_clear_ack() -> None:
    assert run([(Event.RAISE, {}), (Event.ACK, {}), (Event.CLEAR, {})]) == [
        Status.ACTIVE_UNACKED,
        Status.ACTIVE_ACKED,
        Status.NORMAL,
    ]
    assert run([(Event.RAISE, {}), (Event.CLEAR, {}), (Event.ACK, {})]) == [
        Status.ACTIVE_UNACKED,
        Status.RTN_UNACKED,
        Status.NORMAL,
    ]


def test_transition_records_value_limit_user_and_time() -> None:
    st, tr = transition("ch4", AlarmState(), Input(Event.RAISE, 7, 1.2, 1.0), latched=False)
    assert tr is not None
    assert (tr.alarm, tr.before, tr.after, tr.value, tr.limit, tr.ts_ns) == (
        "ch4", Status.NORMAL, Status.ACTIVE_UNACKED, 1.2, 1.0, 7,
    )  # fmt: skip
    st, tr = transition("ch4", st, Input(Event.ACK, 9, user="li"), latched=False)
    assert tr is not None and tr.user == "li" and tr.after is Status.ACTIVE_ACKED
    assert st.since_ns == 9


def test_latched_stays_until_reset_and_reset_needs_the_condition_gone() -> None:
    st = AlarmState()
    st, _ = transition("p", st, Input(Event.RAISE, 1), latched=True)
    st, _ = transition("p", st, Input(Event.ACK, 2, user="li"), latched=True)
    with pytest.raises(Refused, match="still holds"):
        transition("p", st, Input(Event.RESET, 3, user="li"), latched=True)
    st, tr = transition("p", st, Input(Event.CLEAR, 4), latched=True)
    assert st.status is Status.ACTIVE_ACKED and tr is not None  # told: may be reset now
    st, tr = transition("p", st, Input(Event.RESET, 5, user="li"), latched=True)
    assert st.status is Status.NORMAL and tr is not None and tr.user == "li"


def test_refusals() -> None:
    with pytest.raises(Refused, match="no acknowledgement"):
        transition("a", AlarmState(), Input(Event.ACK, 1), latched=False)
    with pytest.raises(Refused, match="not latched"):
        transition("a", AlarmState(), Input(Event.RESET, 1), latched=False)
    with pytest.raises(Refused, match="expiry"):
        transition("a", AlarmState(), Input(Event.SHELVE, 5, until_ns=5), latched=False)


def test_shelved_alarm_is_followed_but_not_annunciated_and_comes_back_unacked() -> None:
    st = AlarmState()
    st, _ = transition("a", st, Input(Event.SHELVE, 1, until_ns=100), latched=False)
    st, tr = transition("a", st, Input(Event.RAISE, 2), latched=False)
    assert st.status is Status.SHELVED and tr is None and st.condition
    st, tr = transition("a", st, Input(Event.UNSHELVE, 100), latched=False)
    assert st.status is Status.ACTIVE_UNACKED and tr is not None


def test_out_of_service_raises_nothing_and_does_not_latch() -> None:
    st = AlarmState()
    st, _ = transition("p", st, Input(Event.REMOVE, 1, user="li"), latched=True)
    st, tr = transition("p", st, Input(Event.RAISE, 2), latched=True)
    assert tr is None and st.status is Status.OUT_OF_SERVICE and not st.latched_on
    st, _ = transition("p", st, Input(Event.CLEAR, 3), latched=True)
    st, tr = transition("p", st, Input(Event.RESTORE, 4, user="li"), latched=True)
    assert st.status is Status.NORMAL and tr is not None


def test_suppressed_by_design() -> None:
    st = AlarmState()
    st, _ = transition("a", st, Input(Event.SUPPRESS, 1), latched=False)
    st, tr = transition("a", st, Input(Event.RAISE, 2), latched=False)
    assert st.status is Status.SUPPRESSED and tr is None
    st, tr = transition("a", st, Input(Event.UNSUPPRESS, 3), latched=False)
    assert st.status is Status.ACTIVE_UNACKED and tr is not None

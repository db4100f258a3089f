"""The expression language of combined conditions: grammar, three-valued
logic, and everything outside the whitelist refused with a position."""

from __future__ import annotations

import re

import pytest

from drivers.types import Value
from gateway.alarms.expr import ExprError, parse


def ev(text: str, **points: Value | None) -> bool | None:
    values = {tuple(k.split("__")): v for k, v in points.items()}
    return parse(text).evaluate(lambda d, p: values.get((d, p)))


def test_names_numbers_comparisons_and_logic() -> None:
    e = parse("sump-1.sump_level > 4.0 and not (sump-1.pump1_running or sump-1.pump2_running)")
    assert e.names == (
        ("sump-1", "sump_level"),
        ("sump-1", "pump1_running"),
        ("sump-1", "pump2_running"),
    )
    look = {
        ("sump-1", "sump_level"): 4.5,
        ("sump-1", "pump1_running"): False,
        ("sump-1", "pump2_running"): False,
    }
    assert e.evaluate(lambda d, p: look.get((d, p))) is True
    look[("sump-1", "pump2_running")] = True
    assert e.evaluate(lambda d, p: look.get((d, p))) is False


def test_three_valued_logic() -> None:
    assert ev("a.x > 1 and b.y == true", a__x=0) is False  # false decides
    assert ev("a.x > 1 or b.y == true", a__x=2) is True  # true decides
    assert ev("a.x > 1 and b.y == true", a__x=2) is None  # unknown decides
    assert ev("not a.x", a__x=None) is None
    assert ev("a.x >= -0.5", a__x=-0.5) is True
    assert ev("a.x == false", a__x=0) is True  # numbers and booleans compare as numbers
    assert ev("a.s == 1", a__s="on") is False
    assert ev("a.s < 1", a__s="on") is None  # ordering a string: unknown


def test_backquoted_names_for_devices_starting_with_a_digit() -> None:
    assert parse("`1pump.run` == true").names == (("1pump", "run"),)


@pytest.mark.parametrize(
    ("text", "pos", "words"),
    [
        ("", 1, "empty"),
        ("a.b >", 6, "expected a number"),
        ("a.b < 1 < 2", 9, "chained"),
        ("__import__('os').system('x')", 1, "unknown word"),
        ("a.b + 1 > 2", 5, "unexpected"),
        ("(a.b > 1", 9, "missing ')'"),
        ("a.b > 1 c.d", 9, "expected and/or"),
        ("eval(a.b)", 1, "unknown word"),
    ],
)
def test_refused_with_position(text: str, pos: int, words: str) -> None:
    with pytest.raises(ExprError, match=re.escape(words)) as info:
        parse(text)
    assert f"at character {pos})" in str(info.value)

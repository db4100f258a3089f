"""One compiled condition per alarm: the rule and the test that decides,
from the latest readings, whether its condition holds.

A test returns a :data:`Verdict` ``(holds, value, limit)``: ``holds`` is
True, False, or None when the readings cannot tell (no reading yet, comm
loss, a bad value, a reading outside the sensor's physical range for a gas
rule): an unknown verdict neither raises nor clears. The tests are small
closures so the engine evaluates a sample's conditions without dispatching
on rule types.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from drivers.types import Value
from gateway.alarms.rules import (
    ExprRule,
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
from gateway.model import Quality

NS = 1_000_000_000

Verdict = tuple[bool | None, Value | None, Value | None]


@dataclass(slots=True)
class Reading:
    value: Value | None
    quality: Quality
    ts_ns: int


Readings = Mapping[tuple[str, str], Reading]
# (readings, is the condition currently holding?, now) -> verdict
Test = Callable[[Readings, bool, int], Verdict]


@dataclass
class Condition:
    """One alarm: its id, the rule it comes from, its test and its timers."""

    id: str
    rule: Rule
    test: Test
    inputs: tuple[PointRef, ...]
    latched: bool
    on_delay_ns: int
    off_delay_ns: int
    origin: PointRef | None = None  # the point the alarm is about (records, oos by point)
    depends_on: str | None = None  # feed check: the power-off alarm's id
    pending_since: int | None = None  # a change waiting for its delay
    value: Value | None = None
    limit: Value | None = None
    extra: dict[str, object] = field(default_factory=dict)


def number(r: Reading | None) -> float | None:
    """A usable number: good quality, finite, numeric (booleans count)."""
    if r is None or r.quality is not Quality.GOOD:
        return None
    v = r.value
    if isinstance(v, bool | int | float):
        f = float(v)
        return f if math.isfinite(f) else None
    return None


def good_value(readings: Readings, device: str, point: str) -> Value | None:
    r = readings.get((device, point))
    if r is None or r.quality is not Quality.GOOD:
        return None
    return r.value


def _key(p: PointRef) -> tuple[str, str]:
    return (p.device, p.point)


def _inside(v: float, rng: tuple[float, float] | None) -> bool:
    return rng is None or rng[0] <= v <= rng[1]


def limit_test(
    point: PointRef,
    rising: bool,
    limit: float,
    restore: float,
    valid_range: tuple[float, float] | None,
) -> Test:
    key = _key(point)

    def test(readings: Readings, holding: bool, now: int) -> Verdict:
        v = number(readings.get(key))
        if v is None or not _inside(v, valid_range):
            return None, v, limit  # the sensor-fault rule speaks for these
        level = restore if holding else limit
        return (v >= level if rising else v <= level), v, limit

    return test


def rate_test(rule: RateRule) -> Test:
    key = _key(rule.point)
    window = int(rule.window_s * NS)
    seen: deque[tuple[int, float]] = deque()

    def test(readings: Readings, holding: bool, now: int) -> Verdict:
        r = readings.get(key)
        v = number(r)
        if r is not None and v is not None and (not seen or r.ts_ns > seen[-1][0]):
            seen.append((r.ts_ns, v))
        while seen and seen[0][0] < now - window:
            seen.popleft()
        if len(seen) < 2 or seen[-1][0] - seen[0][0] < window // 2:
            return None, v, rule.per_min
        rate = (seen[-1][1] - seen[0][1]) / ((seen[-1][0] - seen[0][0]) / NS) * 60.0
        rate = round(rate, 6)
        holds = rate >= rule.per_min if rule.per_min >= 0 else rate <= rule.per_min
        return holds, rate, rule.per_min

    return test


def same_value(v: Value | None, target: Value) -> bool | None:
    if v is None:
        return None
    if isinstance(target, bool) and isinstance(v, int | float):
        return bool(v) == target
    if isinstance(target, int | float) and isinstance(v, int | float):
        return float(v) == float(target)
    return v == target


def state_test(rule: StateRule) -> Test:
    key = _key(rule.point)

    def test(readings: Readings, holding: bool, now: int) -> Verdict:
        r = readings.get(key)
        v = r.value if r is not None and r.quality is Quality.GOOD else None
        return same_value(v, rule.value), v, rule.value

    return test


def expr_test(rule: ExprRule) -> Test:
    def test(readings: Readings, holding: bool, now: int) -> Verdict:
        holds = rule.when.evaluate(lambda d, p: good_value(readings, d, p))
        return holds, holds, None

    return test


def quality_test(rule: QualityRule, comm_lost: Mapping[str, bool]) -> Test:
    key = _key(rule.point)
    device = rule.point.device

    def comm(readings: Readings, holding: bool, now: int) -> Verdict:
        lost = comm_lost.get(device)
        return lost, None, None

    def stale(readings: Readings, holding: bool, now: int) -> Verdict:
        r = readings.get(key)
        if r is None or r.quality in (Quality.COMM_LOSS, Quality.BAD):
            return None, None, None
        return r.quality is Quality.STALE, r.value, None

    return comm if rule.kind is QualityKind.COMM_LOSS else stale


def fault_test(rule: SensorFaultRule) -> Test:
    key = _key(rule.point)
    lo, hi = rule.valid_range

    def test(readings: Readings, holding: bool, now: int) -> Verdict:
        r = readings.get(key)
        if r is None or r.quality is Quality.COMM_LOSS:
            return None, None, None
        if r.quality is Quality.BAD:
            return True, None, None
        v = r.value
        if not isinstance(v, bool | int | float):
            return None, None, None
        f = float(v)
        return (not (lo <= f <= hi)) if math.isfinite(f) else True, v, f"{lo:g}..{hi:g}"

    return test


def feed_test(rule: PowerOffRule, power_off_on: Callable[[], bool]) -> Test:
    assert rule.feed is not None
    key = _key(rule.feed)

    def test(readings: Readings, holding: bool, now: int) -> Verdict:
        if not power_off_on():
            return False, None, None
        r = readings.get(key)
        v = r.value if r is not None and r.quality is Quality.GOOD else None
        if v is None:
            return None, None, None
        return bool(v), v, False

    return test


def compile_rule(
    rule: Rule,
    comm_lost: Mapping[str, bool],
    alarm_on: Callable[[str], bool],
) -> list[Condition]:
    """The conditions (alarms) of one rule: one, or two for a power-off rule
    with a feed check."""

    def cond(test: Test, cid: str | None = None, **kw: object) -> Condition:
        return Condition(
            id=cid or rule.name,
            rule=rule,
            test=test,
            inputs=rule.inputs(),
            latched=rule.latched,
            on_delay_ns=int(rule.on_delay_s * NS),
            off_delay_ns=int(rule.off_delay_s * NS),
            origin=rule.origin,
            **kw,  # type: ignore[arg-type]
        )

    if isinstance(rule, LimitRule):
        return [
            cond(
                limit_test(rule.point, rule.kind.rising, rule.limit, rule.restore, rule.valid_range)
            )
        ]
    if isinstance(rule, PowerOffRule):
        out = [cond(limit_test(rule.point, True, rule.limit, rule.restore, rule.valid_range))]
        if rule.feed is not None:
            feed = Condition(
                id=rule.feed_name,
                rule=rule,
                test=feed_test(rule, lambda: alarm_on(rule.name)),
                inputs=(rule.feed,),
                latched=False,
                on_delay_ns=int(rule.feed_after_s * NS),
                off_delay_ns=0,
                origin=rule.feed,
                depends_on=rule.name,
            )
            out.append(feed)
        return out
    if isinstance(rule, RateRule):
        return [cond(rate_test(rule))]
    if isinstance(rule, StateRule):
        return [cond(state_test(rule))]
    if isinstance(rule, ExprRule):
        return [cond(expr_test(rule))]
    if isinstance(rule, QualityRule):
        return [cond(quality_test(rule, comm_lost))]
    if isinstance(rule, SensorFaultRule):
        return [cond(fault_test(rule))]
    raise TypeError(f"unknown rule type {type(rule).__name__}")

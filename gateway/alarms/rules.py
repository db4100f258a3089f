"""Alarm rules: what raises an alarm, as typed, frozen values.

A rule is built once from the site configuration (``gateway.config.alarms``)
or from the defaults of a point's location class (``gateway.alarms.defaults``)
and never changes while the gateway runs. Rules say *when* a condition holds;
the engine (``gateway.alarms.engine``) applies the delays and the state
machine (``gateway.alarms.state``); rules never touch delivery.

Kinds (``Rule`` subclasses):

* :class:`LimitRule`: high, high-high, low, low-low with a restore level
  (deadband, hysteresis): a high alarm raises at ``value >= limit`` and
  clears only at ``value < restore``; readings outside the sensor's
  physical ``valid_range`` are ignored here (a :class:`SensorFaultRule`
  raises for them, never a gas alarm);
* :class:`RateRule`: rise (or fall) faster than ``per_min`` over ``window_s``;
* :class:`StateRule`: a discrete point equal to ``value`` (main fan stopped,
  pump fault, feeder tripped);
* :class:`PowerOffRule`: methane at the power-off level (latched until reset;
  the alarm says power must be cut) and its feed check: the area's feed
  point still shows power ``feed_after_s`` after the power-off alarm, a
  "feed abnormal" (馈电异常) alarm named ``<name>.feed``;
* :class:`ExprRule`: a combined condition over points of several devices in
  the language of ``gateway.alarms.expr``;
* :class:`QualityRule`: comm loss of a device, or a stale (frozen) point;
* :class:`SensorFaultRule`: a reading outside the physical range, or a bad
  value.

Every rule has a priority (four levels), on- and off-delays, a latch flag,
and optional ``suppress_when`` (suppression by design, e.g. pump alarms
while the sump is low) and ``out_of_service_when`` (a device's own
calibration flag) expressions.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, StrEnum

from drivers.types import Value
from gateway.alarms.expr import Expr


class Priority(IntEnum):
    """Four priorities (ISA-18.2 recommends three or four)."""

    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> Priority:
        return cls[text.upper()]


class LimitKind(StrEnum):
    HIGH = "high"
    HIGH_HIGH = "high_high"
    LOW = "low"
    LOW_LOW = "low_low"

    @property
    def rising(self) -> bool:
        return self in (LimitKind.HIGH, LimitKind.HIGH_HIGH)


@dataclass(frozen=True, slots=True)
class PointRef:
    device: str
    point: str

    def __str__(self) -> str:
        return f"{self.device}.{self.point}"

    @classmethod
    def parse(cls, text: str) -> PointRef:
        device, sep, point = text.rpartition(".")
        if not sep or not device or not point:
            raise ValueError(f"{text!r} is not device.point")
        return cls(device, point)


@dataclass(frozen=True, kw_only=True)
class Rule:
    """What every alarm rule has. ``name`` is the alarm's id."""

    name: str
    priority: Priority = Priority.HIGH
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0
    latched: bool = False
    message: str = ""
    suppress_when: Expr | None = None
    out_of_service_when: Expr | None = None
    source: str = "config"  # config | defaults:<class>

    def inputs(self) -> tuple[PointRef, ...]:
        """Points whose readings decide the condition."""
        raise NotImplementedError

    @property
    def origin(self) -> PointRef | None:
        """The point the alarm is about (its device and point in records)."""
        ins = self.inputs()
        return ins[0] if ins else None

    def muting_inputs(self) -> tuple[PointRef, ...]:
        out: list[PointRef] = []
        for e in (self.suppress_when, self.out_of_service_when):
            if e is not None:
                out += [PointRef(d, p) for d, p in e.names]
        return tuple(out)


@dataclass(frozen=True, kw_only=True)
class LimitRule(Rule):
    point: PointRef
    kind: LimitKind
    limit: float
    restore: float
    valid_range: tuple[float, float] | None = None
    unit: str = ""

    def inputs(self) -> tuple[PointRef, ...]:
        return (self.point,)


@dataclass(frozen=True, kw_only=True)
class RateRule(Rule):
    """Raised when the value changes by at least ``per_min`` per minute over
    the last ``window_s`` (a negative ``per_min`` watches a fall)."""

    point: PointRef
    per_min: float
    window_s: float = 60.0
    unit: str = ""

    def inputs(self) -> tuple[PointRef, ...]:
        return (self.point,)


@dataclass(frozen=True, kw_only=True)
class StateRule(Rule):
    point: PointRef
    value: Value

    def inputs(self) -> tuple[PointRef, ...]:
        return (self.point,)


@dataclass(frozen=True, kw_only=True)
class PowerOffRule(Rule):
    """Methane at the power-off level: latched, critical. With ``feed``,
    also the feed check ``<name>.feed``: raised when the feed point is still
    truthy (power present) ``feed_after_s`` after the power-off alarm."""

    point: PointRef
    limit: float
    restore: float
    feed: PointRef | None = None
    feed_after_s: float = 10.0
    valid_range: tuple[float, float] | None = None
    unit: str = ""

    def inputs(self) -> tuple[PointRef, ...]:
        return (self.point,)

    @property
    def feed_name(self) -> str:
        return f"{self.name}.feed"


@dataclass(frozen=True, kw_only=True)
class ExprRule(Rule):
    when: Expr

    def inputs(self) -> tuple[PointRef, ...]:
        return tuple(PointRef(d, p) for d, p in self.when.names)

    @property
    def origin(self) -> PointRef | None:
        return None  # about several points: its records come from "alarms"


class QualityKind(StrEnum):
    COMM_LOSS = "comm_loss"
    STALE = "stale"


@dataclass(frozen=True, kw_only=True)
class QualityRule(Rule):
    """``comm_loss``: the device of ``point`` stopped answering (the poller's
    comm-loss record). ``stale``: ``point`` is flagged stale (frozen)."""

    point: PointRef
    kind: QualityKind

    def inputs(self) -> tuple[PointRef, ...]:
        return (self.point,)


@dataclass(frozen=True, kw_only=True)
class SensorFaultRule(Rule):
    """A reading outside ``valid_range`` or a bad value: the sensor, not the
    air, is at fault."""

    point: PointRef
    valid_range: tuple[float, float]

    def inputs(self) -> tuple[PointRef, ...]:
        return (self.point,)


AnyRule = LimitRule | RateRule | StateRule | PowerOffRule | ExprRule | QualityRule | SensorFaultRule


def describe(rule: Rule) -> tuple[str, str, str]:
    """(kind, point, condition) in words, for ``minegate alarms rules``."""
    origin = rule.origin
    point = str(origin) if origin is not None else ""
    delays = ""
    if rule.on_delay_s:
        delays += f" for {rule.on_delay_s:g} s"
    if isinstance(rule, LimitRule):
        op, back = (">=", "<") if rule.kind.rising else ("<=", ">")
        rng = (
            f", valid {rule.valid_range[0]:g}..{rule.valid_range[1]:g}" if rule.valid_range else ""
        )
        cond = f"{op} {rule.limit:g}{delays}, clears {back} {rule.restore:g}{rng}"
        return rule.kind.value, point, cond
    if isinstance(rule, PowerOffRule):
        feed = f"; feed {rule.feed} after {rule.feed_after_s:g} s" if rule.feed else ""
        return "power_off", point, f">= {rule.limit:g}, latched, restore < {rule.restore:g}{feed}"
    if isinstance(rule, RateRule):
        return "rate", point, f"{rule.per_min:+g}/min over {rule.window_s:g} s{delays}"
    if isinstance(rule, StateRule):
        return "state", point, f"== {rule.value}{delays}"
    if isinstance(rule, ExprRule):
        return "expr", "", rule.when.text + delays
    if isinstance(rule, QualityRule):
        if rule.kind is QualityKind.COMM_LOSS:
            return "comm_loss", "", f"device {rule.point.device} stops answering"
        return "stale", "", f"{point} frozen (flagged stale)"
    if isinstance(rule, SensorFaultRule):
        lo, hi = rule.valid_range
        return "sensor_fault", point, f"outside {lo:g}..{hi:g} or bad"
    return type(rule).__name__, point, ""

"""The alarm tables of the site file: ``[[alarms]]``, ``[alarm_classes]``
and ``[alarm_control]`` (docs/alarms.md), and their compilation into the
frozen rules of ``gateway.alarms.rules``.

``schema.py`` places these models in the file; ``compile_alarms`` (called by
``load.py`` after the devices are compiled) checks what needs the devices
(point names, stale limits, location classes) and builds the rules: the
defaults of each device's location and device class, overridden per site,
then the ``[[alarms]]`` tables. Every problem is reported with its key.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from drivers.types import RegisterKind
from gateway.alarms import defaults
from gateway.alarms.expr import Expr, ExprError, parse
from gateway.alarms.rules import (
    ExprRule,
    LimitKind,
    LimitRule,
    PointRef,
    PowerOffRule,
    Priority,
    QualityKind,
    QualityRule,
    RateRule,
    Rule,
    SensorFaultRule,
    StateRule,
)
from gateway.config.schema import AlarmControl, AlarmTable, SiteFile
from gateway.config.site import CompiledDevice

#: keys each kind uses beyond the common ones
_KIND_KEYS: dict[str, frozenset[str]] = {
    "high": frozenset({"point", "limit", "restore", "deadband", "range"}),
    "rate": frozenset({"point", "per_min", "window_s"}),
    "state": frozenset({"point", "value"}),
    "power_off": frozenset(
        {"point", "limit", "restore", "deadband", "range", "feed", "feed_after_s"}
    ),
    "expr": frozenset({"when"}),
    "comm_loss": frozenset({"point"}),
    "stale": frozenset({"point"}),
    "sensor_fault": frozenset({"point", "range"}),
}
for _k in ("high_high", "low", "low_low"):
    _KIND_KEYS[_k] = _KIND_KEYS["high"]
_REQUIRED: dict[str, tuple[str, ...]] = {
    "high": ("point", "limit"),
    "rate": ("point", "per_min"),
    "state": ("point", "value"),
    "power_off": ("point", "limit"),
    "expr": ("when",),
    "comm_loss": ("point",),
    "stale": ("point",),
    "sensor_fault": ("point", "range"),
}
for _k in ("high_high", "low", "low_low"):
    _REQUIRED[_k] = _REQUIRED["high"]
_OPTIONAL_KEYS = frozenset(
    {"point", "limit", "restore", "deadband", "range", "feed", "feed_after_s", "per_min"}
    | {"window_s", "value", "when"}
)


@dataclass(frozen=True)
class DeviceView:
    """What the alarm checks need of a compiled device."""

    name: str
    device_class: str
    location_class: str
    points: dict[str, str]  # point -> unit
    stale_after_s: dict[str, float]
    writable_coils: frozenset[str] = frozenset()  # for the alarm outputs


Loc = tuple[str | int, ...]
Report = Callable[[Loc, str], None]


def compile_alarms(
    tables: Sequence[AlarmTable],
    classes: dict[str, dict[str, float]],
    control: AlarmControl,
    devices: Sequence[DeviceView],
    mqtt_sinks: Sequence[str],
    error: Report,
    *,
    class_locs: dict[str, Loc] | None = None,
) -> tuple[Rule, ...]:
    """Check the alarm tables against the devices and build every rule
    (defaults first, replaced by ``[[alarms]]`` of the same name)."""
    c = _Compiler(devices, error)
    c.check_classes(classes, devices, class_locs or {})
    c.check_control(control, mqtt_sinks)
    configured = {t.name for t in tables}
    rules: list[Rule] = list(c.defaults(classes, configured))
    for i, t in enumerate(tables):
        rules += c.table(i, t)
    seen: dict[str, str] = {}
    for r in rules:
        for aid in _ids(r):
            if aid in seen:
                error(
                    ("alarms",),
                    f"two alarms named {aid!r} ({seen[aid]} and {r.source}): rename one",
                )
            seen[aid] = r.source
    return tuple(rules)


def _ids(rule: Rule) -> list[str]:
    if isinstance(rule, PowerOffRule) and rule.feed is not None:
        return [rule.name, rule.feed_name]
    return [rule.name]


class _Compiler:
    def __init__(self, devices: Sequence[DeviceView], error: Report) -> None:
        self.devices = {d.name: d for d in devices}
        self.error = error

    # -- classes and control ---------------------------------------------------

    def check_classes(
        self,
        classes: dict[str, dict[str, float]],
        devices: Sequence[DeviceView],
        locs: dict[str, Loc],
    ) -> None:
        known = ", ".join(defaults.LOCATION_CLASSES)
        for cls, overrides in classes.items():
            if cls not in defaults.LOCATION_CLASSES:
                self.error(
                    ("alarm_classes", cls), f"unknown location class {cls!r}: use one of {known}"
                )
                continue
            keys = defaults.override_keys(cls)
            for key in overrides:
                if key not in keys:
                    self.error(
                        ("alarm_classes", cls, key),
                        f"class {cls!r} has no default {key!r}; its defaults are: {', '.join(keys)}",
                    )
        for d in devices:
            if d.location_class and d.location_class not in defaults.LOCATION_CLASSES:
                self.error(
                    locs.get(d.name, ("devices",)),
                    f"device {d.name!r}: unknown location_class {d.location_class!r}: use one of {known}",
                )

    def check_control(self, control: AlarmControl, mqtt_sinks: Sequence[str]) -> None:
        if control.mqtt_sink is not None and control.mqtt_sink not in mqtt_sinks:
            names = ", ".join(mqtt_sinks) or "none defined"
            self.error(
                ("alarm_control", "mqtt_sink"),
                f"{control.mqtt_sink!r} is not an mqtt sink: name one of the [[sinks]] of type mqtt ({names})",
            )
        for i, out in enumerate(control.outputs):
            loc: Loc = ("alarm_control", "outputs", i, "point")
            refs = self._points(loc[:-1], out.point, single=True)
            if not refs:
                continue
            dev = self.devices[refs[0].device]
            if refs[0].point not in dev.writable_coils:
                coils = ", ".join(sorted(dev.writable_coils)) or "none"
                self.error(
                    loc,
                    f"{out.point} is not a writable coil (the gateway writes only coils a "
                    f"profile marks writable = true); writable coils of {dev.name}: {coils}",
                )
        first: dict[str, int] = {}
        for i, u in enumerate(control.users):
            if u.name in first:
                self.error(("alarm_control", "users", i, "name"), f"duplicate user {u.name!r}")
            first.setdefault(u.name, i)

    # -- defaults ---------------------------------------------------------------

    def defaults(self, classes: dict[str, dict[str, float]], configured: set[str]) -> list[Rule]:
        rules: list[Rule] = []
        for d in self.devices.values():
            table = defaults.defaults_for(d.location_class, d.device_class)
            if not table:
                continue
            source = f"defaults:{d.location_class or d.device_class}"
            overrides = classes.get(d.location_class, {})
            faulted: set[str] = set()
            for df in table:
                if df.point not in d.points:
                    continue
                name = f"{d.name}.{df.key}"
                if name in configured:
                    continue
                ref = PointRef(d.name, df.point)
                unit = d.points[df.point]
                rng = defaults.PHYSICAL_RANGES.get(df.point)
                if df.kind == "state":
                    rules.append(
                        StateRule(
                            name=name,
                            point=ref,
                            value=df.level,
                            priority=df.priority,
                            source=source,
                        )
                    )
                    continue
                level = float(overrides.get(df.key, df.level))
                restore = df.restore_for(level)
                if df.kind == "power_off":
                    rules.append(
                        PowerOffRule(
                            name=name, point=ref, limit=level, restore=restore,
                            priority=df.priority, latched=True, valid_range=rng, unit=unit, source=source,
                        )
                    )  # fmt: skip
                else:
                    rules.append(
                        LimitRule(
                            name=name, point=ref, kind=LimitKind(df.kind), limit=level,
                            restore=restore, valid_range=rng, priority=df.priority, unit=unit,
                            source=source,
                        )
                    )  # fmt: skip
                fault = f"{d.name}.{df.point}_fault"
                if rng is not None and df.point not in faulted and fault not in configured:
                    faulted.add(df.point)
                    rules.append(
                        SensorFaultRule(name=fault, point=ref, valid_range=rng, source=source)
                    )
            comm = f"{d.name}.comm_loss"
            # a device with none of its class's points gets no default at all
            applies = any(df.point in d.points for df in table)
            if applies and comm not in configured:
                first = next(iter(d.points))
                rules.append(
                    QualityRule(
                        name=comm,
                        point=PointRef(d.name, first),
                        kind=QualityKind.COMM_LOSS,
                        source=source,
                    )
                )
        return rules

    # -- [[alarms]] --------------------------------------------------------------

    def table(self, i: int, t: AlarmTable) -> list[Rule]:
        loc: Loc = ("alarms", i)
        ok = True
        used = _KIND_KEYS[t.kind]
        for key in sorted(_OPTIONAL_KEYS - used):
            if getattr(t, key) is not None:
                self.error(
                    (*loc, key),
                    f"`{key}` is not used by an alarm of kind {t.kind!r}: remove it "
                    f"(keys of this kind: {', '.join(sorted(used))})",
                )
                ok = False
        for key in _REQUIRED[t.kind]:
            if getattr(t, key) is None:
                self.error((*loc, "kind"), f"an alarm of kind {t.kind!r} needs `{key} = ...`")
                ok = False
        if t.restore is not None and t.deadband is not None:
            self.error((*loc, "deadband"), "give either restore or deadband, not both")
            ok = False
        muting = {
            "suppress_when": self._expr(loc, "suppress_when", t.suppress_when),
            "out_of_service_when": self._expr(loc, "out_of_service_when", t.out_of_service_when),
        }
        if not ok:
            return []
        priority = Priority.parse(t.priority or ("critical" if t.kind == "power_off" else "high"))
        common: dict[str, Any] = dict(
            priority=priority,
            on_delay_s=t.on_delay_s,
            off_delay_s=t.off_delay_s,
            latched=t.latched if t.latched is not None else t.kind == "power_off",
            message=t.message,
            source=f"alarms[{i}]",
            **muting,
        )
        if t.kind == "expr":
            assert t.when is not None
            expr = self._expr(loc, "when", t.when)
            return [] if expr is None else [ExprRule(name=t.name, when=expr, **common)]
        assert t.point is not None
        refs = self._points(loc, t.point)
        multi = len(refs) > 1 or any(ch in t.point for ch in "*?[")
        out: list[Rule] = []
        for ref in refs:
            name = f"{t.name}:{ref}" if multi else t.name
            rule = self._one(loc, t, name, ref, common)
            if rule is not None:
                out += rule
        return out

    def _one(
        self, loc: Loc, t: AlarmTable, name: str, ref: PointRef, common: dict[str, Any]
    ) -> list[Rule] | None:
        dev = self.devices[ref.device]
        unit = dev.points[ref.point]
        stale = dev.stale_after_s.get(ref.point, 0.0)
        if stale > 0 and t.on_delay_s >= stale and t.kind not in ("stale", "comm_loss"):
            self.error(
                (*loc, "on_delay_s"),
                f"on-delay {t.on_delay_s:g} s is not shorter than the stale limit of {ref} "
                f"({stale:g} s): a frozen value would be flagged stale before the alarm could "
                "rise; shorten the on-delay or raise stale_after_s",
            )
            return None
        if t.kind in ("high", "high_high", "low", "low_low", "power_off"):
            assert t.limit is not None
            kind = LimitKind.HIGH if t.kind == "power_off" else LimitKind(t.kind)
            restore = t.restore
            if restore is None:
                band = t.deadband or 0.0
                restore = t.limit - band if kind.rising else t.limit + band
            if kind.rising and restore > t.limit:
                self.error(
                    (*loc, "restore"),
                    f"the alarm level {t.limit:g} is below its restore level {restore:g}: a "
                    f"{t.kind} alarm raises at >= limit and clears below restore; set restore <= limit",
                )
                return None
            if not kind.rising and restore < t.limit:
                self.error(
                    (*loc, "restore"),
                    f"the alarm level {t.limit:g} is above its restore level {restore:g}: a "
                    f"{t.kind} alarm raises at <= limit and clears above restore; set restore >= limit",
                )
                return None
            if t.range is not None and not (t.range[0] <= t.limit <= t.range[1]):
                self.error(
                    (*loc, "limit"), f"the limit {t.limit:g} lies outside range {list(t.range)}"
                )
                return None
            if t.kind == "power_off":
                feed = self._points(loc, t.feed, key="feed", single=True) if t.feed else []
                if t.feed and not feed:
                    return None
                rule: Rule = PowerOffRule(
                    name=name, point=ref, limit=t.limit, restore=restore,
                    feed=feed[0] if feed else None,
                    feed_after_s=10.0 if t.feed_after_s is None else t.feed_after_s,
                    valid_range=t.range, unit=unit, **common,
                )  # fmt: skip
            else:
                rule = LimitRule(
                    name=name, point=ref, kind=kind, limit=t.limit, restore=restore,
                    valid_range=t.range, unit=unit, **common,
                )  # fmt: skip
            out = [rule]
            if t.range is not None:
                out.append(
                    SensorFaultRule(
                        name=f"{name}.fault", point=ref, valid_range=t.range, source=rule.source
                    )
                )
            return out
        if t.kind == "rate":
            assert t.per_min is not None
            window = 60.0 if t.window_s is None else t.window_s
            return [
                RateRule(
                    name=name, point=ref, per_min=t.per_min, window_s=window, unit=unit, **common
                )
            ]
        if t.kind == "state":
            assert t.value is not None
            return [StateRule(name=name, point=ref, value=t.value, **common)]
        if t.kind in ("comm_loss", "stale"):
            return [QualityRule(name=name, point=ref, kind=QualityKind(t.kind), **common)]
        assert t.range is not None
        return [SensorFaultRule(name=name, point=ref, valid_range=t.range, **common)]

    def _points(
        self, loc: Loc, pattern: str, *, key: str = "point", single: bool = False
    ) -> list[PointRef]:
        dev_pat, sep, point_pat = pattern.rpartition(".")
        if not sep or not dev_pat or not point_pat:
            self.error((*loc, key), f"{pattern!r} is not device.point (e.g. gas-a1.ch4)")
            return []
        refs = [
            PointRef(d.name, p)
            for d in self.devices.values()
            if fnmatch.fnmatchcase(d.name, dev_pat)
            for p in d.points
            if fnmatch.fnmatchcase(p, point_pat)
        ]
        if not refs:
            dev = self.devices.get(dev_pat)
            if dev is not None:
                hint = f"device {dev_pat!r} has the points: {', '.join(dev.points)}"
            else:
                hint = f"the devices are: {', '.join(self.devices) or 'none'}"
            self.error((*loc, key), f"no point matches {pattern!r}: {hint}")
        elif single and len(refs) > 1:
            self.error((*loc, key), f"{pattern!r} matches {len(refs)} points: name exactly one")
            return []
        return refs

    def _expr(self, loc: Loc, key: str, text: str | None) -> Expr | None:
        if text is None:
            return None
        try:
            expr = parse(text)
        except ExprError as exc:
            self.error((*loc, key), f"cannot parse the expression: {exc}")
            return None
        for device, point in expr.names:
            dev = self.devices.get(device)
            if dev is None or point not in dev.points:
                hint = (
                    f"device {device!r} has the points: {', '.join(dev.points)}"
                    if dev is not None
                    else f"the devices are: {', '.join(self.devices) or 'none'}"
                )
                self.error((*loc, key), f"unknown point {device}.{point} in the expression: {hint}")
                return None
        return expr


def site_alarm_rules(
    spec: SiteFile, compiled: Sequence[CompiledDevice], error: Report
) -> tuple[Rule, ...]:
    """``compile_alarms`` for a whole site file and its compiled devices."""
    views = [
        DeviceView(
            d.name,
            d.device_class,
            d.config.location_class,
            {p.name: p.unit for p in d.points},
            dict(d.stale_after_s),
            frozenset(p.name for p in d.points if p.writable and p.kind is RegisterKind.COIL),
        )
        for d in compiled
    ]
    locs: dict[str, Loc] = {
        d.name: ("devices", i, "location_class") for i, d in enumerate(spec.devices)
    }
    mqtt = [s.name for s in spec.sinks if s.type == "mqtt"]
    return compile_alarms(
        spec.alarms, spec.alarm_classes, spec.alarm_control, views, mqtt, error, class_locs=locs
    )

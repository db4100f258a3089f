"""Rules: facts in, the alerts that should be firing out. Pure functions.

Each rule returns :class:`AlertSpec` objects keyed by fingerprint. The
evaluator (``service.evaluate``) gathers the facts from the store and
reconciles; tests call the rules directly with hand-made facts.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from supervision.config import AlertingSection
from supervision.ingest.parse import QUIET_STATES


@dataclass(frozen=True, slots=True)
class AlertSpec:
    fingerprint: str
    kind: str
    mine_id: int
    gateway_id: int | None
    severity: str
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class GatewayFact:
    gateway_id: int
    mine_id: int
    label: str  # "<site>/<gateway>"
    created_ns: int
    last_seen_ns: int | None
    state: str | None  # from the status topic
    reason: str | None
    state_ts_ns: int | None


@dataclass(frozen=True, slots=True)
class MineFact:
    mine_id: int
    code: str
    name: str
    status: str
    order_no: str | None
    order_from: date | None
    order_to: date | None
    baseline_power_kw: float | None


@dataclass(frozen=True, slots=True)
class ValueFact:
    mine_id: int
    gateway_id: int
    device: str
    point: str
    value: object
    number: float | None
    unit: str
    quality: str
    ts_ns: int


@dataclass(frozen=True, slots=True)
class AlarmFact:
    mine_id: int
    gateway_id: int
    label: str
    alarm: str
    device: str
    point: str
    state: str
    severity: str  # the gateway's priority: low, medium, high, critical
    event: str
    actor: str
    message: str
    value: object
    ts_ns: int


def iso(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def gateway_offline(
    gateways: list[GatewayFact], now_ns: int, heartbeat_timeout_s: float, watching_since_ns: int = 0
) -> list[AlertSpec]:
    """Offline: the gateway's status says so (its last will, or a clean
    stop), or nothing came from it for ``heartbeat_timeout_s``, counted
    from its last message, its registration, or ``watching_since_ns`` (when
    this platform instance started listening), whichever is latest: a
    platform that was itself down does not blame every gateway at start."""
    out = []
    limit = int(heartbeat_timeout_s * 1e9)
    for g in gateways:
        seen = g.last_seen_ns
        why = None
        evidence: dict[str, Any] = {"gateway": g.label}
        # the latest status received is the gateway's word (or its last
        # will's); a reconnect publishes "online" again
        if g.state == "offline":
            why = f"status offline ({g.reason or 'no reason'})"
            evidence |= {
                "status": "offline",
                "reason": g.reason,
                "status_ts": iso(g.state_ts_ns or 0),
            }
        elif now_ns - max(seen or 0, g.created_ns, watching_since_ns) > limit:
            why = f"no message for more than {heartbeat_timeout_s:g} s"
            evidence |= {"last_seen": iso(seen) if seen else None, "timeout_s": heartbeat_timeout_s}
        if why is not None:
            out.append(
                AlertSpec(
                    f"gateway_offline:{g.gateway_id}",
                    "gateway_offline",
                    g.mine_id,
                    g.gateway_id,
                    "major",
                    f"gateway {g.label} offline: {why}",
                    evidence,
                )
            )
    return out


def suspended_mine_watch(
    mines: list[MineFact], values: list[ValueFact], today: date, config: AlertingSection
) -> list[AlertSpec]:
    """A mine under a suspension order in force today that draws power
    above its baseline, or runs production machinery: "suspected illegal
    production", with the values and their times as evidence."""
    watch = config.suspended_watch
    by_mine: dict[int, list[ValueFact]] = {}
    for v in values:
        by_mine.setdefault(v.mine_id, []).append(v)
    out = []
    for m in mines:
        if m.status != "suspended":
            continue
        if (m.order_from and today < m.order_from) or (m.order_to and today > m.order_to):
            continue
        facts = [v for v in by_mine.get(m.mine_id, []) if v.quality == "good"]
        reasons: list[str] = []
        evidence: dict[str, Any] = {
            "order_no": m.order_no,
            "baseline_power_kw": m.baseline_power_kw,
        }
        power = [v for v in facts if v.point in watch.power_points and v.number is not None]
        if power and m.baseline_power_kw is not None:
            total = sum(v.number for v in power if v.number is not None)
            if total > m.baseline_power_kw + watch.power_margin_kw:
                reasons.append(f"power {total:.1f} kW above baseline {m.baseline_power_kw:g} kW")
                evidence["power"] = [
                    {"device": v.device, "point": v.point, "value": v.number, "unit": v.unit, "ts": iso(v.ts_ns)}
                    for v in power
                ]  # fmt: skip
                evidence["power_total_kw"] = round(total, 3)
        running = [
            v
            for v in facts
            if v.point in watch.running_points
            and v.number
            and any(fnmatch.fnmatchcase(v.device, pat) for pat in watch.production_devices)
        ]
        if running:
            reasons.append("running: " + ", ".join(sorted({v.device for v in running})))
            evidence["running"] = [
                {"device": v.device, "point": v.point, "value": v.value, "ts": iso(v.ts_ns)}
                for v in running
            ]
        if reasons:
            out.append(
                AlertSpec(
                    f"suspected_illegal_production:{m.mine_id}",
                    "suspected_illegal_production",
                    m.mine_id,
                    None,
                    "critical",
                    f"suspected illegal production at suspended mine {m.code} {m.name}: "
                    + "; ".join(reasons),
                    evidence,
                )
            )
    return out


@dataclass(frozen=True, slots=True)
class SilentDeviceFact:
    """A device every point of which the gateway last reported as
    ``comm_loss`` (its poller gets no answer), with when it said so."""

    mine_id: int
    gateway_id: int
    label: str
    device: str
    points: int
    since_ns: int  # the newest of those reports


def silent_devices(devices: list[SilentDeviceFact]) -> list[AlertSpec]:
    """A data gap: the gateway is up but one of its devices answers nothing.
    (An offline gateway inhibits these: its offline alert says it all.)"""
    return [
        AlertSpec(
            f"device_silent:{d.gateway_id}:{d.device}",
            "device_silent",
            d.mine_id,
            d.gateway_id,
            "minor",
            f"device {d.device} on {d.label} sends no data (comm_loss)",
            {
                "gateway": d.label,
                "device": d.device,
                "points": d.points,
                "reported": iso(d.since_ns),
            },
        )
        for d in devices
    ]


@dataclass(frozen=True, slots=True)
class SurveyCheckFact:
    """The latest check of a licence: reported through a gateway, or of a
    survey uploaded to the platform (``gateway_id`` None, ``label`` names
    the upload)."""

    mine_id: int
    gateway_id: int | None
    label: str
    licence: str
    check_id: str
    violation: bool
    message: str
    values: dict[str, object]
    ts_ns: int


def survey_violations(checks: list[SurveyCheckFact]) -> list[AlertSpec]:
    """The latest survey check of a licence found workings beyond it."""
    return [
        AlertSpec(
            f"survey_violation:{c.gateway_id}:{c.licence}"
            if c.gateway_id is not None
            else f"survey_violation:upload:{c.mine_id}:{c.licence}",
            "survey_violation",
            c.mine_id,
            c.gateway_id,
            "critical",
            c.message or f"survey check {c.check_id}: violations of licence {c.licence}",
            {
                "licence": c.licence,
                "check_id": c.check_id,
                ("gateway" if c.gateway_id is not None else "upload"): c.label,
                "checked": iso(c.ts_ns),
                **c.values,
            },
        )
        for c in checks
        if c.violation
    ]


def forwarded_alarms(alarms: list[AlarmFact]) -> list[AlertSpec]:
    """A gateway's alarm fires here, with the gateway's priority, while it
    is active at the gateway (``active_unacked``, ``active_acked``; a
    latched alarm until its reset): it resolves when the condition returns
    to normal (acknowledged at the mine or not) or the mine takes it out of
    annunciation (shelved, suppressed, out of service). Acknowledged at the
    gateway, its summary says by whom: an ``updated`` event."""
    out = []
    for a in alarms:
        if a.state in QUIET_STATES:
            continue
        out.append(
            AlertSpec(
                f"gateway_alarm:{a.gateway_id}:{a.alarm}",
                "gateway_alarm",
                a.mine_id,
                a.gateway_id,
                a.severity,
                a.message or f"{a.alarm}: {a.state}",
                {
                    "gateway": a.label,
                    "alarm": a.alarm,
                    "device": a.device,
                    "point": a.point,
                    "state": a.state,
                    "event": a.event,
                    "by": a.actor,
                    "value": a.value,
                    "ts": iso(a.ts_ns),
                },
            )
        )
    return out


def evaluate_rules(
    *,
    now_ns: int,
    gateways: list[GatewayFact],
    mines: list[MineFact],
    values: list[ValueFact],
    alarms: list[AlarmFact],
    config: AlertingSection,
    watching_since_ns: int = 0,
    silent: list[SilentDeviceFact] | None = None,
    checks: list[SurveyCheckFact] | None = None,
) -> dict[str, AlertSpec]:
    today = datetime.fromtimestamp(now_ns / 1e9, UTC).date()
    specs = [
        *gateway_offline(gateways, now_ns, config.heartbeat_timeout_s, watching_since_ns),
        *suspended_mine_watch(mines, values, today, config),
        *forwarded_alarms(alarms),
        *silent_devices(silent or []),
        *survey_violations(checks or []),
    ]
    return {s.fingerprint: s for s in specs}

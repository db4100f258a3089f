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

from supervision.config import AlertingSection, DataGapWatch, SuspendedWatch
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


def watched_points(watch: SuspendedWatch) -> list[str]:
    """The points the evaluator must pass to :func:`suspended_mine_watch`
    (as :class:`ValueFact`, latest value of each, for suspended mines)."""
    return sorted({*watch.power_points, *watch.running_points, *watch.evidence_points})


def _value(v: ValueFact) -> dict[str, Any]:
    out: dict[str, Any] = {"value": v.value}
    if v.unit:
        out["unit"] = v.unit
    return out | {"ts": iso(v.ts_ns)}


def suspended_mine_watch(
    mines: list[MineFact], values: list[ValueFact], today: date, config: AlertingSection
) -> list[AlertSpec]:
    """A mine under a suspension order in force today that draws power
    above its baseline, or runs production machinery: "suspected illegal
    production", with the values and their times as evidence (a running
    machine's own readings too: a hoist's speed and position, a crusher's
    throughput).

    The summary names what shows production: the machines running when any
    do (it stays the same while they run: a hoist's power comes and goes
    with its winding cycle, which only refreshes the evidence), otherwise
    the power above baseline. The live numbers are in the evidence only."""
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
        evidence: dict[str, Any] = {
            "order_no": m.order_no,
            "baseline_power_kw": m.baseline_power_kw,
        }
        power = [v for v in facts if v.point in watch.power_points and v.number is not None]
        above = False
        if power and m.baseline_power_kw is not None:
            total = sum(v.number for v in power if v.number is not None)
            above = total > m.baseline_power_kw + watch.power_margin_kw
            evidence["power"] = [
                {"device": v.device, "point": v.point, "value": v.number, "unit": v.unit, "ts": iso(v.ts_ns)}
                for v in power
            ]  # fmt: skip
            evidence["power_total_kw"] = round(total, 3)
            evidence["power_above_baseline"] = above
        running = [
            v
            for v in facts
            if v.point in watch.running_points
            and v.number
            and any(fnmatch.fnmatchcase(v.device, pat) for pat in watch.production_devices)
        ]
        if running:
            readings: dict[str, dict[str, Any]] = {}
            for v in facts:
                if v.point in watch.evidence_points:
                    readings.setdefault(v.device, {})[v.point] = _value(v)
            evidence["running"] = [
                {"device": v.device, "point": v.point, "value": v.value, "ts": iso(v.ts_ns),
                 "readings": dict(sorted(readings.get(v.device, {}).items()))}
                for v in sorted(running, key=lambda v: (v.device, v.point))
            ]  # fmt: skip
            why = "running: " + ", ".join(sorted({v.device for v in running}))
        elif above:
            why = f"power above its baseline {m.baseline_power_kw:g} kW" + (
                f" + {watch.power_margin_kw:g} kW" if watch.power_margin_kw else ""
            )
        else:
            continue
        out.append(
            AlertSpec(
                f"suspected_illegal_production:{m.mine_id}",
                "suspected_illegal_production",
                m.mine_id,
                None,
                "critical",
                f"suspected illegal production at suspended mine {m.code} {m.name}: {why}",
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
class DeviceDataFact:
    """What the store knows of one device's data: when its newest value
    with data arrived (any quality but ``comm_loss``; None if none ever
    did) and when the gateway last said anything of it (``comm_loss``
    reports included). The evaluator may pass only the devices whose data
    is older than :attr:`DataGapWatch.shortest_s` (the others cannot be in
    a gap)."""

    mine_id: int
    gateway_id: int
    label: str
    device: str
    points: int
    last_data_ns: int | None
    last_report_ns: int
    #: a data-gap alert of this device is open (firing) now
    alerting: bool = False


DATA_GAP = "device_data_gap"


def _duration(seconds: float) -> str:
    s = int(seconds)
    if s < 120:
        return f"{s} s"
    if s < 7200:
        return f"{s // 60} min"
    return f"{s // 3600} h {s % 3600 // 60:02d} min"


def data_gaps(
    devices: list[DeviceDataFact],
    gateways: list[GatewayFact],
    now_ns: int,
    watch: DataGapWatch,
    *,
    offline: set[int] | frozenset[int] = frozenset(),
    watching_since_ns: int = 0,
) -> list[AlertSpec]:
    """A device whose data has been missing longer than its class's limit
    (``watch.limit_for``): a ``device_data_gap`` alert with the gap's start
    (its last data) and length; it resolves when data returns (the
    resolution records the gap's full length: :func:`on_resolve`).

    A gap not alerting yet is measured from the latest of its last data,
    its gateway's registration or return (status ``online``) and ``watching_since_ns``
    (when this platform started listening), so neither a gateway's outage
    nor the platform's own downtime counts against a device: a gateway
    back online gets one limit's time for its devices to report; and it
    is inhibited while its gateway is in ``offline`` (a ``gateway_offline``
    alert says it all). A gap already alerting (``alerting``) goes on until
    data returns, whatever its gateway does meanwhile."""
    if not watch.enabled:
        return []
    # a gap is measured from no earlier than the gateway's registration, and
    # for one not alerting yet, its return (status online) if that is later
    floor = {g.gateway_id: g.created_ns for g in gateways}
    back = {g.gateway_id: max(g.created_ns, g.state_ts_ns or 0) for g in gateways
            if g.state == "online"}  # fmt: skip
    out = []
    for d in devices:
        cls, limit_s = watch.limit_for(d.device)
        if d.alerting:
            since = max(d.last_data_ns or 0, floor.get(d.gateway_id, 0))
        elif d.gateway_id in offline:
            continue
        else:
            since = max(
                d.last_data_ns or 0,
                back.get(d.gateway_id, floor.get(d.gateway_id, 0)),
                watching_since_ns,
            )
        if now_ns - since <= int(limit_s * 1e9):
            continue
        start = d.last_data_ns
        gap_s = (now_ns - start) / 1e9 if start is not None else None
        summary = (
            f"device {d.device} on {d.label}: no data since {iso(start)} "
            f"(alerts after {_duration(limit_s)})"
            if start is not None
            else f"device {d.device} on {d.label}: no data received "
            f"(alerts after {_duration(limit_s)})"
        )
        out.append(
            AlertSpec(
                f"{DATA_GAP}:{d.gateway_id}:{d.device}",
                DATA_GAP,
                d.mine_id,
                d.gateway_id,
                watch.severity,
                summary,
                {
                    "gateway": d.label,
                    "device": d.device,
                    "class": cls,
                    "limit_s": limit_s,
                    "gap_start": iso(start) if start is not None else None,
                    "gap_start_ns": start,
                    # to the minute: fresher evidence is a write, not every round
                    "gap_s": int(gap_s // 60 * 60) if gap_s is not None else None,
                    # the gateway still reports the device, as not answering
                    # (comm_loss); False: it reports nothing of it at all
                    "comm_loss": d.last_report_ns > (start or 0),
                    "points": d.points,
                },
            )
        )
    return out


def on_resolve(kind: str, evidence: dict[str, Any], now_ns: int) -> dict[str, Any]:
    """The evidence a resolved alert keeps. A data gap records its end
    and full length (``gap_end``, ``gap_s``): the evaluator calls this when
    it resolves an alert, with the resolution's time (within one evaluation
    of the data's return)."""
    if kind != DATA_GAP or evidence.get("gap_start_ns") is None:
        return evidence
    start = int(evidence["gap_start_ns"])
    return {**evidence, "gap_end": iso(now_ns), "gap_s": round((now_ns - start) / 1e9)}


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
    data: list[DeviceDataFact] | None = None,
) -> dict[str, AlertSpec]:
    today = datetime.fromtimestamp(now_ns / 1e9, UTC).date()
    offline = gateway_offline(gateways, now_ns, config.heartbeat_timeout_s, watching_since_ns)
    specs = [
        *offline,
        *suspended_mine_watch(mines, values, today, config),
        *forwarded_alarms(alarms),
        *silent_devices(silent or []),
        *survey_violations(checks or []),
        *data_gaps(
            data or [],
            gateways,
            now_ns,
            config.data_gap,
            offline={s.gateway_id for s in offline if s.gateway_id is not None},
            watching_since_ns=watching_since_ns,
        ),
    ]
    return {s.fingerprint: s for s in specs}

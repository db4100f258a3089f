"""Evaluate rules against the store and reconcile alert states."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import case, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from supervision.alerting.datagap import device_data
from supervision.alerting.models import Alert, AlertEvent, AlertState
from supervision.alerting.rules import (
    AlarmFact,
    AlertSpec,
    GatewayFact,
    MineFact,
    SilentDeviceFact,
    SurveyCheckFact,
    ValueFact,
    evaluate_rules,
    on_resolve,
    watched_points,
)
from supervision.alerting.state import OpenAlert, Transition, plan
from supervision.config import AlertingSection
from supervision.ingest.models import GatewayAlarm, GatewayLiveness, LatestValue, SurveyCheck
from supervision.ingest.parse import QUIET_STATES
from supervision.registry.models import Gateway, Mine, MineStatus
from supervision.uploads.models import Survey


@dataclass
class Reconciled:
    fired: int = 0
    resolved: int = 0
    updated: int = 0
    escalated: int = 0
    reminded: int = 0


#: the kinds of alert a gateway's own messages decide (its status, its
#: alarms, its survey checks): what :func:`evaluate_gateways` re-evaluates
GATEWAY_KINDS = ("gateway_offline", "gateway_alarm", "survey_violation")


def gather_and_evaluate(
    db: Session,
    now_ns: int,
    config: AlertingSection,
    watching_since_ns: int = 0,
    only: Collection[int] | None = None,
) -> dict[str, AlertSpec]:
    """The alerts that should be firing now, from what the store holds.
    Plain columns, not ORM entities: this runs every few seconds over every
    gateway and mine of the platform (building the objects was most of an
    evaluation's time with 1,000 gateways). ``only``: the facts of these
    gateways alone, for :data:`GATEWAY_KINDS` (no mine-wide rules)."""
    G, L = Gateway, GatewayLiveness
    gq = select(G.id, G.mine_id, G.site, G.name, G.created_ns, L.last_seen_ns, L.state,
                L.reason, L.state_ts_ns).outerjoin(L, L.gateway_id == G.id)  # fmt: skip
    if only is not None:
        gq = gq.where(G.id.in_(only))
    gateways = [
        GatewayFact(gid, mine_id, f"{site}/{name}", created, seen, state, reason, state_ts)
        for gid, mine_id, site, name, created, seen, state, reason, state_ts in db.execute(gq)
    ]
    label = {g.gateway_id: g.label for g in gateways}
    mine_of = {g.gateway_id: g.mine_id for g in gateways}
    M = Mine
    mines = [] if only is not None else [
        MineFact(*row)
        for row in db.execute(
            select(M.id, M.code, M.name, M.status, M.order_no, M.order_from, M.order_to,
                   M.baseline_power_kw)
        )
    ]  # fmt: skip
    watch = config.suspended_watch
    suspended = [m.mine_id for m in mines if m.status == MineStatus.SUSPENDED]
    values: list[ValueFact] = []
    if suspended:
        rows = db.execute(
            select(LatestValue, Gateway.mine_id)
            .join(Gateway, Gateway.id == LatestValue.gateway_id)
            .where(Gateway.mine_id.in_(suspended))
            .where(LatestValue.point.in_(watched_points(watch)))
        )
        values = [
            ValueFact(
                mine_id,
                v.gateway_id,
                v.device,
                v.point,
                v.value,
                v.number,
                v.unit,
                v.quality,
                v.ts_ns,
            )
            for v, mine_id in rows
        ]
    A = GatewayAlarm
    # only alarms active at the gateway make alerts (forwarded_alarms): the
    # quiet ones, most of a fleet's, stay in the database
    aq = select(A.gateway_id, A.alarm, A.device, A.point, A.state, A.severity, A.event,
                A.actor, A.message, A.value, A.ts_ns).where(A.state.not_in(sorted(QUIET_STATES)))  # fmt: skip
    if only is not None:
        aq = aq.where(A.gateway_id.in_(only))
    alarms = [
        AlarmFact(
            mine_of[gid],
            gid,
            label[gid],
            alarm,
            device,
            point,
            state,
            severity,
            event,
            actor,
            message,
            value,
            ts,
        )
        for gid, alarm, device, point, state, severity, event, actor, message, value, ts in (
            db.execute(aq)
        )
        if gid in mine_of
    ]
    # devices whose every point is comm_loss: the database counts, only
    # among devices with a comm_loss point at all (grouping every latest
    # value was a third of an evaluation with 10,000 gateways), and only
    # those rows come back
    V = LatestValue
    lost = select(V.gateway_id, V.device).where(V.quality == "comm_loss").distinct().subquery()
    comm_loss = func.sum(case((V.quality == "comm_loss", 1), else_=0))
    silent = [] if only is not None else [
        SilentDeviceFact(mine_of[gid], gid, label[gid], device, n, since)
        for gid, device, n, since in db.execute(
            select(V.gateway_id, V.device, func.count(), func.max(V.ts_ns))
            .join(lost, (lost.c.gateway_id == V.gateway_id) & (lost.c.device == V.device))
            .group_by(V.gateway_id, V.device)
            .having(comm_loss == func.count())
        )
        if gid in mine_of
    ]  # fmt: skip
    cq = select(SurveyCheck, Gateway).join(Gateway, Gateway.id == SurveyCheck.gateway_id)
    if only is not None:
        cq = cq.where(SurveyCheck.gateway_id.in_(only))
    checks = [
        SurveyCheckFact(
            g.mine_id,
            g.id,
            f"{g.site}/{g.name}",
            c.licence,
            c.check_id,
            c.violation,
            c.message,
            dict(c.values or {}),
            c.ts_ns,
        )
        for c, g in db.execute(cq)
    ]
    if only is None:
        checks += uploaded_checks(db)
    return evaluate_rules(
        checks=checks,
        silent=silent,
        now_ns=now_ns,
        gateways=gateways,
        mines=mines,
        values=values,
        alarms=alarms,
        config=config,
        watching_since_ns=watching_since_ns,
        # data gaps are time-based: the sweep finds them, not a batch
        data=device_data(db, now_ns, config.data_gap) if only is None else [],
    )


def uploaded_checks(db: Session) -> list[SurveyCheckFact]:
    """The latest checked upload (by upload order) of each mine and
    licence: its verdict fires or resolves the mine's ``survey_violation``
    like a gateway's check."""
    latest = (
        select(func.max(Survey.id))
        .where(Survey.state == "done")
        .group_by(Survey.mine_id, Survey.licence_file)
    )
    out = []
    for s in db.scalars(select(Survey).where(Survey.id.in_(latest))):
        values = dict(s.values or {})
        lic = str(values.pop("licence", None) or s.licence_file)
        out.append(
            SurveyCheckFact(
                s.mine_id,
                None,
                f"survey {s.id} by {s.uploader}",
                lic,
                s.check_id or f"survey-{s.id}",
                bool(s.incidents),
                f"survey {s.id} uploaded by {s.uploader}: {s.message}" if s.incidents else "",
                {"survey": s.id, **values},
                s.finished_ns or s.created_ns,
            )
        )
    return out


def _event(db: Session, alert: Alert, event: str, now_ns: int, actor: str | None = None) -> None:
    db.add(
        AlertEvent(
            alert_id=alert.id,
            mine_id=alert.mine_id,
            at_ns=now_ns,
            event=event,
            actor=actor,
            detail={"summary": alert.summary, "evidence": alert.evidence},
        )
    )


def reconcile(
    db: Session, specs: dict[str, AlertSpec], now_ns: int, only: Collection[int] | None = None
) -> Reconciled:
    """Make the open alerts match ``specs`` (the transitions come from the
    pure :func:`~supervision.alerting.state.plan`); each is recorded.
    ``only``: the open alerts of these gateways of :data:`GATEWAY_KINDS`
    alone (``specs`` from ``gather_and_evaluate(..., only=...)``)."""
    out = Reconciled()
    q = select(Alert).where(Alert.open_fingerprint.is_not(None))
    if only is not None:
        q = q.where(Alert.gateway_id.in_(only), Alert.kind.in_(GATEWAY_KINDS))
    open_alerts = {a.open_fingerprint: a for a in db.scalars(q) if a.open_fingerprint is not None}
    current = {fp: OpenAlert(a.summary, a.severity, a.evidence) for fp, a in open_alerts.items()}
    for transition, fp in plan(current, specs):
        if transition is Transition.FIRE:
            spec = specs[fp]
            alert = Alert(
                fingerprint=fp,
                open_fingerprint=fp,
                mine_id=spec.mine_id,
                gateway_id=spec.gateway_id,
                kind=spec.kind,
                severity=spec.severity,
                summary=spec.summary,
                evidence=spec.evidence,
                state=AlertState.FIRING.value,
                started_ns=now_ns,
                updated_ns=now_ns,
            )
            try:
                with db.begin_nested():
                    db.add(alert)
                    db.flush()
            except IntegrityError:
                continue  # another instance opened it a moment ago
            _event(db, alert, transition.value, now_ns)
            out.fired += 1
        elif transition is Transition.RESOLVE:
            alert = open_alerts[fp]
            alert.state = AlertState.RESOLVED.value
            alert.open_fingerprint = None
            alert.resolved_ns = alert.updated_ns = now_ns
            alert.evidence = on_resolve(alert.kind, alert.evidence, now_ns)
            _event(db, alert, transition.value, now_ns)
            out.resolved += 1
        else:
            alert, spec = open_alerts[fp], specs[fp]
            alert.summary, alert.severity, alert.evidence = (
                spec.summary,
                spec.severity,
                spec.evidence,
            )
            alert.updated_ns = now_ns
            if transition is Transition.UPDATE:
                _event(db, alert, transition.value, now_ns)
                out.updated += 1
    db.flush()
    return out


def evaluate(
    db: Session, now_ns: int, config: AlertingSection, watching_since_ns: int = 0
) -> Reconciled:
    res = reconcile(db, gather_and_evaluate(db, now_ns, config, watching_since_ns), now_ns)
    if config.escalate_after_s > 0:
        res.escalated = escalate(db, now_ns, config.escalate_after_s)
    if config.remind_every_s > 0:
        res.reminded = remind(db, now_ns, config.remind_every_s)
    return res


def evaluate_gateways(
    db: Session,
    gateways: Collection[int],
    now_ns: int,
    config: AlertingSection,
    watching_since_ns: int = 0,
) -> Reconciled:
    """Re-evaluate what these gateways' messages decide (their status,
    alarms and survey checks: :data:`GATEWAY_KINDS`), reading only their
    rows: what ingest asks for after a batch with alarms or statuses, so an
    alarm's alert costs a few indexed reads, not the fleet's. Time-based
    conditions (heartbeat expiry, suspended mines, silent devices, escalation,
    reminders) are the periodic full :func:`evaluate`'s."""
    only = sorted(set(gateways))
    if not only:
        return Reconciled()
    specs = gather_and_evaluate(db, now_ns, config, watching_since_ns, only=only)
    return reconcile(db, specs, now_ns, only=only)


def remind(db: Session, now_ns: int, every_s: float) -> int:
    """A ``reminder`` event for every alert firing unacknowledged for
    ``every_s`` since it fired or was last reminded of (Alertmanager's
    repeat interval)."""
    cutoff = now_ns - int(every_s * 1e9)
    due = db.scalars(
        select(Alert).where(
            Alert.state == AlertState.FIRING,
            Alert.acked_ns.is_(None),
            func.coalesce(Alert.reminded_ns, Alert.started_ns) <= cutoff,
        )
    ).all()
    for alert in due:
        alert.reminded_ns = now_ns
        _event(db, alert, "reminder", now_ns)
    db.flush()
    return len(due)


def escalate(db: Session, now_ns: int, after_s: float) -> int:
    """Escalate, once, every alert firing unacknowledged for ``after_s``."""
    due = db.scalars(
        select(Alert).where(
            Alert.state == AlertState.FIRING,
            Alert.acked_ns.is_(None),
            Alert.escalated_ns.is_(None),
            Alert.started_ns <= now_ns - int(after_s * 1e9),
        )
    ).all()
    for alert in due:
        alert.escalated_ns = now_ns
        _event(db, alert, "escalated", now_ns)
    db.flush()
    return len(due)


def acknowledge(db: Session, alert: Alert, actor: str, now_ns: int) -> bool:
    """Mark ``alert`` acknowledged by ``actor``; False if it already was."""
    if alert.acked_ns is not None:
        return False
    alert.acked_ns = now_ns
    alert.acked_by = actor
    _event(db, alert, "acknowledged", now_ns, actor)
    db.flush()
    return True

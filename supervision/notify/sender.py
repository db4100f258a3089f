"""Sending due deliveries, whatever the channel: lease them, send outside
the transaction, store every attempt, and retry with capped, jittered
backoff or give up (a dead letter, kept and listed)."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from supervision.config import (
    AnyReceiver,
    EmailReceiver,
    MqttReceiver,
    MqttSection,
    NotifySection,
    WebhookReceiver,
)
from supervision.notify.models import Delivery, DeliveryAttempt, DeliveryState
from supervision.notify.outcome import Outcome


def retryable(outcome: Outcome) -> bool:
    """The one place that decides: a failure is retried unless the channel
    called it permanent."""
    return not outcome.ok and not outcome.permanent


def backoff_s(attempts: int, cfg: NotifySection, rng: random.Random) -> float:
    """Delay before attempt ``attempts + 1``: doubling, capped, jittered
    into [50 %, 100 %] so many receivers do not retry in step."""
    base = min(cfg.retry_max_s, cfg.retry_initial_s * 2 ** max(attempts - 1, 0))
    return base * (0.5 + rng.random() / 2)


def send_one(
    receiver: AnyReceiver, delivery_id: int, payload: dict[str, object], now_ns: int,
    mqtt: MqttSection | None,
) -> Outcome:  # fmt: skip
    if isinstance(receiver, WebhookReceiver):
        from supervision.notify.webhook import post

        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        return post(receiver, delivery_id, body, now_ns // 1_000_000_000)
    if isinstance(receiver, EmailReceiver):
        from supervision.notify.email import send_email

        return send_email(receiver, delivery_id, payload)
    if isinstance(receiver, MqttReceiver):
        from supervision.notify.mqtt_out import publish

        if mqtt is None:
            return Outcome.failed(
                "no [mqtt] broker configured", time.perf_counter(), permanent=True
            )
        return publish(receiver, mqtt, delivery_id, payload)
    raise TypeError(receiver)


def claim_due(db: Session, now_ns: int, lease_s: float, limit: int = 100) -> list[int]:
    """Lease the deliveries due now; ids of those this caller got."""
    due = db.scalars(
        select(Delivery.id)
        .where(Delivery.state == DeliveryState.PENDING, Delivery.next_attempt_ns <= now_ns)
        .where(or_(Delivery.lease_until_ns.is_(None), Delivery.lease_until_ns < now_ns))
        .order_by(Delivery.next_attempt_ns, Delivery.id)
        .limit(limit)
    ).all()
    got = []
    for did in due:
        res = db.execute(
            update(Delivery)
            .where(Delivery.id == did)
            .where(or_(Delivery.lease_until_ns.is_(None), Delivery.lease_until_ns < now_ns))
            .values(lease_until_ns=now_ns + int(lease_s * 1e9))
            .returning(Delivery.id)
        ).first()
        if res is not None:
            got.append(did)
    return got


def record(
    db: Session, delivery: Delivery, outcome: Outcome, now_ns: int, max_attempts: int,
    delay_s: float,
) -> None:  # fmt: skip
    """Store the attempt and move the delivery on: sent, retry after
    ``delay_s``, or dead."""
    db.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            at_ns=now_ns,
            status_code=outcome.status,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    delivery.attempts += 1
    delivery.lease_until_ns = None
    if outcome.ok:
        delivery.state, delivery.done_ns, delivery.last_error = (
            DeliveryState.SENT.value,
            now_ns,
            None,
        )
        return
    delivery.last_error = outcome.error
    if not retryable(outcome) or delivery.attempts >= max_attempts:
        delivery.state, delivery.done_ns = DeliveryState.DEAD.value, now_ns
        return
    delivery.next_attempt_ns = now_ns + int(delay_s * 1e9)


def send_due(
    sessions: sessionmaker[Session],
    receivers: Sequence[AnyReceiver],
    cfg: NotifySection,
    now_ns: int,
    rng: random.Random | None = None,
    mqtt: MqttSection | None = None,
) -> int:
    """Send every due delivery once; the number attempted. The database
    transaction is not held while waiting for a receiver."""
    rng = rng or random.Random()
    by_name = {r.name: r for r in receivers}
    with sessions() as db, db.begin():
        ids = claim_due(db, now_ns, cfg.lease_s)
    with sessions() as db:
        claimed = [db.get_one(Delivery, did) for did in ids]
    # a receiver with a group window gets a mine's due deliveries as one
    groups: dict[tuple[str, int] | int, list[Delivery]] = {}
    for d in claimed:
        r = by_name.get(d.receiver)
        key: tuple[str, int] | int = (d.receiver, d.mine_id) if r and r.group_wait_s > 0 else d.id
        groups.setdefault(key, []).append(d)
    for group in groups.values():
        d = group[0]
        receiver = by_name.get(d.receiver)
        payload = d.payload if len(group) == 1 else grouped(group)
        if receiver is None:
            outcome = Outcome.failed(
                f"receiver {d.receiver!r} is no longer configured",
                time.perf_counter(),
                permanent=True,
            )
            max_attempts = 1
        else:
            outcome = send_one(receiver, d.id, payload, now_ns, mqtt)
            max_attempts = receiver.max_attempts
        # one delay for the whole group: it stays together on the retry
        delay = backoff_s(d.attempts + 1, cfg, rng)
        with sessions() as db, db.begin():
            for member in group:
                record(db, db.get_one(Delivery, member.id), outcome, now_ns, max_attempts, delay)
    return len(ids)


def grouped(group: Sequence[Delivery]) -> dict[str, object]:
    """One notification for several events of one mine, oldest first."""
    events = [d.payload for d in sorted(group, key=lambda d: d.alert_event_id)]
    return {
        "receiver": events[0]["receiver"],
        "group": True,
        "count": len(events),
        "mine": events[0]["mine"],
        "events": events,
    }

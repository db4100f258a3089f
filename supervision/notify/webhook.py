"""Sending deliveries to webhooks: signed POSTs, retries with capped,
jittered backoff, dead letters; every attempt stored.

The body is the delivery's JSON. Headers: ``X-Minegate-Timestamp`` (unix
seconds), ``X-Minegate-Signature: sha256=<hex>`` = HMAC-SHA256 with the
receiver's secret over ``<timestamp>.<body>`` (a receiver recomputes it and
rejects old timestamps, so a captured request cannot be replayed later),
``X-Minegate-Delivery`` (the delivery id, the same on every retry: a
receiver deduplicates by it).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from supervision.config import NotifySection, WebhookReceiver
from supervision.notify.models import Delivery, DeliveryAttempt, DeliveryState

USER_AGENT = "minegate-platform/0.1"


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int | None  # HTTP status, None when no answer
    error: str | None
    duration_ms: float

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def retryable(outcome: Outcome) -> bool:
    """The one place that decides: no answer, 408, 429 and 5xx are worth
    another try; any other 4xx will not get better by repeating it."""
    if outcome.status is None:
        return True
    return outcome.status in (408, 429) or outcome.status >= 500


def backoff_s(attempts: int, cfg: NotifySection, rng: random.Random) -> float:
    """Delay before attempt ``attempts + 1``: doubling, capped, jittered
    into [50 %, 100 %] so many receivers do not retry in step."""
    base = min(cfg.retry_max_s, cfg.retry_initial_s * 2 ** max(attempts - 1, 0))
    return base * (0.5 + rng.random() / 2)


def post(receiver: WebhookReceiver, delivery_id: int, body: bytes, now_s: int) -> Outcome:
    ts = str(now_s)
    req = urllib.request.Request(
        receiver.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Minegate-Timestamp": ts,
            "X-Minegate-Signature": signature(receiver.secret, ts, body),
            "X-Minegate-Delivery": str(delivery_id),
        },
    )
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(req, timeout=receiver.timeout_s) as resp:
            resp.read(65536)
            status, error = int(resp.status), None
    except urllib.error.HTTPError as exc:
        status, error = int(exc.code), f"HTTP {exc.code} {exc.reason}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        status, error = None, f"{type(exc).__name__}: {reason}"[:1000]
    return Outcome(status, error, (time.perf_counter() - t0) * 1000)


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
    cfg: NotifySection, rng: random.Random,
) -> None:  # fmt: skip
    """Store the attempt and move the delivery on: sent, retry later, or dead."""
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
    delivery.next_attempt_ns = now_ns + int(backoff_s(delivery.attempts, cfg, rng) * 1e9)


def send_due(
    sessions: sessionmaker[Session],
    receivers: Sequence[WebhookReceiver],
    cfg: NotifySection,
    now_ns: int,
    rng: random.Random | None = None,
) -> int:
    """Send every due delivery once; the number attempted. The database
    transaction is not held while waiting for a receiver."""
    rng = rng or random.Random()
    by_name = {r.name: r for r in receivers}
    with sessions() as db, db.begin():
        ids = claim_due(db, now_ns, cfg.lease_s)
    for did in ids:
        with sessions() as db:
            d = db.get_one(Delivery, did)
            receiver = by_name.get(d.receiver)
            body = json.dumps(d.payload, ensure_ascii=False, separators=(",", ":")).encode()
        if receiver is None:
            outcome = Outcome(None, f"receiver {d.receiver!r} is no longer configured", 0.0)
            max_attempts = 1
        else:
            outcome = post(receiver, did, body, now_ns // 1_000_000_000)
            max_attempts = receiver.max_attempts
        with sessions() as db, db.begin():
            record(db, db.get_one(Delivery, did), outcome, now_ns, max_attempts, cfg, rng)
    return len(ids)

"""Notify API: deliveries of the caller's area (dead letters included)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from supervision.auth.deps import Reader
from supervision.auth.scope import scoped_select
from supervision.context import DbSession
from supervision.notify.models import Delivery, DeliveryAttempt

router = APIRouter(prefix="/api/v1", tags=["notify"])


@router.get(
    "/notify/deliveries",
    summary="Notifications of the caller's area; state=dead lists dead letters",
)
def get_deliveries(
    p: Reader,
    db: DbSession,
    state: str | None = Query(None, pattern="^(pending|sent|dead)$"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    stmt = scoped_select(Delivery, p.scope).order_by(Delivery.id.desc()).limit(limit)
    if state:
        stmt = stmt.where(Delivery.state == state)
    out = []
    for d in db.scalars(stmt):
        attempts = db.scalars(
            select(DeliveryAttempt)
            .where(DeliveryAttempt.delivery_id == d.id)
            .order_by(DeliveryAttempt.id)
        )
        out.append(
            {
                "id": d.id, "receiver": d.receiver, "state": d.state, "alert_id": d.alert_id,
                "mine_id": d.mine_id, "event": d.payload.get("event"), "attempts": d.attempts,
                "last_error": d.last_error, "created_ns": d.created_ns, "done_ns": d.done_ns,
                "tries": [{"at_ns": a.at_ns, "status": a.status_code, "error": a.error} for a in attempts],
            }
        )  # fmt: skip
    return out

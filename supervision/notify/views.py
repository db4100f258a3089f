"""Notify API: deliveries of the caller's area (dead letters included) and
silences."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from supervision.auth.deps import Reader, Silencer, not_found
from supervision.auth.scope import get_scoped, scoped_select
from supervision.context import DbSession, context
from supervision.notify.models import Delivery, DeliveryAttempt, Silence
from supervision.notify.service import (
    MAX_SILENCE_S,
    SilenceInputError,
    create_silence,
    end_silence,
    is_active,
)
from supervision.registry.models import Mine

router = APIRouter(prefix="/api/v1", tags=["notify"])


@router.get(
    "/notify/deliveries",
    summary="Notifications of the caller's area; state=dead lists dead letters",
)
def get_deliveries(
    p: Reader,
    db: DbSession,
    state: str | None = Query(None, pattern="^(pending|sent|dead|muted)$"),
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


class SilenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: str | None = Field(None, description="an alert kind; empty: every kind")
    duration_s: float = Field(3600, ge=60, le=MAX_SILENCE_S)
    comment: str = Field(min_length=1, max_length=1000)


def silence_json(s: Silence, now_ns: int) -> dict[str, Any]:
    return {
        "id": s.id, "mine_id": s.mine_id, "kind": s.kind, "comment": s.comment,
        "created_by": s.created_by, "created_ns": s.created_ns, "expires_ns": s.expires_ns,
        "ended_ns": s.ended_ns, "ended_by": s.ended_by, "active": is_active(s, now_ns),
    }  # fmt: skip


@router.post("/mines/{mine_id}/silences", status_code=201, summary="Silence a mine's notifications")
def post_silence(
    mine_id: int, body: SilenceIn, request: Request, p: Silencer, db: DbSession
) -> dict[str, Any]:
    mine = get_scoped(db, Mine, mine_id, p.scope)
    if mine is None:
        raise not_found(request, p, f"mine {mine_id}")
    now = context(request).clock()
    try:
        s = create_silence(db, mine, kind=body.kind, duration_s=body.duration_s, comment=body.comment,
                           actor=p.name, now_ns=now)  # fmt: skip
    except SilenceInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return silence_json(s, now)


@router.get("/silences", summary="Silences of the caller's area")
def get_silences(
    request: Request, p: Reader, db: DbSession, active: bool = False
) -> list[dict[str, Any]]:
    now = context(request).clock()
    rows = db.scalars(scoped_select(Silence, p.scope).order_by(Silence.id.desc()).limit(500))
    return [silence_json(s, now) for s in rows if not active or is_active(s, now)]


@router.post("/silences/{silence_id}/end", summary="End a silence now")
def post_end_silence(
    silence_id: int, request: Request, p: Silencer, db: DbSession
) -> dict[str, Any]:
    s = get_scoped(db, Silence, silence_id, p.scope)
    if s is None:
        raise not_found(request, p, f"silence {silence_id}")
    now = context(request).clock()
    end_silence(db, s, p.name, now)
    return silence_json(s, now)

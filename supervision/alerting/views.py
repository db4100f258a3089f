"""Alerts API: list the caller's alerts, acknowledge one."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from supervision.alerting import service
from supervision.alerting.models import Alert
from supervision.auth.deps import Acknowledger, Reader, not_found
from supervision.auth.scope import get_scoped, scoped_select
from supervision.context import DbSession, context
from supervision.registry.views import alert_json

router = APIRouter(prefix="/api/v1", tags=["alerts"])


@router.get("/alerts", summary="Alerts of the caller's area, newest first")
def get_alerts(
    p: Reader,
    db: DbSession,
    state: str | None = Query(None, pattern="^(firing|resolved)$"),
    limit: int = Query(100, ge=1, le=1000),
) -> list[dict[str, Any]]:
    stmt = scoped_select(Alert, p.scope).order_by(Alert.started_ns.desc()).limit(limit)
    if state:
        stmt = stmt.where(Alert.state == state)
    return [alert_json(a) for a in db.scalars(stmt)]


@router.post("/alerts/{alert_id}/ack", summary="Acknowledge an alert")
def ack_alert(
    alert_id: int,
    request: Request,
    p: Acknowledger,
    db: DbSession,
) -> dict[str, Any]:
    alert = get_scoped(db, Alert, alert_id, p.scope)
    if alert is None:
        raise not_found(request, p, f"alert {alert_id}")
    service.acknowledge(db, alert, p.name, context(request).clock())
    return alert_json(alert)

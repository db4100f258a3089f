"""Registry API: mines of the caller's area; adding areas, mines, gateways."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from supervision.audit.service import Where, events, record
from supervision.auth.deps import PlatformOperator, Reader, RegistryManager, UserManager, not_found
from supervision.auth.scope import get_scoped, scoped_select
from supervision.auth.service import Principal
from supervision.context import DbSession, context
from supervision.registry import manage, service
from supervision.registry.models import Mine
from supervision.registry.overview import list_mines, mine_detail

router = APIRouter(prefix="/api/v1", tags=["registry"])


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AreaIn(_In):
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    parent: str | None = Field(
        None, description="code of the region (for a city) or city (for a county)"
    )


class MineIn(_In):
    county: str = Field(description="code of the county")
    code: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    licence_file: str | None = None
    status: str = "producing"
    order_no: str | None = None
    order_from: date | None = None
    order_to: date | None = None
    baseline_power_kw: float | None = Field(None, ge=0)


class MineEditIn(_In):
    county: str = Field(description="code of the county (of your area)")
    name: str = Field(min_length=1, max_length=200)
    licence_file: str | None = None
    status: str = "producing"
    order_no: str | None = None
    order_from: date | None = None
    order_to: date | None = None
    baseline_power_kw: float | None = Field(None, ge=0)


class StatusIn(_In):
    status: str
    order_no: str | None = None
    order_from: date | None = None
    order_to: date | None = None


class GatewayIn(_In):
    mine: str = Field(description="code of the mine")
    site: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)


def _bad(exc: service.RegistryInputError) -> HTTPException:
    return HTTPException(422, str(exc))


@router.get("/mines", summary="Mines of the caller's area, with open-alert counts")
def get_mines(p: Reader, db: DbSession) -> list[dict[str, Any]]:
    return [vars(m) for m in list_mines(db, p.scope)]


@router.get("/mines/{mine_id}", summary="A mine: gateways, latest values, alarms, alerts")
def get_mine(mine_id: int, request: Request, p: Reader, db: DbSession) -> dict[str, Any]:
    d = mine_detail(db, mine_id, p.scope)
    if d is None:
        raise not_found(request, p, f"mine {mine_id}")
    m = d.mine
    return {
        "id": m.id,
        "code": m.code,
        "name": m.name,
        "area": d.area,
        "status": m.status,
        "order_no": m.order_no,
        "order_from": m.order_from,
        "order_to": m.order_to,
        "baseline_power_kw": m.baseline_power_kw,
        "licence_file": m.licence_file,
        "gateways": [vars(g) for g in d.gateways],
        "values": [
            {
                "gateway_id": v.gateway_id,
                "device": v.device,
                "point": v.point,
                "value": v.value,
                "unit": v.unit,
                "quality": v.quality,
                "ts_ns": v.ts_ns,
            }
            for v in d.values
        ],
        "alarms": [
            {
                "gateway_id": a.gateway_id,
                "alarm": a.alarm,
                "device": a.device,
                "point": a.point,
                "state": a.state,
                "severity": a.severity,
                "message": a.message,
                "ts_ns": a.ts_ns,
            }
            for a in d.alarms
        ],
        "alerts": [alert_json(a) for a in d.alerts],
    }


def alert_json(a: Any) -> dict[str, Any]:
    return {
        "id": a.id,
        "mine_id": a.mine_id,
        "gateway_id": a.gateway_id,
        "kind": a.kind,
        "severity": a.severity,
        "summary": a.summary,
        "evidence": a.evidence,
        "state": a.state,
        "started_ns": a.started_ns,
        "resolved_ns": a.resolved_ns,
        "acked_ns": a.acked_ns,
        "acked_by": a.acked_by,
        "escalated_ns": a.escalated_ns,
    }


@router.post("/regions", status_code=201, summary="Add a region (platform admins)")
def post_region(
    body: AreaIn, request: Request, p: PlatformOperator, db: DbSession
) -> dict[str, Any]:
    try:
        r = service.add_region(db, body.code, body.name)
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    record(db, p.name, "region.add", f"region {r.code}", f"name {r.name!r}", Where(r.id),
           context(request).clock())  # fmt: skip
    return {"id": r.id, "code": r.code}


@router.post("/cities", status_code=201, summary="Add a city (parent: region code; admins)")
def post_city(body: AreaIn, request: Request, p: PlatformOperator, db: DbSession) -> dict[str, Any]:
    try:
        c = service.add_city(db, body.parent or "", body.code, body.name)
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    record(db, p.name, "city.add", f"city {c.code}", f"name {c.name!r}",
           Where(c.region_id, c.id), context(request).clock())  # fmt: skip
    return {"id": c.id, "code": c.code}


@router.post("/counties", status_code=201, summary="Add a county (parent: a city of your area)")
def post_county(
    body: AreaIn, request: Request, p: RegistryManager, db: DbSession
) -> dict[str, Any]:
    try:
        c = manage.create_county(
            db, p, body.parent or "", body.code, body.name, now_ns=context(request).clock()
        )
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": c.id, "code": c.code}


@router.post("/mines", status_code=201, summary="Add a mine (to a county of your area)")
def post_mine(body: MineIn, request: Request, p: RegistryManager, db: DbSession) -> dict[str, Any]:
    form = manage.MineForm(**body.model_dump(exclude={"code"}))
    try:
        m = manage.create_mine(db, p, body.code, form, now_ns=context(request).clock())
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": m.id, "code": m.code}


def _mine(db: Session, request: Request, p: Principal, mine_id: int) -> Mine:
    mine = get_scoped(db, Mine, mine_id, p.scope)
    if mine is None:
        raise not_found(request, p, f"mine {mine_id}")
    return mine


@router.put("/mines/{mine_id}", summary="Change a mine: every editable field")
def put_mine(
    mine_id: int, body: MineEditIn, request: Request, p: RegistryManager, db: DbSession
) -> dict[str, Any]:
    mine = _mine(db, request, p, mine_id)
    try:
        changes = manage.update_mine(
            db, p, mine, manage.MineForm(**body.model_dump()), now_ns=context(request).clock()
        )
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": mine.id, "status": mine.status, "changes": changes}


@router.put("/mines/{mine_id}/status", summary="Set a mine's status and its order")
def put_status(
    mine_id: int,
    body: StatusIn,
    request: Request,
    p: RegistryManager,
    db: DbSession,
) -> dict[str, Any]:
    mine = _mine(db, request, p, mine_id)
    form = manage.MineForm(
        county=mine.county.code, name=mine.name, licence_file=mine.licence_file,
        baseline_power_kw=mine.baseline_power_kw, **body.model_dump(),
    )  # fmt: skip
    try:
        manage.update_mine(db, p, mine, form, now_ns=context(request).clock())
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": mine.id, "status": mine.status}


@router.post("/gateways", status_code=201, summary="Register a gateway of a mine of your area")
def post_gateway(
    body: GatewayIn, request: Request, p: RegistryManager, db: DbSession
) -> dict[str, Any]:
    mine = db.scalars(scoped_select(Mine, p.scope).where(Mine.code == body.mine.strip())).first()
    if mine is None:
        raise HTTPException(422, f"no mine with code {body.mine.strip()!r} in your area")
    try:
        g = manage.register_gateway(
            db, p, mine, body.site, body.name, now_ns=context(request).clock()
        )
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": g.id, "topic_key": g.topic_key}


@router.delete("/gateways/{gateway_id}", summary="Retire a gateway (its live state is deleted)")
def delete_gateway(
    gateway_id: int, request: Request, p: RegistryManager, db: DbSession
) -> dict[str, Any]:
    gw = manage.gateway_in(db, p.scope, gateway_id)
    if gw is None:
        raise not_found(request, p, f"gateway {gateway_id}")
    manage.retire_gateway(db, p, gw, now_ns=context(request).clock())
    return {"id": gateway_id, "retired": True}


@router.get("/audit", summary="Changes to the registry and users of your area, newest first")
def get_audit(
    request: Request, p: UserManager, db: DbSession, before_id: int | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    rows = events(db, p.scope, limit=max(1, min(limit, 1000)), before_id=before_id)
    return [
        {"id": e.id, "ts_ns": e.ts_ns, "actor": e.actor, "action": e.action, "target": e.target,
         "detail": e.detail}
        for e in rows
    ]  # fmt: skip

"""Registry API: mines of the caller's area; adding areas, mines, gateways."""

from __future__ import annotations

from datetime import date
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from supervision.auth.deps import Reader, RegistryManager, not_found
from supervision.auth.scope import get_scoped
from supervision.context import DbSession, context
from supervision.registry import service
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


@router.post("/regions", status_code=201, summary="Add a region")
def post_region(body: AreaIn, _: RegistryManager, db: DbSession) -> dict[str, Any]:
    try:
        r = service.add_region(db, body.code, body.name)
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": r.id, "code": r.code}


@router.post("/cities", status_code=201, summary="Add a city (parent: region code)")
def post_city(body: AreaIn, _: RegistryManager, db: DbSession) -> dict[str, Any]:
    try:
        c = service.add_city(db, body.parent or "", body.code, body.name)
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": c.id, "code": c.code}


@router.post("/counties", status_code=201, summary="Add a county (parent: city code)")
def post_county(body: AreaIn, _: RegistryManager, db: DbSession) -> dict[str, Any]:
    try:
        c = service.add_county(db, body.parent or "", body.code, body.name)
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": c.id, "code": c.code}


@router.post("/mines", status_code=201, summary="Add a mine")
def post_mine(body: MineIn, _: RegistryManager, db: DbSession) -> dict[str, Any]:
    try:
        m = service.add_mine(
            db,
            body.county,
            body.code,
            body.name,
            **body.model_dump(exclude={"county", "code", "name"}),
        )
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": m.id, "code": m.code}


@router.put("/mines/{mine_id}/status", summary="Set a mine's status and its order")
def put_status(
    mine_id: int,
    body: StatusIn,
    request: Request,
    p: RegistryManager,
    db: DbSession,
) -> dict[str, Any]:
    mine = get_scoped(db, Mine, mine_id, p.scope)
    if mine is None:
        raise not_found(request, p, f"mine {mine_id}")
    try:
        service.set_mine_status(
            db,
            mine,
            body.status,
            order_no=body.order_no,
            order_from=body.order_from,
            order_to=body.order_to,
        )
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": mine.id, "status": mine.status}


@router.post("/gateways", status_code=201, summary="Register a gateway of a mine")
def post_gateway(
    body: GatewayIn, request: Request, _: RegistryManager, db: DbSession
) -> dict[str, Any]:
    try:
        g = service.add_gateway(
            db, body.mine, body.site, body.name, now_ns=context(request).clock()
        )
    except service.RegistryInputError as exc:
        raise _bad(exc) from None
    return {"id": g.id, "topic_key": g.topic_key}

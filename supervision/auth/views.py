"""Auth API: who am I; users and tokens (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from supervision.auth import service
from supervision.auth.deps import Authenticated, ContractorAssigner, UserManager
from supervision.auth.models import User
from supervision.auth.permissions import ROLE_PERMISSIONS
from supervision.auth.scope import AreaLevel
from supervision.context import DbSession, context

router = APIRouter(prefix="/api/v1", tags=["auth"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: str
    area: AreaLevel = AreaLevel.ALL
    area_code: str | None = None
    password: str | None = Field(None, min_length=8)


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    label: str = ""
    ttl_s: float | None = Field(None, gt=0)


@router.get("/me", summary="The caller: name, role, scope, permissions")
def me(p: Authenticated) -> dict[str, Any]:
    return {
        "name": p.name,
        "role": p.role,
        "scope": str(p.scope),
        "permissions": sorted(ROLE_PERMISSIONS.get(p.role, ())),
    }


@router.post("/users", status_code=201, summary="Add a user (admins)")
def post_user(body: UserIn, request: Request, _: UserManager, db: DbSession) -> dict[str, Any]:
    try:
        u = service.create_user(
            db,
            body.name,
            body.role,
            area=body.area,
            area_code=body.area_code,
            password=body.password,
            now_ns=context(request).clock(),
        )
    except service.AuthInputError as exc:
        raise HTTPException(422, str(exc)) from None
    return {"id": u.id, "name": u.name, "role": u.role}


@router.post("/users/{name}/tokens", status_code=201, summary="Issue an API token (shown once)")
def post_token(
    name: str,
    body: TokenIn,
    request: Request,
    _: UserManager,
    db: DbSession,
) -> dict[str, Any]:
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        raise HTTPException(404, "no such user")
    token = service.issue_token(
        db, user, label=body.label, now_ns=context(request).clock(), ttl_s=body.ttl_s
    )
    return {"user": user.name, "token": token}


@router.put(
    "/contractors/{name}/mines/{mine_code}",
    summary="Assign a contractor to a mine of your area (regulators, admins)",
)
def put_assignment(
    name: str, mine_code: str, request: Request, p: ContractorAssigner, db: DbSession
) -> dict[str, Any]:
    try:
        changed = service.assign_contractor(db, p, name, mine_code, now_ns=context(request).clock())
    except service.AuthInputError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"contractor": name, "mine": mine_code, "assigned": True, "changed": changed}


@router.delete(
    "/contractors/{name}/mines/{mine_code}",
    summary="End a contractor's assignment to a mine of your area",
)
def delete_assignment(
    name: str, mine_code: str, request: Request, p: ContractorAssigner, db: DbSession
) -> dict[str, Any]:
    try:
        changed = service.assign_contractor(
            db, p, name, mine_code, now_ns=context(request).clock(), remove=True
        )
    except service.AuthInputError as exc:
        raise HTTPException(404, str(exc)) from None
    return {"contractor": name, "mine": mine_code, "assigned": False, "changed": changed}

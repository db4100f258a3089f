"""Auth API: who am I; users and tokens (admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from supervision.auth import manage, service
from supervision.auth.deps import Authenticated, ContractorAssigner, UserManager, not_found
from supervision.auth.models import User
from supervision.auth.permissions import ROLE_PERMISSIONS
from supervision.auth.scope import AreaLevel, scope_of
from supervision.auth.service import Principal
from supervision.context import DbSession, context

router = APIRouter(prefix="/api/v1", tags=["auth"])


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    role: str
    area: AreaLevel = AreaLevel.ALL
    area_code: str | None = None
    password: str | None = Field(None, min_length=8)
    mine: str | None = Field(None, description="a contractor's first mine (code)")


class ActiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    active: bool


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


def _bad(exc: service.AuthInputError) -> HTTPException:
    return HTTPException(422, str(exc))


def _user(db: Session, request: Request, p: Principal, name: str) -> User:
    user = manage.user_named(db, p.scope, name)
    if user is None:
        raise not_found(request, p, f"user {name!r}")
    return user


@router.get("/users", summary="Users of your area (regulators, admins)")
def get_users(p: UserManager, db: DbSession) -> list[dict[str, Any]]:
    return [
        {"id": u.id, "name": u.name, "role": u.role, "scope": str(scope_of(u)), "active": u.active}
        for u in manage.users_in(db, p.scope)
    ]


@router.post("/users", status_code=201, summary="Add a user in your area")
def post_user(body: UserIn, request: Request, p: UserManager, db: DbSession) -> dict[str, Any]:
    try:
        u = manage.create_user(
            db, p, manage.UserForm(**body.model_dump()), now_ns=context(request).clock()
        )
    except service.AuthInputError as exc:
        raise _bad(exc) from None
    return {"id": u.id, "name": u.name, "role": u.role}


@router.post("/users/{name}/tokens", status_code=201, summary="Issue an API token (shown once)")
def post_token(
    name: str,
    body: TokenIn,
    request: Request,
    p: UserManager,
    db: DbSession,
) -> dict[str, Any]:
    user = _user(db, request, p, name)
    try:
        token = manage.issue_token(
            db, p, user, label=body.label, now_ns=context(request).clock(),
            ttl_days=None if body.ttl_s is None else body.ttl_s / 86400,
        )  # fmt: skip
    except service.AuthInputError as exc:
        raise _bad(exc) from None
    return {"user": user.name, "token": token}


@router.delete("/users/{name}/tokens/{token_id}", summary="Revoke one API token")
def delete_token(
    name: str, token_id: int, request: Request, p: UserManager, db: DbSession
) -> dict[str, Any]:
    user = _user(db, request, p, name)
    try:
        changed = manage.revoke_token(db, p, user, token_id, now_ns=context(request).clock())
    except service.AuthInputError as exc:
        raise _bad(exc) from None
    return {"user": user.name, "token_id": token_id, "revoked": True, "changed": changed}


@router.put("/users/{name}/active", summary="Enable (true) or disable (false) a user")
def put_active(
    name: str, body: ActiveIn, request: Request, p: UserManager, db: DbSession
) -> dict[str, Any]:
    user = _user(db, request, p, name)
    try:
        changed = manage.set_active(db, p, user, body.active, now_ns=context(request).clock())
    except service.AuthInputError as exc:
        raise _bad(exc) from None
    return {"user": user.name, "active": user.active, "changed": changed}


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

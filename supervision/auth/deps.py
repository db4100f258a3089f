"""The one auth dependency and the permission dependencies.

:func:`current_principal` authenticates every request (a bearer token, or
the web session cookie) and yields a :class:`Principal` with the user's
scope. A request authenticated by cookie that changes something must carry
the session's CSRF token (form field ``csrf`` or header ``X-CSRF-Token``).
:class:`Requires` checks one permission. Refusals are logged with the user,
method, path and reason, never a secret.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.concurrency import run_in_threadpool

from supervision.auth import service
from supervision.auth.permissions import Permission, allows
from supervision.auth.service import Principal
from supervision.context import context

log = logging.getLogger("minegate.platform.auth")

SESSION_COOKIE = "minegate_session"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def refuse(request: Request, status: int, reason: str, who: str = "-") -> HTTPException:
    """Log a refusal and build the exception to raise."""
    client = request.client.host if request.client else "-"
    log.warning(
        "refused %d %s %s user=%s client=%s: %s",
        status,
        request.method,
        request.url.path,
        who,
        client,
        reason,
    )
    detail = {401: "not authenticated", 403: "not allowed", 404: "not found"}.get(status, reason)
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return HTTPException(status, detail, headers=headers)


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


async def current_principal(request: Request) -> Principal:
    ctx = context(request)
    token = _bearer(request)
    sid = request.cookies.get(SESSION_COOKIE)
    now = ctx.clock()

    def lookup() -> Principal | None:
        with ctx.sessions() as db, db.begin():
            if token is not None:
                user = service.user_by_token(db, token, now)
                return None if user is None else service.principal_for(user, "token")
            if sid:
                found = service.session_user(db, sid, now)
                if found is not None:
                    return service.principal_for(found[0], "session", found[1])
            return None

    principal = await run_in_threadpool(lookup)
    if principal is None:
        reason = "bad or expired token" if token else ("bad session" if sid else "no credentials")
        raise refuse(request, 401, reason)
    if principal.via == "session" and request.method not in SAFE_METHODS:
        sent = request.headers.get("x-csrf-token")
        if sent is None:
            form = await request.form()
            field = form.get("csrf")
            sent = field if isinstance(field, str) else None
        if not sent or not hmac.compare_digest(sent, principal.csrf_token or ""):
            raise refuse(request, 403, "missing or wrong CSRF token", principal.name)
    return principal


class Requires:
    """Route dependency: the principal, if their role has ``permission``."""

    def __init__(self, permission: Permission) -> None:
        self.permission = permission

    def __call__(
        self, request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        if not allows(principal.role, self.permission):
            raise refuse(
                request, 403, f"role {principal.role} lacks {self.permission}", principal.name
            )
        return principal


def not_found(request: Request, principal: Principal, what: str) -> HTTPException:
    """404 for a row that does not exist or is outside the user's scope."""
    return refuse(request, 404, f"{what} not found in scope {principal.scope}", principal.name)


# Route parameter types: ``p: Reader`` instead of ``p = Depends(...)``.
Authenticated = Annotated[Principal, Depends(current_principal)]
Reader = Annotated[Principal, Depends(Requires(Permission.READ))]
Acknowledger = Annotated[Principal, Depends(Requires(Permission.ACKNOWLEDGE))]
Silencer = Annotated[Principal, Depends(Requires(Permission.SILENCE))]
RegistryManager = Annotated[Principal, Depends(Requires(Permission.MANAGE_REGISTRY))]
UserManager = Annotated[Principal, Depends(Requires(Permission.MANAGE_USERS))]
PlatformOperator = Annotated[Principal, Depends(Requires(Permission.OPERATE_PLATFORM))]
ContractorAssigner = Annotated[Principal, Depends(Requires(Permission.ASSIGN_CONTRACTORS))]
Uploader = Annotated[Principal, Depends(Requires(Permission.UPLOAD))]

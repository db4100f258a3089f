"""User pages: the users of the manager's area, a new user (role and
area, or a contractor's first mine), disable / enable, API tokens issued
(shown once, stored hashed) and revoked; and the audit trail. Every change
goes through ``supervision/auth/manage.py`` (the API's layer, scoped and
audited)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from supervision.audit.service import events
from supervision.auth import manage
from supervision.auth import service as auth
from supervision.auth.deps import UserManager, not_found
from supervision.auth.models import ApiToken, Role, User
from supervision.auth.scope import AreaLevel, scoped_select
from supervision.auth.secrets import sha256_hex
from supervision.auth.service import Principal
from supervision.context import DbSession, context
from supervision.registry import manage as registry
from supervision.registry.models import City, County, Mine, Region
from supervision.web.forms import FieldError, in_transaction, number
from supervision.web.views import _page

router = APIRouter(include_in_schema=False)
InputError = (auth.AuthInputError, FieldError)


def _error(exc: Exception) -> dict[str, str]:
    field = getattr(exc, "field", None) or "form"
    return {"area" if field == "area_code" else field: str(exc)}


def area_label(db: Session, user: User, p: Principal) -> str:
    """The user's area in words; a contractor's mines as far as ``p`` may
    see them (the others counted, not named)."""
    for level, model, area_id in (
        ("mine", Mine, user.mine_id),
        ("county", County, user.county_id),
        ("city", City, user.city_id),
        ("region", Region, user.region_id),
    ):
        if area_id is not None:
            row: Any = db.get(model, area_id)
            return f"{level} {row.code} {row.name}" if row is not None else level
    if user.role == Role.CONTRACTOR:
        mines = manage.assigned_mines(db, user)
        seen = {m.id for m in db.scalars(scoped_select(Mine, p.scope))} if mines else set()
        names = [m.code for m in mines if m.id in seen]
        others = len(mines) - len(names)
        return (
            "assigned mines: "
            + (", ".join(names) or "none")
            + (f" (and {others} elsewhere)" if others else "")
        )
    return "everything" if user.role == Role.ADMIN else "none"


def _areas(db: Session, p: Principal) -> list[tuple[str, str]]:
    """(value, label) of every area a new user may be given."""
    out: list[tuple[str, str]] = []
    if p.scope.level is AreaLevel.ALL:
        out += [
            (f"region:{r.code}", f"region {r.code} {r.name}")
            for r in db.scalars(select(Region).order_by(Region.code))
        ]
    elif p.scope.level is AreaLevel.REGION:
        r = db.get(Region, p.scope.area_id)
        if r is not None:
            out.append((f"region:{r.code}", f"region {r.code} {r.name}"))
    out += [(f"city:{c.code}", f"city {c.code} {c.name}") for c in registry.cities_in(db, p.scope)]
    out += [
        (f"county:{c.code}", f"county {c.code} {c.name}") for c in registry.counties_in(db, p.scope)
    ]
    out += [
        (f"mine:{m.code}", f"mine {m.code} {m.name}")
        for m in db.scalars(scoped_select(Mine, p.scope).order_by(Mine.code))
    ]
    return out


def _roles(p: Principal) -> list[str]:
    return [r.value for r in Role if r != Role.ADMIN or p.scope.level is AreaLevel.ALL]


@router.get("/manage/users")
def users_page(request: Request, p: UserManager, db: DbSession) -> HTMLResponse:
    rows = [(u, area_label(db, u, p)) for u in manage.users_in(db, p.scope)]
    return _page(request, "users.html", principal=p, users=rows, refresh=0)


def _new_ctx(db: Session, p: Principal, **extra: Any) -> dict[str, Any]:
    mines = list(db.scalars(scoped_select(Mine, p.scope).order_by(Mine.code)))
    return {"principal": p, "areas": _areas(db, p), "roles": _roles(p), "mines": mines,
            "refresh": 0, "errors": {}, "form": {}, **extra}  # fmt: skip


@router.get("/manage/users/new")
def user_new_page(request: Request, p: UserManager, db: DbSession) -> HTMLResponse:
    return _page(request, "user_new.html", **_new_ctx(db, p))


@router.post("/manage/users/new")
def user_create(
    request: Request,
    p: UserManager,
    name: str = Form(""),
    role: str = Form(""),
    area: str = Form(""),
    mine: str = Form(""),
    password: str = Form(""),
) -> Response:
    ctx = context(request)
    level, _, code = area.partition(":")

    def change(db: Session) -> int:
        if role in (Role.ADMIN, Role.CONTRACTOR):
            lvl, area_code = AreaLevel.ALL, None
        else:
            try:
                lvl = AreaLevel(level)
            except ValueError:
                raise FieldError("choose the user's area", "area") from None
            area_code = code
        form = manage.UserForm(name=name, role=role, area=lvl, area_code=area_code,
                               password=password or None, mine=mine or None)  # fmt: skip
        return manage.create_user(db, p, form, now_ns=ctx.clock()).id

    try:
        user_id = in_transaction(ctx, change)
    except InputError as exc:
        form = {"name": name, "role": role, "area": area, "mine": mine}
        with ctx.sessions() as db:
            return _page(
                request, "user_new.html", 422, **_new_ctx(db, p, errors=_error(exc), form=form)
            )
    return RedirectResponse(f"/manage/users/{user_id}", status_code=303)


def _user_ctx(db: Session, p: Principal, user: User, **extra: Any) -> dict[str, Any]:
    tokens = list(
        db.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id))
    )
    return {
        "principal": p, "user": user, "area": area_label(db, user, p), "tokens": tokens,
        "manageable": manage.manageable(db, p.scope, user), "refresh": 0, "errors": {},
        "token": None, "now": 0, **extra,
    }  # fmt: skip


def _user_or_404(db: Session, request: Request, p: Principal, user_id: int) -> User:
    user = manage.user_in(db, p.scope, user_id)
    if user is None:
        raise not_found(request, p, f"user {user_id}")
    return user


NEW_TOKEN_COOKIE = "minegate_new_token"


@router.get("/manage/users/{user_id}")
def user_page(user_id: int, request: Request, p: UserManager, db: DbSession) -> HTMLResponse:
    """The user; a token just issued is shown here once: it comes in a
    short-lived cookie for this page only (set by the POST, so a reload
    neither shows it again nor issues another) and only if it is one of
    this user's tokens."""
    user = _user_or_404(db, request, p, user_id)
    token = request.cookies.get(NEW_TOKEN_COOKIE)
    if token:
        row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token)))
        if row is None or row.user_id != user.id:
            token = None
    resp = _page(
        request, "user.html", **_user_ctx(db, p, user, token=token, now=context(request).clock())
    )
    if request.cookies.get(NEW_TOKEN_COOKIE) is not None:
        resp.delete_cookie(NEW_TOKEN_COOKIE, path=f"/manage/users/{user_id}")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _user_action(request: Request, p: Principal, user_id: int, act: Any) -> Response:
    ctx = context(request)

    def change(db: Session) -> Any:
        return act(db, _user_or_404(db, request, p, user_id))

    try:
        in_transaction(ctx, change)
    except InputError as exc:
        with ctx.sessions() as db:
            user = _user_or_404(db, request, p, user_id)
            return _page(request, "user.html", 422,
                         **_user_ctx(db, p, user, errors=_error(exc), now=ctx.clock()))  # fmt: skip
    return RedirectResponse(f"/manage/users/{user_id}", status_code=303)


@router.post("/manage/users/{user_id}/active")
def user_active(user_id: int, request: Request, p: UserManager, active: str = Form("")) -> Response:
    now = context(request).clock()
    return _user_action(
        request, p, user_id, lambda db, u: manage.set_active(db, p, u, active == "1", now_ns=now)
    )


@router.post("/manage/users/{user_id}/tokens/{token_id}/revoke")
def token_revoke(user_id: int, token_id: int, request: Request, p: UserManager) -> Response:
    now = context(request).clock()
    return _user_action(
        request, p, user_id, lambda db, u: manage.revoke_token(db, p, u, token_id, now_ns=now)
    )


@router.post("/manage/users/{user_id}/tokens")
def token_issue(
    user_id: int,
    request: Request,
    p: UserManager,
    label: str = Form(""),
    days: str = Form(""),
) -> Response:
    """Issue a token and show it once on the user's page (see there); the
    token is never stored in clear, never logged."""
    ctx = context(request)

    def change(db: Session) -> str:
        user = _user_or_404(db, request, p, user_id)
        return manage.issue_token(db, p, user, label=label, ttl_days=number(days, "days"),
                                  now_ns=ctx.clock())  # fmt: skip

    try:
        token = in_transaction(ctx, change)
    except InputError as exc:
        with ctx.sessions() as db:
            user = _user_or_404(db, request, p, user_id)
            return _page(request, "user.html", 422,
                         **_user_ctx(db, p, user, errors=_error(exc), now=ctx.clock()))  # fmt: skip
    resp = RedirectResponse(f"/manage/users/{user_id}", status_code=303)
    server = ctx.config.server
    resp.set_cookie(
        NEW_TOKEN_COOKIE, token, max_age=120, httponly=True, samesite="strict",
        secure=server.tls or server.behind_reverse_proxy, path=f"/manage/users/{user_id}",
    )  # fmt: skip
    return resp


@router.get("/manage/audit")
def audit_page(
    request: Request, p: UserManager, db: DbSession, before: int | None = None
) -> HTMLResponse:
    rows = events(db, p.scope, limit=100, before_id=before)
    more = rows[-1].id if len(rows) == 100 else None
    return _page(request, "audit.html", principal=p, events=rows, more=more, refresh=0)

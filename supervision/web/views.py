"""The pages: login, the mines of the user's area, a mine, acknowledge.

Forms post with the session's CSRF token (checked by the auth dependency);
the session cookie is HttpOnly, SameSite=Lax, and Secure when the platform
is reached over TLS (its own, or a reverse proxy's).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from html import escape
from pathlib import Path

from fastapi import APIRouter, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from supervision.alerting import service as alerting
from supervision.alerting.models import Alert, AlertKind
from supervision.auth import service as auth
from supervision.auth.deps import (
    SESSION_COOKIE,
    Acknowledger,
    Authenticated,
    Reader,
    Silencer,
    not_found,
    refuse,
)
from supervision.auth.permissions import Permission, allows
from supervision.auth.scope import get_scoped, scoped_select
from supervision.auth.throttle import LoginThrottle
from supervision.context import DbSession, context
from supervision.notify.models import Silence
from supervision.notify.service import SilenceInputError, create_silence, end_silence, is_active
from supervision.registry.models import Mine
from supervision.registry.overview import list_mines, mine_detail
from supervision.web.charts import mine_charts
from supervision.web.licence_svg import licence_drawing

log = logging.getLogger("minegate.platform.web")
router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
STATIC_DIR = Path(__file__).parent / "static"


def _ts(ts_ns: int | None) -> str:
    if not ts_ns:
        return ""
    return datetime.fromtimestamp(ts_ns / 1e9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["ts"] = _ts


def _value(v: object) -> str:
    """A latest value for the page: floats to 6 significant digits (the
    gateway's scaling leaves 20.800000000000004), the rest as it came."""
    if isinstance(v, float):
        return f"{v:.6g}" if abs(v) < 1e15 else f"{v:.6e}"
    return str(v)


templates.env.filters["value"] = _value


def _may(principal: object, permission: str) -> bool:
    """For the templates: may ``principal`` (or None) do ``permission``."""
    role = getattr(principal, "role", None)
    return role is not None and allows(role, Permission(permission))


templates.env.globals["may"] = _may


def _safe_next(target: str | None) -> str:
    """Only a local path: never redirect a login to another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _page(request: Request, name: str, status: int = 200, **ctx: object) -> HTMLResponse:
    refresh = context(request).config.server.page_refresh_s if name != "login.html" else 0
    if ctx.get("refresh") is None:  # a page may turn the reload off (refresh=0)
        ctx.pop("refresh", None)
    return templates.TemplateResponse(
        request, name, {"refresh": refresh, **ctx}, status_code=status
    )


@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _page(request, "login.html", next=_safe_next(next), error=None, principal=None)


@router.post("/login")
async def login(
    request: Request,
    token: str = Form(""),
    username: str = Form(""),
    password: str = Form(""),
    next: str = Form("/"),
) -> Response:
    ctx = context(request)
    now = ctx.clock()
    ttl = ctx.config.server.session_hours * 3600
    throttle = ctx.extra.setdefault("login_throttle", LoginThrottle())
    assert isinstance(throttle, LoginThrottle)
    who = username.strip()[:200] or "(token)"
    client = request.client.host if request.client else "-"
    wait = throttle.retry_after_s(who, client, now)
    if wait is not None:
        refuse(request, 429, "too many failed logins", who)
        minutes = max(1, round(wait / 60))
        return _page(
            request, "login.html", 429, next=_safe_next(next), principal=None,
            error=f"Too many failed logins: try again in {minutes} minute(s).",
        )  # fmt: skip

    def check() -> tuple[str, str] | None:
        with ctx.sessions() as db, db.begin():
            if token.strip():
                user = auth.user_by_token(db, token.strip(), now)
            elif username.strip() and password:
                user = auth.user_by_password(db, username.strip(), password)
            else:
                user = None
            if user is None:
                return None
            sid, _csrf = auth.open_session(db, user, now_ns=now, ttl_s=ttl)
            return sid, user.name

    found = await run_in_threadpool(check)
    if found is None:
        throttle.failed(who, client, now)
        refuse(request, 401, "login failed", who)
        return _page(
            request,
            "login.html",
            401,
            next=_safe_next(next),
            principal=None,
            error="Login failed: check the token, or the user name and password.",
        )
    sid, name = found
    throttle.succeeded(who)
    log.info("login: %s", name)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    server = ctx.config.server
    resp.set_cookie(
        SESSION_COOKIE,
        sid,
        max_age=int(ttl),
        httponly=True,
        samesite="lax",
        secure=server.tls or server.behind_reverse_proxy,
        path="/",
    )
    return resp


@router.post("/logout")
def logout(request: Request, p: Authenticated, db: DbSession) -> Response:
    sid = request.cookies.get(SESSION_COOKIE)
    if sid:
        auth.close_session(db, sid)
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(SESSION_COOKIE, path="/")
    return resp


@router.get("/")
def mines_page(
    request: Request,
    p: Reader,
    db: DbSession,
) -> HTMLResponse:
    return _page(request, "mines.html", mines=list_mines(db, p.scope), principal=p)


@router.get("/mines/{mine_id}")
def mine_page(
    mine_id: int,
    request: Request,
    p: Reader,
    db: DbSession,
) -> HTMLResponse:
    d = mine_detail(db, mine_id, p.scope)
    if d is None:
        raise not_found(request, p, f"mine {mine_id}")
    drawing = licence_drawing(d.mine.licence_file) if d.mine.licence_file else None
    config = context(request).config
    now = context(request).clock()
    charts = mine_charts(config.history, d.gateways, d.values, now) if config.history else None
    silences = [
        s
        for s in db.scalars(scoped_select(Silence, p.scope).where(Silence.mine_id == mine_id))
        if is_active(s, now)
    ]
    from supervision.uploads.service import mine_surveys

    return _page(
        request,
        "mine.html",
        d=d,
        surveys=mine_surveys(db, p, mine_id),
        can_upload=allows(p.role, Permission.UPLOAD),
        drawing=drawing,
        charts=charts,
        principal=p,
        silences=silences,
        kinds=[k.value for k in AlertKind],
        can_ack=allows(p.role, Permission.ACKNOWLEDGE),
        can_silence=allows(p.role, Permission.SILENCE),
    )


@router.post("/mines/{mine_id}/silence")
def silence(
    mine_id: int,
    request: Request,
    p: Silencer,
    db: DbSession,
    hours: float = Form(1.0),
    kind: str = Form(""),
    comment: str = Form(""),
) -> Response:
    mine = get_scoped(db, Mine, mine_id, p.scope)
    if mine is None:
        raise not_found(request, p, f"mine {mine_id}")
    try:
        create_silence(
            db, mine, kind=kind or None, duration_s=hours * 3600, comment=comment, actor=p.name,
            now_ns=context(request).clock(),
        )  # fmt: skip
    except SilenceInputError as exc:
        return HTMLResponse(
            f'<p>{escape(str(exc))}</p><p><a href="/mines/{mine_id}">Back</a></p>', 422
        )
    return RedirectResponse(f"/mines/{mine_id}", status_code=303)


@router.post("/silences/{silence_id}/end")
def end_silence_form(silence_id: int, request: Request, p: Silencer, db: DbSession) -> Response:
    s = get_scoped(db, Silence, silence_id, p.scope)
    if s is None:
        raise not_found(request, p, f"silence {silence_id}")
    end_silence(db, s, p.name, context(request).clock())
    return RedirectResponse(f"/mines/{s.mine_id}", status_code=303)


@router.post("/alerts/{alert_id}/ack")
def ack(
    alert_id: int,
    request: Request,
    p: Acknowledger,
    db: DbSession,
) -> Response:
    alert = get_scoped(db, Alert, alert_id, p.scope)
    if alert is None:
        raise not_found(request, p, f"alert {alert_id}")
    alerting.acknowledge(db, alert, p.name, context(request).clock())
    return RedirectResponse(f"/mines/{alert.mine_id}", status_code=303)

"""Registry pages: counties, mines (status and order, licence, baseline
power), their gateways and contractors, for regulators of the area and
admins. Every change goes through ``supervision/registry/manage.py`` (the
API's layer, scoped and audited) in a transaction of its own; a refused
input re-renders the form with the message next to its field (422)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from supervision.auth import service as auth
from supervision.auth.deps import RegistryManager, not_found
from supervision.auth.permissions import Permission, allows
from supervision.auth.scope import scoped_select
from supervision.auth.service import Principal
from supervision.context import DbSession, context
from supervision.registry import manage
from supervision.registry.models import Mine, MineStatus
from supervision.registry.service import RegistryInputError
from supervision.web.forms import FieldError, day, in_transaction, number, store_licence
from supervision.web.views import _page

router = APIRouter(include_in_schema=False)
InputError = (RegistryInputError, auth.AuthInputError, FieldError)


def _error(exc: Exception) -> dict[str, str]:
    return {getattr(exc, "field", None) or "form": str(exc)}


def _overview(db: Session, p: Principal, **extra: Any) -> dict[str, Any]:
    mines = list(db.scalars(scoped_select(Mine, p.scope).order_by(Mine.code)))
    counties = manage.counties_in(db, p.scope)
    per_county: dict[int, int] = {}
    for m in mines:
        per_county[m.county_id] = per_county.get(m.county_id, 0) + 1
    return {
        "principal": p, "mines": mines, "counties": counties, "per_county": per_county,
        "cities": manage.cities_in(db, p.scope), "refresh": 0,
        "can_users": allows(p.role, Permission.MANAGE_USERS), "errors": {}, "form": {}, **extra,
    }  # fmt: skip


@router.get("/manage")
def registry_page(request: Request, p: RegistryManager, db: DbSession) -> HTMLResponse:
    return _page(request, "manage.html", **_overview(db, p))


@router.post("/manage/counties")
def county_create(
    request: Request,
    p: RegistryManager,
    city: str = Form(""),
    code: str = Form(""),
    name: str = Form(""),
) -> Response:
    ctx = context(request)
    try:
        in_transaction(
            ctx, lambda db: manage.create_county(db, p, city, code, name, now_ns=ctx.clock())
        )
    except InputError as exc:
        with ctx.sessions() as db:
            form = {"city": city, "code": code, "name": name}
            return _page(
                request, "manage.html", 422, **_overview(db, p, errors=_error(exc), form=form)
            )
    return RedirectResponse("/manage", status_code=303)


@router.get("/manage/counties/{county_id}")
def county_page(county_id: int, request: Request, p: RegistryManager, db: DbSession) -> Response:
    county = manage.county_in(db, p.scope, county_id)
    if county is None:
        raise not_found(request, p, f"county {county_id}")
    return _page(request, "county.html", principal=p, county=county, errors={},
                 form={"name": county.name}, refresh=0)  # fmt: skip


@router.post("/manage/counties/{county_id}")
def county_edit(
    county_id: int, request: Request, p: RegistryManager, name: str = Form("")
) -> Response:
    ctx = context(request)

    def change(db: Session) -> bool:
        county = manage.county_in(db, p.scope, county_id)
        if county is None:
            raise not_found(request, p, f"county {county_id}")
        return manage.rename_county(db, p, county, name, now_ns=ctx.clock())

    try:
        in_transaction(ctx, change)
    except InputError as exc:
        with ctx.sessions() as db:
            county = manage.county_in(db, p.scope, county_id)
            return _page(request, "county.html", 422, principal=p, county=county,
                         errors=_error(exc), form={"name": name}, refresh=0)  # fmt: skip
    return RedirectResponse("/manage", status_code=303)


def _licences(db: Session, p: Principal) -> list[str]:
    """Licence files of the user's area's mines: one may be chosen again."""
    stmt = scoped_select(Mine, p.scope).where(Mine.licence_file.is_not(None))
    return sorted({m.licence_file for m in db.scalars(stmt) if m.licence_file})


def _mine_ctx(db: Session, p: Principal, mine: Mine | None, **extra: Any) -> dict[str, Any]:
    contractors: list[Any] = []
    if mine is not None:
        from supervision.auth.models import ContractorMine, User

        contractors = list(
            db.scalars(
                select(User)
                .join(ContractorMine, ContractorMine.user_id == User.id)
                .where(ContractorMine.mine_id == mine.id)
                .order_by(User.name)
            )
        )
    form = extra.pop("form", None)
    if form is None and mine is not None:
        form = {
            "code": mine.code, "name": mine.name, "county": mine.county.code,
            "status": mine.status, "order_no": mine.order_no or "",
            "order_from": str(mine.order_from or ""), "order_to": str(mine.order_to or ""),
            "baseline_power_kw": "" if mine.baseline_power_kw is None else f"{mine.baseline_power_kw:g}",
            "licence_choice": mine.licence_file or "",
        }  # fmt: skip
    return {
        "principal": p, "mine": mine, "form": form or {"status": "producing"},
        "errors": extra.pop("errors", {}), "counties": manage.counties_in(db, p.scope),
        "statuses": [s.value for s in MineStatus], "licences": _licences(db, p),
        "contractors": contractors, "refresh": 0,
        "can_assign": allows(p.role, Permission.ASSIGN_CONTRACTORS), **extra,
    }  # fmt: skip


@router.get("/manage/mines/new")
def mine_new_page(request: Request, p: RegistryManager, db: DbSession) -> Response:
    return _page(request, "mine_form.html", **_mine_ctx(db, p, None))


async def _licence_bytes(upload: UploadFile | None) -> tuple[str, bytes] | None:
    if upload is None or not upload.filename:
        return None
    from supervision.web.forms import LICENCE_MAX_BYTES

    data = await upload.read(LICENCE_MAX_BYTES + 1)
    return upload.filename, data


def _mine_form(
    request: Request, values: dict[str, str], licence: tuple[str, bytes] | None, allowed: list[str]
) -> manage.MineForm:
    choice = values.get("licence_choice", "")
    if licence is not None:
        path: str | None = store_licence(context(request), licence[0], licence[1], values["code"])
    elif choice:
        if choice not in allowed:
            raise FieldError("choose a licence file from the list, or upload one", "licence")
        path = choice
    else:
        path = None
    return manage.MineForm(
        county=values["county"], name=values["name"], licence_file=path,
        status=values["status"], order_no=values["order_no"] or None,
        order_from=day(values["order_from"], "order_from"),
        order_to=day(values["order_to"], "order_to"),
        baseline_power_kw=number(values["baseline_power_kw"], "baseline_power_kw"),
    )  # fmt: skip


@router.post("/manage/mines/new")
async def mine_create(
    request: Request,
    p: RegistryManager,
    code: str = Form(""),
    name: str = Form(""),
    county: str = Form(""),
    status: str = Form("producing"),
    order_no: str = Form(""),
    order_from: str = Form(""),
    order_to: str = Form(""),
    baseline_power_kw: str = Form(""),
    licence_choice: str = Form(""),
    licence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    values = {k: v for k, v in locals().items() if isinstance(v, str)}
    data = await _licence_bytes(licence)
    ctx = context(request)

    def change(db: Session) -> int:
        form = _mine_form(request, values, data, _licences(db, p))
        return manage.create_mine(
            db, p, code, form, now_ns=ctx.clock(), stored_licence=data is not None
        ).id

    try:
        mine_id = await _threaded(change, ctx)
    except InputError as exc:
        with ctx.sessions() as db:
            return _page(request, "mine_form.html", 422,
                         **_mine_ctx(db, p, None, form=values, errors=_error(exc)))  # fmt: skip
    return RedirectResponse(f"/manage/mines/{mine_id}", status_code=303)


async def _threaded(change: Any, ctx: Any) -> Any:
    from fastapi.concurrency import run_in_threadpool

    return await run_in_threadpool(in_transaction, ctx, change)


@router.get("/manage/mines/{mine_id}")
def mine_edit_page(mine_id: int, request: Request, p: RegistryManager, db: DbSession) -> Response:
    mine = manage.mine_in(db, p.scope, mine_id)
    if mine is None:
        raise not_found(request, p, f"mine {mine_id}")
    return _page(request, "mine_form.html", **_mine_ctx(db, p, mine))


@router.post("/manage/mines/{mine_id}")
async def mine_edit(
    mine_id: int,
    request: Request,
    p: RegistryManager,
    name: str = Form(""),
    county: str = Form(""),
    status: str = Form("producing"),
    order_no: str = Form(""),
    order_from: str = Form(""),
    order_to: str = Form(""),
    baseline_power_kw: str = Form(""),
    licence_choice: str = Form(""),
    licence: Annotated[UploadFile | None, File()] = None,
) -> Response:
    values = {k: v for k, v in locals().items() if isinstance(v, str)}
    data = await _licence_bytes(licence)
    ctx = context(request)

    def change(db: Session) -> None:
        mine = manage.mine_in(db, p.scope, mine_id)
        if mine is None:
            raise not_found(request, p, f"mine {mine_id}")
        values["code"] = mine.code
        form = _mine_form(request, values, data, _licences(db, p))
        manage.update_mine(db, p, mine, form, now_ns=ctx.clock(), stored_licence=data is not None)

    try:
        await _threaded(change, ctx)
    except InputError as exc:
        with ctx.sessions() as db:
            mine = manage.mine_in(db, p.scope, mine_id)
            return _page(request, "mine_form.html", 422,
                         **_mine_ctx(db, p, mine, form=values, errors=_error(exc)))  # fmt: skip
    return RedirectResponse(f"/manage/mines/{mine_id}?saved=1", status_code=303)


def _mine_action(request: Request, p: Principal, mine_id: int, act: Any) -> Response:
    """A change on a mine's page (gateway, contractor): redirect back, or the
    page again with the message next to the field."""
    ctx = context(request)

    def change(db: Session) -> None:
        mine = manage.mine_in(db, p.scope, mine_id)
        if mine is None:
            raise not_found(request, p, f"mine {mine_id}")
        act(db, mine)

    try:
        in_transaction(ctx, change)
    except InputError as exc:
        with ctx.sessions() as db:
            mine = manage.mine_in(db, p.scope, mine_id)
            return _page(request, "mine_form.html", 422,
                         **_mine_ctx(db, p, mine, errors=_error(exc)))  # fmt: skip
    return RedirectResponse(f"/manage/mines/{mine_id}", status_code=303)


@router.post("/manage/mines/{mine_id}/gateways")
def gateway_register(
    mine_id: int,
    request: Request,
    p: RegistryManager,
    site: str = Form(""),
    name: str = Form(""),
) -> Response:
    now = context(request).clock()
    return _mine_action(
        request, p, mine_id,
        lambda db, mine: manage.register_gateway(db, p, mine, site, name, now_ns=now),
    )  # fmt: skip


@router.post("/manage/gateways/{gateway_id}/retire")
def gateway_retire(gateway_id: int, request: Request, p: RegistryManager) -> Response:
    ctx = context(request)

    def change(db: Session) -> int:
        gw = manage.gateway_in(db, p.scope, gateway_id)
        if gw is None:
            raise not_found(request, p, f"gateway {gateway_id}")
        mine_id = gw.mine_id
        manage.retire_gateway(db, p, gw, now_ns=ctx.clock())
        return mine_id

    mine_id = in_transaction(ctx, change)
    return RedirectResponse(f"/manage/mines/{mine_id}", status_code=303)


@router.post("/manage/mines/{mine_id}/contractors")
def contractor_assign(
    mine_id: int,
    request: Request,
    p: RegistryManager,
    contractor: str = Form(""),
    remove: str = Form(""),
) -> Response:
    if not allows(p.role, Permission.ASSIGN_CONTRACTORS):
        from supervision.auth.deps import refuse

        raise refuse(request, 403, f"role {p.role} lacks assign_contractors", p.name)
    now = context(request).clock()
    return _mine_action(
        request, p, mine_id,
        lambda db, mine: auth.assign_contractor(db, p, contractor.strip(), mine.code, now_ns=now,
                                                remove=bool(remove)),
    )  # fmt: skip

"""Upload API: tus 1.0 (resumable, ``/api/v1/tus``, the ``tuspyserver``
router behind the platform's auth), plain multipart for small files, and
the surveys with their job's progress, findings and report (scoped)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO, Literal

from fastapi import APIRouter, HTTPException, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from starlette.datastructures import UploadFile

from supervision.auth.deps import Reader, Uploader, not_found, refuse
from supervision.auth.service import Principal
from supervision.config import PlatformConfig
from supervision.context import DbSession, context
from supervision.jobs.models import Job, PublishOutbox
from supervision.registry.models import Mine
from supervision.uploads import service
from supervision.uploads.files import CHUNK, Incoming, Stored, UploadRefused, take_file
from supervision.uploads.models import Survey

router = APIRouter(prefix="/api/v1", tags=["surveys"])
TUS_PREFIX = "/api/v1/tus"
_UID = re.compile(r"^[0-9a-f]{32}$")
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _tus_dir(root: Path, p: Principal) -> Path:
    """Each uploader's tus files apart: another user's upload id is not found."""
    return root / "tus" / str(p.user_id)


def _raise(request: Request, p: Principal, exc: UploadRefused) -> HTTPException:
    if exc.status in (403, 404):
        refuse(request, exc.status, str(exc), p.name)
    return HTTPException(exc.status, str(exc))


def tus_router(config: PlatformConfig) -> APIRouter:
    """The tus router for ``config``: authenticated uploaders only, a size
    limit per role checked at creation, metadata ``filename`` (a known type)
    and ``mine`` (in the uploader's scope) required."""
    from tuspyserver import create_tus_router

    root = config.uploads.dir
    max_size = int(max(config.uploads.max_mb.values(), default=0) * 1e6)

    def auth(p: Uploader, request: Request) -> None:
        # tuspyserver reads a creation request's body whole into memory
        # (creation-with-upload): data goes by PATCH only, streamed to disk
        if request.method == "POST" and request.headers.get("content-length", "0") != "0":
            raise HTTPException(413, "send no data with the creation request: PATCH it")

    def file_dep(p: Uploader) -> Callable[[dict[str, Any]], dict[str, str]]:
        return lambda _metadata: {"files_dir": str(_tus_dir(root, p))}

    def pre_create_dep(
        p: Uploader, request: Request
    ) -> Callable[[dict[str, Any], dict[str, Any]], Any]:
        async def hook(metadata: dict[str, Any], info: dict[str, Any]) -> None:
            from supervision.uploads.files import claimed_format

            ctx = context(request)
            try:
                claimed_format(str(metadata.get("filename") or ""))
                budget = service.budget_for(ctx.config.uploads, p.role)
                size = info.get("size")
                if size is None:
                    raise UploadRefused("give the upload's length (Upload-Length)", 411)
                if int(size) > budget.left:
                    raise UploadRefused(
                        f"{size / 1e6:,.0f} MB is more than the {budget.left / 1e6:,.0f} MB "
                        f"a {p.role} may upload",
                        413,
                    )

                def check_mine() -> None:
                    with ctx.sessions() as db:
                        service.mine_for_upload(db, p, str(metadata.get("mine") or ""))

                await run_in_threadpool(check_mine)
            except UploadRefused as exc:
                raise _raise(request, p, exc) from None

        return hook

    return create_tus_router(
        prefix=TUS_PREFIX,
        files_dir=str(root / "tus"),
        max_size=max_size,
        auth=auth,  # type: ignore[arg-type]
        days_to_keep=config.uploads.tus_days_to_keep,
        file_dep=file_dep,  # type: ignore[arg-type]
        pre_create_dep=pre_create_dep,
        tags=["surveys"],
    )


class FromTus(BaseModel):
    model_config = ConfigDict(extra="forbid")
    uploads: list[str] = Field(min_length=1, max_length=64)
    description: str = Field("", max_length=10_000)
    #: underground or open_pit; none: open pit if a DSM raster is sent, else underground
    kind: Literal["underground", "open_pit"] | None = None


def _created(request: Request, created: service.Created) -> dict[str, Any]:
    """The answer; a new survey's job is looked for at once (called after
    the transaction that made it committed)."""
    s = created.survey
    if not created.duplicate:
        dispatcher = context(request).extra.get("dispatcher")
        if dispatcher is not None:
            dispatcher.poke()  # type: ignore[attr-defined]
    return {
        "id": s.id,
        "duplicate": created.duplicate,
        "state": s.state,
        "url": f"/api/v1/surveys/{s.id}",
    }


def _finished_tus(root: Path, p: Principal, uids: list[str]) -> list[tuple[Path, str]]:
    """Each upload's data file and client name, every one finished and of a
    type its first bytes confirm, before any is taken (a refusal leaves them
    all to be used again)."""
    from supervision.uploads.files import sniff

    out = []
    for uid in uids:
        info_path = _tus_dir(root, p) / f"{uid}.info"
        if not _UID.match(uid) or not info_path.exists():
            raise UploadRefused(f"no upload {uid!r} of yours (finished uploads are used once)", 404)
        info = json.loads(info_path.read_text())
        if info.get("size") is None or info.get("offset") != info.get("size"):
            raise UploadRefused(
                f"upload {uid} is not finished ({info.get('offset')} of {info.get('size')} "
                "bytes): resume it first",
                409,
            )
        name = str((info.get("metadata") or {}).get("filename") or "")
        data = _tus_dir(root, p) / uid
        with data.open("rb") as f:
            sniff(f.read(4096), name, data.stat().st_size)
        out.append((data, name))
    return out


@router.post(
    "/mines/{code}/surveys/tus",
    status_code=201,
    summary="A survey from finished tus uploads (their ids, in order)",
)
def post_survey_from_tus(code: str, body: FromTus, request: Request, p: Uploader) -> dict[str, Any]:
    ctx = context(request)
    root = ctx.config.uploads.dir
    try:
        with ctx.sessions() as db:
            service.mine_for_upload(db, p, code)  # refused before any file is touched
        # the files are hashed with no database connection held: many large
        # uploads at once must not take every connection of the pool
        budget = service.budget_for(ctx.config.uploads, p.role)
        stored: list[Stored] = []
        for data, name in _finished_tus(root, p, body.uploads):
            stored += take_file(root, data, name, budget)
            data.with_name(f"{data.name}.info").unlink(missing_ok=True)
        with ctx.sessions() as db, db.begin():
            mine = service.mine_for_upload(db, p, code)
            created = service.create_survey(
                db, p, mine, stored, via="tus", description=body.description,
                now_ns=ctx.clock(), kind=body.kind,
            )  # fmt: skip
    except UploadRefused as exc:
        raise _raise(request, p, exc) from None
    return _created(request, created)


@router.post(
    "/mines/{code}/surveys",
    status_code=201,
    summary="A survey from a plain multipart upload (fields `file`, repeated, `description` "
    "and `kind`: underground or open_pit)",
)
async def post_survey_multipart(code: str, request: Request, p: Uploader) -> dict[str, Any]:
    ctx = context(request)
    cfg = ctx.config.uploads
    limit = int(cfg.multipart_max_mb * 1e6)
    length = request.headers.get("content-length")
    if length is None or not length.isdigit():
        raise HTTPException(411, "send a Content-Length (or upload through tus)")
    if int(length) > limit:
        raise HTTPException(
            413, f"{int(length) / 1e6:,.0f} MB is more than {cfg.multipart_max_mb:g} MB: "
            "upload large files through tus (minegate survey upload does)",
        )  # fmt: skip
    form = await request.form(max_files=64, max_fields=16)
    uploads = [f for f in form.getlist("file") if isinstance(f, UploadFile)]
    if not uploads:
        raise HTTPException(422, "no file: send the survey's files as form field 'file'")
    description = form.get("description")
    kind = form.get("kind")
    if kind is not None and not isinstance(kind, str):
        raise HTTPException(422, "kind: a form field (underground or open_pit), not a file")

    def store() -> service.Created:
        with ctx.sessions() as db:
            service.mine_for_upload(db, p, code)  # refused before any file is stored
        budget = service.budget_for(cfg, p.role)
        stored: list[Stored] = []
        for up in uploads:  # no database connection held while the bytes are copied
            stored += _receive(cfg.dir, up.filename or "", up.file, budget)
        with ctx.sessions() as db, db.begin():
            mine = service.mine_for_upload(db, p, code)
            return service.create_survey(
                db, p, mine, stored, via="multipart",
                description=description if isinstance(description, str) else "",
                now_ns=ctx.clock(), kind=kind or None,
            )  # fmt: skip

    try:
        return _created(request, await run_in_threadpool(store))
    except UploadRefused as exc:
        raise _raise(request, p, exc) from None
    finally:
        await form.close()


class Recheck(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field("", max_length=2_000)


@router.post(
    "/surveys/{survey_id}/recheck",
    status_code=201,
    summary="Check a finished survey's files again, against the mine's licence now",
)
def post_recheck(
    survey_id: int, request: Request, p: Uploader, body: Recheck | None = None
) -> dict[str, Any]:
    ctx = context(request)
    try:
        with ctx.sessions() as db, db.begin():
            original = _survey(request, p, db, survey_id)
            code = db.scalar(select(Mine.code).where(Mine.id == original.mine_id))
            mine = service.mine_for_upload(db, p, str(code))
            survey = service.recheck_survey(
                db, p, original, mine, note=body.note if body else "", now_ns=ctx.clock()
            )
    except UploadRefused as exc:
        raise _raise(request, p, exc) from None
    return _created(request, service.Created(survey, False))


def _receive(root: Path, name: str, src: BinaryIO, budget: Any) -> list[Stored]:
    inc = Incoming(root, name, budget.left)
    try:
        while chunk := src.read(CHUNK):
            inc.write(chunk)
        return inc.finish(budget)
    finally:
        inc.discard()


def survey_dict(s: Survey, job: Job | None, mine: Mine) -> dict[str, Any]:
    return {
        "id": s.id,
        "mine": mine.code,
        "uploader": s.uploader,
        "created_ns": s.created_ns,
        "via": s.via,
        "kind": s.kind,
        "description": s.description,
        "state": s.state,
        "stage": job.stage if job else "",
        "attempts": job.attempts if job else 0,
        "verdict": s.verdict,
        "incidents": s.incidents,
        "message": s.message,
        "check_id": s.check_id,
        "values": s.values,
        "finished_ns": s.finished_ns,
        "files": [
            {
                "name": f.client_name,
                "kind": f.kind,
                "format": f.fmt,
                "size": f.size,
                "sha256": f.sha256,
                "archive": f.archive,
            }
            for f in s.files
        ],
        "findings_url": f"/api/v1/surveys/{s.id}/findings.json" if s.result_dir else None,
        "report_url": f"/api/v1/surveys/{s.id}/report.html" if s.result_dir else None,
        "changes_report_url": f"/api/v1/surveys/{s.id}/changes/report.html"
        if s.result_dir and "areas" in ((s.values or {}).get("changes") or {})
        else None,
    }


@router.get("/surveys", summary="Surveys of your area, newest first")
def list_surveys(p: Reader, db: DbSession, mine: str | None = None) -> list[dict[str, Any]]:
    ids = service.readable_surveys(p).with_only_columns(Survey.id)
    stmt = (
        select(Survey, Job, Mine)
        .join(Mine, Mine.id == Survey.mine_id)
        .outerjoin(Job, Job.survey_id == Survey.id)
        .where(Survey.id.in_(ids))
        .options(selectinload(Survey.files))
        .order_by(Survey.id.desc())
        .limit(500)
    )
    if mine is not None:
        stmt = stmt.where(Mine.code == mine)
    return [survey_dict(s, job, m) for s, job, m in db.execute(stmt)]


def _survey(request: Request, p: Principal, db: Any, survey_id: int) -> Survey:
    s = db.scalars(service.readable_surveys(p).where(Survey.id == survey_id)).first()
    if s is None:
        raise not_found(request, p, f"survey {survey_id}")
    return s


@router.get("/surveys/{survey_id}", summary="A survey: files, state, stage, verdict")
def get_survey(survey_id: int, request: Request, p: Reader, db: DbSession) -> dict[str, Any]:
    s = _survey(request, p, db, survey_id)
    job = db.scalar(select(Job).where(Job.survey_id == s.id))
    mine = db.get(Mine, s.mine_id)
    assert mine is not None
    out = survey_dict(s, job, mine)
    # where its findings went (publish.sinks): sent, or waiting with the last error
    out["published"] = [
        {"sink": o.sink, "sent_ns": o.sent_ns, "attempts": o.attempts, "error": o.error}
        for o in db.scalars(
            select(PublishOutbox).where(PublishOutbox.survey_id == s.id).order_by(PublishOutbox.id)
        )
    ]
    return out


def _result_file(request: Request, p: Principal, db: Any, survey_id: int, name: str) -> Path:
    s = _survey(request, p, db, survey_id)
    if not s.result_dir:
        raise HTTPException(409, f"survey {survey_id} has no result yet ({s.state})")
    return context(request).config.uploads.dir / s.result_dir / name


@router.get("/surveys/{survey_id}/findings.json", summary="The check's findings")
def get_findings(survey_id: int, request: Request, p: Reader, db: DbSession) -> FileResponse:
    path = _result_file(request, p, db, survey_id, "findings.json")
    return FileResponse(path, media_type="application/json")


@router.get(
    "/surveys/{survey_id}/changes/{name}",
    summary="Changes since the mine's previous survey: findings.json or report.html",
)
def get_changes(
    survey_id: int, name: str, request: Request, p: Reader, db: DbSession
) -> FileResponse:
    if name not in ("findings.json", "report.html"):
        raise HTTPException(404, "findings.json or report.html")
    path = _result_file(request, p, db, survey_id, f"changes/{name}")
    if not path.exists():
        raise HTTPException(404, f"survey {survey_id} was not compared with an earlier one")
    if name == "findings.json":
        return FileResponse(path, media_type="application/json")
    return FileResponse(
        path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": REPORT_CSP}
    )


@router.get("/surveys/{survey_id}/report.html", summary="The check's report")
def get_report(survey_id: int, request: Request, p: Reader, db: DbSession) -> FileResponse:
    path = _result_file(request, p, db, survey_id, "report.html")
    return FileResponse(
        path, media_type="text/html; charset=utf-8", headers={"Content-Security-Policy": REPORT_CSP}
    )

"""The surveys page: a contractor's upload form (drag and drop, progress,
resume, by tus from the browser with tus-js-client) and the surveys of the
user's area with their state, verdict and report (opened in place)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from supervision.auth.deps import Reader
from supervision.auth.permissions import Permission, allows
from supervision.auth.scope import scoped_select
from supervision.context import DbSession
from supervision.jobs.models import Job
from supervision.registry.models import Mine
from supervision.uploads.models import Survey
from supervision.uploads.service import readable_surveys
from supervision.web.views import _page

router = APIRouter(include_in_schema=False)


@router.get("/surveys")
def surveys_page(
    request: Request, p: Reader, db: DbSession, mine: str | None = None
) -> HTMLResponse:
    """``?mine=CODE``: one mine's surveys (its latest verdict first)."""
    can_upload = allows(p.role, Permission.UPLOAD)
    mines = list(db.scalars(scoped_select(Mine, p.scope).order_by(Mine.code))) if can_upload else []
    ids = readable_surveys(p).with_only_columns(Survey.id)
    if mine is not None:
        ids = ids.where(Survey.mine_id.in_(select(Mine.id).where(Mine.code == mine)))
    rows = db.execute(
        select(Survey, Job, Mine)
        .join(Mine, Mine.id == Survey.mine_id)
        .outerjoin(Job, Job.survey_id == Survey.id)
        .where(Survey.id.in_(ids))
        .order_by(Survey.id.desc())
        .limit(200)
    ).all()
    latest_done = (
        scoped_select(Survey, p.scope)
        .with_only_columns(func.max(Survey.id))
        .where(Survey.state == "done", Survey.id.in_(ids))
        .group_by(Survey.mine_id)
    )
    latest = db.execute(
        select(Survey, Mine)
        .join(Mine, Mine.id == Survey.mine_id)
        .where(Survey.id.in_(latest_done))
        .order_by(Survey.incidents.desc(), Mine.code)
    ).all()
    return _page(
        request,
        "surveys.html",
        latest=latest,
        principal=p,
        can_upload=can_upload,
        mines=mines,
        rows=rows,
        only_mine=mine,
        # no reload under a running upload
        refresh=0 if can_upload else None,
    )

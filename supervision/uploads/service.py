"""Surveys from stored files: the mine (in the uploader's scope, its
licence from the registry), the fingerprint that recognises the same
survey sent again, the job."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from supervision.auth.models import Role
from supervision.auth.scope import scoped_select
from supervision.auth.service import Principal
from supervision.config import UploadsSection
from supervision.jobs.models import Job
from supervision.registry.models import Mine
from supervision.uploads.files import Budget, Stored, UploadRefused
from supervision.uploads.models import Survey, SurveyFile


@dataclass(frozen=True, slots=True)
class Created:
    survey: Survey
    duplicate: bool  # the same files for the same mine were uploaded before


def readable_surveys(p: Principal) -> Select[Survey]:
    """The surveys ``p`` may read: those of the mines of their area; a
    contractor only the surveys they uploaded themselves (another survey
    company's work on the same mine is not theirs to see)."""
    stmt = scoped_select(Survey, p.scope)
    if p.role == Role.CONTRACTOR:
        stmt = stmt.where(Survey.uploader_id == p.user_id)
    return stmt


@dataclass(frozen=True, slots=True)
class MineSurveys:
    """What a mine's page shows of its surveys."""

    latest: Survey | None  # the latest checked (done) survey
    recent: list[tuple[Survey, Job | None]]  # the last few, newest first
    total: int


def mine_surveys(db: Session, p: Principal, mine_id: int, last: int = 10) -> MineSurveys:
    """The mine's surveys as ``p`` may read them (see :func:`readable_surveys`)."""
    ids = readable_surveys(p).where(Survey.mine_id == mine_id).with_only_columns(Survey.id)
    recent: list[tuple[Survey, Job | None]] = [
        (s, job)
        for s, job in db.execute(
            select(Survey, Job)
            .outerjoin(Job, Job.survey_id == Survey.id)
            .where(Survey.id.in_(ids))
            .options(selectinload(Survey.files))
            .order_by(Survey.id.desc())
            .limit(last)
        )
    ]
    latest = db.scalar(
        select(Survey)
        .where(Survey.id.in_(ids), Survey.state == "done")
        .order_by(Survey.id.desc())
        .limit(1)
    )
    total = db.scalar(select(func.count()).where(Survey.id.in_(ids))) or 0
    return MineSurveys(latest, recent, total)


def budget_for(cfg: UploadsSection, role: str) -> Budget:
    mb = cfg.max_mb.get(role)
    if mb is None:
        raise UploadRefused(f"the {role} role has no upload allowance (uploads.max_mb)", 403)
    return Budget(int(mb * 1e6), cfg.zip_max_files, cfg.zip_max_ratio)


def mine_for_upload(db: Session, p: Principal, code: str) -> Mine:
    """The mine by code, if in the uploader's scope and with a licence."""
    mine = db.scalar(scoped_select(Mine, p.scope).where(Mine.code == code))
    if mine is None:
        raise UploadRefused(f"no mine {code!r} among the mines you may upload for", 404)
    if not mine.licence_file:
        raise UploadRefused(
            f"mine {code} has no licence in the registry: the survey cannot be checked; "
            "ask the regulator to register the licence file (add-mine --licence)",
            409,
        )
    return mine


#: what a survey is checked as (``Survey.kind``)
SURVEY_KINDS = ("underground", "open_pit")


def survey_kind(files: list[Stored], asked: str | None) -> str:
    """The survey's kind: as the uploader chose, else open pit when a DSM
    raster is among the files (a raster is only checked as a pit), else
    underground. The registry's mines have no kind: the uploader says
    what a survey of clouds or meshes alone is."""
    has_raster = any(f.kind == "raster" for f in files)
    if asked is None or asked == "":
        return "open_pit" if has_raster else "underground"
    if asked not in SURVEY_KINDS:
        raise UploadRefused(
            f"survey kind {asked!r}: give underground or open_pit (an open pit's DSM, "
            "dense cloud or textured mesh)",
            422,
        )
    if asked == "underground" and has_raster:
        raise UploadRefused(
            "a DSM raster (GeoTIFF, ASCII grid) is checked as an open pit: upload it with the "
            "kind open_pit, or leave the raster out of an underground survey",
            422,
        )
    return asked


def fingerprint(mine_id: int, files: list[Stored], kind: str = "underground") -> str:
    text = f"{mine_id}\n" + "\n".join(sorted(f.sha256 for f in files))
    if kind == "open_pit" and not any(f.kind == "raster" for f in files):
        # the same cloud sent as an open pit is another check than as underground workings
        text += "\nopen_pit"
    return hashlib.sha256(text.encode()).hexdigest()


def create_survey(
    db: Session,
    p: Principal,
    mine: Mine,
    files: list[Stored],
    *,
    via: str,
    description: str,
    now_ns: int,
    kind: str | None = None,
) -> Created:
    """A survey and its job, or the survey already made of these files
    (``kind``: ``underground``, ``open_pit`` or None: see :func:`survey_kind`)."""
    if not any(f.kind in ("scan", "raster") for f in files):
        raise UploadRefused(
            "the upload has no scan or point file, nor a DSM, to check (only descriptions or a "
            "design)"
        )
    kind = survey_kind(files, kind)
    fp = fingerprint(mine.id, files, kind)
    existing = db.scalar(select(Survey).where(Survey.fingerprint == fp))
    if existing is not None:
        return Created(existing, True)
    survey = Survey(
        mine_id=mine.id,
        uploader_id=p.user_id,
        uploader=p.name,
        created_ns=now_ns,
        fingerprint=fp,
        via=via,
        description=description[:10_000],
        licence_file=mine.licence_file or "",
        kind=kind,
        state="queued",
        message="",
    )
    try:
        with db.begin_nested():
            db.add(survey)
            db.flush()
    except IntegrityError:  # the same survey a moment ago, from another request
        existing = db.scalar(select(Survey).where(Survey.fingerprint == fp))
        assert existing is not None
        return Created(existing, True)
    for idx, f in enumerate(files):
        db.add(
            SurveyFile(
                survey_id=survey.id,
                idx=idx,
                kind=f.kind,
                fmt=f.fmt,
                sha256=f.sha256,
                size=f.size,
                stored=f.stored,
                client_name=f.client_name,
                archive=f.archive,
            )
        )
    db.add(Job(survey_id=survey.id, mine_id=mine.id, created_ns=now_ns, error="", stage=""))
    db.flush()
    return Created(survey, False)


def recheck_survey(
    db: Session, p: Principal, original: Survey, mine: Mine, *, note: str, now_ns: int
) -> Survey:
    """A new survey of ``original``'s stored files, checked again against
    the licence the mine has in the registry now (after an amendment, or to
    confirm a result). The original and its result stay as they were: a
    re-check is a survey of its own, with its own job, requester and time."""
    if original.state not in ("done", "failed"):
        raise UploadRefused(
            f"survey {original.id} is {original.state}: re-check it once its check ended", 409
        )
    text = f"recheck\n{original.fingerprint}\n{now_ns}\n{secrets.token_hex(8)}"
    survey = Survey(
        mine_id=mine.id,
        uploader_id=p.user_id,
        uploader=p.name,
        created_ns=now_ns,
        fingerprint=hashlib.sha256(text.encode()).hexdigest(),
        via="recheck",
        description=(f"re-check of survey {original.id}" + (f": {note}" if note else ""))[:10_000],
        licence_file=mine.licence_file or "",
        state="queued",
        message="",
    )
    db.add(survey)
    db.flush()
    for f in original.files:
        db.add(
            SurveyFile(
                survey_id=survey.id, idx=f.idx, kind=f.kind, fmt=f.fmt, sha256=f.sha256,
                size=f.size, stored=f.stored, client_name=f.client_name, archive=f.archive,
            )
        )  # fmt: skip
    db.add(Job(survey_id=survey.id, mine_id=mine.id, created_ns=now_ns, error="", stage=""))
    db.flush()
    return survey

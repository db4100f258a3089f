"""Surveys from stored files: the mine (in the uploader's scope, its
licence from the registry), the fingerprint that recognises the same
survey sent again, the job."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

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


def fingerprint(mine_id: int, files: list[Stored]) -> str:
    text = f"{mine_id}\n" + "\n".join(sorted(f.sha256 for f in files))
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
) -> Created:
    """A survey and its job, or the survey already made of these files."""
    if not any(f.kind == "scan" for f in files):
        raise UploadRefused("the upload has no scan or point file to check (only descriptions)")
    fp = fingerprint(mine.id, files)
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

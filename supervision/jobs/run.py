"""One survey check, run by whichever engine: :func:`run_job`.

The job is claimed by a conditional update (queued, or running with its
lease past: its worker died), its lease renewed while it runs, and
completed by an update that only this claim can make. A worker killed
mid-check leaves the job running with a lease that ends; the next claim
runs it again from the stored files (a check has no effects besides its
result directory, which is per claim). A check refused for bad input ends
as a failed survey with the check's own message; a crash of the check is
tried again up to ``max_attempts`` claims.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, sessionmaker

from supervision.db.base import Clock
from supervision.jobs.changes import Previous, compare_with_previous
from supervision.jobs.models import Job, JobState
from supervision.jobs.pit import PIT_KINDS, check_pit_survey
from supervision.jobs.publish import outbox_rows, tagged
from supervision.registry.models import Mine
from supervision.uploads.models import Survey, SurveyFile

if TYPE_CHECKING:
    from supervision.config import PublishSection

log = logging.getLogger("minegate.platform.jobs")

#: earlier surveys looked at for one of other scan bytes (re-checks of the
#: same scans are skipped)
PREVIOUS_LOOKBACK = 50


@dataclass(frozen=True, slots=True)
class JobSettings:
    root: Path  # the uploads directory
    lease_s: float
    max_attempts: int
    #: where findings are published (None or no sinks: not published)
    publish: PublishSection | None = None


def claim(db: Session, job_id: int, now_ns: int, lease_s: float) -> str | None:
    """Take the job if it is free; the claim token, or None."""
    token = secrets.token_hex(16)
    res = db.execute(
        update(Job)
        .where(
            Job.id == job_id,
            or_(
                Job.state == JobState.QUEUED.value,
                (Job.state == JobState.RUNNING.value) & (Job.lease_until_ns < now_ns),
            ),
        )
        .values(
            state=JobState.RUNNING.value,
            claim=token,
            lease_until_ns=now_ns + int(lease_s * 1e9),
            attempts=Job.attempts + 1,
            started_ns=now_ns,
            stage="read",
            progress=None,
        )
        .execution_options(synchronize_session=False)
    )
    return token if res.rowcount == 1 else None  # type: ignore[attr-defined]


def claimable(db: Session, now_ns: int) -> list[int]:
    """Jobs waiting, and jobs whose worker's lease ended, oldest first."""
    return list(
        db.scalars(
            select(Job.id)
            .where(
                or_(
                    Job.state == JobState.QUEUED.value,
                    (Job.state == JobState.RUNNING.value) & (Job.lease_until_ns < now_ns),
                )
            )
            .order_by(Job.id)
        )
    )


class _Held:
    """A claimed job: progress written and the lease renewed in the
    background, both only while the claim is still ours."""

    def __init__(self, sessions: sessionmaker[Session], job_id: int, token: str,
                 clock: Clock, lease_s: float) -> None:  # fmt: skip
        self.sessions, self.job_id, self.token = sessions, job_id, token
        self.clock, self.lease_s = clock, lease_s
        self.stage = "read"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{job_id}", daemon=True)

    def _set(self, **values: Any) -> bool:
        with self.sessions() as db, db.begin():
            res = db.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.claim == self.token)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    def _renew(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self._set(lease_until_ns=self.clock() + int(self.lease_s * 1e9))
            except Exception:  # the database away for a moment: try again next round
                log.warning("job %d: lease not renewed", self.job_id, exc_info=True)

    def __enter__(self) -> _Held:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def progress(self, stage: str, done: int, total: int | None) -> None:
        """A survey progress callback mapped to the job's stages."""
        if stage == "incidents":
            new = "incidents"
        elif stage.startswith("check ") and done > 0:
            new = "classify"
        else:
            return
        if new != self.stage:
            self.stage = new
            self._set(stage=new, progress=None)


def run_job(
    sessions: sessionmaker[Session],
    job_id: int,
    settings: JobSettings,
    clock: Clock,
    on_done: Callable[[int], None] | None = None,
) -> str:
    """Claim and run one job. Returns what happened: ``done``, ``failed``,
    or ``skipped`` (finished already, or another worker holds it)."""
    with sessions() as db, db.begin():
        token = claim(db, job_id, clock(), settings.lease_s)
        if token is None:
            return "skipped"
        job = db.get(Job, job_id)
        assert job is not None
        survey = db.get(Survey, job.survey_id)
        assert survey is not None
        survey.state = JobState.RUNNING.value
        attempts = job.attempts
        files = [(f.stored, f.client_name) for f in survey.files if f.kind == "scan"]
        pit_files = [(f.stored, f.client_name, f.kind) for f in survey.files if f.kind in PIT_KINDS]
        licence_file, survey_id = survey.licence_file, survey.id
        mine_code = db.scalar(select(Mine.code).where(Mine.id == survey.mine_id)) or ""
        previous = _previous(db, survey)
        # an open pit by the kind chosen at upload (or, for a survey made
        # without one, by its DSM raster)
        open_pit = survey.kind == "open_pit" or any(k == "raster" for *_, k in pit_files)
        previous_pit = _previous_pit(db, survey) if open_pit else None
    if attempts > settings.max_attempts:
        msg = (
            f"the check did not finish in {attempts - 1} tries (its worker crashed or was "
            "stopped each time); not tried again: see the workers' logs"
        )
        _complete(sessions, job_id, token, clock, failed=msg)
        return "failed"
    rel_out = f"results/{survey_id}/{token}"
    out = settings.root / rel_out
    with _Held(sessions, job_id, token, clock, settings.lease_s) as held:
        try:
            site = _site(settings.publish)
            if open_pit:
                outcome = check_pit_survey(
                    settings.root, pit_files, licence_file, out, held, site, previous_pit
                )
            else:
                outcome = _check(settings.root, files, licence_file, out, held, previous, site)
            if not isinstance(outcome, str) and "records" in outcome:
                tagged(outcome["records"], mine_code, survey_id)
        except Exception as exc:  # a crash, not bad input: leave it to be claimed again
            log.error("job %d crashed: %s", job_id, traceback.format_exc())
            if held._set(state=JobState.QUEUED.value, claim=None, error=f"{exc!r}"):
                with sessions() as db, db.begin():
                    db.execute(
                        update(Survey)
                        .where(Survey.id == survey_id)
                        .values(state=JobState.QUEUED.value)
                        .execution_options(synchronize_session=False)
                    )
            shutil.rmtree(out, ignore_errors=True)
            return "crashed"
        if isinstance(outcome, str):
            shutil.rmtree(out, ignore_errors=True)
            done = _complete(sessions, job_id, token, clock, failed=outcome)
        else:
            held._set(stage="report")
            done = _complete(
                sessions, job_id, token, clock, result=(rel_out, outcome), publish=settings.publish
            )
    if not done:  # our lease ended and another worker completed it: ours is not kept
        shutil.rmtree(out, ignore_errors=True)
        return "skipped"
    leftovers = out.parent.iterdir() if out.parent.exists() else iter(())
    for other in leftovers:  # what a killed worker's claim left half-written
        if other != out:
            shutil.rmtree(other, ignore_errors=True)
    if on_done is not None:
        on_done(job_id)
    return "failed" if isinstance(outcome, str) else "done"


def _complete(
    sessions: sessionmaker[Session],
    job_id: int,
    token: str,
    clock: Clock,
    *,
    failed: str | None = None,
    result: tuple[str, dict[str, Any]] | None = None,
    publish: PublishSection | None = None,
) -> bool:
    """Finish the job, only if our claim still holds (once, ever)."""
    now = clock()
    state = JobState.FAILED if failed is not None else JobState.DONE
    with sessions() as db, db.begin():
        res = db.execute(
            update(Job)
            .where(Job.id == job_id, Job.claim == token, Job.state == JobState.RUNNING.value)
            .values(state=state.value, finished_ns=now, error=failed or "", lease_until_ns=None)
            .execution_options(synchronize_session=False)
        )
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return False
        job = db.get(Job, job_id)
        assert job is not None
        survey = db.get(Survey, job.survey_id)
        assert survey is not None
        survey.state = state.value
        survey.finished_ns = now
        if failed is not None:
            survey.message = failed
        elif result is not None:
            survey.result_dir, found = result
            survey.verdict = found["verdict"]
            survey.incidents = found["incidents"]
            survey.message = found["message"]
            survey.check_id = found["check_id"]
            survey.values = found["values"]
            if publish is not None:  # the findings wait for each sink with the result
                db.add_all(outbox_rows(publish, survey.id, found.get("records", []), now))
    return True


def _site(publish: PublishSection | None) -> tuple[str, str] | None:
    """(site, gateway) of the finding records, or None: not published."""
    return (publish.site, publish.gateway) if publish is not None and publish.sinks else None


def _previous(db: Session, survey: Survey) -> Previous | None:
    """The scan and point files of the mine's previous checked survey (same
    licence), skipping surveys of exactly the same scan bytes: one of the
    same scans (a re-check, or the scans sent again with another
    description) would only show that nothing changed."""
    ours = frozenset(f.sha256 for f in survey.files if f.kind == "scan")
    candidates = db.scalars(
        select(Survey)
        .where(
            Survey.mine_id == survey.mine_id,
            Survey.licence_file == survey.licence_file,
            Survey.state == JobState.DONE.value,
            Survey.id < survey.id,
            # with point data (an open-pit survey of DSMs alone has none)
            Survey.kind != "open_pit",  # a pit's cloud is compared as a pit, not here
            Survey.id.in_(select(SurveyFile.survey_id).where(SurveyFile.kind == "scan")),
        )
        .order_by(Survey.id.desc())
        .limit(PREVIOUS_LOOKBACK)
    )
    for prev in candidates:
        scans = [f for f in prev.files if f.kind == "scan"]
        if scans and frozenset(f.sha256 for f in scans) != ours:
            return Previous(prev.id, tuple((f.stored, f.client_name) for f in scans))
    return None


def _previous_pit(db: Session, survey: Survey) -> tuple[int, list[tuple[str, str, str]]] | None:
    """The rasters, clouds, meshes and design of the mine's previous
    checked open-pit survey (same licence): its DSM (or rasterised cloud)
    is the earlier flight of a survey that brings only one."""
    prev = db.scalar(
        select(Survey)
        .where(
            Survey.mine_id == survey.mine_id,
            Survey.licence_file == survey.licence_file,
            Survey.state == JobState.DONE.value,
            Survey.id < survey.id,
            or_(
                Survey.kind == "open_pit",
                Survey.id.in_(select(SurveyFile.survey_id).where(SurveyFile.kind == "raster")),
            ),
        )
        .order_by(Survey.id.desc())
        .limit(1)
    )
    if prev is None:
        return None
    return prev.id, [(f.stored, f.client_name, f.kind) for f in prev.files if f.kind in PIT_KINDS]


def _check(
    root: Path,
    files: list[tuple[str, str]],
    licence_file: str,
    out: Path,
    held: _Held,
    previous: Previous | None = None,
    site: tuple[str, str] | None = None,
) -> dict[str, Any] | str:
    """Run the check and write the report; a string: bad input, the
    check's own message (stored paths replaced by the client's names)."""
    import numpy as np

    from survey.check import check_files
    from survey.findings import SourceInfo, findings_records, new_check_id
    from survey.model import SurveyInputError
    from survey.readers.licence_files import load_licence
    from survey.report import write_report

    names = {str(root / stored): name for stored, name in files}

    def plain(text: str) -> str:
        for path, name in names.items():
            text = text.replace(path, name)
        return text

    if not files:
        return "the survey has no scan or point file to check"
    try:
        licence = load_licence(licence_file)
        result = check_files(licence, [root / s for s, _ in files], progress=held.progress)
    except SurveyInputError as exc:
        return plain(str(exc))
    held._set(stage="report")
    check_id = new_check_id(result.licence)
    sources = [
        SourceInfo(names.get(i.source, i.source), i.fmt, i.points, i.faces, i.samples,
                   tuple(plain(n) for n in i.notes))
        for i in result.inputs
    ]  # fmt: skip
    preview = getattr(result, "preview", None)
    if preview is not None and len(preview):
        xyz, status = np.ascontiguousarray(preview[:, :3]), preview[:, 3].astype(np.int8)
    else:
        xyz, status = np.zeros((0, 3)), np.zeros(0, dtype=np.int8)
    write_report(result, out, xyz=xyz, status=status, check_id=check_id, sources=sources)
    changes = None
    if previous is not None:
        changes = compare_with_previous(root, result.licence, previous, files, out / "changes")
    worst = max((i.max_exceedance_m for i in result.incidents), default=0.0)
    volume = sum(i.volume_m3 for i in result.incidents)
    return {
        "verdict": result.verdict,
        "incidents": len(result.incidents),
        "check_id": check_id,
        "message": _verdict_text(result.verdict, len(result.incidents), worst, volume),
        "values": {
            "licence": result.licence.licence_no,
            "points": result.n_points,
            "incidents": len(result.incidents),
            "kinds": sorted({str(i.type) for i in result.incidents}),
            "within_uncertainty": len(result.uncertain),
            "max_exceedance_m": round(worst, 3),
            "volume_m3": round(volume, 1),
            **({"changes": changes} if changes is not None else {}),
        },
        **(
            {"records": findings_records(result, site[0], check_id, gateway=site[1])}
            if site is not None
            else {}
        ),
    }


def _verdict_text(verdict: str, n: int, worst: float, volume: float) -> str:
    if n:
        return (
            f"{n} incident(s) beyond the licence, largest {worst:.2f} m, {volume:,.0f} m³ beyond it"
        )
    return verdict

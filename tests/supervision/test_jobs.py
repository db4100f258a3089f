"""Survey jobs: claims and leases on the job table (SQLite and
PostgreSQL), and the embedded engine running a check inside the service."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from supervision.config import PlatformConfig

from .conftest import helpers


def _contractor(engine: Engine, licence: str, now_ns: int) -> tuple[str, int]:
    """con-a, assigned to M-QN-1 (whose licence is ``licence``): token, mine id."""
    from sqlalchemy import select, update

    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel, Scope
    from supervision.db import make_sessionmaker
    from supervision.registry.models import Mine

    with make_sessionmaker(engine)() as db, db.begin():
        db.execute(update(Mine).values(licence_file=licence))
        user = auth.create_user(db, "con-a", "contractor", now_ns=now_ns)
        admin = auth.Principal(0, "admin", "admin", Scope(AreaLevel.ALL), "test")
        assert auth.assign_contractor(db, admin, "con-a", "M-QN-1", now_ns=now_ns)
        assert not auth.assign_contractor(db, admin, "con-a", "M-QN-1", now_ns=now_ns)
        mine_id = db.scalar(select(Mine.id).where(Mine.code == "M-QN-1"))
        assert mine_id is not None
        return auth.issue_token(db, user, now_ns=now_ns), mine_id


def test_a_job_is_claimed_once_and_completed_once(engine: Engine, tmp_path: Path) -> None:
    """A second claim waits for the first's lease to end; then the first
    (a worker that was thought dead) can no longer complete the job."""
    from supervision.db import make_sessionmaker
    from supervision.jobs.models import Job
    from supervision.jobs.run import _complete, claim, claimable
    from supervision.uploads.models import Survey

    clock = helpers.FakeClock()
    helpers.build_world(engine, now_ns=clock())
    _, mine_id = _contractor(engine, str(tmp_path / "licence.toml"), clock())
    sessions = make_sessionmaker(engine)
    with sessions() as db, db.begin():
        s = Survey(mine_id=mine_id, uploader_id=1, uploader="admin", created_ns=clock(),
                   fingerprint="f" * 64, via="multipart", description="", licence_file="x",
                   state="queued", message="")  # fmt: skip
        db.add(s)
        db.flush()
        db.add(Job(survey_id=s.id, mine_id=mine_id, created_ns=clock(), error="", stage=""))
        db.flush()
        job_id = db.scalar(Job.__table__.select().with_only_columns(Job.id))
    with sessions() as db, db.begin():
        assert claimable(db, clock()) == [job_id]
        first = claim(db, job_id, clock(), lease_s=10)
    assert first is not None
    with sessions() as db, db.begin():
        assert claimable(db, clock()) == []
        assert claim(db, job_id, clock(), lease_s=10) is None  # held
    clock.advance(11)  # the first worker stopped renewing: killed
    with sessions() as db, db.begin():
        second = claim(db, job_id, clock(), lease_s=10)
    assert second is not None and second != first
    assert not _complete(sessions, job_id, first, clock, failed="late")
    assert _complete(sessions, job_id, second, clock, result=("results/1/x", {
        "verdict": "compliant", "incidents": 0, "message": "compliant", "check_id": "c",
        "values": {}}))  # fmt: skip
    assert not _complete(sessions, job_id, second, clock, failed="twice")
    with sessions() as db:
        job = db.get(Job, job_id)
        assert job is not None and job.state == "done" and job.attempts == 2
        survey = db.get(Survey, job.survey_id)
        assert survey is not None and survey.state == "done" and survey.verdict == "compliant"


def test_embedded_pool_checks_an_upload(tmp_path: Path) -> None:
    """jobs.engine = "embedded" (the default): the service runs the check."""
    from supervision.app import create_app
    from supervision.db import make_engine
    from supervision.db.migrate import upgrade
    from survey.sample import write_sample

    sample = write_sample(tmp_path / "sample", density=8.0).directory
    engine = make_engine(f"sqlite:///{tmp_path / 'platform.db'}")
    upgrade(engine)
    now = time.time_ns()
    helpers.build_world(engine, now_ns=now)
    token, _ = _contractor(engine, str(sample / "licence.toml"), now)
    config = PlatformConfig.model_validate(
        {"mqtt": {"enabled": False}, "uploads": {"dir": str(tmp_path / "uploads")},
         "alerting": {"evaluate_interval_s": 0.2}}
    )  # fmt: skip
    assert config.jobs.engine == "embedded"
    app = create_app(config, engine=engine, on_failure=lambda reason: None)
    auth = {"Authorization": f"Bearer {token}"}
    with TestClient(app) as client:
        data = (sample / "violation.las").read_bytes()
        r = client.post("/api/v1/mines/M-QN-1/surveys", headers=auth,
                        files=[("file", ("v.las", data)), ("file", ("notes.md", b"# drift\n"))])  # fmt: skip
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        deadline = time.monotonic() + 120
        s: dict[str, Any] = {}
        while time.monotonic() < deadline:
            s = client.get(f"/api/v1/surveys/{sid}", headers=auth).json()
            if s["state"] in ("done", "failed"):
                break
            time.sleep(0.1)
        assert s["state"] == "done" and s["verdict"] == "violations found", s
        assert [f["kind"] for f in s["files"]] == ["scan", "description"]
        assert client.get(s["report_url"], headers=auth).status_code == 200
        # the evaluator (poked when the job finished) fires the mine's alert
        deadline = time.monotonic() + 30
        while True:
            alerts = [a for a in client.get("/api/v1/alerts", headers=auth).json()
                      if a["kind"] == "survey_violation"]  # fmt: skip
            if alerts:
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "uploaded by con-a" in alerts[0]["summary"]
        # a later compliant survey of the mine resolves it
        r = client.post("/api/v1/mines/M-QN-1/surveys", headers=auth,
                        files=[("file", ("ok.las", (sample / "compliant.las").read_bytes()))])  # fmt: skip
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 60
        while True:
            alert = client.get("/api/v1/alerts?state=resolved", headers=auth).json()
            if any(a["id"] == alerts[0]["id"] for a in alert):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        # checked against the mine's previous survey too: what is new since
        second = client.get(r.json()["url"], headers=auth).json()
        assert second["state"] == "done" and second["verdict"] == "compliant", second
        changes = second["values"]["changes"]
        assert changes["since_survey"] == sid and changes["old_files"] == ["v.las"], changes
        assert changes["new_files"] == ["ok.las"]
        assert changes["new_incidents"] == 0 and changes["areas"] >= 0
        doc = client.get(f"/api/v1/surveys/{second['id']}/changes/findings.json", headers=auth)
        assert doc.status_code == 200 and doc.json()["comparison"]["old_source"] == "v.las"
        assert client.get(second["changes_report_url"], headers=auth).status_code == 200
        assert s["changes_report_url"] is None  # the first survey had nothing before it
        none = client.get(f"/api/v1/surveys/{sid}/changes/report.html", headers=auth)
        assert none.status_code == 404
        # a survey of two point files (scan + total-station points): both are
        # compared, merged, with the previous survey's
        r = client.post("/api/v1/mines/M-QN-1/surveys", headers=auth, files=[
            ("file", ("ok.las", (sample / "compliant.las").read_bytes())),
            ("file", ("ts.dat", (sample / "violation_points.dat").read_bytes()))])  # fmt: skip
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 120
        while True:
            third = client.get(r.json()["url"], headers=auth).json()
            if third["state"] in ("done", "failed"):
                break
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert third["state"] == "done", third
        changes = third["values"]["changes"]
        assert changes["since_survey"] == second["id"], changes
        assert changes["old_files"] == ["ok.las"] and changes["new_files"] == ["ok.las", "ts.dat"]
        found = client.get(third["findings_url"], headers=auth).json()
        per_file = {src["path"]: src["points"] for src in found["sources"]}
        assert changes["new_points_compared"] == per_file["ok.las"] + per_file["ts.dat"]
        assert changes["old_points"] == per_file["ok.las"]
        # the scan is the same as before: what is new is the points' workings
        assert 0 < changes["new_points"] <= per_file["ts.dat"], changes
        doc = client.get(f"/api/v1/surveys/{third['id']}/changes/findings.json", headers=auth)
        assert doc.json()["comparison"]["new_source"] == "ok.las + ts.dat"
    assert app.state.ctx.extra.get("failed") is None
    engine.dispose()


def test_expired_tus_uploads_are_swept(tmp_path: Path) -> None:
    import json
    from email.utils import formatdate

    from supervision.uploads.files import sweep_tus

    user = tmp_path / "tus" / "7"
    user.mkdir(parents=True)
    now = 2_000_000_000.0
    for uid, expires in (("a" * 32, now - 1), ("b" * 32, now + 3600), ("c" * 32, None)):
        (user / uid).write_bytes(b"partial")
        info = {
            "size": 100,
            "offset": 7,
            "expires": formatdate(expires, usegmt=True) if expires else None,
        }
        (user / f"{uid}.info").write_text(json.dumps(info))
    assert sweep_tus(tmp_path, now) == 1
    assert sorted(p.name for p in user.iterdir()) == [
        "b" * 32,
        "b" * 32 + ".info",
        "c" * 32,
        "c" * 32 + ".info",
    ]


def test_redis_away_leaves_the_jobs_waiting(engine: Engine, tmp_path: Path, caplog: Any) -> None:
    """jobs.engine = "dramatiq" with Redis unreachable: the survey is taken
    and waits in the job table; the service logs it and keeps running."""
    import logging

    from supervision.app import create_app
    from supervision.uploads.models import Survey

    from .conftest import servers

    helpers.build_world(engine, now_ns=time.time_ns())
    token, _ = _contractor(engine, str(tmp_path / "licence.toml"), time.time_ns())
    config = PlatformConfig.model_validate(
        {"mqtt": {"enabled": False}, "uploads": {"dir": str(tmp_path / "uploads")},
         "jobs": {"engine": "dramatiq", "poll_s": 0.1,
                  "redis_url": f"redis://127.0.0.1:{servers.free_port()}/0"}}
    )  # fmt: skip
    failures: list[str] = []
    app = create_app(config, engine=engine, on_failure=failures.append)
    caplog.set_level(logging.ERROR, logger="minegate.platform.jobs")
    with TestClient(app) as client:
        r = client.post("/api/v1/mines/M-QN-1/surveys", headers={"Authorization": f"Bearer {token}"},
                        files=[("file", ("p.xyz", b"562100 2430100 10\n"))])  # fmt: skip
        assert r.status_code == 201, r.text
        deadline = time.monotonic() + 20
        while not any("unavailable" in m for m in caplog.messages):
            assert time.monotonic() < deadline, caplog.messages
            time.sleep(0.05)
    assert failures == []
    from supervision.db import make_sessionmaker

    with make_sessionmaker(engine)() as db:
        survey = db.get(Survey, r.json()["id"])
        assert survey is not None and survey.state == "queued"

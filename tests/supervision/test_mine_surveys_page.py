"""A mine's page lists its surveys (SQLite and PostgreSQL, over HTTP): the
latest verdict with its incidents and kinds of violation, the last surveys
with their files, verdicts and links to the report (opened in place) and
findings; scoped: another county's mine is 404, a contractor sees only the
surveys they uploaded, a viewer reads without the upload link."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from supervision.app import create_app
from supervision.auth import service as auth
from supervision.auth.scope import AreaLevel, Scope
from supervision.config import PlatformConfig
from supervision.db import make_sessionmaker
from supervision.jobs.models import Job
from supervision.uploads.models import Survey, SurveyFile

from .helpers import T0, FakeClock


@pytest.fixture
def site(engine: Engine, world: Any, tmp_path: Path) -> Iterator[tuple[TestClient, dict[str, int]]]:
    """Surveys of M-QN-1 by two contractors (12 by con-a), one of M-QN-2."""
    admin = auth.Principal(0, "admin", "admin", Scope(AreaLevel.ALL), "test")
    ids: dict[str, int] = {}
    with make_sessionmaker(engine)() as db, db.begin():
        users = {}
        for name in ("con-a", "con-b"):
            users[name] = auth.create_user(db, name, "contractor", now_ns=T0)
            auth.assign_contractor(db, admin, name, "M-QN-1", now_ns=T0)
            world.tokens[name] = auth.issue_token(db, users[name], now_ns=T0)

        def add(key: str, mine: str, who: str, n: int, **kw: Any) -> None:
            s = Survey(mine_id=world.mines[mine], uploader_id=users[who].id, uploader=who,
                       created_ns=T0 + n * 10**9, fingerprint=f"fp-{key}", via="tus",
                       licence_file="l.toml", description="", **kw)  # fmt: skip
            db.add(s)
            db.flush()
            db.add(SurveyFile(survey_id=s.id, idx=0, kind="scan", fmt="las", sha256="0" * 64,
                              size=12_345_678, stored=f"blobs/{key}.las",
                              client_name=f"<b>{key}</b>.las"))  # fmt: skip
            db.add(Job(survey_id=s.id, mine_id=s.mine_id, created_ns=s.created_ns,
                       state=kw.get("state", "queued"), stage="classify", error=""))  # fmt: skip
            ids[key] = s.id

        done = {"state": "done", "finished_ns": T0 + 10**12}
        for n in range(10):
            add(f"old{n}", "M-QN-1", "con-a", n, verdict="compliant", incidents=0,
                message="compliant", values={"kinds": []}, result_dir=f"results/old{n}", **done)  # fmt: skip
        add("pit", "M-QN-1", "con-a", 20, kind="open_pit", verdict="violations found",
            incidents=3, message="3 open-pit violation(s): boundary, one_wall",
            values={"kinds": ["boundary", "one_wall"], "open_pit": True},
            result_dir="results/pit", **done)  # fmt: skip
        add("bad", "M-QN-1", "con-a", 21, state="failed", message="cloud.las: not a LAS file")
        add("b", "M-QN-1", "con-b", 22, verdict="violations found", incidents=1,
            message="1 incident(s) beyond the licence", values={"kinds": ["below_range"]},
            result_dir="results/b", **done)  # fmt: skip
        add("qn2", "M-QN-2", "con-a", 23, state="running")
    for key in ("pit", "b"):
        out = tmp_path / "uploads" / "results" / key
        out.mkdir(parents=True)
        (out / "report.html").write_text(f"<html>report of {key}</html>")
        (out / "findings.json").write_text('{"verdict": "violations found"}')
    config = PlatformConfig.model_validate(
        {"mqtt": {"enabled": False}, "uploads": {"dir": str(tmp_path / "uploads")}}
    )
    app = create_app(config, engine=engine, clock=FakeClock(), background=False)
    with TestClient(app) as c:
        yield c, ids


def _page(c: TestClient, world: Any, who: str, mine: str) -> Any:
    return c.get(f"/mines/{world.mines[mine]}",
                 headers={"Authorization": f"Bearer {world.tokens[who]}"})  # fmt: skip


def test_regulator_sees_latest_verdict_and_recent_surveys(
    site: tuple[TestClient, dict[str, int]], world: Any
) -> None:
    c, ids = site
    r = _page(c, world, "reg-qn", "M-QN-1")
    assert r.status_code == 200
    page = r.text
    latest = page.split('id="latest-survey"', 1)[1].split("</div>", 1)[0]
    # the latest checked survey is con-b's (the failed one after it is not a verdict)
    assert f'data-survey="{ids["b"]}"' in latest and "violations found" in latest
    assert "1 incident(s)" in latest and "below_range" in latest and "by con-b" in latest
    assert f'href="/api/v1/surveys/{ids["b"]}/report.html"' in latest
    table = page.split('id="mine-surveys"', 1)[1].split("</table>", 1)[0]
    rows = table.count("<tr data-survey=")
    assert rows == 10  # the last ten, newest first
    assert table.index(f'data-survey="{ids["b"]}"') < table.index(f'data-survey="{ids["pit"]}"')
    assert "open pit" in table and "one_wall" not in latest
    assert "cloud.las: not a LAS file" in table
    assert "&lt;b&gt;pit&lt;/b&gt;.las" in table and "<b>pit</b>" not in page  # names escaped
    assert "12.3 MB" in table
    assert f'data-survey="{ids["qn2"]}"' not in page  # another mine's
    assert "All 13 surveys of M-QN-1" in page
    assert "Upload a survey" not in page  # a regulator does not upload
    # the report opens in place (the regulator's token, the report's CSP)
    rep = c.get(f"/api/v1/surveys/{ids['b']}/report.html",
                headers={"Authorization": f"Bearer {world.tokens['reg-qn']}"})  # fmt: skip
    assert rep.status_code == 200 and "report of b" in rep.text
    assert rep.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in rep.headers["content-security-policy"]


def test_contractor_sees_only_their_own_surveys(
    site: tuple[TestClient, dict[str, int]], world: Any
) -> None:
    c, ids = site
    page = _page(c, world, "con-a", "M-QN-1").text
    latest = page.split('id="latest-survey"', 1)[1].split("</div>", 1)[0]
    assert f'data-survey="{ids["pit"]}"' in latest and "open pit" in latest
    assert "boundary" in latest and "one_wall" in latest and "3 incident(s)" in latest
    assert f'data-survey="{ids["b"]}"' not in page and "con-b" not in page
    assert "All 12 surveys of M-QN-1" in page
    assert "Upload a survey of M-QN-1" in page
    other = _page(c, world, "con-b", "M-QN-1").text
    assert f'data-survey="{ids["b"]}"' in other and f'data-survey="{ids["pit"]}"' not in other
    # and the same by the API: another contractor's survey is not found
    h = {"Authorization": f"Bearer {world.tokens['con-b']}"}
    assert c.get(f"/api/v1/surveys/{ids['pit']}", headers=h).status_code == 404
    assert c.get(f"/api/v1/surveys/{ids['pit']}/report.html", headers=h).status_code == 404
    listed = [s["id"] for s in c.get("/api/v1/surveys?mine=M-QN-1", headers=h).json()]
    assert listed == [ids["b"]]
    # a mine not assigned to them
    assert _page(c, world, "con-b", "M-QN-2").status_code == 404


def test_viewer_reads_and_other_county_is_404(
    site: tuple[TestClient, dict[str, int]], world: Any
) -> None:
    c, ids = site
    page = _page(c, world, "viewer-qn", "M-QN-2").text
    table = page.split('id="mine-surveys"', 1)[1].split("</table>", 1)[0]
    assert f'data-survey="{ids["qn2"]}"' in table and "running" in table
    assert "No checked survey of this mine yet" in page
    assert "Upload a survey" not in page
    assert _page(c, world, "reg-qn", "M-AN-1").status_code == 404
    # a mine without surveys
    assert "No checked survey of this mine yet" in _page(c, world, "reg-qz", "M-LS-1").text

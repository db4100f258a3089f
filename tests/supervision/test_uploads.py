"""Survey uploads end to end over real HTTP: a platform server (``minegate
platform serve``), Redis, and ``minegate platform worker`` processes on
Dramatiq. Contractors assigned by a regulator upload the sample's scans
(multipart, and tus cut at half and resumed by ``minegate survey upload``),
the checks run as jobs, findings and report are served in scope, and a
violation raises the mine's alert. Bad uploads and authorisation refused;
a worker killed mid-check leaves its job to another, done once."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import helpers, servers

ROOT = Path(__file__).resolve().parents[2]
CONTRACTOR_MAX_MB = 30
MULTIPART_MAX_MB = 25
FILETYPE = "YXBwbGljYXRpb24vb2N0ZXQtc3RyZWFt"  # application/octet-stream, base64 (tus metadata)


@dataclass
class Platform:
    url: str
    home: Path
    config: Path
    uploads: Path
    tokens: dict[str, str]
    env: dict[str, str]
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def api(self, method: str, path: str, user: str | None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        headers.update(kw.pop("headers", {}))
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def start_worker(self) -> subprocess.Popen[bytes]:
        log = (self.home / f"worker{len(self.workers)}.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway.cli", "platform", "worker", "--config", str(self.config)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env,
        )  # fmt: skip
        self.workers.append(proc)
        return proc

    def worker_logs(self) -> str:
        return "".join(p.read_text() for p in sorted(self.home.glob("worker*.log")))

    def wait_survey(self, sid: int, user: str = "con-a", timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.api("GET", f"/api/v1/surveys/{sid}", user).json()
            if s["state"] in ("done", "failed"):
                return dict(s)
            assert time.monotonic() < deadline, (s, self.worker_logs()[-3000:])
            time.sleep(0.2)

    def multipart(self, user: str, mine: str, *files: tuple[str, bytes]) -> httpx.Response:
        return self.api(
            "POST", f"/api/v1/mines/{mine}/surveys", user,
            files=[("file", (name, data)) for name, data in files],
        )  # fmt: skip


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from survey.sample import write_sample

    out = tmp_path_factory.mktemp("sample")
    write_sample(out, density=8.0)
    return out


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory, sample: Path) -> Iterator[Platform]:
    from sqlalchemy import update

    from supervision.auth import service as auth
    from supervision.auth.models import User
    from supervision.db import make_engine, make_sessionmaker
    from supervision.db.migrate import upgrade
    from supervision.registry.models import Mine

    home = tmp_path_factory.mktemp("platform")
    redis = servers.redis_server(home)
    broker = servers.mosquitto(home / "mosquitto").start()  # the findings' sink
    engine = make_engine(f"sqlite:///{home / 'platform.db'}")
    upgrade(engine)
    now = time.time_ns()
    world = helpers.build_world(engine, now_ns=now)
    with make_sessionmaker(engine)() as db, db.begin():
        db.execute(update(Mine).values(licence_file=str(sample / "licence.toml")))
        for name in ("con-a", "con-b"):
            user = auth.create_user(db, name, "contractor", now_ns=now)
            world.tokens[name] = auth.issue_token(db, user, now_ns=now)
        con_a = db.query(User).filter_by(name="con-a").one()
        world.tokens["expired"] = auth.issue_token(db, con_a, now_ns=now - 10**12, ttl_s=1)
    engine.dispose()
    port = servers.free_port()
    config = home / "platform.toml"
    config.write_text(
        f'[server]\nport = {port}\n[database]\nurl = "sqlite:///platform.db"\n'
        "[mqtt]\nenabled = false\n[alerting]\nevaluate_interval_s = 0.5\n"
        f'[uploads]\ndir = "uploads"\nmultipart_max_mb = {MULTIPART_MAX_MB}\nzip_max_files = 8\n'
        f"max_mb = {{contractor = {CONTRACTOR_MAX_MB}, admin = 100}}\n"
        f'[jobs]\nengine = "dramatiq"\nredis_url = "redis://127.0.0.1:{redis.port}/0"\n'
        "lease_s = 3\npoll_s = 0.5\n"
        "[publish]\npoll_s = 0.5\n"
        f'[[publish.sinks]]\nname = "mqtt"\ntype = "mqtt"\nhost = "127.0.0.1"\nport = {broker.port}\n'
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)}
    env.pop("MINEGATE_TOKEN", None)
    server = servers.Server(
        "platform",
        [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(config)],
        port, home, lambda: servers.http_status(f"http://127.0.0.1:{port}/healthz") == 200,
    )  # fmt: skip
    old = dict(os.environ)
    os.environ.update(env)
    try:
        server.start(timeout=60)
    finally:
        os.environ.clear()
        os.environ.update(old)
    p = Platform(f"http://127.0.0.1:{port}", home, config, home / "uploads", world.tokens, env)
    # the regulator of the county assigns the contractors (con-b elsewhere)
    for con, mine in (("con-a", "M-QN-1"), ("con-a", "M-QN-2"), ("con-b", "M-LS-1")):
        who = "reg-qn" if mine.startswith("M-QN") else "reg-qz"
        r = p.api("PUT", f"/api/v1/contractors/{con}/mines/{mine}", who)
        assert r.status_code == 200, r.text
    p.start_worker()
    try:
        yield p
    finally:
        for w in p.workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in p.workers:
            try:
                w.wait(15)
            except subprocess.TimeoutExpired:
                w.kill()
        server.stop()
        redis.stop()
        broker.stop()


def test_assignment_is_scoped(plat: Platform) -> None:
    # a county regulator cannot assign to another county's mine; a viewer not at all
    assert plat.api("PUT", "/api/v1/contractors/con-b/mines/M-AN-1", "reg-qn").status_code == 404
    assert plat.api("PUT", "/api/v1/contractors/con-b/mines/M-QN-1", "viewer-qn").status_code == 403
    assert plat.api("PUT", "/api/v1/contractors/reg-qz/mines/M-QN-1", "reg-qn").status_code == 404
    me = plat.api("GET", "/api/v1/me", "con-a").json()
    assert me["role"] == "contractor" and "upload" in me["permissions"]
    mines = {m["code"] for m in plat.api("GET", "/api/v1/mines", "con-a").json()}
    assert mines == {"M-QN-1", "M-QN-2"}


def test_violating_scan_multipart_raises_the_alert(plat: Platform, sample: Path) -> None:
    data = (sample / "violation.las").read_bytes()
    r = plat.multipart("con-a", "M-QN-1", ("violation.las", data))
    assert r.status_code == 201, r.text
    created = r.json()
    assert not created["duplicate"]
    s = plat.wait_survey(created["id"])
    assert s["state"] == "done", s
    assert s["verdict"] == "violations found" and s["incidents"] > 0
    assert s["uploader"] == "con-a" and s["mine"] == "M-QN-1" and s["via"] == "multipart"
    import hashlib

    assert s["files"] == [
        {"name": "violation.las", "kind": "scan", "format": "las", "size": len(data),
         "sha256": hashlib.sha256(data).hexdigest(), "archive": None}
    ]  # fmt: skip
    findings = plat.api("GET", s["findings_url"], "con-a").json()
    assert findings["verdict"] == "violations found"
    assert len(findings["incidents"]) == s["incidents"]
    assert findings["sources"][0]["path"] == "violation.las"
    report = plat.api("GET", s["report_url"], "reg-qn")
    assert report.status_code == 200 and "<html" in report.text.lower()
    assert "default-src 'none'" in report.headers["content-security-policy"]
    # the regulator sees the mine's survey alert
    deadline = time.monotonic() + 30
    while True:
        alerts = plat.api("GET", "/api/v1/alerts", "reg-qn").json()
        hits = [a for a in alerts if a["kind"] == "survey_violation"]
        if hits:
            break
        assert time.monotonic() < deadline, alerts
        time.sleep(0.2)
    assert hits[0]["severity"] == "critical"
    assert hits[0]["evidence"]["survey"] == created["id"]
    # the findings, made by the worker's job, sent by the service to the sink
    deadline = time.monotonic() + 30
    while True:
        published = plat.api("GET", f"/api/v1/surveys/{created['id']}", "con-a").json()["published"]
        if published and published[0]["sent_ns"]:
            break
        assert time.monotonic() < deadline, published
        time.sleep(0.2)
    assert [p["sink"] for p in published] == ["mqtt"]
    # the same file again: recognised, not checked again
    again = plat.multipart("con-a", "M-QN-1", ("renamed.las", data)).json()
    assert again == {**created, "duplicate": True, "state": "done"}
    # another contractor, another mine: nothing of it to see
    assert plat.api("GET", f"/api/v1/surveys/{created['id']}", "con-b").status_code == 404
    assert plat.api("GET", s["report_url"], "con-b").status_code == 404
    assert plat.api("GET", "/api/v1/surveys", "con-b").json() == []


def test_compliant_scan_by_tus_cut_and_resumed(plat: Platform, sample: Path) -> None:
    from tusclient.client import TusClient
    from tusclient.storage.filestorage import FileStorage

    scan = sample / "compliant.las"
    size = scan.stat().st_size
    store = plat.home / ".cache" / "minegate" / "tus-uploads.json"
    store.parent.mkdir(parents=True, exist_ok=True)
    client = TusClient(
        plat.url + "/api/v1/tus/", headers={"Authorization": f"Bearer {plat.tokens['con-a']}"}
    )
    first = client.uploader(
        file_path=str(scan), chunk_size=size // 8, metadata={"filename": scan.name, "filetype": "application/octet-stream", "mine": "M-QN-2"},
        store_url=True, url_storage=FileStorage(str(store)),
    )  # fmt: skip
    first.upload(stop_at=size // 2)  # the link breaks half way
    tus_dir = plat.uploads / "tus"
    partial = [p for p in tus_dir.rglob("*") if p.is_file() and p.suffix != ".info"]
    assert len(partial) == 1 and 0 < partial[0].stat().st_size < size
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "survey", "upload", str(scan), "--mine", "M-QN-2",
         "--server", plat.url, "--quiet", "--description", "east drift, December"],
        env={**plat.env, "MINEGATE_TOKEN": plat.tokens["con-a"]},
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "COMPLIANT" in proc.stdout and "report: http://" in proc.stdout, proc.stdout
    # the cut upload was resumed (no new one left behind) and used up
    assert [p for p in tus_dir.rglob("*") if p.is_file()] == []
    surveys = plat.api("GET", "/api/v1/surveys?mine=M-QN-2", "con-a").json()
    assert surveys[0]["via"] == "tus" and surveys[0]["description"] == "east drift, December"
    assert surveys[0]["files"][0]["size"] == size
    report_url = proc.stdout.split("report: ", 1)[1].split()[0]
    assert (
        httpx.get(
            report_url, headers={"Authorization": f"Bearer {plat.tokens['reg-qn']}"}
        ).status_code
        == 200
    )


def _tus(plat: Platform, user: str, name: str, data: bytes, mine: str = "M-QN-1") -> str:
    """A finished tus upload of ``data`` by plain requests; its id."""
    import base64

    meta = ",".join(
        f"{k} {base64.b64encode(v.encode()).decode()}"
        for k, v in (("filename", name), ("filetype", "application/octet-stream"), ("mine", mine))
    )
    head = {"Tus-Resumable": "1.0.0"}
    r = plat.api("POST", "/api/v1/tus/", user,
                 headers={**head, "Upload-Length": str(len(data)), "Upload-Metadata": meta})  # fmt: skip
    assert r.status_code == 201, r.text
    uid = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    r = plat.api("PATCH", f"/api/v1/tus/{uid}", user, content=data, headers={
        **head, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"})  # fmt: skip
    assert r.status_code == 204, r.text
    return uid


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_bad_uploads_refused(plat: Platform, sample: Path) -> None:
    las = (sample / "violation.las").read_bytes()[:4096]
    cases = [
        (("scan.csv", las), 422, "the bytes are a LAS/LAZ file"),
        (("scan.las", b"1 2 3\n4 5 6\n"), 422, "do not start like one"),
        (("tool.exe", b"MZ..."), 422, "unknown file type '.exe'"),
        (("notes.md", b"# east drift\n"), 422, "no scan or point file"),
        (("bomb.zip", _zip({"a.xyz": b"0" * 5_000_000})), 422, "inflates more than"),
        (("many.zip", _zip({f"p{i}.xyz": b"1 2 3\n" for i in range(9)})), 422, "at most 8"),
        (("nested.zip", _zip({"inner.zip": _zip({"a.xyz": b"1 2 3\n"})})), 422, "not a survey file type"),
        (("fake.zip", b"PK\x03\x04 not really"), 422, "not a readable zip"),
    ]  # fmt: skip
    for (name, data), status, message in cases:
        r = plat.multipart("con-a", "M-QN-1", (name, data))
        assert r.status_code == status, (name, r.text)
        assert message in r.json()["detail"], (name, r.text)
    # larger than the plain upload takes: refused before a byte is stored
    big = b"0" * (MULTIPART_MAX_MB * 1_000_000 + 1)
    r = plat.multipart("con-a", "M-QN-1", ("big.xyz", big))
    assert r.status_code == 413 and "through tus" in r.json()["detail"]
    # larger than a contractor may upload by tus: refused at creation
    tus_headers = {
        "Tus-Resumable": "1.0.0",
        "Upload-Length": str(CONTRACTOR_MAX_MB * 10**6 + 1),
        "Upload-Metadata": f"filename YS54eXo=,filetype {FILETYPE},mine TS1RTi0x",
    }  # a.xyz, M-QN-1
    r = plat.api("POST", "/api/v1/tus/", "con-a", headers=tus_headers)
    assert r.status_code == 413, r.text
    # data with the creation request would be read whole into memory: refused
    small = {**tus_headers, "Upload-Length": "6"}
    r = plat.api("POST", "/api/v1/tus/", "con-a", headers=small, content=b"1 2 3\n")
    assert r.status_code == 413 and "PATCH" in r.json()["detail"], r.text
    # a survey of tus uploads, one of them mislabelled: refused whole, and the
    # good upload can still be used
    good = _tus(plat, "con-a", "pts.xyz", b"562100.0 2430100.0 10.0\n")
    bad = _tus(plat, "con-a", "scan.las", b"562100.0 2430100.0 10.0\n")
    r = plat.api("POST", "/api/v1/mines/M-QN-1/surveys/tus", "con-a", json={"uploads": [good, bad]})
    assert r.status_code == 422 and "scan.las" in r.json()["detail"], r.text
    r = plat.api("POST", "/api/v1/mines/M-QN-1/surveys/tus", "con-a", json={"uploads": [good]})
    assert r.status_code == 201, r.text
    taken = plat.api("GET", r.json()["url"], "con-a").json()
    assert [f["name"] for f in taken["files"]] == ["pts.xyz"] and taken["via"] == "tus"
    plat.wait_survey(taken["id"])  # the worker free again for the tests after
    # nothing of the refused files is kept, nothing is written outside the store
    assert list((plat.uploads / "incoming").iterdir()) == []
    # a name with a path in an archive never reaches a path; a broken scan
    # ends as a failed survey with the check's own message
    r = plat.multipart(
        "con-a", "M-QN-1",
        ("bundle.zip", _zip({"../../../../tmp/evil.md": b"# note\n", "sub/broken.las": b"LASF" + b"\0" * 300})),
    )  # fmt: skip
    assert r.status_code == 201, r.text
    s = plat.wait_survey(r.json()["id"])
    assert [(f["name"], f["archive"]) for f in s["files"]] == [
        ("evil.md", "bundle.zip"),
        ("broken.las", "bundle.zip"),
    ]
    assert not Path("/tmp/evil.md").exists()
    assert all(p.resolve().is_relative_to(plat.uploads.resolve()) for p in plat.uploads.rglob("*"))
    assert s["state"] == "failed" and "broken.las" in s["message"], s
    assert str(plat.uploads) not in s["message"]


def test_authorisation(plat: Platform, sample: Path) -> None:
    data = (sample / "compliant.las").read_bytes()
    assert plat.multipart("con-b", "M-QN-1", ("c.las", data)).status_code == 404  # not assigned
    assert plat.multipart("viewer-qn", "M-QN-1", ("c.las", data)).status_code == 403
    assert plat.multipart("expired", "M-QN-1", ("c.las", data)).status_code == 401
    plat.tokens["wrong"] = "not-a-token"
    assert plat.multipart("wrong", "M-QN-1", ("c.las", data)).status_code == 401
    assert plat.multipart(None, "M-QN-1", ("c.las", data)).status_code == 401
    tus = {"Tus-Resumable": "1.0.0", "Upload-Length": "10",
           "Upload-Metadata": f"filename YS54eXo=,filetype {FILETYPE},mine TS1RTi0x"}  # fmt: skip
    assert plat.api("POST", "/api/v1/tus/", "con-b", headers=tus).status_code == 404
    assert plat.api("POST", "/api/v1/tus/", "viewer-qn", headers=tus).status_code == 403
    assert plat.api("POST", "/api/v1/tus/", "expired", headers=tus).status_code == 401
    r = plat.api("POST", "/api/v1/tus/", "con-a", headers=tus)
    assert r.status_code == 201, r.text
    uid = r.headers["location"].rstrip("/").rsplit("/", 1)[-1]
    head = {"Tus-Resumable": "1.0.0"}
    assert plat.api("HEAD", f"/api/v1/tus/{uid}", "con-a", headers=head).status_code == 200
    assert plat.api("HEAD", f"/api/v1/tus/{uid}", "con-b", headers=head).status_code == 404
    # another's upload cannot be made into a survey either
    r = plat.api("POST", "/api/v1/mines/M-LS-1/surveys/tus", "con-b", json={"uploads": [uid]})
    assert r.status_code == 404
    r = plat.api("POST", "/api/v1/mines/M-QN-1/surveys/tus", "con-a", json={"uploads": [uid]})
    assert r.status_code == 409 and "not finished" in r.json()["detail"]
    # the CLI says what is wrong, exit 2
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "survey", "upload", str(sample / "compliant.las"),
         "--mine", "M-QN-1", "--server", plat.url, "--quiet"],
        env={**plat.env, "MINEGATE_TOKEN": "not-a-token"}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 2 and "token is wrong" in proc.stderr, proc.stderr


def test_worker_killed_mid_check(plat: Platform, tmp_path: Path) -> None:
    from survey.sample import write_sample

    big = write_sample(tmp_path, density=40.0).directory / "violation.las"
    assert plat.workers[0].poll() is None
    r = plat.multipart("con-a", "M-QN-2", ("dense.las", big.read_bytes()))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    deadline = time.monotonic() + 60
    while plat.api("GET", f"/api/v1/surveys/{sid}", "con-a").json()["state"] != "running":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    plat.workers[0].kill()  # SIGKILL mid-check: no chance to clean up
    plat.workers[0].wait(10)
    plat.start_worker()
    s = plat.wait_survey(sid)
    assert s["state"] == "done" and s["verdict"] == "violations found", s
    assert s["attempts"] == 2
    # compared with the mine's previous survey (the compliant one sent by tus)
    earlier = [
        x
        for x in plat.api("GET", "/api/v1/surveys?mine=M-QN-2", "con-a").json()
        if x["via"] == "tus"
    ]
    assert s["values"]["changes"]["since_survey"] == earlier[0]["id"]
    assert s["values"]["changes"]["new_incidents"] > 0  # the violating workings are new
    assert plat.worker_logs().count(f"job {plat_job(plat, sid)}: done") == 1
    assert len(list((plat.uploads / "results" / str(sid)).iterdir())) == 1


def plat_job(plat: Platform, sid: int) -> int:
    import sqlite3

    with sqlite3.connect(plat.home / "platform.db") as conn:
        row = conn.execute("SELECT id FROM job WHERE survey_id = ?", (sid,)).fetchone()
    return int(row[0])


def test_recheck_and_the_same_bytes_again_by_tus(plat: Platform, sample: Path) -> None:
    # bytes already stored (the compliant scan of another survey, or not):
    # the finished tus upload's data file is used up either way
    data = (sample / "compliant.las").read_bytes()

    def left() -> set[Path]:  # what other tests' refused uploads left to be used again
        return {p for p in (plat.uploads / "tus").rglob("*") if p.is_file()}

    before = left()
    for _ in range(2):
        uid = _tus(plat, "con-a", "again.las", data, mine="M-QN-1")
        r = plat.api("POST", "/api/v1/mines/M-QN-1/surveys/tus", "con-a", json={"uploads": [uid]})
        assert r.status_code == 201, r.text
        assert left() == before
    first = plat.wait_survey(r.json()["id"])
    assert first["state"] == "done"
    # a re-check: a new survey of the same stored files, its own job and result
    r = plat.api("POST", f"/api/v1/surveys/{first['id']}/recheck", "con-a",
                 json={"note": "licence amended"})  # fmt: skip
    assert r.status_code == 201, r.text
    again = r.json()
    assert again["id"] != first["id"] and not again["duplicate"]
    busy = plat.api("POST", f"/api/v1/surveys/{again['id']}/recheck", "con-a")
    assert busy.status_code in (201, 409), busy.text  # 409 while queued or running
    s = plat.wait_survey(again["id"])
    assert s["state"] == "done" and s["verdict"] == first["verdict"], s
    assert s["via"] == "recheck" and s["uploader"] == "con-a"
    assert s["description"] == f"re-check of survey {first['id']}: licence amended"
    assert s["files"] == first["files"] and s["report_url"] != first["report_url"]
    if busy.status_code == 201:
        plat.wait_survey(busy.json()["id"])
    # out of scope, or not allowed to upload: refused as for an upload
    assert plat.api("POST", f"/api/v1/surveys/{first['id']}/recheck", "con-b").status_code == 404
    assert plat.api("POST", f"/api/v1/surveys/{first['id']}/recheck", "reg-qn").status_code == 403
    assert plat.api("POST", f"/api/v1/surveys/{first['id']}/recheck", None).status_code == 401

"""Open-pit surveys through the platform, and the findings of checked
uploads published through the gateway's sinks, over real HTTP: a
``minegate platform serve`` (embedded jobs) whose ``[[publish.sinks]]`` are
a real mosquitto (up) and a real InfluxDB 1.x (down when the check ends,
started later: the findings wait in the outbox and arrive). A contractor
uploads the open-pit sample (two DSM flights, the orthophoto, the slope
design); the check-pit check runs as the job, its findings and report are
served, the mine's survey alert fires with the kinds of violation."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from .conftest import helpers, servers

ROOT = Path(__file__).resolve().parents[2]
DB = "findings"


@dataclass
class Plat:
    url: str
    home: Path
    tokens: dict[str, str]
    influx: servers.Server
    mqtt_port: int
    vm_url: str

    def api(self, method: str, path: str, user: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"}
        return httpx.request(method, self.url + path, headers=headers, timeout=60, **kw)

    def wait_survey(self, sid: int, timeout: float = 180) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            s = self.api("GET", f"/api/v1/surveys/{sid}", "con-a").json()
            if s["state"] in ("done", "failed"):
                return dict(s)
            assert time.monotonic() < deadline, (s, (self.home / "serve.log").read_text()[-3000:])
            time.sleep(0.3)

    def outbox(self) -> list[tuple[Any, ...]]:
        con = sqlite3.connect(f"file:{self.home / 'platform.db'}?mode=ro", uri=True)
        try:
            return con.execute(
                "SELECT survey_id, sink, sent_ns, attempts, error FROM publish_outbox ORDER BY id"
            ).fetchall()
        finally:
            con.close()


@pytest.fixture(scope="module")
def pit(pit_sample: Path) -> Path:
    return pit_sample


@pytest.fixture(scope="module")
def plat(tmp_path_factory: pytest.TempPathFactory, pit: Path) -> Iterator[Plat]:
    from sqlalchemy import update

    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel, Scope
    from supervision.db import make_engine, make_sessionmaker
    from supervision.db.migrate import upgrade
    from supervision.registry.models import Mine

    home = tmp_path_factory.mktemp("platform")
    broker = servers.mosquitto(home / "mosquitto").start()
    influx = servers.influxd(home / "influxd")  # not started: down when the check ends
    vm = servers.victoria(home / "vm").start()
    from survey.sample import write_sample

    underground = write_sample(home / "underground", density=8.0).directory
    engine = make_engine(f"sqlite:///{home / 'platform.db'}")
    upgrade(engine)
    now = time.time_ns()
    world = helpers.build_world(engine, now_ns=now)
    admin = auth.Principal(0, "admin", "admin", Scope(AreaLevel.ALL), "test")
    with make_sessionmaker(engine)() as db, db.begin():
        db.execute(update(Mine).values(licence_file=str(pit / "licence.toml")))
        db.execute(
            update(Mine)
            .where(Mine.code == "M-LS-1")
            .values(licence_file=str(underground / "licence.toml"))
        )
        user = auth.create_user(db, "con-a", "contractor", now_ns=now)
        for mine in ("M-QN-1", "M-QN-2", "M-LS-1"):
            auth.assign_contractor(db, admin, "con-a", mine, now_ns=now)
        world.tokens["con-a"] = auth.issue_token(db, user, now_ns=now)
    engine.dispose()
    port = servers.free_port()
    config = home / "platform.toml"
    config.write_text(
        f'[server]\nport = {port}\n[database]\nurl = "sqlite:///platform.db"\n'
        '[mqtt]\nenabled = false\n[alerting]\nevaluate_interval_s = 0.5\n[uploads]\ndir = "uploads"\n'
        "[publish]\nretry_initial_s = 0.5\nretry_max_s = 2\npoll_s = 0.5\n"
        '[[publish.sinks]]\nname = "influx"\ntype = "influxdb_v1"\n'
        f'url = "http://127.0.0.1:{influx.port}"\ndatabase = "{DB}"\ntimeout_s = 2\n'
        '[[publish.sinks]]\nname = "mqtt"\ntype = "mqtt"\nhost = "127.0.0.1"\n'
        f"port = {broker.port}\n"
        '[[publish.sinks]]\nname = "vm"\ntype = "influxdb_v2"\n'
        f'url = "{vm.url}"\nbucket = "surveys"\n'
    )
    log = (home / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "platform", "serve", "--config", str(config)],
        stdout=log, stderr=subprocess.STDOUT, cwd=home,
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(home)},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while servers.http_status(f"{url}/healthz") != 200:
            assert proc.poll() is None, (home / "serve.log").read_text()
            assert time.monotonic() < deadline, (home / "serve.log").read_text()
            time.sleep(0.2)
        yield Plat(url, home, world.tokens, influx, broker.port, vm.url)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        influx.stop()
        vm.stop()
        broker.stop()


def _subscriber(port: int) -> tuple[Any, list[Any]]:
    import paho.mqtt.client as mqtt

    got: list[Any] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="f13-findings-listener")
    sub.on_message = lambda _c, _u, m: got.append(m)
    sub.connect("127.0.0.1", port)
    sub.subscribe("minegate/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)  # the subscription is in place
    return sub, got


def test_pit_survey_checked_alerted_and_published(plat: Plat, pit: Path) -> None:
    sub, got = _subscriber(plat.mqtt_port)
    try:
        names = ("dsm_2026-09-01.tif", "ortho_2026-09-01.tif", "dsm_2026-03-01.tif", "design.toml")
        r = plat.api("POST", "/api/v1/mines/M-QN-1/surveys", "con-a", files=[
            ("file", (n, (pit / n).read_bytes())) for n in names])  # fmt: skip
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        s = plat.wait_survey(sid)
        assert s["state"] == "done", s
        assert [f["kind"] for f in s["files"]] == ["raster", "raster", "raster", "design"]
        assert [f["format"] for f in s["files"]] == ["tif", "tif", "tif", "toml"]
        # the sample's answers (EXPECTED.txt): every kind of violation it holds
        assert s["verdict"] == "violations found"
        v = s["values"]
        assert v["open_pit"] and v["dsm"] == "dsm_2026-09-01.tif", v
        assert v["earlier"] == "dsm_2026-03-01.tif"
        assert {"boundary", "below_range", "one_wall", "steep_face", "out_of_order"} <= set(
            v["kinds"]
        ), v
        assert s["incidents"] == v["beyond_licence"] + v["bench_violations"] + v["out_of_order"]
        expected = json.loads((pit / "expected.json").read_text())
        cut = (
            expected["between_surveys"]["cut_inside_m3"]
            + expected["between_surveys"]["cut_outside_m3"]
        )
        assert v["cut_m3"] == pytest.approx(cut, rel=0.05)
        # findings and report: check-pit's, the client's names shown, no stored path
        findings = plat.api("GET", s["findings_url"], "con-a")
        assert findings.status_code == 200
        doc = findings.json()
        assert doc["open_pit"] and doc["check_id"] == s["check_id"]
        assert {src["path"] for src in doc["sources"]} == {
            "dsm_2026-09-01.tif", "ortho_2026-09-01.tif", "dsm_2026-03-01.tif"}  # fmt: skip
        assert "blobs/" not in findings.text and str(plat.home) not in findings.text
        report = plat.api("GET", s["report_url"], "reg-qn")
        assert report.status_code == 200 and "one_wall" in report.text.replace(" ", "_")
        # the mine's survey alert, with the kinds
        deadline = time.monotonic() + 30
        while True:
            alerts = [a for a in plat.api("GET", "/api/v1/alerts", "reg-qn").json()
                      if a["kind"] == "survey_violation"]  # fmt: skip
            if alerts:
                break
            assert time.monotonic() < deadline
            time.sleep(0.3)
        [alert] = alerts
        assert alert["evidence"]["survey"] == sid and "one_wall" in alert["evidence"]["kinds"]
        assert "one_wall" in alert["summary"]
        # MQTT (up): the check's records on the survey topic and the alert topic
        deadline = time.monotonic() + 20
        while not any(m.topic == "minegate/platform/uploads/alerts/survey" for m in got):
            assert time.monotonic() < deadline, [m.topic for m in got]
            time.sleep(0.1)
    finally:
        sub.loop_stop()
        sub.disconnect()
    topics = {m.topic for m in got}
    assert f"minegate/platform/uploads/survey/{s['check_id']}" in topics, topics
    check = next(
        json.loads(m.payload)
        for m in got
        if m.topic.endswith(s["check_id"])
        and json.loads(m.payload)["fields"].get("measurement") == "survey_check"
    )
    assert check["fields"]["tags"]["mine_code"] == "M-QN-1"
    assert check["fields"]["tags"]["survey"] == str(sid)
    # InfluxDB (down): the findings wait in the outbox, tried again
    deadline = time.monotonic() + 20
    while True:
        rows = {row[1]: row for row in plat.outbox() if row[0] == sid}
        if rows.get("influx", (0, 0, None, 0))[3] >= 2:
            break
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)
    assert rows["mqtt"][2] is not None  # sent
    assert rows["influx"][2] is None and "influx" in rows and rows["influx"][4], rows
    shown = {
        p["sink"]: p for p in plat.api("GET", f"/api/v1/surveys/{sid}", "con-a").json()["published"]
    }
    assert shown["mqtt"]["sent_ns"] is not None and shown["influx"]["sent_ns"] is None
    assert shown["influx"]["error"] and shown["influx"]["attempts"] >= 2, shown
    # ... InfluxDB comes up: they arrive, once marked sent
    plat.influx.start()
    servers.influx_query(plat.influx.url, f'CREATE DATABASE "{DB}"', post=True)
    deadline = time.monotonic() + 30
    while True:
        found = servers.influx_rows(
            plat.influx.url, DB, f"SELECT * FROM survey_check WHERE check_id = '{s['check_id']}'"
        )
        if found:
            break
        assert time.monotonic() < deadline, plat.outbox()
        time.sleep(0.3)
    assert found[0]["mine_code"] == "M-QN-1" and found[0]["verdict"] == "violations found"
    incidents = servers.influx_rows(
        plat.influx.url, DB, f"SELECT * FROM survey_incident WHERE check_id = '{s['check_id']}'"
    )
    assert len(incidents) == v["beyond_licence"]
    deadline = time.monotonic() + 10
    while [row for row in plat.outbox() if row[0] == sid and row[2] is None]:
        assert time.monotonic() < deadline, plat.outbox()
        time.sleep(0.2)


def test_pit_dsm_as_esri_ascii_grid(plat: Plat, pit: Path, tmp_path: Path) -> None:
    """An ESRI ASCII grid is sniffed as a DSM and checked alone (no earlier flight)."""
    import numpy as np

    from survey.openpit.dsm import read_geotiff
    from survey.writers import write_esri_grid

    d = read_geotiff(pit / "dsm_2026-03-01.tif")
    z = d.z
    if d.north[0] > d.north[-1]:  # rows from the north: the grid writer wants them from the south
        z = z[::-1]
    asc = write_esri_grid(tmp_path / "flight.asc", d.east, np.sort(d.north), z)
    r = plat.api("POST", "/api/v1/mines/M-QN-2/surveys", "con-a",
                 files=[("file", ("flight.asc", asc.read_bytes()))])  # fmt: skip
    assert r.status_code == 201, r.text
    s = plat.wait_survey(r.json()["id"])
    assert s["state"] == "done", s
    assert s["files"][0]["kind"] == "raster" and s["files"][0]["format"] == "asc"
    assert s["verdict"] == "violations found" and "earlier" not in s["values"]
    assert {"boundary", "one_wall"} <= set(s["values"]["kinds"])
    # a file whose bytes are not what its name says is refused
    bad = plat.api("POST", "/api/v1/mines/M-QN-2/surveys", "con-a",
                   files=[("file", ("dsm.tif", b"ncols 3\nnrows 3\n"))])  # fmt: skip
    assert bad.status_code == 422 and "TIF" in bad.json()["detail"], bad.text
    grid = plat.api("POST", "/api/v1/mines/M-QN-2/surveys", "con-a",
                    files=[("file", ("dsm.asc", b"x y z\n1 2 3\n"))])  # fmt: skip
    assert grid.status_code == 422 and "ESRI ASCII grid" in grid.json()["detail"], grid.text
    only_ortho = plat.api("POST", "/api/v1/mines/M-QN-2/surveys", "con-a",
                          files=[("file", ("o.tif", (pit / "ortho_2026-09-01.tif").read_bytes()))])  # fmt: skip
    assert only_ortho.status_code == 201
    failed = plat.wait_survey(only_ortho.json()["id"])
    assert failed["state"] == "failed" and "no DSM" in failed["message"], failed
    # the next flight alone: the previous pit survey's DSM is its earlier flight
    r = plat.api("POST", "/api/v1/mines/M-QN-2/surveys", "con-a",
                 files=[("file", ("dsm_2026-09-01.tif", (pit / "dsm_2026-09-01.tif").read_bytes()))])  # fmt: skip
    assert r.status_code == 201, r.text
    later = plat.wait_survey(r.json()["id"])
    assert later["state"] == "done", later
    v = later["values"]
    assert v["earlier"] == f"flight.asc (survey {s['id']})" and v["since_survey"] == s["id"], v
    assert "out_of_order" in v["kinds"], v
    expected = json.loads((pit / "expected.json").read_text())["between_surveys"]
    assert v["cut_m3"] == pytest.approx(
        expected["cut_inside_m3"] + expected["cut_outside_m3"], rel=0.05
    )


def test_underground_findings_published(plat: Plat) -> None:
    """An underground check's records (``findings_records``, as ``survey
    check --publish``) reach VictoriaMetrics by the InfluxDB 2.x sink."""
    home = plat.home / "underground"
    data = (home / "violation.las").read_bytes()
    r = plat.api("POST", "/api/v1/mines/M-LS-1/surveys", "con-a",
                 files=[("file", ("v.las", data))])  # fmt: skip
    assert r.status_code == 201, r.text
    s = plat.wait_survey(r.json()["id"])
    assert s["state"] == "done" and s["verdict"] == "violations found", s
    deadline = time.monotonic() + 30
    while True:
        got = servers.vm_export(plat.vm_url, f'{{check_id="{s["check_id"]}"}}')
        names = {g["metric"]["__name__"] for g in got}
        if "survey_check_incidents" in names:
            break
        assert time.monotonic() < deadline, (names, plat.outbox())
        time.sleep(0.3)
    check = next(g for g in got if g["metric"]["__name__"] == "survey_check_incidents")
    assert check["values"] == [s["incidents"]]
    assert check["metric"]["mine_code"] == "M-LS-1" and check["metric"]["survey"] == str(s["id"])
    incidents = [
        g
        for g in got
        if g["metric"]["__name__"] == "survey_incident_volume_m3"
        and g["metric"]["within_uncertainty"] == "false"
    ]
    assert len(incidents) == s["incidents"]
    rows = {row[1]: row for row in plat.outbox() if row[0] == s["id"]}
    assert rows["vm"][2] is not None and rows["mqtt"][2] is not None, rows


def test_pit_from_cloud_and_mesh_with_explicit_kind(plat: Plat, pit: Path) -> None:
    """A photogrammetry delivery without a DSM raster: the dense cloud sent
    by ``minegate survey upload --open-pit`` (tus), the textured mesh by a
    multipart form with ``kind=open_pit``; each rasterised and checked as a
    pit (the sample's violations found), never guessed from the names."""
    proc = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "survey", "upload", str(pit / "cloud_2026-03-01.las"),
         str(pit / "design.toml"), "--mine", "M-QN-1", "--open-pit", "--server", plat.url,
         "--quiet"],
        env={**os.environ, "PYTHONPATH": str(ROOT), "HOME": str(plat.home),
             "MINEGATE_TOKEN": plat.tokens["con-a"]},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr  # violations, as survey check
    surveys = plat.api("GET", "/api/v1/surveys?mine=M-QN-1", "con-a").json()
    s = plat.wait_survey(surveys[0]["id"])
    assert s["kind"] == "open_pit" and s["via"] == "tus" and s["state"] == "done", s
    v = s["values"]
    assert v["open_pit"] and v["dsm"] == "cloud_2026-03-01.las", v
    assert {"boundary", "below_range", "one_wall", "steep_face"} <= set(v["kinds"]), v
    assert v["points"] > 100_000  # the cloud's points, rasterised
    doc = plat.api("GET", s["findings_url"], "con-a").json()
    assert doc["sources"][0]["path"] == "cloud_2026-03-01.las"
    # the mesh alone, by a multipart form
    mesh = (pit / "mesh_2026-03-01.obj").read_bytes()
    r = plat.api("POST", "/api/v1/mines/M-QN-1/surveys", "con-a",
                 data={"kind": "open_pit"}, files=[("file", ("mesh_2026-03-01.obj", mesh))])  # fmt: skip
    assert r.status_code == 201, r.text
    m = plat.wait_survey(r.json()["id"])
    assert m["kind"] == "open_pit" and m["state"] == "done", m
    assert m["values"]["dsm"] == "mesh_2026-03-01.obj"
    assert {"boundary", "one_wall"} <= set(m["values"]["kinds"]), m["values"]
    # a kind that is not one, and a DSM raster said to be underground: refused
    tif = (pit / "dsm_2026-09-01.tif").read_bytes()
    for kind, needle in (("quarry", "underground or open_pit"), ("underground", "open pit")):
        bad = plat.api("POST", "/api/v1/mines/M-QN-1/surveys", "con-a",
                       data={"kind": kind}, files=[("file", ("d.tif", tif))])  # fmt: skip
        assert bad.status_code == 422 and needle in bad.json()["detail"], bad.text

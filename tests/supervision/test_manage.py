"""Managing the registry and the users through the API and the pages
(SQLite and PostgreSQL): scope (a county regulator manages their county
only, a city regulator adds its counties, a viewer gets 403, another area's
objects 404), validation next to the field with nothing written, tokens
shown once, the audit trail per area, and a mine set suspended from the
page feeding the suspended-mine watch."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from supervision.app import create_app
from supervision.audit.models import AuditEvent
from supervision.auth.models import ApiToken
from supervision.config import PlatformConfig
from supervision.db import make_sessionmaker
from supervision.registry.models import Gateway, Mine

from .helpers import PASSWORD, T0, FakeClock
from .test_web_pages import LICENCE, csrf_of, login


@pytest.fixture
def client(engine: Engine, world: Any, tmp_path: Path) -> Iterator[TestClient]:
    config = PlatformConfig.model_validate(
        {"mqtt": {"enabled": False}, "uploads": {"dir": str(tmp_path / "uploads")}}
    )
    with TestClient(create_app(config, engine=engine, clock=FakeClock(), background=False)) as c:
        yield c


def bearer(world: Any, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[user]}"}


def count(engine: Engine, model: Any) -> int:
    with make_sessionmaker(engine)() as db:
        return int(db.scalar(select(func.count()).select_from(model)) or 0)


def test_api_scope_of_regulators(client: TestClient, world: Any, engine: Engine) -> None:
    qn, qz = bearer(world, "reg-qn"), bearer(world, "reg-qz")
    mine = {"county": "QN", "code": "M-QN-9", "name": "New QN mine"}
    assert client.post("/api/v1/mines", headers=qn, json=mine).status_code == 201
    r = client.post("/api/v1/mines", headers=qn, json={**mine, "county": "LS", "code": "M-LS-9"})
    assert r.status_code == 422 and "no county with code 'LS' in your area" in r.json()["detail"]
    # the same words for a county that does not exist: nothing disclosed
    r = client.post("/api/v1/mines", headers=qn, json={**mine, "county": "ZZ", "code": "M-ZZ"})
    assert r.json()["detail"] == "no county with code 'ZZ' in your area"
    ls = world.mines["M-LS-1"]
    assert (
        client.put(f"/api/v1/mines/{ls}/status", headers=qn, json={"status": "closed"}).status_code
        == 404
    )
    assert (
        client.put(f"/api/v1/mines/{ls}/status", headers=qz, json={"status": "closed"}).status_code
        == 200
    )
    # every field of a mine of the area; the changes come back in words
    qn1 = world.mines["M-QN-1"]
    edit = {"county": "QN", "name": "Qinnan iron", "baseline_power_kw": 12.5}
    r = client.put(f"/api/v1/mines/{qn1}", headers=qn, json=edit)
    assert r.status_code == 200
    assert r.json()["changes"] == [
        "name Qinnan iron mine → Qinnan iron",
        "baseline_power_kw — → 12.5",
    ]
    assert client.put(f"/api/v1/mines/{qn1}", headers=qn, json=edit).json()["changes"] == []
    assert client.put(f"/api/v1/mines/{ls}", headers=qn, json=edit).status_code == 404
    r = client.put(f"/api/v1/mines/{qn1}", headers=qn, json={**edit, "county": "LS"})
    assert r.status_code == 422  # moving it out of their area
    viewer = bearer(world, "viewer-qn")
    assert client.put(f"/api/v1/mines/{qn1}", headers=viewer, json=edit).status_code == 403
    # counties: a city regulator adds them to their city, a county regulator cannot
    county = {"code": "QB", "name": "Qinbei", "parent": "QZ"}
    assert client.post("/api/v1/counties", headers=qn, json=county).status_code == 422
    assert client.post("/api/v1/counties", headers=qz, json=county).status_code == 201
    r = client.post("/api/v1/counties", headers=qz, json={**county, "code": "X", "parent": "KM"})
    assert r.status_code == 422
    # regions and cities are the platform admins'
    assert (
        client.post("/api/v1/regions", headers=qz, json={"code": "HN", "name": "H"}).status_code
        == 403
    )
    # gateways: of a mine of the area; retire another county's: 404
    gw = {"mine": "M-LS-1", "site": "x", "name": "y"}
    assert client.post("/api/v1/gateways", headers=qn, json=gw).status_code == 422
    other = world.gateways["ls1/gw01"]
    assert client.delete(f"/api/v1/gateways/{other}", headers=qn).status_code == 404
    assert client.delete(f"/api/v1/gateways/{other}", headers=qz).status_code == 200
    assert count(engine, Gateway) == 3


def test_api_users_in_scope(client: TestClient, world: Any, engine: Engine) -> None:
    qn = bearer(world, "reg-qn")
    names = [u["name"] for u in client.get("/api/v1/users", headers=qn).json()]
    assert names == ["op-qn1", "reg-qn", "viewer-qn"]  # not the city's, region's or admin
    v = {"name": "viewer-qn2", "role": "viewer", "area": "county", "area_code": "QN"}
    assert client.post("/api/v1/users", headers=qn, json=v).status_code == 201
    r = client.post("/api/v1/users", headers=qn, json={**v, "name": "v-ls", "area_code": "LS"})
    assert r.status_code == 422 and "in your area" in r.json()["detail"]
    r = client.post(
        "/api/v1/users", headers=qn, json={**v, "name": "v-qz", "area": "city", "area_code": "QZ"}
    )
    assert r.status_code == 422  # above their own area
    r = client.post("/api/v1/users", headers=qn, json={"name": "root2", "role": "admin"})
    assert r.status_code == 422 and "only a platform admin" in r.json()["detail"]
    r = client.post("/api/v1/users", headers=qn, json={"name": "c1", "role": "contractor"})
    assert r.status_code == 422 and "first mine" in r.json()["detail"]
    r = client.post(
        "/api/v1/users", headers=qn, json={"name": "c1", "role": "contractor", "mine": "M-QN-1"}
    )
    assert r.status_code == 201
    # tokens: of the area's users; the city's regulator is not theirs: 404
    assert client.post("/api/v1/users/reg-qz/tokens", headers=qn, json={}).status_code == 404
    token = client.post("/api/v1/users/viewer-qn2/tokens", headers=qn, json={"label": "t"}).json()[
        "token"
    ]
    vh = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/me", headers=vh).json()["scope"].startswith("county:")
    assert (
        client.put(
            "/api/v1/users/viewer-qn2/active", headers=qn, json={"active": False}
        ).status_code
        == 200
    )
    assert client.get("/api/v1/me", headers=vh).status_code == 401
    assert (
        client.put("/api/v1/users/reg-qn/active", headers=qn, json={"active": False}).status_code
        == 422
    )
    # a viewer manages nobody
    assert client.get("/api/v1/users", headers=bearer(world, "viewer-qn")).status_code == 403


def _session(client: TestClient, user: str = "reg-qn", **cred: str) -> str:
    r = login(client, **(cred or {"username": user, "password": PASSWORD}))
    assert r.status_code == 303, r.text
    return csrf_of(client.get("/manage").text)


def _mine_form(**over: str) -> dict[str, str]:
    return {"code": "M-QN-5", "name": "Qinnan 5", "county": "QN", "status": "producing",
            "order_no": "", "order_from": "", "order_to": "", "baseline_power_kw": "",
            "licence_choice": "", **over}  # fmt: skip


def _field_error(html: str, field: str) -> str:
    m = re.search(rf'data-field="{field}" role="alert">([^<]*)<', html)
    assert m, f"no error next to {field}"
    return m.group(1)


def test_mine_form_validation_next_to_the_field(client: TestClient, engine: Engine) -> None:
    csrf = _session(client)
    before = count(engine, Mine)
    for over, field, words in (
        ({"order_from": "2026-13-01"}, "order_from", "YYYY-MM-DD"),
        ({"status": "suspended"}, "order_no", "order&#39;s number"),
        ({"status": "suspended", "order_no": "X-1", "order_from": "2026-12-05", "order_to": "2026-12-01"}, "order_to", "before it starts"),
        ({"baseline_power_kw": "-3"}, "baseline_power_kw", "&gt;= 0"),
        ({"baseline_power_kw": "lots"}, "baseline_power_kw", "a number"),
        ({"county": "LS"}, "county", "in your area"),
        ({"code": "M-QN-1"}, "code", "exists already"),
        ({"licence_choice": "/etc/passwd"}, "licence", "choose a licence"),
    ):  # fmt: skip
        r = client.post("/manage/mines/new", data={"csrf": csrf, **_mine_form(**over)})
        assert r.status_code == 422, over
        assert words in _field_error(r.text, field), (over, r.text)
        assert 'value="Qinnan 5"' in r.text  # what was typed stays in the form
    r = client.post("/manage/mines/new", data={"csrf": csrf, **_mine_form()},
                    files={"licence": ("../../evil.toml", b"not = [toml")})  # fmt: skip
    assert r.status_code == 422 and "not a valid licence" in _field_error(r.text, "licence")
    assert "Traceback" not in r.text and count(engine, Mine) == before
    assert count(engine, AuditEvent) == 0  # refused changes leave no trace either


def test_city_regulator_adds_a_mine_with_licence_and_suspends_it(
    client: TestClient, world: Any, engine: Engine, tmp_path: Path
) -> None:
    from supervision.alerting.service import gather_and_evaluate
    from supervision.config import AlertingSection
    from supervision.ingest.models import LatestValue

    csrf = _session(client, token=world.tokens["reg-qz"])
    r = client.post("/manage/mines/new", data={"csrf": csrf, **_mine_form(county="LS", code="M-LS-5")},
                    files={"licence": ("qinnan.toml", LICENCE.encode())}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303, r.text
    with make_sessionmaker(engine)() as db:
        mine = db.scalars(select(Mine).where(Mine.code == "M-LS-5")).one()
    assert mine.licence_file and Path(mine.licence_file).parent == tmp_path / "uploads" / "licences"
    assert "<svg" in client.get(f"/mines/{mine.id}").text  # the stored licence is drawn
    page = client.get(r.headers["location"]).text
    assert f'value="{mine.licence_file}" selected' in page  # the stored licence is the choice
    # register a gateway, then the power it draws over the baseline
    r = client.post(f"/manage/mines/{mine.id}/gateways", data={"csrf": csrf, "site": "ls5", "name": "gw01"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    with make_sessionmaker(engine)() as db, db.begin():
        gw = db.scalars(select(Gateway).where(Gateway.site == "ls5")).one()
        db.add(LatestValue(gateway_id=gw.id, device="power_meter_1", point="active_power",
                           value=80.0, number=80.0, unit="kW", quality="good", ts_ns=T0))  # fmt: skip
    form = _mine_form(county="LS", status="suspended", order_no="LS-2026-3", order_from="2026-11-20",
                      baseline_power_kw="30", licence_choice=mine.licence_file)  # fmt: skip
    del form["code"]

    def watch() -> list[Any]:
        with make_sessionmaker(engine)() as db:
            specs = gather_and_evaluate(db, T0, AlertingSection())
        return [
            s
            for s in specs.values()
            if s.kind == "suspected_illegal_production" and s.mine_id == mine.id
        ]

    assert watch() == []  # producing: nothing to watch
    r = client.post(f"/manage/mines/{mine.id}", data={"csrf": csrf, **form}, follow_redirects=False)
    assert r.status_code == 303
    assert "Saved." in client.get(r.headers["location"]).text
    [spec] = watch()  # the watch reads the registry: the change counts at once
    assert "above its baseline 30 kW" in spec.summary
    assert spec.evidence["power_total_kw"] == 80.0 and spec.evidence["power_above_baseline"]
    audit = client.get("/manage/audit").text
    assert "mine.status" in audit and "status producing → suspended" in audit
    # the county's regulator sees it too; another city's would not
    with make_sessionmaker(engine)() as db:
        rows = db.scalars(select(AuditEvent).where(AuditEvent.target == "mine M-LS-5")).all()
    assert {r.actor for r in rows} == {"reg-qz"} and {r.county_id for r in rows} == {mine.county_id}


def test_viewer_403_and_other_area_404_on_pages(
    client: TestClient, world: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "minegate.platform.auth")
    login(client, token=world.tokens["viewer-qn"])
    page = client.get("/").text
    assert 'href="/manage"' not in page  # no link to what they may not do
    for url in (
        "/manage",
        "/manage/users",
        "/manage/audit",
        f"/manage/mines/{world.mines['M-QN-1']}",
    ):
        assert client.get(url).status_code == 403, url
    r = client.post(f"/manage/mines/{world.mines['M-QN-1']}",
                    data={"csrf": csrf_of(page), **_mine_form(status="closed")})  # fmt: skip
    assert r.status_code == 403
    assert "refused 403 POST /manage/mines" in caplog.text
    client.cookies.clear()
    csrf = _session(client)
    ls = world.mines["M-LS-1"]
    assert client.get(f"/manage/mines/{ls}").status_code == 404
    r = client.post(f"/manage/mines/{ls}", data={"csrf": csrf, **_mine_form(county="LS")})
    assert r.status_code == 404
    r = client.post(f"/manage/gateways/{world.gateways['ls1/gw01']}/retire", data={"csrf": csrf})
    assert r.status_code == 404
    assert "refused 404 POST /manage/gateways" in caplog.text
    # forms without the session's CSRF token change nothing
    r = client.post(f"/manage/gateways/{world.gateways['qn1/gw01']}/retire", data={})
    assert r.status_code == 403


def test_users_tokens_shown_once_and_audited(
    client: TestClient, world: Any, engine: Engine
) -> None:
    csrf = _session(client)
    r = client.post(
        "/manage/users/new",
        data={"csrf": csrf, "name": "v2", "role": "viewer", "area": "county:LS"},
    )
    assert r.status_code == 422 and "in your area" in _field_error(r.text, "area")
    r = client.post("/manage/users/new", data={"csrf": csrf, "name": "v2", "role": "viewer", "area": "county:QN",
                                               "password": "short"})  # fmt: skip
    assert r.status_code == 422 and "at least 8" in _field_error(r.text, "password")
    r = client.post("/manage/users/new", data={"csrf": csrf, "name": "v2", "role": "viewer", "area": "county:QN"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    user_page = r.headers["location"]
    r = client.post(
        f"{user_page}/tokens", data={"csrf": csrf, "label": "phone", "days": "30"},
        follow_redirects=False,
    )  # fmt: skip
    assert r.status_code == 303 and r.headers["location"] == user_page
    r = client.get(user_page)
    assert r.headers["cache-control"] == "no-store"
    token = re.search(r'id="new-token">([^<]+)<', r.text)
    assert token and token.group(1).startswith("mgp_")
    assert "new-token" not in client.get(user_page).text  # shown once
    # a forged cookie shows nothing: only a token of this user would be
    client.cookies.set("minegate_new_token", "mgp_forged", path=user_page)
    assert "new-token" not in client.get(user_page).text
    with engine.connect() as conn:
        stored = [row[0] for row in conn.execute(select(ApiToken.token_sha256))]
    assert token.group(1) not in stored and len(stored) == len(world.tokens) + 1
    r = client.post(f"{user_page}/tokens", data={"csrf": csrf, "days": "-1"})
    assert r.status_code == 422 and "days" in _field_error(r.text, "days")
    assert client.post(f"{user_page}/active", data={"csrf": csrf, "active": "0"}).status_code == 200
    assert "disabled" in client.get("/manage/users").text
    other = TestClient(client.app)
    assert (
        other.get("/api/v1/me", headers={"Authorization": f"Bearer {token.group(1)}"}).status_code
        == 401
    )
    audit = client.get("/manage/audit").text
    for action in ("user.add", "token.issue", "user.disable"):
        assert action in audit
    assert token.group(1) not in audit
    # the region's regulator sees the county's changes; another region's admin-made ones stay apart
    client.cookies.clear()
    _session(client, token=world.tokens["reg-gx"])
    assert "user v2" in client.get("/manage/audit").text


def test_retiring_a_gateway_keeps_the_alert_history(
    client: TestClient, world: Any, engine: Engine
) -> None:
    from supervision.alerting.models import Alert
    from supervision.alerting.rules import AlertSpec
    from supervision.alerting.service import reconcile
    from supervision.ingest.models import GatewayLiveness, LatestValue

    gid, mine = world.gateways["qn1/gw01"], world.mines["M-QN-1"]
    fp = f"gateway_offline:{gid}"
    with make_sessionmaker(engine)() as db, db.begin():
        reconcile(
            db, {fp: AlertSpec(fp, "gateway_offline", mine, gid, "major", "qn1/gw01 offline")}, T0
        )
        db.add(GatewayLiveness(gateway_id=gid, last_seen_ns=T0, state="offline", reason="lost"))
        db.add(LatestValue(gateway_id=gid, device="d", point="p", value=1.0, number=1.0, unit="",
                           quality="good", ts_ns=T0))  # fmt: skip
    qn = bearer(world, "reg-qn")
    assert client.delete(f"/api/v1/gateways/{gid}", headers=qn).status_code == 200
    assert client.delete(f"/api/v1/gateways/{gid}", headers=qn).status_code == 404
    assert count(engine, LatestValue) == 0 and count(engine, GatewayLiveness) == 0
    with make_sessionmaker(engine)() as db:
        alert = db.scalars(select(Alert)).one()
    assert alert.gateway_id is None and alert.summary == "qn1/gw01 offline"
    # the names are free again (a replacement gateway)
    gw = {"mine": "M-QN-1", "site": "qn1", "name": "gw01"}
    assert client.post("/api/v1/gateways", headers=qn, json=gw).status_code == 201
    audit = client.get("/api/v1/audit", headers=qn).json()
    assert [(e["action"], e["target"]) for e in audit[:2]] == [
        ("gateway.add", "gateway qn1/gw01"),
        ("gateway.retire", "gateway qn1/gw01"),
    ]


def test_admin_command_is_audited(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from gateway.cli import main

    cfg = tmp_path / "platform.toml"
    cfg.write_text('[database]\nurl = "sqlite:///p.db"\n')

    def admin(*argv: str) -> int:
        return main(["platform", "admin", "--config", str(cfg), *argv])

    assert admin("add-region", "GX", "Guangxi") == 0
    assert admin("add-city", "--region", "GX", "QZ", "Qinzhou") == 0
    assert admin("add-county", "--city", "QZ", "QN", "Qinnan") == 0
    assert admin("add-mine", "--county", "QN", "M1", "Mine one") == 0
    assert admin("set-status", "M1", "--status", "suspended", "--order-no", "7") == 0
    assert admin("add-city", "--region", "XX", "C2", "City") == 2  # refused: not recorded
    capsys.readouterr()
    assert admin("list", "audit") == 0
    lines = [line.split("\t") for line in capsys.readouterr().out.splitlines()]
    assert [(f[2], f[3]) for f in lines] == [
        ("region.add", "region GX"), ("city.add", "city QZ"), ("county.add", "county QN"),
        ("mine.add", "mine M1"), ("mine.status", "mine M1"),
    ]  # fmt: skip
    assert all(f[1].endswith("(command line)") for f in lines)
    assert lines[-1][4].startswith("status producing → suspended; order 7")


def test_contractors_from_the_pages(client: TestClient, world: Any) -> None:
    csrf = _session(client)
    r = client.post("/manage/users/new", data={"csrf": csrf, "name": "con-1", "role": "contractor"})
    assert r.status_code == 422 and "first mine" in _field_error(r.text, "mine")
    r = client.post("/manage/users/new", follow_redirects=False,
                    data={"csrf": csrf, "name": "con-1", "role": "contractor", "mine": "M-QN-1"})  # fmt: skip
    assert r.status_code == 303
    user_page = r.headers["location"]
    qn2 = world.mines["M-QN-2"]
    r = client.post(f"/manage/mines/{qn2}/contractors", data={"csrf": csrf, "contractor": "nobody"})
    assert r.status_code == 422 and "no contractor" in _field_error(r.text, "contractor")
    r = client.post(f"/manage/mines/{qn2}/contractors", data={"csrf": csrf, "contractor": "con-1"},
                    follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    assert 'data-user="con-1"' in client.get(f"/manage/mines/{qn2}").text
    assert "assigned mines: M-QN-1, M-QN-2" in client.get("/manage/users").text
    # working in another region too: the county's regulator sees them, no longer disables them
    r = client.put("/api/v1/contractors/con-1/mines/M-AN-1", headers=bearer(world, "admin"))
    assert r.status_code == 200
    assert "assigned mines: M-QN-1, M-QN-2 (and 1 elsewhere)" in client.get("/manage/users").text
    r = client.post(f"{user_page}/active", data={"csrf": csrf, "active": "0"})
    assert r.status_code == 422 and "outside your area" in _field_error(r.text, "user")
    assert "contractor.assign" in client.get("/manage/audit").text

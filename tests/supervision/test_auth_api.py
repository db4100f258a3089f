"""Authentication and authorisation through the HTTP API (SQLite and
PostgreSQL): no token 401, a county regulator 404 for another county's
mine, a viewer 403 on any change; refusals logged, secrets never."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from supervision.alerting.models import Alert
from supervision.alerting.rules import AlertSpec
from supervision.alerting.service import reconcile
from supervision.app import create_app
from supervision.config import PlatformConfig
from supervision.db import make_sessionmaker

from .helpers import T0, FakeClock


@pytest.fixture
def client(engine: Engine, world: Any) -> Iterator[TestClient]:
    config = PlatformConfig.model_validate({"mqtt": {"enabled": False}})
    app = create_app(config, engine=engine, clock=FakeClock(), background=False)
    with TestClient(app) as c:
        yield c


def bearer(world: Any, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[user]}"}


def _open_alert(engine: Engine, mine_id: int) -> int:
    with make_sessionmaker(engine)() as db, db.begin():
        fp = f"gateway_offline:{mine_id}"
        reconcile(
            db, {fp: AlertSpec(fp, "gateway_offline", mine_id, None, "major", "gw offline")}, T0
        )
        return db.scalars(select(Alert.id).where(Alert.mine_id == mine_id)).one()


def test_no_or_bad_credentials_get_401(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "minegate.platform.auth")
    assert client.get("/api/v1/mines").status_code == 401
    bad = "mgp_not-a-real-token-but-secret"
    r = client.get("/api/v1/mines", headers={"Authorization": f"Bearer {bad}"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert "refused 401 GET /api/v1/mines" in caplog.text
    assert bad not in caplog.text


def test_each_user_sees_their_area(client: TestClient, world: Any) -> None:
    def codes(user: str) -> list[str]:
        r = client.get("/api/v1/mines", headers=bearer(world, user))
        assert r.status_code == 200
        return [m["code"] for m in r.json()]

    assert codes("admin") == ["M-AN-1", "M-LS-1", "M-QN-1", "M-QN-2"]
    assert codes("reg-gx") == ["M-LS-1", "M-QN-1", "M-QN-2"]
    assert codes("reg-qz") == ["M-LS-1", "M-QN-1", "M-QN-2"]
    assert codes("reg-qn") == ["M-QN-1", "M-QN-2"]
    assert codes("viewer-qn") == ["M-QN-1", "M-QN-2"]
    assert codes("op-qn1") == ["M-QN-1"]


def test_county_regulator_gets_404_for_another_countys_mine(
    client: TestClient, world: Any, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "minegate.platform.auth")
    own, other = world.mines["M-QN-1"], world.mines["M-LS-1"]
    assert client.get(f"/api/v1/mines/{own}", headers=bearer(world, "reg-qn")).status_code == 200
    r = client.get(f"/api/v1/mines/{other}", headers=bearer(world, "reg-qn"))
    assert r.status_code == 404 and r.json() == {"detail": "not found"}
    # the same answer as for a mine that does not exist at all
    assert client.get("/api/v1/mines/9999", headers=bearer(world, "reg-qn")).json() == r.json()
    assert "refused 404 GET" in caplog.text and "user=reg-qn" in caplog.text
    # the city regulator above both counties sees it
    assert client.get(f"/api/v1/mines/{other}", headers=bearer(world, "reg-qz")).status_code == 200
    # and an alert of the other county cannot be acknowledged either
    alert = _open_alert(engine, other)
    assert (
        client.post(f"/api/v1/alerts/{alert}/ack", headers=bearer(world, "reg-qn")).status_code
        == 404
    )
    ids = [a["id"] for a in client.get("/api/v1/alerts", headers=bearer(world, "reg-qn")).json()]
    assert alert not in ids


def test_viewer_gets_403_on_any_change(client: TestClient, world: Any, engine: Engine) -> None:
    h = bearer(world, "viewer-qn")
    alert = _open_alert(engine, world.mines["M-QN-1"])
    changes = [
        ("post", f"/api/v1/alerts/{alert}/ack", None),
        ("post", "/api/v1/regions", {"code": "X", "name": "X"}),
        ("post", "/api/v1/mines", {"county": "QN", "code": "M-X", "name": "X"}),
        ("put", f"/api/v1/mines/{world.mines['M-QN-1']}/status", {"status": "closed"}),
        ("post", "/api/v1/gateways", {"mine": "M-QN-1", "site": "x", "name": "y"}),
        ("post", "/api/v1/users", {"name": "eve", "role": "admin"}),
        ("post", "/api/v1/users/viewer-qn/tokens", {}),
        ("post", f"/api/v1/mines/{world.mines['M-QN-1']}/silences", {"comment": "quiet"}),
    ]
    for method, url, body in changes:
        r = client.request(method, url, headers=h, json=body)
        assert r.status_code == 403, (url, r.text)
    # reading is fine, and nothing changed
    assert client.get("/api/v1/alerts", headers=h).json()[0]["acked_ns"] is None


def test_regulator_acknowledges_in_area(client: TestClient, world: Any, engine: Engine) -> None:
    alert = _open_alert(engine, world.mines["M-QN-1"])
    r = client.post(f"/api/v1/alerts/{alert}/ack", headers=bearer(world, "reg-qn"))
    assert r.status_code == 200 and r.json()["acked_by"] == "reg-qn"
    assert (
        client.post(f"/api/v1/alerts/{alert}/ack", headers=bearer(world, "op-qn1")).status_code
        == 403
    )


def test_admin_manages_registry_and_users(client: TestClient, world: Any) -> None:
    h = bearer(world, "admin")
    assert (
        client.post("/api/v1/regions", headers=h, json={"code": "HN", "name": "Hunan"}).status_code
        == 201
    )
    r = client.post(
        "/api/v1/cities", headers=h, json={"code": "CS", "name": "Changsha", "parent": "NOPE"}
    )
    assert r.status_code == 422 and "no region with code 'NOPE'" in r.json()["detail"]
    r = client.post(
        "/api/v1/users",
        headers=h,
        json={"name": "reg-ls", "role": "regulator", "area": "county", "area_code": "LS"},
    )
    assert r.status_code == 201
    token = client.post("/api/v1/users/reg-ls/tokens", headers=h, json={"label": "phone"}).json()[
        "token"
    ]
    me = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()
    assert me["name"] == "reg-ls" and me["scope"].startswith("county:")
    assert "acknowledge" in me["permissions"]


def test_tokens_are_stored_hashed(engine: Engine, world: Any) -> None:
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT token_sha256 FROM api_token")).scalars().all()
    assert len(stored) == len(world.tokens)
    for token in world.tokens.values():
        assert token not in stored and all(token not in s for s in stored)
        assert len(stored[0]) == 64


def test_openapi_documents_the_api(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert {
        "/api/v1/mines",
        "/api/v1/mines/{mine_id}",
        "/api/v1/alerts",
        "/api/v1/alerts/{alert_id}/ack",
    } <= set(spec["paths"])
    assert "/login" not in spec["paths"]


def test_a_failing_background_task_stops_the_platform(pg_server: Any) -> None:
    """The evaluator hits a real error (a database without the platform's
    tables, which is no connection problem to wait out): it is recorded and
    the stop hook called, not left as a dead task behind a live page."""
    import time

    from supervision.db import make_engine

    failures: list[str] = []
    # no survey jobs: the evaluator is the one task to fail
    config = PlatformConfig.model_validate({"mqtt": {"enabled": False}, "jobs": {"workers": 0}})
    engine = make_engine(pg_server.url("postgres"))  # no migrations run there
    app = create_app(config, engine=engine, background=True, on_failure=failures.append)
    with TestClient(app):
        deadline = time.monotonic() + 10
        while not failures:
            assert time.monotonic() < deadline, "failure not reported"
            time.sleep(0.05)
    engine.dispose()
    assert failures[0].startswith("alert-evaluator failed: ProgrammingError")
    assert app.state.ctx.extra["failed"] == failures[0]

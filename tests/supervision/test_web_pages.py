"""The pages over HTTP (no browser): login by password or token, cookie
flags, CSRF on forms, scope on pages, the licence drawn as SVG."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from supervision.alerting.models import Alert
from supervision.alerting.rules import AlertSpec
from supervision.alerting.service import reconcile
from supervision.app import create_app
from supervision.config import PlatformConfig
from supervision.db import make_sessionmaker
from supervision.registry.models import Mine

from .helpers import PASSWORD, T0, FakeClock

LICENCE = """
mine_name = "Qinnan iron mine"
licence_no = "C4507002010127130099999"
epsg = 4545
[[blocks]]
name = "block one"
elevation = "from +120 m to -80 m"
corners = [
  { number = "1", x = 2430000.0, y = 562000.0 },
  { number = "2", x = 2430000.0, y = 563200.0 },
  { number = "3", x = 2431100.0, y = 563200.0 },
  { number = "4", x = 2431100.0, y = 562000.0 },
]
"""


def _client(engine: Engine, **server: Any) -> TestClient:
    config = PlatformConfig.model_validate({"mqtt": {"enabled": False}, "server": server})
    return TestClient(create_app(config, engine=engine, clock=FakeClock(), background=False))


@pytest.fixture
def client(engine: Engine, world: Any) -> Iterator[TestClient]:
    with _client(engine) as c:
        yield c


def login(client: TestClient, **form: str) -> Any:
    return client.post("/login", data=form, follow_redirects=False)


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "no CSRF field on the page"
    return m.group(1)


def test_anonymous_pages_redirect_to_login(client: TestClient) -> None:
    r = client.get("/mines/1", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/login?next=/mines/1"
    assert "<form" in client.get("/login").text


def test_password_login_sets_a_safe_cookie(client: TestClient, world: Any) -> None:
    r = login(client, username="reg-qn", password=PASSWORD, next="/mines/1")
    assert r.status_code == 303 and r.headers["location"] == "/mines/1"
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = client.get("/").text
    assert "Qinnan iron mine" in page and "Lingshan quarry" not in page


def test_secure_cookie_behind_a_tls_proxy(engine: Engine, world: Any) -> None:
    with _client(engine, behind_reverse_proxy=True) as c:
        r = login(c, token=world.tokens["reg-qn"])
        assert "Secure" in r.headers["set-cookie"]


def test_failed_logins(client: TestClient, world: Any) -> None:
    for form in ({"username": "reg-qn", "password": "wrong password"}, {"token": "mgp_nope"}, {}):
        r = login(client, **form)
        assert r.status_code == 401 and "Login failed" in r.text
    # never redirect a login off-site
    r = login(client, token=world.tokens["reg-qn"], next="//evil.example/")
    assert r.headers["location"] == "/"


def test_forms_need_the_sessions_csrf_token(client: TestClient, world: Any, engine: Engine) -> None:
    mine = world.mines["M-QN-1"]
    with make_sessionmaker(engine)() as db, db.begin():
        reconcile(
            db, {"f": AlertSpec("f", "gateway_offline", mine, None, "major", "gw01 offline")}, T0
        )
        alert = db.scalars(select(Alert.id)).one()
    login(client, token=world.tokens["reg-qn"])
    page = client.get(f"/mines/{mine}").text
    assert "gw01 offline" in page and "Acknowledge" in page
    assert client.post(f"/alerts/{alert}/ack", follow_redirects=False).status_code == 403
    assert (
        client.post(
            f"/alerts/{alert}/ack", data={"csrf": "forged"}, follow_redirects=False
        ).status_code
        == 403
    )
    r = client.post(f"/alerts/{alert}/ack", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == f"/mines/{mine}"
    assert "acknowledged by reg-qn" in client.get(f"/mines/{mine}").text


def test_viewer_sees_no_button_and_cannot_post(
    client: TestClient, world: Any, engine: Engine
) -> None:
    mine = world.mines["M-QN-1"]
    with make_sessionmaker(engine)() as db, db.begin():
        reconcile(
            db, {"f": AlertSpec("f", "gateway_offline", mine, None, "major", "gw01 offline")}, T0
        )
        alert = db.scalars(select(Alert.id)).one()
    login(client, token=world.tokens["viewer-qn"])
    page = client.get(f"/mines/{mine}").text
    assert "gw01 offline" in page and "Acknowledge" not in page
    r = client.post(f"/alerts/{alert}/ack", data={"csrf": csrf_of(page)}, follow_redirects=False)
    assert r.status_code == 403


def test_other_countys_mine_page_is_404(client: TestClient, world: Any) -> None:
    login(client, token=world.tokens["reg-qn"])
    assert client.get(f"/mines/{world.mines['M-LS-1']}").status_code == 404


def test_logout_ends_the_session(client: TestClient, world: Any) -> None:
    login(client, token=world.tokens["reg-qn"])
    page = client.get("/").text
    assert (
        client.post("/logout", data={"csrf": csrf_of(page)}, follow_redirects=False).status_code
        == 303
    )
    assert client.get("/", follow_redirects=False).status_code == 303


def test_licence_boundary_as_svg(
    client: TestClient, world: Any, engine: Engine, tmp_path: Path
) -> None:
    good = tmp_path / "licence.toml"
    good.write_text(LICENCE, encoding="utf-8")
    with make_sessionmaker(engine)() as db, db.begin():
        db.get_one(Mine, world.mines["M-QN-1"]).licence_file = str(good)
        db.get_one(Mine, world.mines["M-QN-2"]).licence_file = str(tmp_path / "missing.toml")
    login(client, token=world.tokens["reg-qn"])
    page = client.get(f"/mines/{world.mines['M-QN-1']}").text
    m = re.search(r'<polygon points="([^"]+)"', page)
    assert m and "<svg" in page and "C4507002010127130099999" in page
    # easting right, northing up (SVG y grows downwards)
    assert m.group(1).split() == ["562000.000,-2430000.000", "563200.000,-2430000.000",
                                  "563200.000,-2431100.000", "562000.000,-2431100.000"]  # fmt: skip
    page2 = client.get(f"/mines/{world.mines['M-QN-2']}").text
    assert "missing.toml" in page2 and "<svg" not in page2


def test_pages_use_no_external_resources(client: TestClient, world: Any) -> None:
    login(client, token=world.tokens["reg-qn"])
    for url in ("/login", "/", f"/mines/{world.mines['M-QN-1']}"):
        html = client.get(url).text
        assert not re.search(r'(src|href)="(https?:)?//', html), url


def test_names_from_gateways_are_escaped(client: TestClient, world: Any, engine: Engine) -> None:
    """Device names, values and alarm texts come from MQTT payloads: a
    hostile one shows as text, never as markup."""
    from supervision.ingest.models import LatestValue

    evil = '<script>alert("x")</script>'
    mine = world.mines["M-QN-1"]
    with make_sessionmaker(engine)() as db, db.begin():
        db.add(LatestValue(gateway_id=world.gateways["qn1/gw01"], device=evil, point="p", value=evil,
                           number=None, unit="", quality="good", ts_ns=T0))  # fmt: skip
        reconcile(db, {"f": AlertSpec("f", "gateway_alarm", mine, None, "alarm", f"alarm {evil}",
                                      {"device": evil})}, T0)  # fmt: skip
    login(client, token=world.tokens["reg-qn"])
    page = client.get(f"/mines/{mine}").text
    assert "<script>" not in page
    assert "&lt;script&gt;" in page


def test_password_guessing_is_throttled(engine: Engine, world: Any) -> None:
    clock = FakeClock()
    config = PlatformConfig.model_validate({"mqtt": {"enabled": False}})
    with TestClient(create_app(config, engine=engine, clock=clock, background=False)) as c:
        for _ in range(5):
            assert login(c, username="reg-qn", password="guess").status_code == 401
        r = login(c, username="reg-qn", password=PASSWORD)  # even the right one, for now
        assert r.status_code == 429 and "try again in 15 minute(s)" in r.text
        clock.advance(901)
        assert login(c, username="reg-qn", password=PASSWORD).status_code == 303

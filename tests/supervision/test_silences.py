"""Silences (with an author, a reason and an expiry) and inhibition (an
offline gateway's alarms are not notified): muted notifications are kept
with their reason; who may silence what (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from supervision.alerting.models import Alert
from supervision.alerting.rules import AlertSpec
from supervision.alerting.service import reconcile
from supervision.app import create_app
from supervision.config import NotifySection, PlatformConfig
from supervision.db import make_sessionmaker
from supervision.notify.models import Delivery
from supervision.notify.pipeline import dispatch

from .helpers import T0, FakeClock

S = 1_000_000_000
HOOKS = NotifySection.model_validate(
    {"webhooks": [{"name": "duty", "url": "http://127.0.0.1:9/", "secret": "0123456789abcdef"}]}
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(engine: Engine, world: Any, clock: FakeClock) -> Iterator[TestClient]:
    config = PlatformConfig.model_validate({"mqtt": {"enabled": False}})
    with TestClient(create_app(config, engine=engine, clock=clock, background=False)) as c:
        yield c


def h(world: Any, user: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[user]}"}


def open_alerts(engine: Engine, specs: list[AlertSpec], now: int) -> None:
    with make_sessionmaker(engine)() as db, db.begin():
        reconcile(db, {s.fingerprint: s for s in specs}, now)


def deliveries(engine: Engine, now: int) -> dict[str, tuple[str, str | None]]:
    """fingerprint -> (state, reason) after a dispatch at ``now``."""
    with make_sessionmaker(engine)() as db, db.begin():
        dispatch(db, HOOKS.webhooks, now)
    with make_sessionmaker(engine)() as db:
        rows = db.execute(select(Delivery, Alert).join(Alert, Alert.id == Delivery.alert_id)).all()
        return {a.fingerprint: (d.state, d.last_error) for d, a in rows}


def test_a_silence_mutes_its_mine_until_it_expires(
    client: TestClient, world: Any, engine: Engine
) -> None:
    qn1, ls1 = world.mines["M-QN-1"], world.mines["M-LS-1"]
    r = client.post(f"/api/v1/mines/{qn1}/silences", headers=h(world, "reg-qn"),
                    json={"duration_s": 3600, "comment": "maintenance of the fan"})  # fmt: skip
    assert r.status_code == 201 and r.json()["created_by"] == "reg-qn" and r.json()["active"]
    open_alerts(engine, [AlertSpec("a", "gateway_offline", qn1, None, "major", "a"),
                         AlertSpec("b", "gateway_offline", ls1, None, "major", "b")], T0 + S)  # fmt: skip
    got = deliveries(engine, T0 + S)
    assert got["b"] == ("pending", None)
    state, reason = got["a"]
    assert state == "muted" and reason is not None
    assert "silenced by reg-qn" in reason and "maintenance of the fan" in reason
    # after the expiry the same mine's next alert goes out
    open_alerts(engine, [AlertSpec("c", "gateway_offline", qn1, None, "major", "c")], T0 + 3601 * S)
    assert deliveries(engine, T0 + 3601 * S)["c"] == ("pending", None)


def test_a_silence_of_one_kind_and_ending_early(
    client: TestClient, world: Any, engine: Engine, clock: FakeClock
) -> None:
    qn2 = world.mines["M-QN-2"]
    r = client.post(f"/api/v1/mines/{qn2}/silences", headers=h(world, "reg-qz"),
                    json={"kind": "gateway_offline", "comment": "line cut"})  # fmt: skip
    sid = r.json()["id"]
    open_alerts(engine, [AlertSpec("off", "gateway_offline", qn2, None, "major", "off"),
                         AlertSpec("ill", "suspected_illegal_production", qn2, None, "critical", "ill")], T0)  # fmt: skip
    got = deliveries(engine, T0)
    assert got["off"][0] == "muted" and got["ill"] == ("pending", None)
    clock.advance(10)
    r = client.post(f"/api/v1/silences/{sid}/end", headers=h(world, "reg-qn"))
    assert r.status_code == 200 and r.json()["ended_by"] == "reg-qn" and not r.json()["active"]
    open_alerts(
        engine, [AlertSpec("off2", "gateway_offline", qn2, None, "major", "x")], T0 + 20 * S
    )
    assert deliveries(engine, T0 + 20 * S)["off2"] == ("pending", None)
    listed = client.get("/api/v1/silences", headers=h(world, "reg-qn")).json()
    assert [s["id"] for s in listed] == [sid]
    assert client.get("/api/v1/silences?active=true", headers=h(world, "reg-qn")).json() == []


def test_who_may_silence(client: TestClient, world: Any) -> None:
    qn1, ls1 = world.mines["M-QN-1"], world.mines["M-LS-1"]
    body = {"comment": "x"}
    assert (
        client.post(
            f"/api/v1/mines/{qn1}/silences", headers=h(world, "viewer-qn"), json=body
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/mines/{qn1}/silences", headers=h(world, "op-qn1"), json=body
        ).status_code
        == 403
    )
    assert (
        client.post(
            f"/api/v1/mines/{ls1}/silences", headers=h(world, "reg-qn"), json=body
        ).status_code
        == 404
    )
    r = client.post(
        f"/api/v1/mines/{qn1}/silences", headers=h(world, "reg-qn"), json={"comment": " "}
    )
    assert r.status_code == 422 and "needs a comment" in r.text
    r = client.post(
        f"/api/v1/mines/{qn1}/silences",
        headers=h(world, "reg-qn"),
        json={"comment": "x", "kind": "nope"},
    )
    assert r.status_code == 422 and "unknown alert kind" in r.text
    sid = client.post(
        f"/api/v1/mines/{ls1}/silences", headers=h(world, "reg-qz"), json=body
    ).json()["id"]
    assert client.post(f"/api/v1/silences/{sid}/end", headers=h(world, "reg-qn")).status_code == 404
    assert sid not in [
        s["id"] for s in client.get("/api/v1/silences", headers=h(world, "reg-qn")).json()
    ]


def test_an_offline_gateway_inhibits_its_alarms(engine: Engine, world: Any) -> None:
    gw = world.gateways["qn1/gw01"]
    other = world.gateways["ls1/gw01"]
    qn1, ls1 = world.mines["M-QN-1"], world.mines["M-LS-1"]
    open_alerts(engine, [
        AlertSpec("off", "gateway_offline", qn1, gw, "major", "gw offline"),
        AlertSpec("alarm1", "gateway_alarm", qn1, gw, "alarm", "CH4 high"),
        AlertSpec("alarm2", "gateway_alarm", ls1, other, "alarm", "CO high"),
        AlertSpec("silent", "device_silent", qn1, gw, "minor", "gas_monitor_2 silent"),
        AlertSpec("gap", "device_data_gap", qn1, gw, "minor", "gas_monitor_2: no data since ..."),
    ], T0)  # fmt: skip
    got = deliveries(engine, T0)
    assert got["off"] == ("pending", None)
    assert got["alarm1"] == ("muted", "inhibited: its gateway is offline")
    assert got["alarm2"] == ("pending", None)
    assert got["silent"] == ("muted", "inhibited: its gateway is offline")
    assert got["gap"] == ("muted", "inhibited: its gateway is offline")


def test_silence_from_the_page(client: TestClient, world: Any) -> None:
    qn1 = world.mines["M-QN-1"]
    client.post("/login", data={"token": world.tokens["reg-qn"]})
    page = client.get(f"/mines/{qn1}").text
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf and "Silence" in page
    r = client.post(f"/mines/{qn1}/silence", data={"csrf": csrf.group(1), "hours": "4", "kind": "",
                                                   "comment": "blasting today"}, follow_redirects=False)  # fmt: skip
    assert r.status_code == 303
    page = client.get(f"/mines/{qn1}").text
    assert "silenced by reg-qn" in page and "blasting today" in page
    sid = client.get("/api/v1/silences", headers=h(world, "reg-qn")).json()[0]["id"]
    r = client.post(f"/silences/{sid}/end", data={"csrf": csrf.group(1)}, follow_redirects=False)
    assert r.status_code == 303 and "blasting today" not in client.get(f"/mines/{qn1}").text
    # a viewer gets no form
    client.post("/login", data={"token": world.tokens["viewer-qn"]})
    assert "silence-form" not in client.get(f"/mines/{qn1}").text

"""Webhook notifications against a real HTTP receiver (SQLite and
PostgreSQL): signed, queued once per event, retried with backoff, given up
as dead letters that stay visible, every attempt stored."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import random
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from supervision.alerting.models import Alert
from supervision.alerting.rules import AlertSpec
from supervision.alerting.service import acknowledge, reconcile
from supervision.app import create_app
from supervision.config import NotifySection, PlatformConfig
from supervision.db import make_sessionmaker
from supervision.notify.models import Delivery, DeliveryAttempt, NotifyCursor
from supervision.notify.pipeline import Notification, dispatch
from supervision.notify.sender import send_due

from .conftest import servers
from .helpers import T0, FakeClock

S = 1_000_000_000
SECRET = "a-secret-of-enough-length"


@dataclass
class Receiver:
    """A webhook receiver: answers with the next status of ``script``
    (then 200), keeps every request."""

    port: int
    script: list[int] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver(servers.free_port())

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            rec.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
            self.send_response(rec.script.pop(0) if rec.script else 200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", rec.port), Handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield rec
    srv.shutdown()
    srv.server_close()


def notify_cfg(url: str, **hook: Any) -> NotifySection:
    return NotifySection.model_validate(
        {
            "webhooks": [{"name": "duty", "url": url, "secret": SECRET, **hook}],
            "retry_initial_s": 10,
        }
    )


def fire(engine: Engine, mine_id: int, fp: str = "f", now: int = T0) -> None:
    """Open alert ``fp``; the alerts open already stay open."""
    with make_sessionmaker(engine)() as db, db.begin():
        specs = {
            a.fingerprint: AlertSpec(a.fingerprint, a.kind, a.mine_id, None, a.severity, a.summary)
            for a in db.scalars(select(Alert).where(Alert.state == "firing"))
        }
        specs[fp] = AlertSpec(fp, "gateway_offline", mine_id, None, "major", f"{fp} offline")
        reconcile(db, specs, now)


def run(engine: Engine, cfg: NotifySection, now: int) -> tuple[int, int]:
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        queued = dispatch(db, cfg.webhooks, now)
    return queued, send_due(sm, cfg.webhooks, cfg, now, random.Random(1))


def test_signed_webhook_per_event(engine: Engine, world: Any, receiver: Receiver) -> None:
    cfg = notify_cfg(receiver.url)
    fire(engine, world.mines["M-QN-2"])
    assert run(engine, cfg, T0) == (1, 1)
    [(headers, body)] = receiver.requests
    expected = hmac.new(
        SECRET.encode(), headers["x-minegate-timestamp"].encode() + b"." + body, hashlib.sha256
    )
    assert headers["x-minegate-signature"] == "sha256=" + expected.hexdigest()
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["event"] == "fired" and doc["alert"]["kind"] == "gateway_offline"
    assert doc["mine"]["code"] == "M-QN-2" and doc["mine"]["county"] == "QN"
    assert doc["alert"]["summary"] == "f offline"
    # nothing new: nothing sent again, even by a fresh dispatcher (a restart)
    assert run(engine, cfg, T0 + S) == (0, 0)
    with make_sessionmaker(engine)() as db:
        assert db.get_one(NotifyCursor, "duty").last_event_id > 0
        assert db.scalar(select(func.count()).select_from(Delivery)) == 1


def test_default_events_are_fired_and_resolved(
    engine: Engine, world: Any, receiver: Receiver
) -> None:
    cfg = notify_cfg(receiver.url)
    mine = world.mines["M-QN-1"]
    fire(engine, mine)
    with make_sessionmaker(engine)() as db, db.begin():
        acknowledge(db, db.scalars(select(Alert)).one(), "reg-qn", T0 + S)
        reconcile(db, {}, T0 + 2 * S)
    run(engine, cfg, T0 + 3 * S)
    assert [json.loads(b)["event"] for _, b in receiver.requests] == ["fired", "resolved"]


def test_area_filter(engine: Engine, world: Any, receiver: Receiver) -> None:
    cfg = notify_cfg(receiver.url, area="county:LS")
    fire(engine, world.mines["M-QN-1"], "a")
    fire(engine, world.mines["M-LS-1"], "b")
    run(engine, cfg, T0)
    assert [json.loads(b)["mine"]["code"] for _, b in receiver.requests] == ["M-LS-1"]


def test_retries_with_backoff_then_success(engine: Engine, world: Any, receiver: Receiver) -> None:
    cfg = notify_cfg(receiver.url)
    receiver.script = [503, 500]
    fire(engine, world.mines["M-QN-1"])
    assert run(engine, cfg, T0) == (1, 1)
    assert run(engine, cfg, T0 + 1 * S) == (0, 0)  # not due yet: backoff
    assert run(engine, cfg, T0 + 10 * S) == (0, 1)  # 5..10 s after the first
    assert run(engine, cfg, T0 + 11 * S) == (0, 0)
    assert run(engine, cfg, T0 + 40 * S) == (0, 1)  # 10..20 s after the second
    with make_sessionmaker(engine)() as db:
        d = db.scalars(select(Delivery)).one()
        assert (d.state, d.attempts, d.last_error) == ("sent", 3, None)
        codes = db.scalars(select(DeliveryAttempt.status_code).order_by(DeliveryAttempt.id)).all()
        assert codes == [503, 500, 200]
    ids = {h["x-minegate-delivery"] for h, _ in receiver.requests}
    assert len(receiver.requests) == 3 and len(ids) == 1  # same delivery id: receivers dedupe


def test_dead_letters(engine: Engine, world: Any, receiver: Receiver) -> None:
    cfg = notify_cfg(receiver.url, max_attempts=2)
    receiver.script = [400]  # refused: no point retrying
    fire(engine, world.mines["M-QN-1"], "a")
    run(engine, cfg, T0)
    receiver.script = [500, 500]  # failing twice: out of attempts
    fire(engine, world.mines["M-LS-1"], "b", T0 + S)
    run(engine, cfg, T0 + S)
    run(engine, cfg, T0 + 100 * S)
    with make_sessionmaker(engine)() as db:
        states = {
            d.mine_id: (d.state, d.attempts, d.last_error) for d in db.scalars(select(Delivery))
        }
    assert states[world.mines["M-QN-1"]] == ("dead", 1, "HTTP 400 Bad Request")
    assert states[world.mines["M-LS-1"]][:2] == ("dead", 2)
    # dead letters are listed, each user seeing those of their area
    app = create_app(PlatformConfig.model_validate({"mqtt": {"enabled": False}}), engine=engine,
                     clock=FakeClock(), background=False)  # fmt: skip
    with TestClient(app) as c:

        def dead(user: str) -> list[str]:
            r = c.get(
                "/api/v1/notify/deliveries?state=dead",
                headers={"Authorization": f"Bearer {world.tokens[user]}"},
            )
            assert r.status_code == 200
            return sorted(d["last_error"] for d in r.json())

        assert dead("admin") == ["HTTP 400 Bad Request", "HTTP 500 Internal Server Error"]
        assert dead("reg-qn") == ["HTTP 400 Bad Request"]


def test_unreachable_receiver_is_retried(engine: Engine, world: Any) -> None:
    cfg = notify_cfg(f"http://127.0.0.1:{servers.free_port()}/hook", max_attempts=3)
    fire(engine, world.mines["M-QN-1"])
    run(engine, cfg, T0)
    with make_sessionmaker(engine)() as db:
        d = db.scalars(select(Delivery)).one()
        assert d.state == "pending" and d.attempts == 1 and "refused" in (d.last_error or "")


def test_muters_are_asked(engine: Engine, world: Any, receiver: Receiver) -> None:
    """The hook silences and inhibition will use: a muter that mutes the
    suspended mine keeps its notification out."""

    class MuteMine:
        def mutes(self, n: Notification) -> str | None:
            return "test muter" if n.alert.mine_id == world.mines["M-QN-2"] else None

    cfg = notify_cfg(receiver.url)
    fire(engine, world.mines["M-QN-1"], "a")
    fire(engine, world.mines["M-QN-2"], "b")
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        assert dispatch(db, cfg.webhooks, T0, muters=[MuteMine()]) == 1
    with sm() as db:
        kept = {d.mine_id: (d.state, d.last_error) for d in db.scalars(select(Delivery))}
    assert kept[world.mines["M-QN-2"]] == ("muted", "test muter")  # kept, with the reason
    assert kept[world.mines["M-QN-1"]] == ("pending", None)


def test_config_checks_webhooks() -> None:
    from supervision.config import PlatformConfigError, parse_config

    with pytest.raises(PlatformConfigError) as info:
        parse_config(
            '[[notify.webhooks]]\nname = "a"\nurl = "ftp://x"\nsecret = "short"\nevents = ["fired", "boom"]\n'
            '[[notify.webhooks]]\nname = "a"\nurl = "http://x"\nsecret = "long-enough-secret"\narea = "street:1"\n'
        )
    text = "\n".join(info.value.errors)
    assert "platform.toml:3: notify.webhooks[0].url" in text
    assert "notify.webhooks[0].secret" in text
    assert "area 'street:1'" in text


def test_the_running_platform_notifies(db_url: str, receiver: Receiver) -> None:
    """Wired together: the evaluator finds four silent gateways and the
    notifier posts their alerts without further help."""
    import time

    from supervision.db import make_engine
    from supervision.db.migrate import upgrade

    from .helpers import build_world

    engine = make_engine(db_url)
    upgrade(engine)
    build_world(engine, now_ns=time.time_ns() - 1000 * S)  # registered long ago, never heard of
    config = PlatformConfig.model_validate(
        {
            "mqtt": {"enabled": False},
            "alerting": {"heartbeat_timeout_s": 0.5, "evaluate_interval_s": 0.2},
            "notify": {
                "interval_s": 0.2,
                "webhooks": [{"name": "duty", "url": receiver.url, "secret": SECRET}],
            },
        }
    )
    with TestClient(create_app(config, engine=engine, on_failure=pytest.fail)):
        deadline = time.monotonic() + 15
        while len(receiver.requests) < 4:
            assert time.monotonic() < deadline, f"{len(receiver.requests)} of 4 webhooks"
            time.sleep(0.05)
    engine.dispose()
    docs = [json.loads(b) for _, b in receiver.requests]
    assert sorted(d["mine"]["code"] for d in docs) == ["M-AN-1", "M-LS-1", "M-QN-1", "M-QN-2"]
    assert {d["event"] for d in docs} == {"fired"}


def test_escalations_go_to_the_city(engine: Engine, world: Any, receiver: Receiver) -> None:
    """The city's receiver takes only escalations, of its whole city."""
    from supervision.alerting.service import escalate

    cfg = notify_cfg(receiver.url, events=["escalated"], area="city:QZ")
    fire(engine, world.mines["M-QN-1"], "a")
    fire(engine, world.mines["M-AN-1"], "b")  # another region
    assert run(engine, cfg, T0) == (0, 0)
    with make_sessionmaker(engine)() as db, db.begin():
        assert escalate(db, T0 + 1800 * S, 1800) == 2
    run(engine, cfg, T0 + 1800 * S)
    docs = [json.loads(b) for _, b in receiver.requests]
    assert [(d["event"], d["mine"]["code"]) for d in docs] == [("escalated", "M-QN-1")]


def test_a_group_window_sends_one_notification_per_mine(
    engine: Engine, world: Any, receiver: Receiver
) -> None:
    cfg = notify_cfg(receiver.url, group_wait_s=30)
    qn1, ls1 = world.mines["M-QN-1"], world.mines["M-LS-1"]
    fire(engine, qn1, "a", T0)
    assert run(engine, cfg, T0) == (1, 0)  # waits for the window
    fire(engine, ls1, "c", T0 + 2 * S)
    fire(engine, qn1, "b", T0 + 5 * S)
    run(engine, cfg, T0 + 10 * S)
    fire(engine, qn1, "d", T0 + 20 * S)
    assert run(engine, cfg, T0 + 20 * S)[1] == 0
    receiver.script = [503]  # the first group fails once: retried as a group
    assert run(engine, cfg, T0 + 30 * S)[1] == 3  # QN-1's three events: one request
    assert [json.loads(b)["count"] for _, b in receiver.requests] == [3]
    # LS-1's group opened when the platform took "c" (at +10 s): due at +40,
    # after QN-1's retry (5..10 s after +30)
    run(engine, cfg, T0 + 40 * S)
    docs = [json.loads(b) for _, b in receiver.requests]
    assert [(d["mine"]["code"], d.get("count", 1)) for d in docs] == [
        ("M-QN-1", 3), ("M-QN-1", 3), ("M-LS-1", 1)]  # fmt: skip
    assert [e["alert"]["summary"] for e in docs[1]["events"]] == [
        "a offline",
        "b offline",
        "d offline",
    ]
    with make_sessionmaker(engine)() as db:
        states = sorted((d.state, d.attempts) for d in db.scalars(select(Delivery)))
    assert states == [("sent", 1), ("sent", 2), ("sent", 2), ("sent", 2)]


def test_a_grouped_email(engine: Engine, world: Any) -> None:
    from supervision.config import EmailReceiver
    from supervision.notify.email import message

    r = EmailReceiver.model_validate(
        {"name": "m", "smtp_host": "h", "sender": "a@b.c", "to": ["d@e.f"]}
    )
    mine = {"code": "M1", "name": "Mine one", "status": "suspended", "county": "QN"}
    events = [
        {
            "event": "fired",
            "at": "t",
            "alert": {"id": i, "kind": "k", "severity": "s", "summary": f"s{i}", "evidence": {}},
        }
        for i in (1, 2)
    ]
    msg = message(
        r, 7, {"receiver": "m", "group": True, "count": 2, "mine": mine, "events": events}
    )
    assert msg["Subject"] == "[minegate] 2 events: M1 Mine one"
    body = msg.get_content()
    assert "alert 1: k, s" in body and "alert 2: k, s" in body and "county QN" in body

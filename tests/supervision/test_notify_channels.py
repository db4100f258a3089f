"""E-mail (against a real aiosmtpd server) and the MQTT alerts topic
(against a real mosquitto) as notification receivers."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select

from supervision.alerting.rules import AlertSpec
from supervision.alerting.service import reconcile
from supervision.config import MqttSection, NotifySection
from supervision.db import make_sessionmaker
from supervision.notify.models import Delivery
from supervision.notify.pipeline import dispatch
from supervision.notify.sender import send_due

from .conftest import servers
from .helpers import T0, require_module

S = 1_000_000_000


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.refuse = False

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if self.refuse:
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp() -> Iterator[tuple[int, Mailbox]]:
    controller_mod = require_module("aiosmtpd.controller")
    box = Mailbox()
    port = servers.free_port()
    controller = controller_mod.Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    yield port, box
    controller.stop()


def fire_and_send(
    engine: Engine,
    cfg: NotifySection,
    mine_id: int,
    now: int = T0,
    mqtt_cfg: MqttSection | None = None,
) -> None:
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        fp = f"gateway_offline:{mine_id}"
        reconcile(db, {fp: AlertSpec(fp, "gateway_offline", mine_id, None, "major", "gw01 offline: connection lost",
                                     {"reason": "connection lost"})}, now)  # fmt: skip
        dispatch(db, cfg.receivers, now)
    send_due(sm, cfg.receivers, cfg, now, random.Random(1), mqtt_cfg)


def email_cfg(port: int) -> NotifySection:
    return NotifySection.model_validate(
        {"email": [{"name": "duty-mail", "smtp_host": "127.0.0.1", "smtp_port": port,
                    "sender": "platform@example.org", "to": ["duty@example.org", "chief@example.org"]}]}
    )  # fmt: skip


def test_email(engine: Engine, world: Any, smtp: tuple[int, Mailbox]) -> None:
    port, box = smtp
    fire_and_send(engine, email_cfg(port), world.mines["M-QN-2"])
    [env] = box.messages
    assert env.mail_from == "platform@example.org"
    assert sorted(env.rcpt_tos) == ["chief@example.org", "duty@example.org"]
    msg = message_from_bytes(env.content)
    assert msg["Subject"].startswith("[minegate] fired: M-QN-2 gw01 offline")
    body = msg.get_payload(decode=True).decode()
    assert (
        "Qinnan coal mine (suspended), county QN" in body and '"reason": "connection lost"' in body
    )
    with make_sessionmaker(engine)() as db:
        d = db.scalars(select(Delivery)).one()
        assert (d.state, d.attempts) == ("sent", 1)


def test_refused_recipients_are_a_dead_letter(
    engine: Engine, world: Any, smtp: tuple[int, Mailbox]
) -> None:
    port, box = smtp
    box.refuse = True
    fire_and_send(engine, email_cfg(port), world.mines["M-QN-1"])
    with make_sessionmaker(engine)() as db:
        d = db.scalars(select(Delivery)).one()
        assert d.state == "dead" and "550" in (d.last_error or "")


def test_smtp_server_down_is_retried(engine: Engine, world: Any) -> None:
    fire_and_send(engine, email_cfg(servers.free_port()), world.mines["M-QN-1"])
    with make_sessionmaker(engine)() as db:
        d = db.scalars(select(Delivery)).one()
        assert d.state == "pending" and d.attempts == 1 and d.next_attempt_ns > T0


def test_mqtt_alerts_topic(engine: Engine, world: Any, mosquitto_server: Any) -> None:
    got: list[mqtt.MQTTMessage] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="p12-alerts-listener")
    sub.on_message = lambda _c, _u, m: got.append(m)
    sub.connect("127.0.0.1", mosquitto_server.port)
    sub.subscribe("minegate/alerts/#", qos=1)
    sub.loop_start()
    try:
        time.sleep(0.3)  # the subscription is in place
        mqtt_cfg = MqttSection.model_validate(
            {"port": mosquitto_server.port, "client_id": "p12-notify"}
        )
        cfg = NotifySection.model_validate({"mqtt": [{"name": "control-room"}]})
        fire_and_send(engine, cfg, world.mines["M-QN-2"], mqtt_cfg=mqtt_cfg)
        deadline = time.monotonic() + 10
        while not got:
            assert time.monotonic() < deadline, "nothing on the alerts topic"
            time.sleep(0.05)
    finally:
        sub.loop_stop()
        sub.disconnect()
    [m] = got
    assert m.topic == "minegate/alerts/QN/M-QN-2"
    doc = json.loads(m.payload)
    assert (
        doc["event"] == "fired"
        and doc["alert"]["kind"] == "gateway_offline"
        and doc["delivery_id"] > 0
    )


def test_receiver_config_errors() -> None:
    from supervision.config import PlatformConfigError, parse_config

    with pytest.raises(PlatformConfigError) as info:
        parse_config(
            '[[notify.email]]\nname = "m"\nsmtp_host = "h"\nsender = "nobody"\nto = []\n'
            '[[notify.mqtt]]\nname = "m"\ntopic = "alerts/{nope}/#"\n'
        )
    text = "\n".join(info.value.errors)
    assert "notify.email[0].sender" in text and "notify.email[0].to" in text
    assert "notify.mqtt[0]: topic" in text

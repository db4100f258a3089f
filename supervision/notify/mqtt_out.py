"""An MQTT alerts topic: alert events published as JSON (QoS 1) to the
broker of ``[mqtt]``, e.g. for a control-room display or another system."""

from __future__ import annotations

import json
import ssl
import time
from typing import Any

import paho.mqtt.publish as mqtt_publish

from gateway.sinks.mqtt_schema import topic_segment
from supervision.config import MqttReceiver, MqttSection
from supervision.notify.outcome import Outcome


def topic_of(receiver: MqttReceiver, mqtt: MqttSection, payload: dict[str, Any]) -> str:
    return receiver.topic.format(
        prefix=mqtt.prefix.rstrip("/"),
        county=topic_segment(str(payload["mine"]["county"])),
        mine=topic_segment(str(payload["mine"]["code"])),
        kind=topic_segment(str(payload["alert"]["kind"]) if "alert" in payload else "group"),
    )


def publish(
    receiver: MqttReceiver, mqtt: MqttSection, delivery_id: int, payload: dict[str, Any]
) -> Outcome:
    t0 = time.perf_counter()
    body = json.dumps({**payload, "delivery_id": delivery_id}, ensure_ascii=False)
    auth = {"username": mqtt.username, "password": mqtt.password} if mqtt.username else None
    tls = (
        {"ca_certs": str(mqtt.tls_ca), "tls_version": ssl.PROTOCOL_TLS_CLIENT}
        if mqtt.tls_ca
        else None
    )
    try:
        mqtt_publish.single(
            topic_of(receiver, mqtt, payload), body, qos=1, retain=receiver.retain,
            hostname=mqtt.host, port=mqtt.port, client_id=f"{mqtt.client_id}-notify-{delivery_id}",
            keepalive=30, auth=auth, tls=tls,  # type: ignore[arg-type]
        )  # fmt: skip
    except (OSError, ValueError) as exc:
        return Outcome.failed(f"{type(exc).__name__}: {exc}", t0)
    return Outcome.sent(t0)

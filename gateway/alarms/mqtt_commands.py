"""Alarm commands over MQTT: requests on ``<root>/alarms/commands``, one
reply per request on ``<root>/alarms/replies`` (``<root>`` is the MQTT
sink's ``<prefix>/<site>/<gateway>``). The payload is the JSON object of
``gateway.alarms.commands``; the reply carries the request's ``id``.

A separate client (its own client id, ``<sink client id>-cmd``) on the
broker of the ``[[sinks]]`` named by ``alarm_control.mqtt_sink``; it
reconnects with the common backoff while the broker is away.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from typing import TYPE_CHECKING

import aiomqtt

from drivers.backoff import Backoff
from gateway.sinks.config import MqttConfig
from gateway.sinks.mqtt_schema import MqttEncoder

if TYPE_CHECKING:
    from gateway.alarms.service import AlarmService

log = logging.getLogger("minegate.alarms")

COMMAND_TOPIC = "alarms/commands"
REPLY_TOPIC = "alarms/replies"


def topics(cfg: MqttConfig, site: str, gateway: str) -> tuple[str, str]:
    root = MqttEncoder(cfg.topic_prefix, site, gateway).root
    return f"{root}/{COMMAND_TOPIC}", f"{root}/{REPLY_TOPIC}"


async def command_loop(service: AlarmService, stop: asyncio.Event) -> None:
    config = service.config
    name = config.alarm_control.mqtt_sink
    cfg = next(s for s in config.sinks if s.name == name)
    assert isinstance(cfg, MqttConfig)
    site, gw = config.site.name, config.site.gateway
    commands, replies = topics(cfg, site, gw)
    client_id = (cfg.client_id or f"minegate-{site}-{gw}-{cfg.name}")[:60] + "-cmd"
    backoff = Backoff(0.5, 30.0)
    while not stop.is_set():
        tls = None
        if cfg.tls:
            tls = aiomqtt.TLSParameters(
                ca_certs=cfg.ca_file,
                certfile=cfg.cert_file,
                keyfile=cfg.key_file,
                cert_reqs=ssl.CERT_REQUIRED,
            )
        try:
            async with aiomqtt.Client(
                cfg.host,
                cfg.effective_port,
                username=cfg.username,
                password=cfg.password,
                identifier=client_id,
                tls_params=tls,
                keepalive=cfg.keepalive_s,
                timeout=cfg.timeout_s,
            ) as client:
                await client.subscribe(commands, qos=1)
                backoff.reset()
                log.info("alarm commands on %s", commands)
                async for msg in client.messages:
                    raw = (
                        msg.payload if isinstance(msg.payload, bytes) else str(msg.payload).encode()
                    )
                    reply = service.reply_to(raw, "mqtt")
                    await client.publish(replies, json.dumps(reply, default=str), qos=1)
        except aiomqtt.MqttError as exc:
            delay = backoff.next_delay()
            log.warning("alarm command topic: %s; again in %.1f s", exc, delay)
            await asyncio.sleep(delay)

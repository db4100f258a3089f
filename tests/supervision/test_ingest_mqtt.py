"""Ingest from a real mosquitto: the gateways' messages land in the store,
junk is counted and dropped without stopping ingest, and two instances in
one shared-subscription group apply every message exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
from sqlalchemy import Engine, select

from supervision.config import PlatformConfig
from supervision.context import PlatformContext
from supervision.db import make_sessionmaker
from supervision.ingest.models import GatewayLiveness, LatestValue
from supervision.ingest.stats import IngestStats
from supervision.ingest.subscriber import Subscriber

from .conftest import servers
from .helpers import T0, GatewayAlarms, sample, status


def _ctx(
    engine: Engine, port: int, client_id: str, group: str = "platform", **mqtt: Any
) -> PlatformContext:
    config = PlatformConfig.model_validate(
        {
            "mqtt": {
                "port": port,
                "client_id": client_id,
                "shared_group": group,
                "session_expiry_s": 0,
                "max_payload_bytes": 4096,
                **mqtt,
            }
        }
    )
    return PlatformContext(config, make_sessionmaker(engine), ingest_stats=IngestStats())


@contextlib.asynccontextmanager
async def running(*subs: Subscriber) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(s.run()) for s in subs]
    try:
        for s in subs:
            await asyncio.wait_for(s.connected.wait(), 10)
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(cond: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def test_ingest_from_mosquitto_survives_junk(
    engine: Engine, world: Any, mosquitto_server: Any
) -> None:
    sub = _ctx(engine, mosquitto_server.port, "p12-ingest-a")
    s = Subscriber(sub)
    async with running(s), aiomqtt.Client("127.0.0.1", mosquitto_server.port) as pub:
        good = sample(1, T0, "pm", {"active_power": 81.5})
        # the gateway's alarm raise: retained active copy, stream twin (seq 2)
        active, stream = GatewayAlarms(seq=1).reading(1.2)
        await pub.publish(*active, qos=1, retain=True)
        for topic, payload in [
            ("minegate/qn1/gw01/telemetry/pm", b"{broken"),
            ("minegate/qn1/gw01/telemetry/pm", b"x" * 5000),
            ("minegate/qn1/gw01/telemetry/pm", b'{"seq": "one"}'),
            ("minegate/ghost/gw9/telemetry/pm", good),
            ("minegate/qn1/gw01/telemetry/pm", good),
            ("minegate/qn1/gw01/telemetry/pm", good),  # replayed seq
            stream,
            ("minegate/qn1/gw01/alarms/commands", b'{"user": "li.wei", "cmd": "ack"}'),
            ("minegate/qn1/gw01/status", status("online", T0)),
        ]:
            await pub.publish(topic, payload, qos=1)
        stats = s.stats
        await until(lambda: stats.applied["status"] == 1 and stats.dropped["duplicate_seq"] == 1
                    and stats.applied["alarm"] == 2)  # fmt: skip
        assert dict(stats.dropped) == {"bad_json": 1, "too_large": 1, "bad_field": 1,
                                       "unknown_gateway": 1, "duplicate_seq": 1}  # fmt: skip
        # the retained copy and its stream twin both set the alarm's state;
        # the operator command is not for the platform, not counted either
        assert dict(stats.applied) == {"sample": 1, "alarm": 2, "status": 1}
        await pub.publish(active[0], b"", qos=1, retain=True)  # leave the broker clean
        await until(lambda: stats.applied["alarm_clear"] == 1)
    with make_sessionmaker(engine)() as db:
        assert [(v.device, v.point, v.value) for v in db.scalars(select(LatestValue))] == [
            ("pm", "active_power", 81.5)]  # fmt: skip
        live = db.get_one(GatewayLiveness, world.gateways["qn1/gw01"])
        assert live.state == "online" and live.last_seq == 2


async def test_two_instances_share_the_load_once(
    engine: Engine, world: Any, mosquitto_server: Any
) -> None:
    a = Subscriber(_ctx(engine, mosquitto_server.port, "p12-share-a", "shared-test"))
    b = Subscriber(_ctx(engine, mosquitto_server.port, "p12-share-b", "shared-test"))
    n = 200
    async with running(a, b), aiomqtt.Client("127.0.0.1", mosquitto_server.port) as pub:
        for seq in range(1, n + 1):
            site = "qn1" if seq % 2 else "ls1"
            await pub.publish(
                f"minegate/{site}/gw01/telemetry/pm", sample(seq, T0 + seq, "pm", {"p": seq}), qos=1
            )

        def total() -> int:
            return a.stats.applied["sample"] + b.stats.applied["sample"]

        await until(lambda: total() == n)
        await asyncio.sleep(0.2)
        assert total() == n  # not one more: each message went to one instance
        assert a.stats.applied["sample"] > 0 and b.stats.applied["sample"] > 0
    with make_sessionmaker(engine)() as db:
        values = {v.gateway_id: v.value for v in db.scalars(select(LatestValue))}
    assert values == {world.gateways["qn1/gw01"]: n - 1, world.gateways["ls1/gw01"]: n}


async def test_a_batch_waits_for_the_database_instead_of_being_lost(
    engine: Engine, world: Any, mosquitto_server: Any
) -> None:
    """The database is unreachable when a message arrives: ingest keeps the
    batch and retries until the database is back, then applies it."""
    from supervision.db import make_engine

    ctx = _ctx(engine, mosquitto_server.port, "p12-db-down")
    working = ctx.sessions
    dead = make_engine(f"postgresql://nobody@127.0.0.1:{servers.free_port()}/none")
    ctx.sessions = make_sessionmaker(dead)
    s = Subscriber(ctx)
    async with running(s), aiomqtt.Client("127.0.0.1", mosquitto_server.port) as pub:
        await pub.publish("minegate/qn1/gw01/telemetry/pm", sample(1, T0, "pm", {"p": 7.0}), qos=1)
        await asyncio.sleep(1.0)  # at least one failed attempt
        assert s.stats.applied["sample"] == 0 and not s.stats.dropped
        ctx.sessions = working
        await until(lambda: s.stats.applied["sample"] == 1)
    dead.dispose()
    with make_sessionmaker(engine)() as db:
        assert [v.value for v in db.scalars(select(LatestValue))] == [7.0]


class CountingSubscriber(Subscriber):
    """The real subscriber, counting the batches it writes."""

    batches: list[int]

    def _apply(self, batch: list[Any]) -> set[int]:
        self.batches.append(len(batch))
        return super()._apply(batch)


async def test_a_trickle_of_messages_is_written_in_one_batch(
    engine: Engine, world: Any, mosquitto_server: Any
) -> None:
    """Messages arriving one by one within ``batch_wait_s`` of the first
    share its transaction (they were one transaction each: the platform's
    cost with 1,000 gateways, bench/platform_bench.py)."""
    ctx = _ctx(engine, mosquitto_server.port, "p12-trickle", batch_wait_s=1.0)
    s = CountingSubscriber(ctx)
    s.batches = []
    async with running(s), aiomqtt.Client("127.0.0.1", mosquitto_server.port) as pub:
        for seq in range(1, 11):
            await pub.publish("minegate/qn1/gw01/telemetry/pm", sample(seq, T0 + seq, "pm", {"p": seq}), qos=1)  # fmt: skip
            await asyncio.sleep(0.02)
        await until(lambda: s.stats.applied["sample"] == 10)
    assert s.batches == [10]

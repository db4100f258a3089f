"""Two instances of the service share one publish outbox (SQLite and
PostgreSQL): each row's findings reach the real mosquitto once, sent by
one instance; a row claimed by an instance that died is taken by the other
when the claim's lease ends."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from supervision.config import PlatformConfig
from supervision.context import PlatformContext
from supervision.db import make_engine, make_sessionmaker
from supervision.jobs.models import PublishOutbox
from supervision.jobs.publish import Publisher, dump_records, pending
from supervision.uploads.models import Survey

ROWS = 40


class Clock:
    def __init__(self) -> None:
        self.offset = 0

    def __call__(self) -> int:
        return time.time_ns() + self.offset


def _outbox(engine: Engine, world: Any, n: int) -> list[int]:
    """n checked surveys with one finding record each, waiting for "mqtt"."""
    from gateway.model import Quality, Record, RecordKind
    from supervision.registry.models import Mine

    ids = []
    with make_sessionmaker(engine)() as db, db.begin():
        mine = db.scalar(select(Mine).order_by(Mine.id).limit(1))
        assert mine is not None
        for i in range(n):
            s = Survey(mine_id=mine.id, uploader_id=1, uploader="con", created_ns=i,
                       fingerprint=f"fp{i}", via="multipart", licence_file="l.toml",
                       state="done")  # fmt: skip
            db.add(s)
            db.flush()
            rec = Record(RecordKind.FINDING, f"check-{s.id}", time.time_ns(), ["incidents"],
                         [i], [""], [Quality.GOOD], {"tags": {"survey": str(s.id)}})  # fmt: skip
            db.add(PublishOutbox(survey_id=s.id, sink="mqtt", records=dump_records([rec]),
                                 created_ns=i, attempts=0, next_try_ns=0, error=""))  # fmt: skip
            ids.append(s.id)
    return ids


def _instance(db_url: str, port: int, clock: Clock, client: str) -> tuple[Publisher, Engine]:
    config = PlatformConfig.model_validate(
        {
            "publish": {
                "poll_s": 0.05,
                "claim_s": 5,
                "sinks": [{"name": "mqtt", "type": "mqtt", "host": "127.0.0.1", "port": port,
                           "client_id": client}],
            }
        }
    )  # fmt: skip
    eng = make_engine(db_url)  # an instance of its own: its own pool
    return Publisher(PlatformContext(config, make_sessionmaker(eng), clock=clock)), eng


def _subscriber(port: int) -> tuple[Any, list[Any]]:
    import paho.mqtt.client as mqtt

    got: list[Any] = []
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="g13-claims-listener")
    sub.on_message = lambda _c, _u, m: got.append(m)
    sub.connect("127.0.0.1", port)
    sub.subscribe("minegate/#", qos=1)
    sub.loop_start()
    time.sleep(0.3)
    return sub, got


def _sent_by_survey(got: list[Any]) -> dict[str, int]:
    """Finding messages per survey (topic ``.../survey/check-<id>``)."""
    count: dict[str, int] = {}
    for m in got:
        leaf = m.topic.rsplit("/", 2)
        if leaf[-2] == "survey" and leaf[-1].startswith("check-"):
            sid = leaf[-1].removeprefix("check-")
            count[sid] = count.get(sid, 0) + 1
    return count


async def _run_until_sent(engine: Engine, pubs: list[Publisher], within_s: float) -> None:
    tasks = [asyncio.create_task(p.run()) for p in pubs]
    try:
        deadline = time.monotonic() + within_s
        while True:
            with make_sessionmaker(engine)() as db:
                if not pending(db):
                    break
            assert time.monotonic() < deadline, "outbox not emptied"
            await asyncio.sleep(0.1)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def test_two_instances_send_each_row_once(
    engine: Engine, db_url: str, world: Any, mosquitto_server: Any, monkeypatch: Any
) -> None:
    import supervision.jobs.publish as publish

    monkeypatch.setattr(publish, "TAKE", 4)  # small claims: the two instances interleave
    ids = _outbox(engine, world, ROWS)
    sub, got = _subscriber(mosquitto_server.port)
    clock = Clock()
    (a, ea), (b, eb) = (_instance(db_url, mosquitto_server.port, clock, f"g13-pub-{n}")
                        for n in "ab")  # fmt: skip
    try:
        asyncio.run(_run_until_sent(engine, [a, b], 60))
        time.sleep(0.5)  # the last messages through the broker
    finally:
        sub.loop_stop()
        sub.disconnect()
        ea.dispose()
        eb.dispose()
    sent = (a.status["mqtt"]["sent"], b.status["mqtt"]["sent"])
    assert sum(sent) == ROWS and min(sent) > 0, sent  # both worked, no row twice
    per_survey = _sent_by_survey(got)
    assert per_survey == {str(i): 1 for i in ids}, per_survey
    with make_sessionmaker(engine)() as db:
        left = db.scalar(select(func.count()).where(PublishOutbox.claim.is_not(None)))
        assert left == 0  # every claim released with the mark


def test_a_dead_instance_claim_expires(
    engine: Engine, db_url: str, world: Any, mosquitto_server: Any
) -> None:
    ids = _outbox(engine, world, 5)
    clock = Clock()
    (dead, ed), (live, el) = (_instance(db_url, mosquitto_server.port, clock, f"g13-pub-{n}")
                              for n in ("dead", "live"))  # fmt: skip
    sub, got = _subscriber(mosquitto_server.port)
    try:
        taken = dead._due("mqtt")  # claimed, then the instance dies before sending
        assert [t[1] for t in taken] == ids
        assert live._due("mqtt") == []  # while the claim holds, nothing for the other
        clock.offset = int(6e9)  # past publish.claim_s
        asyncio.run(_run_until_sent(engine, [live], 30))
        time.sleep(0.5)
        assert not dead._mark(taken[0][0], sent_ns=1)  # the dead one's claim is gone
    finally:
        sub.loop_stop()
        sub.disconnect()
        ed.dispose()
        el.dispose()
    assert live.status["mqtt"]["sent"] == 5
    assert _sent_by_survey(got) == {str(i): 1 for i in ids}


@pytest.mark.parametrize("n", [1])
def test_pending_counts_unsent(engine: Engine, world: Any, n: int) -> None:
    _outbox(engine, world, n)
    with make_sessionmaker(engine)() as db:
        assert pending(db) == {"mqtt": n}

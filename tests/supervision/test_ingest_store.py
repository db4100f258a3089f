"""Applying messages to the store: idempotent, newest wins, junk counted
(SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from supervision.db import make_sessionmaker
from supervision.ingest.models import GatewayAlarm, GatewayLiveness, LatestValue, ReceivedSeq
from supervision.ingest.parse import parse
from supervision.ingest.service import GatewayDirectory, apply_batch, prune_seqs
from supervision.ingest.stats import IngestStats

from .helpers import T0, GatewayAlarms, sample, status


def _apply(engine: Engine, msgs: list[tuple[str, bytes]], stats: IngestStats, now: int = T0) -> Any:
    parsed = [(t, parse(t, p, prefix="minegate", max_bytes=1 << 20)) for t, p in msgs]
    with make_sessionmaker(engine)() as db, db.begin():
        return apply_batch(db, parsed, now_ns=now, directory=GatewayDirectory(), stats=stats)


def _values(engine: Engine) -> dict[tuple[str, str], Any]:
    with make_sessionmaker(engine)() as db:
        return {(v.device, v.point): v.value for v in db.scalars(select(LatestValue))}


def test_a_message_is_applied_once(engine: Engine, world: Any) -> None:
    stats = IngestStats()
    msg = ("minegate/qn1/gw01/telemetry/pm", sample(7, T0, "pm", {"active_power": 80.0}))
    _apply(engine, [msg], stats)
    _apply(engine, [msg, msg], stats)  # redelivered, and twice in one batch
    assert stats.applied["sample"] == 1
    assert stats.dropped["duplicate_seq"] == 2
    assert _values(engine) == {("pm", "active_power"): 80.0}
    with make_sessionmaker(engine)() as db:
        assert db.scalar(select(func.count()).select_from(ReceivedSeq)) == 1
        live = db.get(GatewayLiveness, world.gateways["qn1/gw01"])
        assert live is not None and live.last_seq == 7 and live.last_seen_ns == T0


def test_seq_zero_is_not_deduplicated_by_seq(engine: Engine, world: Any) -> None:
    """seq 0: sent live while the gateway's store could not write
    (docs/schema.md); every one of them counts, newest value wins."""
    stats = IngestStats()
    t = "minegate/qn1/gw01/telemetry/pm"
    _apply(engine, [(t, sample(0, T0, "pm", {"p": 1.0}))], stats)
    _apply(engine, [(t, sample(0, T0 + 5, "pm", {"p": 2.0}))], stats)
    assert stats.applied["sample"] == 2 and not stats.dropped
    assert _values(engine) == {("pm", "p"): 2.0}


def test_liveness_of_every_gateway_of_a_batch_only_moves_forward(
    engine: Engine, world: Any
) -> None:
    """Last seen and the highest seq are written for all gateways of a batch
    in one statement: a later batch with lower seqs, or an earlier clock,
    moves neither back, and a gateway's status stays."""
    stats = IngestStats()
    qn1, ls1 = "minegate/qn1/gw01", "minegate/ls1/gw01"
    first = [(f"{qn1}/status", status("online", T0)), (f"{qn1}/telemetry/pm", sample(9, T0, "pm", {"p": 1})),
             (f"{ls1}/telemetry/pm", sample(4, T0, "pm", {"p": 1}))]  # fmt: skip
    _apply(engine, first, stats, now=T0 + 100)
    late = [(f"{qn1}/telemetry/pm", sample(5, T0, "pm", {"p": 1})),
            (f"{ls1}/telemetry/pm", sample(6, T0, "pm", {"p": 1}))]  # fmt: skip
    _apply(engine, late, stats, now=T0 + 50)
    with make_sessionmaker(engine)() as db:
        a = db.get_one(GatewayLiveness, world.gateways["qn1/gw01"])
        b = db.get_one(GatewayLiveness, world.gateways["ls1/gw01"])
    assert (a.last_seq, a.last_seen_ns, a.state) == (9, T0 + 100, "online")
    assert (b.last_seq, b.last_seen_ns, b.state) == (6, T0 + 100, None)


def test_an_older_message_never_overwrites_a_newer_value(engine: Engine, world: Any) -> None:
    stats = IngestStats()
    newer = ("minegate/qn1/gw01/snapshot/pm", sample(10, T0 + 20, "pm", {"p": 2.0}, "snapshot"))
    older = ("minegate/qn1/gw01/telemetry/pm", sample(9, T0 + 10, "pm", {"p": 1.0}))
    _apply(engine, [newer], stats)
    _apply(engine, [older], stats)  # arrives late (another instance, a retry)
    assert _values(engine) == {("pm", "p"): 2.0}
    # within one batch too, in either order
    _apply(engine, [("minegate/qn1/gw01/telemetry/pm", sample(12, T0 + 40, "pm", {"p": 4.0})),
                    ("minegate/qn1/gw01/telemetry/pm", sample(11, T0 + 30, "pm", {"p": 3.0}))], stats)  # fmt: skip
    assert _values(engine) == {("pm", "p"): 4.0}


def test_unknown_gateways_are_counted_and_dropped(engine: Engine, world: Any) -> None:
    stats = IngestStats()
    res = _apply(
        engine, [("minegate/nowhere/gw9/telemetry/pm", sample(1, T0, "pm", {"p": 1}))], stats
    )
    assert res.applied == 0 and stats.dropped["unknown_gateway"] == 1
    assert _values(engine) == {}


def test_status_follows_arrival_order(engine: Engine, world: Any) -> None:
    """A last will is stamped when its connection was made, before the
    ``online`` of that connection, yet it arrives after it and wins."""
    stats = IngestStats()
    topic = "minegate/qn1/gw01/status"
    gid = world.gateways["qn1/gw01"]

    def state() -> tuple[str | None, str | None]:
        with make_sessionmaker(engine)() as db:
            live = db.get_one(GatewayLiveness, gid)
            return live.state, live.reason

    _apply(engine, [(topic, status("online", T0 + 100, "connected"))], stats)
    assert state() == ("online", "connected")
    _apply(engine, [(topic, status("offline", T0 + 99, "connection lost"))], stats)
    assert state() == ("offline", "connection lost")
    # reconnect and die again within one batch: the last one counts
    _apply(engine, [(topic, status("online", T0 + 200, "connected")),
                    (topic, status("offline", T0 + 199, "connection lost"))], stats)  # fmt: skip
    assert state() == ("offline", "connection lost")


def test_gateway_alarm_lifecycle_reaches_the_alerts(engine: Engine, world: Any) -> None:
    """The gateway's alarm engine publishes through its MQTT encoder; the
    transitions become one ``gateway_alarm`` alert with the gateway's
    priority: raised, acknowledged at the gateway, returned to normal
    (resolved); raised again and cleared by the empty retained message
    alone; raised again and shelved (resolved)."""
    from supervision.alerting.models import Alert, AlertEvent
    from supervision.alerting.service import evaluate
    from supervision.config import AlertingSection

    gw, stats, cfg = GatewayAlarms(), IngestStats(), AlertingSection(heartbeat_timeout_s=1e9)
    sessions = make_sessionmaker(engine)

    def step(msgs: list[tuple[str, bytes]]) -> list[tuple[str, str, str]]:
        _apply(engine, msgs, stats)
        with sessions() as db, db.begin():
            evaluate(db, gw.now_ns, cfg)
            return [(a.state, a.severity, a.summary) for a in db.scalars(
                select(Alert).where(Alert.kind == "gateway_alarm").order_by(Alert.id))]  # fmt: skip

    raised = gw.reading(1.2)
    assert [t.split("/", 3)[3] for t, _ in raised] == ["alarms/active/gas.ch4_high", "alarms/gas"]
    assert step(raised) == [("firing", "high", "gas.ch4_high: raised (ch4 1.2 %, limit 1)")]
    assert step(gw.command("ack"))[0][2] == "gas.ch4_high: acknowledged by li.wei"
    assert [a[:2] for a in step(gw.reading(0.5))] == [("resolved", "high")]
    assert not stats.dropped and (stats.applied["alarm"], stats.applied["alarm_clear"]) == (5, 1)
    with sessions() as db:  # one alert: fired, updated by the ack, resolved
        assert [e.event for e in db.scalars(select(AlertEvent).order_by(AlertEvent.id))] == [
            "fired", "updated", "resolved"]  # fmt: skip
        live = db.get_one(GatewayLiveness, world.gateways["qn1/gw01"])
        assert live.last_seq == 103  # the retained copies' seqs are their twins'

    active, _ = gw.reading(1.3)
    step([active])  # only the retained copy arrives (a platform that was down)
    gw.reading(0.4)  # rtn_unacked, then acknowledged: normal; neither seen
    cleared, _ = gw.command("ack")
    assert cleared[1] == b""
    assert [a[0] for a in step([cleared])] == ["resolved", "resolved"]
    with sessions() as db:
        row = db.scalars(select(GatewayAlarm)).one()
        assert (row.alarm, row.state, row.device, row.point) == ("gas.ch4_high", "normal", "gas", "ch4")  # fmt: skip

    assert [a[0] for a in step(gw.reading(1.5))] == ["resolved", "resolved", "firing"]
    shelved = step(gw.command("shelve", until_ns=gw.now_ns + 3600 * 10**9))
    assert [a[0] for a in shelved] == ["resolved"] * 3


def test_pruning_forgets_old_seqs_only(engine: Engine, world: Any) -> None:
    stats = IngestStats()
    _apply(engine, [("minegate/qn1/gw01/telemetry/a", sample(1, T0, "a", {"p": 1}))], stats, now=T0)
    _apply(
        engine,
        [("minegate/qn1/gw01/telemetry/a", sample(2, T0, "a", {"p": 1}))],
        stats,
        now=T0 + 10**12,
    )
    with make_sessionmaker(engine)() as db, db.begin():
        assert prune_seqs(db, older_than_ns=T0 + 1) == 1
        assert db.scalars(select(ReceivedSeq.seq)).all() == [2]


def test_counts_of_a_transaction_are_merged_once(caplog: Any) -> None:
    import logging

    caplog.set_level(logging.WARNING, "minegate.platform.ingest")
    total = IngestStats()
    for _ in range(3):
        batch = IngestStats(quiet=True)
        batch.applied["sample"] += 2
        logged = len(caplog.records)
        for _ in range(600):
            batch.drop("bad_json", "minegate/s/g/telemetry/d")
        assert len(caplog.records) == logged  # quiet until merged
        total.merge(batch)
    assert total.as_dict() == {"applied": {"sample": 6}, "dropped": {"bad_json": 1800}}
    # logged at the first and when passing 1000
    assert [r.getMessage().split("(")[-1] for r in caplog.records] == [
        "600 so far)",
        "1200 so far)",
    ]

"""Incremental alert evaluation and the sweep lease (SQLite and PostgreSQL).

After a batch with alarms or statuses only the gateways it touched are
re-evaluated: their alerts fire and resolve, nobody else's move. The
periodic full sweep runs on one instance at a time, the holder of a lease;
when the holder dies another takes the sweep over once the lease expired."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from supervision.alerting.evaluator import Evaluator
from supervision.alerting.models import Alert
from supervision.alerting.service import evaluate, evaluate_gateways
from supervision.config import AlertingSection, PlatformConfig
from supervision.context import PlatformContext
from supervision.db import make_sessionmaker
from supervision.db.lease import hold, release
from supervision.ingest.parse import parse
from supervision.ingest.service import GatewayDirectory, apply_batch
from supervision.ingest.stats import IngestStats

from .helpers import T0, FakeClock, GatewayAlarms

S = 1_000_000_000


def _open(db: Any) -> dict[str, str]:
    return {a.fingerprint: a.kind for a in db.scalars(select(Alert).where(Alert.state == "firing"))}


def test_a_batch_re_evaluates_only_its_gateways(engine: Engine, world: Any) -> None:
    cfg = AlertingSection(heartbeat_timeout_s=60)
    sm = make_sessionmaker(engine)
    now = T0 + 61 * S
    with sm() as db, db.begin():
        assert evaluate(db, now, cfg).fired == 4  # four gateways never heard of
    qn1 = world.gateways["qn1/gw01"]
    gw = GatewayAlarms()
    msgs = [(t, parse(t, p, prefix="minegate", max_bytes=1 << 20)) for t, p in gw.reading(1.2)]
    with sm() as db, db.begin():
        res = apply_batch(db, msgs, now_ns=now, directory=GatewayDirectory(), stats=IngestStats())
    assert res.touched == {qn1}
    with sm() as db, db.begin():
        out = evaluate_gateways(db, res.touched, now + S, cfg)
        # qn1 spoke: its offline alert resolves, its alarm fires; the other
        # three gateways' offline alerts are not in scope and stay firing
        assert (out.fired, out.resolved) == (1, 1)
        firing = _open(db)
    offline = {f"gateway_offline:{world.gateways[g]}" for g in ("qn2/gw01", "ls1/gw01", "an1/gw01")}
    assert firing == {**dict.fromkeys(offline, "gateway_offline"),
                      f"gateway_alarm:{qn1}:gas.ch4_high": "gateway_alarm"}  # fmt: skip
    # the full evaluation agrees with the incremental one: nothing to change
    with sm() as db, db.begin():
        full = evaluate(db, now + S, cfg)
        assert (full.fired, full.resolved) == (0, 0)


def test_sweep_lease_is_held_by_one_and_taken_over_when_it_expires(engine: Engine) -> None:
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        assert hold(db, "sweep", "a", T0, 10)
    with sm() as db, db.begin():
        assert not hold(db, "sweep", "b", T0 + 5 * S, 10)  # a holds it
        assert hold(db, "sweep", "a", T0 + 5 * S, 10)  # renewed to T0 + 15 s
    with sm() as db, db.begin():
        assert not hold(db, "sweep", "b", T0 + 14 * S, 10)
        assert hold(db, "sweep", "b", T0 + 16 * S, 10)  # a stopped renewing: taken over
        assert not hold(db, "sweep", "a", T0 + 17 * S, 10)
    with sm() as db, db.begin():
        release(db, "sweep", "a")  # not a's: nothing happens
        assert not hold(db, "sweep", "a", T0 + 18 * S, 10)
        release(db, "sweep", "b")  # a clean stop hands it over at once
        assert hold(db, "sweep", "a", T0 + 18 * S, 10)


def test_only_one_evaluator_sweeps_until_it_dies(engine: Engine, world: Any) -> None:
    clock = FakeClock(T0)
    config = PlatformConfig.model_validate({"alerting": {"evaluate_interval_s": 2, "heartbeat_timeout_s": 60}})  # fmt: skip
    a, b = (Evaluator(PlatformContext(config, make_sessionmaker(engine), clock=clock)) for _ in "ab")  # fmt: skip
    assert a.lease_ttl_s == 10
    assert a.sweep() and not b.sweep()
    clock.advance(61)
    assert a.sweep() and not b.sweep()  # a swept: the four offline alerts
    with make_sessionmaker(engine)() as db:
        assert len(_open(db)) == 4
    clock.advance(9)  # a dies after its last sweep; within the lease b waits
    assert not b.sweep()
    clock.advance(2)  # expired: b takes over
    assert b.sweep() and (a.sweeps, b.sweeps) == (2, 1)


def test_a_large_batch_upserts_in_one_statement_and_keeps_the_newest(engine: Engine, world: Any) -> None:  # fmt: skip
    """Batches of UNNEST_MIN_ROWS rows and more take PostgreSQL's one-statement
    path (arrays): same results as the row-by-row path, newer values win,
    JSON values kept as they came."""
    from supervision.db.upsert import UNNEST_MIN_ROWS
    from supervision.ingest.models import GatewayLiveness, LatestValue

    from .helpers import sample

    sm = make_sessionmaker(engine)
    topic = "minegate/qn1/gw01/snapshot/pm"
    points = {f"p{i}": float(i) for i in range(UNNEST_MIN_ROWS + 2)} | {"mode": "auto"}

    def apply(seq: int, ts: int, values: dict[str, Any]) -> None:
        msgs = [(topic, parse(topic, sample(seq, ts, "pm", values, kind="snapshot"), prefix="minegate", max_bytes=1 << 20))]  # fmt: skip
        with sm() as db, db.begin():
            apply_batch(db, msgs, now_ns=ts, directory=GatewayDirectory(), stats=IngestStats())

    apply(1, T0 + 10 * S, points)
    apply(2, T0 + 5 * S, {k: -1.0 for k in points})  # older: loses
    apply(3, T0 + 20 * S, {"p0": 99.0, **{f"p{i}": 7.0 for i in range(1, UNNEST_MIN_ROWS + 2)}})
    with sm() as db:
        got = {v.point: (v.value, v.ts_ns) for v in db.scalars(select(LatestValue))}
        live = db.get_one(GatewayLiveness, world.gateways["qn1/gw01"])
    assert got["p0"] == (99.0, T0 + 20 * S) and got["p1"] == (7.0, T0 + 20 * S)
    assert got["mode"] == ("auto", T0 + 10 * S)
    assert live.last_seq == 3 and live.last_seen_ns == T0 + 20 * S

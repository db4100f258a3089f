"""Alert states in the store: opened once, resolved, every transition
recorded, acknowledgement kept (SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from supervision.alerting.models import Alert, AlertEvent
from supervision.alerting.rules import AlertSpec
from supervision.alerting.service import acknowledge, evaluate, reconcile
from supervision.config import AlertingSection
from supervision.db import make_sessionmaker
from supervision.ingest.models import LatestValue

from .helpers import T0

S = 1_000_000_000


def spec(mine_id: int, summary: str = "x offline") -> AlertSpec:
    return AlertSpec(
        "gateway_offline:1", "gateway_offline", mine_id, None, "major", summary, {"a": 1}
    )


def _events(db: Any) -> list[tuple[int, str]]:
    return [(e.alert_id, e.event) for e in db.scalars(select(AlertEvent).order_by(AlertEvent.id))]


def test_fire_update_resolve_refire(engine: Engine, world: Any) -> None:
    mine = world.mines["M-QN-1"]
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        assert reconcile(db, {"gateway_offline:1": spec(mine)}, T0).fired == 1
        assert reconcile(db, {"gateway_offline:1": spec(mine)}, T0 + S).fired == 0
        assert (
            reconcile(db, {"gateway_offline:1": spec(mine, "y offline")}, T0 + 2 * S).updated == 1
        )
        assert reconcile(db, {}, T0 + 3 * S).resolved == 1
        assert reconcile(db, {"gateway_offline:1": spec(mine)}, T0 + 4 * S).fired == 1
    with sm() as db:
        alerts = db.scalars(select(Alert).order_by(Alert.id)).all()
        assert [(a.state, a.open_fingerprint) for a in alerts] == [
            ("resolved", None), ("firing", "gateway_offline:1")]  # fmt: skip
        assert alerts[0].resolved_ns == T0 + 3 * S and alerts[0].summary == "y offline"
        first, second = alerts[0].id, alerts[1].id
        assert _events(db) == [
            (first, "fired"),
            (first, "updated"),
            (first, "resolved"),
            (second, "fired"),
        ]


def test_acknowledge_once(engine: Engine, world: Any) -> None:
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        reconcile(db, {"gateway_offline:1": spec(world.mines["M-QN-1"])}, T0)
        alert = db.scalars(select(Alert)).one()
        assert acknowledge(db, alert, "reg-qn", T0 + S)
        assert not acknowledge(db, alert, "reg-qz", T0 + 2 * S)
    with sm() as db:
        alert = db.scalars(select(Alert)).one()
        assert (alert.acked_by, alert.acked_ns) == ("reg-qn", T0 + S)
        assert [e for _, e in _events(db)] == ["fired", "acknowledged"]


def test_evaluate_from_the_store(engine: Engine, world: Any) -> None:
    """Gateways never heard of go offline after the timeout; the suspended
    mine drawing power above its baseline raises suspected production."""
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 60})
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        assert evaluate(db, T0 + 30 * S, cfg).fired == 0
        db.add(LatestValue(gateway_id=world.gateways["qn2/gw01"], device="pm", point="active_power",
                           value=120.0, number=120.0, unit="kW", quality="good", ts_ns=T0))  # fmt: skip
        db.flush()
        res = evaluate(db, T0 + 31 * S, cfg)
        assert res.fired == 1
        assert evaluate(db, T0 + 61 * S, cfg).fired == 4  # four silent gateways
    with sm() as db:
        kinds = sorted((a.kind, a.mine_id) for a in db.scalars(select(Alert)))
        assert ("suspected_illegal_production", world.mines["M-QN-2"]) in kinds
        assert sum(k == "gateway_offline" for k, _ in kinds) == 4


def test_unacknowledged_alerts_are_escalated_once(engine: Engine, world: Any) -> None:
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 60, "escalate_after_s": 600})
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        evaluate(db, T0 + 61 * S, cfg)  # four silent gateways: four alerts
        acked = db.scalars(select(Alert).where(Alert.mine_id == world.mines["M-QN-1"])).one()
        acknowledge(db, acked, "reg-qn", T0 + 100 * S)
        assert evaluate(db, T0 + 660 * S, cfg).escalated == 0  # 599 s: not yet
        assert evaluate(db, T0 + 661 * S, cfg).escalated == 3  # all but the acknowledged
        assert evaluate(db, T0 + 2000 * S, cfg).escalated == 0  # once
    with sm() as db:
        escalated = db.scalars(
            select(AlertEvent.alert_id).where(AlertEvent.event == "escalated")
        ).all()
        assert len(escalated) == 3 and acked.id not in escalated


def test_no_escalation_when_off(engine: Engine, world: Any) -> None:
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 60})
    with make_sessionmaker(engine)() as db, db.begin():
        evaluate(db, T0 + 61 * S, cfg)
        assert evaluate(db, T0 + 10**6 * S, cfg).escalated == 0


def test_a_device_the_gateway_reports_silent(engine: Engine, world: Any) -> None:
    """Every point of a device in comm_loss: a data-gap alert, resolved
    when one point answers again."""
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 10**6})
    gw = world.gateways["qn1/gw01"]

    def value(device: str, point: str, quality: str) -> LatestValue:
        return LatestValue(gateway_id=gw, device=device, point=point, value=None, number=None,
                           unit="", quality=quality, ts_ns=T0)  # fmt: skip

    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        db.add_all([value("gas_monitor_2", "ch4", "comm_loss"), value("gas_monitor_2", "co", "comm_loss"),
                    value("gas_monitor_1", "ch4", "good"), value("gas_monitor_1", "co", "comm_loss")])  # fmt: skip
        db.flush()
        assert evaluate(db, T0, cfg).fired == 1
        alert = db.scalars(select(Alert)).one()
        assert (
            alert.kind == "device_silent"
            and alert.fingerprint == f"device_silent:{gw}:gas_monitor_2"
        )
        assert alert.evidence["points"] == 2 and "qn1/gw01" in alert.summary
        db.get_one(LatestValue, (gw, "gas_monitor_2", "co")).quality = "good"
        db.flush()
        assert evaluate(db, T0 + S, cfg).resolved == 1


def test_reminders_repeat_until_acknowledged(engine: Engine, world: Any) -> None:
    from supervision.alerting.service import remind

    mine = world.mines["M-QN-1"]
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        reconcile(db, {"y": AlertSpec("y", "gateway_offline", mine, None, "major", "y")}, T0)
        assert remind(db, T0 + 3599 * S, 3600) == 0
        assert remind(db, T0 + 3600 * S, 3600) == 1
        assert remind(db, T0 + 5000 * S, 3600) == 0  # an hour after the last reminder
        assert remind(db, T0 + 7200 * S, 3600) == 1
        alert = db.scalars(select(Alert)).one()
        acknowledge(db, alert, "reg-qn", T0 + 7300 * S)
        assert remind(db, T0 + 20000 * S, 3600) == 0
    with sm() as db:
        events = db.scalars(select(AlertEvent.event).order_by(AlertEvent.id)).all()
        assert events == ["fired", "reminder", "reminder", "acknowledged"]


def test_evaluate_sends_reminders_when_configured(engine: Engine, world: Any) -> None:
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 60, "remind_every_s": 3600})
    with make_sessionmaker(engine)() as db, db.begin():
        assert evaluate(db, T0 + 61 * S, cfg).fired == 4
        assert evaluate(db, T0 + 3660 * S, cfg).reminded == 0
        assert evaluate(db, T0 + 3661 * S, cfg).reminded == 4

"""Device data gaps measured by time: the rule on hand-made facts, its
configuration, and the whole path through the store (ingest keeps when a
point last had data through its comm_loss reports; the evaluator fires,
inhibits and resolves, recording the gap's length) on SQLite and
PostgreSQL."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import Engine, select

from supervision.alerting.models import Alert, AlertEvent
from supervision.alerting.rules import (
    DeviceDataFact,
    GatewayFact,
    data_gaps,
    evaluate_rules,
    on_resolve,
)
from supervision.alerting.service import evaluate
from supervision.config import AlertingSection, DataGapWatch, PlatformConfigError, parse_config
from supervision.db import make_sessionmaker
from supervision.ingest.models import LatestValue
from supervision.ingest.parse import parse
from supervision.ingest.service import GatewayDirectory, apply_batch
from supervision.ingest.stats import IngestStats

from .helpers import T0, status

S = 1_000_000_000
WATCH = DataGapWatch.model_validate({})  # 3 x 20 s, at least 300 s: 300 s
GW = GatewayFact(1, 10, "qn1/gw01", T0 - 3600 * S, T0, "online", None, T0 - 3600 * S)


def fact(last_data: int | None, *, device: str = "gas_1", alerting: bool = False) -> DeviceDataFact:
    return DeviceDataFact(10, 1, "qn1/gw01", device, 4, last_data, T0 + 900 * S, alerting)


def test_a_gap_alerts_after_its_limit_with_its_start_and_length() -> None:
    assert data_gaps([fact(T0)], [GW], T0 + 300 * S, WATCH) == []
    [a] = data_gaps([fact(T0)], [GW], T0 + 301 * S, WATCH)
    assert (a.kind, a.fingerprint, a.severity) == (
        "device_data_gap",
        "device_data_gap:1:gas_1",
        "minor",
    )
    assert a.evidence["gap_start"] == "2026-12-01T00:00:00Z" and a.evidence["gap_start_ns"] == T0
    assert (a.evidence["gap_s"], a.evidence["limit_s"], a.evidence["class"]) == (
        300,
        300.0,
        "default",
    )
    assert a.evidence["comm_loss"] is True  # the gateway goes on reporting it, as not answering
    assert "gas_1 on qn1/gw01: no data since 2026-12-01T00:00:00Z" in a.summary
    assert "5 min" in a.summary
    # later: the same summary (no update event every round), a longer gap
    [b] = data_gaps([fact(T0)], [GW], T0 + 3725 * S, WATCH)
    assert b.summary == a.summary and b.evidence["gap_s"] == 3720


def test_limits_per_device_class() -> None:
    watch = DataGapWatch.model_validate(
        {
            "min_gap_s": 120,
            "classes": {
                "power": {"devices": ["power_meter*"], "reporting_interval_s": 60},
                "gas": {"devices": ["gas*", "ch4*"], "min_gap_s": 30, "intervals": 2},
            },
        }
    )
    assert watch.limit_for("power_meter_2") == ("power", 180.0)
    assert watch.limit_for("gas_1") == ("gas", 40.0)
    assert watch.limit_for("main_fan_1") == ("default", 120.0)
    assert watch.shortest_s == 40.0
    facts = [fact(T0, device=d) for d in ("power_meter_2", "gas_1", "main_fan_1")]

    def fired(t: int) -> list[str]:
        return sorted(a.evidence["device"] for a in data_gaps(facts, [GW], T0 + t * S, watch))

    assert fired(40) == []
    assert fired(41) == ["gas_1"]
    assert fired(121) == ["gas_1", "main_fan_1"]
    assert fired(181) == ["gas_1", "main_fan_1", "power_meter_2"]
    assert data_gaps(facts, [GW], T0 + 10**6 * S, watch.model_copy(update={"enabled": False})) == []


def test_an_offline_gateway_inhibits_new_gaps_but_not_one_already_alerting() -> None:
    late = T0 + 1000 * S
    assert data_gaps([fact(T0)], [GW], late, WATCH, offline={1}) == []
    [a] = data_gaps([fact(T0, alerting=True)], [GW], late, WATCH, offline={1})
    assert a.evidence["gap_start_ns"] == T0
    # through evaluate_rules: a gateway whose last will says offline
    down = GatewayFact(1, 10, "qn1/gw01", T0 - 3600 * S, late, "offline", "lost", T0 + 10 * S)
    cfg = AlertingSection.model_validate({})
    specs = evaluate_rules(now_ns=late, gateways=[down], mines=[], values=[], alarms=[], config=cfg,
                           data=[fact(T0)])  # fmt: skip
    assert sorted(specs) == ["gateway_offline:1"]
    up = GatewayFact(1, 10, "qn1/gw01", T0 - 3600 * S, late, "online", None, T0 - 3600 * S)
    specs = evaluate_rules(now_ns=late, gateways=[up], mines=[], values=[], alarms=[], config=cfg,
                           data=[fact(T0)])  # fmt: skip
    assert sorted(specs) == ["device_data_gap:1:gas_1"]


def test_a_gateway_back_or_a_platform_started_gives_devices_a_limit_first() -> None:
    back = GatewayFact(
        1, 10, "qn1/gw01", T0 - 3600 * S, T0 + 2000 * S, "online", None, T0 + 2000 * S
    )
    assert data_gaps([fact(T0)], [back], T0 + 2300 * S, WATCH) == []
    [a] = data_gaps([fact(T0)], [back], T0 + 2301 * S, WATCH)
    assert a.evidence["gap_start_ns"] == T0  # the gap still began at its last data
    started = T0 + 5000 * S
    assert data_gaps([fact(T0)], [GW], started + 300 * S, WATCH, watching_since_ns=started) == []
    assert (
        len(data_gaps([fact(T0)], [GW], started + 301 * S, WATCH, watching_since_ns=started)) == 1
    )


def test_a_device_that_never_sent_data_counts_from_its_gateways_registration() -> None:
    new = GatewayFact(1, 10, "qn1/gw01", T0, None, None, None, None)
    assert data_gaps([fact(None)], [new], T0 + 300 * S, WATCH) == []
    [a] = data_gaps([fact(None)], [new], T0 + 301 * S, WATCH)
    assert a.evidence["gap_start"] is None and "no data received" in a.summary


def test_the_resolution_records_the_gaps_end_and_length() -> None:
    [a] = data_gaps([fact(T0)], [GW], T0 + 400 * S, WATCH)
    done = on_resolve(a.kind, a.evidence, T0 + 754 * S)
    assert (done["gap_end"], done["gap_s"]) == ("2026-12-01T00:12:34Z", 754)
    assert on_resolve("gateway_offline", {"x": 1}, T0) == {"x": 1}


def test_configuration_errors_name_the_line_and_key() -> None:
    text = "[alerting.data_gap]\nmin_gap_s = 60\n[alerting.data_gap.classes.power]\nreporting_interval_s = -1\n"
    with pytest.raises(PlatformConfigError) as err:
        parse_config(text, "platform.toml")
    assert (
        "platform.toml:3: alerting.data_gap.classes.power.devices: Field required"
        in err.value.errors
    )
    assert any(e.startswith("platform.toml:4: alerting.data_gap.classes.power.reporting_interval_s")
               for e in err.value.errors)  # fmt: skip
    with pytest.raises(PlatformConfigError, match="unknown key"):
        parse_config("[alerting.data_gap]\nmin_gap = 60\n", "platform.toml")


# --- through the store (SQLite and PostgreSQL) ------------------------------


def _snap(seq: int, ts_ns: int, device: str, points: dict[str, Any], quality: str) -> bytes:
    values = {p: {"v": v, "u": "", "q": quality} for p, v in points.items()}
    return json.dumps({"seq": seq, "kind": "snapshot", "ts": "", "ts_ns": ts_ns,
                       "device": device, "values": values}).encode()  # fmt: skip


def _apply(engine: Engine, msgs: list[tuple[str, bytes]], now: int) -> None:
    parsed = [(t, parse(t, p, prefix="minegate", max_bytes=1 << 20)) for t, p in msgs]
    with make_sessionmaker(engine)() as db, db.begin():
        apply_batch(db, parsed, now_ns=now, directory=GatewayDirectory(), stats=IngestStats())


TOPIC = "minegate/qn1/gw01/snapshot/"


def test_ingest_keeps_when_a_point_last_had_data(engine: Engine, world: Any) -> None:
    gas = {"ch4": 0.3, "co": 4.0}
    _apply(engine, [(TOPIC + "gas_1", _snap(1, T0, "gas_1", gas, "good"))], T0)
    # one batch: data, then comm_loss reports: the row moves on, its data time stays
    _apply(engine, [(TOPIC + "gas_1", _snap(2, T0 + 20 * S, "gas_1", gas, "good")),
                    (TOPIC + "gas_1", _snap(3, T0 + 40 * S, "gas_1", dict.fromkeys(gas), "comm_loss"))],
           T0 + 40 * S)  # fmt: skip
    _apply(engine, [(TOPIC + "gas_1", _snap(4, T0 + 60 * S, "gas_1", dict.fromkeys(gas), "comm_loss"))],
           T0 + 60 * S)  # fmt: skip
    with make_sessionmaker(engine)() as db:
        rows = db.scalars(select(LatestValue).where(LatestValue.device == "gas_1")).all()
    assert {(r.quality, r.ts_ns, r.data_ts_ns) for r in rows} == {
        ("comm_loss", T0 + 60 * S, T0 + 20 * S)
    }
    # a bad value (a sensor fault the device reports) is data too: the device answers
    _apply(engine, [(TOPIC + "gas_1", _snap(5, T0 + 80 * S, "gas_1", gas, "bad"))], T0 + 80 * S)
    with make_sessionmaker(engine)() as db:
        rows = db.scalars(select(LatestValue).where(LatestValue.device == "gas_1")).all()
    assert {r.data_ts_ns for r in rows} == {T0 + 80 * S}


def test_a_gap_fires_resolves_and_records_its_length(engine: Engine, world: Any) -> None:
    """A device that stops answering (comm_loss reports go on) and one the
    gateway stops reporting at all: both alert after 300 s with their
    start; data back resolves with the gap's length. The healthy device
    beside them never alerts."""
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 10**6})
    sm = make_sessionmaker(engine)
    gas, pm, fan = {"ch4": 0.3, "co": 4.0}, {"active_power": 80.0}, {"running": 1}
    _apply(engine, [(TOPIC + "gas_1", _snap(1, T0, "gas_1", gas, "good")),
                    (TOPIC + "pm_1", _snap(2, T0, "pm_1", pm, "good")),
                    (TOPIC + "fan_1", _snap(3, T0, "fan_1", fan, "good"))], T0)  # fmt: skip
    seq = 10
    for t in range(20, 401, 20):  # gas_1 stops answering, pm_1 is no longer reported
        seq += 2
        _apply(engine, [(TOPIC + "gas_1", _snap(seq, T0 + t * S, "gas_1", dict.fromkeys(gas), "comm_loss")),
                        (TOPIC + "fan_1", _snap(seq + 1, T0 + t * S, "fan_1", fan, "good"))], T0 + t * S)  # fmt: skip
        with sm() as db, db.begin():
            evaluate(db, T0 + t * S, cfg)
            gaps = db.scalars(select(Alert).where(Alert.kind == "device_data_gap")).all()
            assert (len(gaps) == 2) == (t > 300), t
    with sm() as db:
        by_device = {
            a.evidence["device"]: a
            for a in db.scalars(select(Alert).where(Alert.kind == "device_data_gap"))
        }
    assert set(by_device) == {"gas_1", "pm_1"}
    assert by_device["gas_1"].evidence["comm_loss"] is True
    assert by_device["pm_1"].evidence["comm_loss"] is False
    assert all(a.evidence["gap_start_ns"] == T0 and a.state == "firing" for a in by_device.values())
    # gas_1 answers again at +430 s: its gap resolves, 430 s long
    _apply(engine, [(TOPIC + "gas_1", _snap(99, T0 + 430 * S, "gas_1", gas, "good"))], T0 + 430 * S)
    with sm() as db, db.begin():
        assert evaluate(db, T0 + 431 * S, cfg).resolved == 2  # its data gap and device_silent
    with sm() as db:
        gas_gap = db.get_one(Alert, by_device["gas_1"].id)
        assert gas_gap.state == "resolved" and gas_gap.evidence["gap_s"] == 431
        assert gas_gap.evidence["gap_end"] == "2026-12-01T00:07:11Z"
        events = db.scalars(select(AlertEvent.event).where(AlertEvent.alert_id == gas_gap.id)).all()
        assert list(events) == ["fired", "resolved"]  # no update event while it went on
        assert db.get_one(Alert, by_device["pm_1"].id).state == "firing"


def test_an_offline_gateway_inhibits_its_devices_gaps(engine: Engine, world: Any) -> None:
    cfg = AlertingSection.model_validate({"heartbeat_timeout_s": 10**6})
    _apply(engine, [(TOPIC + "pm_1", _snap(1, T0, "pm_1", {"active_power": 80.0}, "good"))], T0)
    _apply(
        engine,
        [("minegate/qn1/gw01/status", status("offline", T0 + 5 * S, "connection lost"))],
        T0 + 5 * S,
    )
    with make_sessionmaker(engine)() as db, db.begin():
        evaluate(db, T0 + 1000 * S, cfg)
        kinds = [a.kind for a in db.scalars(select(Alert))]
    assert kinds == ["gateway_offline"]
    # back online: the device gets a limit's time to report before its gap alerts
    _apply(engine, [("minegate/qn1/gw01/status", status("online", T0 + 2000 * S))], T0 + 2000 * S)
    with make_sessionmaker(engine)() as db, db.begin():
        evaluate(db, T0 + 2001 * S, cfg)
        assert [a.kind for a in db.scalars(select(Alert).where(Alert.state == "firing"))] == []
        evaluate(db, T0 + 2301 * S, cfg)
        [gap] = db.scalars(select(Alert).where(Alert.state == "firing")).all()
        assert gap.kind == "device_data_gap" and gap.evidence["gap_start_ns"] == T0


def test_a_row_written_without_its_data_time_takes_its_own(engine: Engine, world: Any) -> None:
    """Inserts that leave ``data_ts_ns`` out (tools, fixtures) get the
    row's time when it has data, none for a comm_loss report."""
    gw = world.gateways["qn1/gw01"]
    with make_sessionmaker(engine)() as db, db.begin():
        db.add_all([
            LatestValue(gateway_id=gw, device="d", point="good", value=1.0, number=1.0, unit="",
                        quality="good", ts_ns=T0),
            LatestValue(gateway_id=gw, device="d", point="lost", value=None, number=None, unit="",
                        quality="comm_loss", ts_ns=T0),
        ])  # fmt: skip
    with make_sessionmaker(engine)() as db:
        got = {v.point: v.data_ts_ns for v in db.scalars(select(LatestValue))}
    assert got == {"good": T0, "lost": None}

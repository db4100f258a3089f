"""Test helpers: a registry with every kind of user, a settable clock,
gateway messages as the gateway's MQTT sink writes them."""

from __future__ import annotations

import importlib
import json
import os
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Engine


def require_module(name: str) -> Any:
    """Import ``name``; skip when it is missing (fail under ``CI``, like a
    missing server: dev dependencies are part of the test setup)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        import pytest

        msg = f"{name} not installed (pip install -e '.[dev]')"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


#: 2026-12-01T00:00:00Z
T0 = 1_796_083_200_000_000_000
PASSWORD = "correct horse battery"


class FakeClock:
    def __init__(self, start: int = T0) -> None:
        self.now = start

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1e9)


@dataclass
class World:
    mines: dict[str, int] = field(default_factory=dict)  # code -> id
    gateways: dict[str, int] = field(default_factory=dict)  # "site/gw" -> id
    tokens: dict[str, str] = field(default_factory=dict)  # user -> token


def build_world(engine: Engine, now_ns: int = T0) -> World:
    from supervision.auth import service as auth
    from supervision.auth.scope import AreaLevel
    from supervision.db import make_sessionmaker
    from supervision.registry import service as reg

    w = World()
    with make_sessionmaker(engine)() as db, db.begin():
        reg.add_region(db, "GX", "Guangxi")
        reg.add_city(db, "GX", "QZ", "Qinzhou")
        reg.add_county(db, "QZ", "QN", "Qinnan")
        reg.add_county(db, "QZ", "LS", "Lingshan")
        reg.add_region(db, "YN", "Yunnan")
        reg.add_city(db, "YN", "KM", "Kunming")
        reg.add_county(db, "KM", "AN", "Anning")
        for county, code, name, kw in (
            ("QN", "M-QN-1", "Qinnan iron mine", {}),
            ("QN", "M-QN-2", "Qinnan coal mine", {"status": "suspended", "order_no": "QN-2026-7",
                                                 "order_from": date(2026, 11, 1), "baseline_power_kw": 50.0}),
            ("LS", "M-LS-1", "Lingshan quarry", {}),
            ("AN", "M-AN-1", "Anning phosphate mine", {}),
        ):  # fmt: skip
            w.mines[code] = reg.add_mine(db, county, code, name, **kw).id
        for mine, site in (
            ("M-QN-1", "qn1"),
            ("M-QN-2", "qn2"),
            ("M-LS-1", "ls1"),
            ("M-AN-1", "an1"),
        ):
            w.gateways[f"{site}/gw01"] = reg.add_gateway(db, mine, site, "gw01", now_ns=now_ns).id
        users = [
            ("admin", "admin", AreaLevel.ALL, None),
            ("reg-qn", "regulator", AreaLevel.COUNTY, "QN"),
            ("reg-qz", "regulator", AreaLevel.CITY, "QZ"),
            ("reg-gx", "regulator", AreaLevel.REGION, "GX"),
            ("viewer-qn", "viewer", AreaLevel.COUNTY, "QN"),
            ("op-qn1", "operator", AreaLevel.MINE, "M-QN-1"),
        ]
        for name, role, area, code in users:
            user = auth.create_user(
                db, name, role, area=area, area_code=code, now_ns=now_ns,
                password=PASSWORD if name == "reg-qn" else None,
            )  # fmt: skip
            w.tokens[name] = auth.issue_token(db, user, now_ns=now_ns)
    return w


def status(state: str, ts_ns: int, reason: str = "", site: str = "qn1", gw: str = "gw01") -> bytes:
    return json.dumps(
        {"state": state, "reason": reason, "site": site, "gateway": gw, "ts": "", "ts_ns": ts_ns}
    ).encode()


def sample(
    seq: int, ts_ns: int, device: str, values: dict[str, Any], kind: str = "sample"
) -> bytes:
    return json.dumps(
        {
            "seq": seq,
            "kind": kind,
            "ts": "",
            "ts_ns": ts_ns,
            "device": device,
            "values": {p: {"v": v, "u": "", "q": "good"} for p, v in values.items()},
        }
    ).encode()


class GatewayAlarms:
    """A gateway's alarm engine with one CH4 high rule (``gas.ch4_high``,
    priority high) on device ``gas``, its records published as the
    gateway's MQTT sink does (``gateway/sinks/mqtt_schema.py``): per
    transition the retained ``alarms/active/<alarm>`` copy (empty when the
    alarm is normal), then the ``alarms/<device>`` stream message."""

    def __init__(self, site: str = "qn1", gateway: str = "gw01", *, seq: int = 100) -> None:
        from gateway.alarms.engine import AlarmEngine
        from gateway.alarms.rules import LimitKind, LimitRule, PointRef, Priority
        from gateway.sinks.mqtt_schema import MqttEncoder

        self.now_ns = T0
        rule = LimitRule(name="gas.ch4_high", point=PointRef("gas", "ch4"), kind=LimitKind.HIGH,
                         limit=1.0, restore=0.95, priority=Priority.HIGH)  # fmt: skip
        self.engine = AlarmEngine([rule], clock=lambda: self.now_ns)
        self.encoder = MqttEncoder("minegate", site, gateway)
        self.seq = seq

    def _publish(self, transitions: list[Any]) -> list[tuple[str, bytes]]:
        from gateway.alarms.records import to_record

        out = []
        for tr in transitions:
            rec = to_record(tr, self.engine.conditions[tr.alarm], "%")
            self.seq += 1
            rec.seq = self.seq
            out += [(m.topic, m.payload) for m in self.encoder.encode(rec)]
        return out

    def reading(self, ch4: float, *, dt_s: float = 1.0) -> list[tuple[str, bytes]]:
        from gateway.model import Quality, Record, RecordKind

        self.now_ns += int(dt_s * 1e9)
        rec = Record(RecordKind.SAMPLE, "gas", self.now_ns, ["ch4"], [ch4], ["%"], [Quality.GOOD])
        return self._publish(self.engine.observe(rec))

    def command(self, event: str, user: str = "li.wei", **kw: Any) -> list[tuple[str, bytes]]:
        from gateway.alarms.state import Event

        self.now_ns += 10**9
        return self._publish(self.engine.command("gas.ch4_high", Event(event), user, **kw))

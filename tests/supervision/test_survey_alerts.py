"""Survey violations from the survey check's findings (docs/schema.md,
``survey/<check>``): the latest check of a licence decides (SQLite and
PostgreSQL)."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import Engine, select

from supervision.alerting.models import Alert
from supervision.alerting.service import evaluate
from supervision.config import AlertingSection
from supervision.db import make_sessionmaker
from supervision.ingest.parse import parse
from supervision.ingest.service import GatewayDirectory, apply_batch
from supervision.ingest.stats import IngestStats

from .helpers import T0
from .test_ingest_parse import EXAMPLES

S = 1_000_000_000
CFG = AlertingSection.model_validate({"heartbeat_timeout_s": 10**6})


def finding(seq: int, ts_ns: int, check: str, violation: bool, incidents: int) -> bytes:
    return json.dumps(
        {
            "seq": seq, "kind": "finding", "ts": "", "ts_ns": ts_ns, "device": check,
            "values": {"verdict": {"v": "violation" if violation else "compliant", "u": "", "q": "good"},
                       "incidents": {"v": incidents, "u": "", "q": "good"}},
            "fields": {"measurement": "survey_check",
                       "tags": {"site": "qn1", "licence": "C450", "check_id": check},
                       "alert": violation, "message": f"survey check {check}: {incidents} violation(s)"},
        }
    ).encode()  # fmt: skip


def test_the_documented_finding_is_a_survey_check() -> None:
    [(topic, payload)] = [(t, p) for t, p in EXAMPLES if "/survey/" in t]
    msg = parse(topic, payload, prefix="minegate", max_bytes=1 << 20)
    assert (msg.kind, msg.licence, msg.violation, msg.device) == (
        "survey_check", "C4500002011", True, "chk-20251124-01")  # fmt: skip


def _apply(engine: Engine, *msgs: bytes) -> None:
    topic = "minegate/qn1/gw01/survey/chk"
    parsed = [(topic, parse(topic, m, prefix="minegate", max_bytes=1 << 20)) for m in msgs]
    with make_sessionmaker(engine)() as db, db.begin():
        apply_batch(db, parsed, now_ns=T0, directory=GatewayDirectory(), stats=IngestStats())


def test_a_violation_fires_until_a_newer_check_passes(engine: Engine, world: Any) -> None:
    sm = make_sessionmaker(engine)
    _apply(engine, finding(1, T0, "chk-1", True, 2))
    with sm() as db, db.begin():
        assert evaluate(db, T0, CFG).fired == 1
        alert = db.scalars(select(Alert)).one()
    assert alert.kind == "survey_violation" and alert.severity == "critical"
    assert alert.mine_id == world.mines["M-QN-1"]
    assert alert.evidence["check_id"] == "chk-1" and alert.evidence["incidents"] == 2
    assert alert.summary == "survey check chk-1: 2 violation(s)"
    _apply(engine, finding(3, T0 + 200 * S, "chk-3", False, 0))
    _apply(engine, finding(2, T0 + 100 * S, "chk-2", True, 5))  # older, late: ignored
    with sm() as db, db.begin():
        assert evaluate(db, T0 + 300 * S, CFG).resolved == 1
        assert db.scalars(select(Alert.state)).all() == ["resolved"]

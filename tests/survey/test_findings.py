"""findings.json document and FINDING records built from a check result."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from gateway.model import Quality, RecordKind
from gateway.sinks.lineproto import LineEncoder
from gateway.sinks.mqtt_schema import ALERT_TOPIC, MqttEncoder
from survey.findings import (
    MEASUREMENT_CHECK,
    MEASUREMENT_INCIDENT,
    SCHEMA,
    SourceInfo,
    findings_document,
    findings_records,
    new_check_id,
    write_findings,
)
from survey.model import Block, CheckResult, Corner, Incident, Licence, ViolationType


def _licence() -> Licence:
    n0, e0 = 2_520_000.0, 612_000.0
    corners = tuple(
        Corner(f"J{i + 1}", n0 + dn, e0 + de)
        for i, (dn, de) in enumerate([(0, 0), (0, 400), (300, 400), (300, 0)])
    )
    return Licence(
        "Demo lead-zinc mine",
        "C4500002020011210123456",
        4545,
        None,
        (Block("1", corners, 120.0, -80.0),),
    )


def _incident(
    iid: str,
    typ: ViolationType,
    e: float,
    n: float,
    h: float,
    exc: float,
    vol: float,
    *,
    unc: bool = False,
) -> Incident:
    return Incident(
        iid,
        typ,
        "1",
        1234,
        (e - 2, n - 3, h - 1),
        (e + 2, n + 3, h + 1),
        (e, n, h),
        exc,
        vol,
        ("J2", "J3"),
        "J2",
        within_uncertainty=unc,
    )


def _result(incidents: list[Incident], uncertain: list[Incident]) -> CheckResult:
    verdict = (
        "violations found"
        if incidents
        else "within survey uncertainty"
        if uncertain
        else "compliant"
    )
    return CheckResult(
        _licence(),
        ["scan.las"],
        100_000,
        incidents,
        uncertain,
        verdict,
        {"read": 0.5, "classify": 0.1},
    )


VIOLATIONS = [
    _incident("I1", ViolationType.BOUNDARY, 612_405.0, 2_520_150.0, -60.0, 10.25, 120.5),
    _incident("I2", ViolationType.BELOW_RANGE, 612_150.0, 2_520_050.0, -82.5, 3.5, 300.0),
]
UNCERTAIN = [
    _incident("U1", ViolationType.ABOVE_RANGE, 612_100.0, 2_520_100.0, 120.3, 0.3, 2.0, unc=True)
]


def test_document_speaks_x_north_y_east_and_round_trips(tmp_path: Path) -> None:
    res = _result(VIOLATIONS, UNCERTAIN)
    doc = findings_document(
        res,
        check_id="c1",
        sources=[SourceInfo("scan.las", "las", 100_000)],
        created=datetime(2026, 11, 25, tzinfo=UTC),
    )
    path = tmp_path / "findings.json"
    write_findings(doc, path)
    back = json.loads(path.read_text(encoding="utf-8"))
    assert back["schema"] == SCHEMA
    assert back["verdict"] == "violations found"
    assert back["licence"]["licence_no"] == res.licence.licence_no
    assert back["sources"] == [
        {
            "path": "scan.las",
            "format": "las",
            "points": 100_000,
            "faces": None,
            "surface_samples": 0,
            "notes": [],
        }
    ]
    assert [i["id"] for i in back["incidents"]] == ["I1", "I2"]
    assert [i["id"] for i in back["within_uncertainty"]] == ["U1"]
    i1 = back["incidents"][0]
    inc = VIOLATIONS[0]
    # X is the northing, Y the easting
    assert i1["centroid"] == {
        "x_north": inc.centroid[1],
        "y_east": inc.centroid[0],
        "h": inc.centroid[2],
    }
    assert i1["extent"]["size_m"] == {"x_north": 6.0, "y_east": 4.0, "h": 2.0}
    assert i1["nearest_edge"] == ["J2", "J3"]
    assert back["summary"]["max_exceedance_m"] == max(i.max_exceedance_m for i in VIOLATIONS)
    assert back["summary"]["volume_m3"] == pytest.approx(sum(i.volume_m3 for i in VIOLATIONS))
    assert back["tolerances"] == {"plan_m": 1.5, "height_m": 0.5}
    corners = back["licence"]["blocks"][0]["corners"]
    assert corners[1] == {"number": "J2", "x_north": 2_520_000.0, "y_east": 612_400.0}


def test_records_one_per_check_and_per_incident() -> None:
    res = _result(VIOLATIONS, UNCERTAIN)
    recs = findings_records(res, "qinzhou-1", "c42", gateway="gw1", ts_ns=123)
    assert len(recs) == 1 + len(VIOLATIONS) + len(UNCERTAIN)
    assert all(r.kind is RecordKind.FINDING and r.device == "c42" and r.ts_ns == 123 for r in recs)
    check = recs[0]
    assert check.fields["measurement"] == MEASUREMENT_CHECK
    assert check.fields["alert"] is True
    vals = dict(zip(check.points, check.values, strict=True))
    assert vals["verdict"] == "violations found"
    assert vals["incidents"] == 2 and vals["within_uncertainty"] == 1
    assert vals["max_exceedance_m"] == pytest.approx(10.25)
    assert vals["volume_m3"] == pytest.approx(420.5)
    assert check.fields["tags"] == {
        "site": "qinzhou-1",
        "mine": res.licence.mine_name,
        "licence": res.licence.licence_no,
        "check_id": "c42",
        "gateway": "gw1",
    }
    assert "I1" in str(check.fields["message"])
    for rec, inc in zip(recs[1:], VIOLATIONS + UNCERTAIN, strict=True):
        assert rec.fields["measurement"] == MEASUREMENT_INCIDENT
        assert rec.fields["alert"] is False
        tags = rec.fields["tags"]
        assert isinstance(tags, dict)
        assert tags["incident"] == inc.id and tags["type"] == str(inc.type)
        assert tags["within_uncertainty"] == ("true" if inc.within_uncertainty else "false")
        v = dict(zip(rec.points, rec.values, strict=True))
        assert v["x_north"] == pytest.approx(inc.centroid[1])
        assert v["y_east"] == pytest.approx(inc.centroid[0])
        assert v["max_exceedance_m"] == pytest.approx(inc.max_exceedance_m)
        assert all(q is Quality.GOOD for q in rec.qualities)
        assert len(rec.points) == len(rec.values) == len(rec.units)


def test_compliant_check_raises_no_alert() -> None:
    recs = findings_records(_result([], []), "s", "c1", ts_ns=1)
    assert len(recs) == 1
    assert recs[0].fields["alert"] is False
    assert dict(zip(recs[0].points, recs[0].values, strict=True))["incidents"] == 0


def test_records_encode_to_the_documented_influx_measurements() -> None:
    recs = findings_records(_result(VIOLATIONS, []), "site1", "c7", gateway="gw1", ts_ns=5)
    enc = LineEncoder("site1", "gw1")
    lines = [line for r in recs for line in enc.encode(r)]
    assert lines[0].startswith(MEASUREMENT_CHECK + ",")
    assert "check_id=c7" in lines[0] and "licence=C4500002020011210123456" in lines[0]
    assert 'verdict="violations found"' in lines[0] and "incidents=2i" in lines[0]
    assert all(line.startswith(MEASUREMENT_INCIDENT + ",") for line in lines[1:])
    assert "type=boundary" in lines[1] and "incident=I1" in lines[1]


def test_violation_check_raises_the_mqtt_survey_alert() -> None:
    recs = findings_records(_result(VIOLATIONS, []), "site1", "c7", gateway="gw1", ts_ns=5)
    enc = MqttEncoder("minegate", "site1", "gw1")
    topics = [m.topic for r in recs for m in enc.encode(r)]
    assert f"minegate/site1/gw1/{ALERT_TOPIC}" in topics
    assert topics.count(f"minegate/site1/gw1/{ALERT_TOPIC}") == 1


def test_check_id_names_the_licence_and_sorts_by_time() -> None:
    lic = _licence()
    a = new_check_id(lic, datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC))
    b = new_check_id(lic, datetime(2026, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert lic.licence_no in a and a < b
    assert np.all([ch.isalnum() or ch in "-_" for ch in a])

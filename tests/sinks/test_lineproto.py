"""Line protocol: escaping, types, quality, one test per record kind, speed."""

from __future__ import annotations

import time

import pytest

from gateway.model import Quality, Record, RecordKind
from gateway.sinks.lineproto import LineEncoder, escape_tag, format_value, quote_string


def enc() -> LineEncoder:
    return LineEncoder("site A", "gw=1")


def test_escaping_per_spec() -> None:
    assert escape_tag("a b,c=d") == "a\\ b\\,c\\=d"
    assert quote_string('say "hi" \\o/') == '"say \\"hi\\" \\\\o/"'
    r = Record(RecordKind.SAMPLE, "fan,1 main", 7, ["air flow"], [1.5], ["m/s"], [Quality.GOOD])
    assert enc().encode(r) == [
        "telemetry,device=fan\\,1\\ main,gateway=gw\\=1,site=site\\ A air\\ flow=1.5 7"
    ]


def test_value_types() -> None:
    assert format_value(1.0) == "1.0"
    assert format_value(3) == "3i"
    assert format_value(3, int_as_float=True) == "3.0"
    assert format_value(True) == "true" and format_value(False) == "false"
    assert format_value("x") == '"x"'
    assert format_value(2**70) == repr(float(2**70))  # beyond int64: float, never an error
    assert format_value(10**400) is None  # beyond float64: not writable
    assert format_value(float("nan")) is None and format_value(float("inf")) is None
    assert format_value(None) is None


def test_quality_never_fakes_a_value() -> None:
    r = Record(
        RecordKind.SAMPLE, "gas1", 1_000, ["ch4", "co", "o2", "t"], [None, 12, float("nan"), 20.5],
        ["%", "ppm", "%", "C"], [Quality.COMM_LOSS, Quality.STALE, Quality.GOOD, Quality.GOOD],
    )  # fmt: skip
    (line,) = LineEncoder("s", "g").encode(r)
    fields = line.split(" ")[1].split(",")
    assert 'ch4_q="comm_loss"' in fields and not any(f.startswith("ch4=") for f in fields)
    assert "co=12.0" in fields and 'co_q="stale"' in fields
    assert 'o2_q="bad"' in fields and not any(f.startswith("o2=") for f in fields)
    assert "t=20.5" in fields and not any(f.startswith("t_q") for f in fields)


def test_stat_one_line_per_point() -> None:
    r = Record(
        RecordKind.STAT, "gas1", 300_000_000_000, ["ch4", "co"], [0.5, None], ["%", "ppm"],
        [Quality.GOOD, Quality.BAD],
        fields={"ch4": {"max": 0.9, "min": 0.1, "mean": 0.5, "count": 30, "window_s": 300},
                "co": {"count": 0, "window_s": 300}},
    )  # fmt: skip
    assert enc().encode(r) == [
        "stats_5m,device=gas1,gateway=gw\\=1,point=ch4,site=site\\ A,unit=% "
        "count=30i,max=0.9,mean=0.5,min=0.1,window_s=300i 300000000000",
        "stats_5m,device=gas1,gateway=gw\\=1,point=co,site=site\\ A,unit=ppm "
        "count=0i,window_s=300i 300000000000",
    ]


def test_alarm_event_metric_and_finding() -> None:
    e = enc()
    alarm = Record(
        RecordKind.ALARM, "gas1", 5, ["ch4"], [1.2], ["%"], [Quality.GOOD],
        fields={"point": "ch4", "severity": "alarm", "state": "raised", "threshold": 1,
                "message": "CH4 >= 1.0 %"},
    )  # fmt: skip
    assert e.encode(alarm) == [
        "alarm,device=gas1,gateway=gw\\=1,point=ch4,severity=alarm,site=site\\ A,state=raised "
        'ch4=1.2,message="CH4 >= 1.0 %",threshold=1.0 5'
    ]
    # as the runtime writes events: the name as a point and in fields, site/gateway repeated
    event = Record(
        RecordKind.EVENT, "fan1", 6, ["event"], ["comm_loss"], [""], [Quality.GOOD],
        fields={"event": "comm_loss", "site": "site A", "gateway": "gw=1", "failed_cycles": 3,
                "detail": {"errors": 3}},
    )  # fmt: skip
    assert e.encode(event) == [
        'event,device=fan1,gateway=gw\\=1,site=site\\ A event="comm_loss",'
        'detail="{\\"errors\\": 3}",failed_cycles=3.0 6'
    ]
    tags_only = Record(RecordKind.FINDING, "c", 9, [], [], [], [], fields={"tags": {"k": "v"}})
    assert e.encode(tags_only) == [
        "survey_finding,device=c,gateway=gw\\=1,k=v,site=site\\ A recorded=true 9"
    ]
    metric = Record(RecordKind.METRIC, "gateway", 7, ["polls"], [10], [""], [Quality.GOOD])
    assert e.encode(metric) == [
        "gateway_metrics,device=gateway,gateway=gw\\=1,site=site\\ A polls=10i 7"
    ]
    finding = Record(
        RecordKind.FINDING, "chk-1", 8, ["incidents", "verdict"], [2, "violation"], ["", ""],
        [Quality.GOOD] * 2,
        fields={"measurement": "survey_check", "tags": {"licence": "C45"}, "alert": True},
    )  # fmt: skip
    assert e.encode(finding) == [
        "survey_check,device=chk-1,gateway=gw\\=1,licence=C45,site=site\\ A "
        'incidents=2i,verdict="violation",alert=true 8'
    ]
    finding.fields.pop("measurement")
    assert e.encode(finding)[0].startswith("survey_finding,")


def test_fast_enough_for_the_benchmark() -> None:
    """The gateway benchmark pushes >= 100k values/s through the encoder on
    one core with everything else; alone it must be several times faster."""
    e = enc()
    recs = [
        Record(RecordKind.SAMPLE, f"dev{d}", 1_000 + d, [f"p{i}" for i in range(50)],
               [i * 0.37 + d for i in range(50)], ["%"] * 50, [Quality.GOOD] * 50)
        for d in range(20)
    ]  # fmt: skip
    t0 = time.perf_counter()
    n = 0
    for _ in range(100):
        lines, owners = e.encode_batch(recs)
        n += 50 * len(recs)
    rate = n / (time.perf_counter() - t0)
    assert len(lines) == len(owners) == 20
    assert rate > 300_000, f"{rate:.0f} values/s"


def test_mqtt_payload_is_strict_json_even_with_nan_in_fields() -> None:
    import json

    from gateway.sinks.mqtt_schema import MqttEncoder

    r = Record(RecordKind.ALARM, "gas1", 5, ["ch4"], [float("nan")], ["%"], [Quality.GOOD],
               fields={"threshold": float("inf"), "history": [1.0, float("nan")]})  # fmt: skip
    (msg,) = MqttEncoder("minegate", "s", "g").encode(r)
    obj = json.loads(msg.payload, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert obj["values"]["ch4"] == {"v": None, "u": "%", "q": "bad"}
    assert obj["fields"] == {"threshold": None, "history": [1.0, None]}

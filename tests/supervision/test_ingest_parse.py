"""Parsing gateway MQTT messages: every example of docs/schema.md is read
as the gateway writes it, and hostile input is dropped with a reason."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from supervision.ingest.parse import Dropped, parse

SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
MAX = 64 * 1024


def _examples() -> list[tuple[str, bytes]]:
    text = SCHEMA.read_text(encoding="utf-8")
    out = []
    for m in re.finditer(r"<!-- mqtt \w+ -->\s*```text\n(.*?)\n```", text, re.S):
        topic, _, body = m.group(1).partition("\n")
        out.append((topic.replace(" (retained)", "").strip(), body.encode()))
    return out


EXAMPLES = _examples()


def test_the_schema_page_has_examples_of_every_topic() -> None:
    leaves = {t.split("/", 3)[3].split("/")[0] for t, _ in EXAMPLES}
    assert {
        "telemetry",
        "snapshot",
        "stats",
        "alarms",
        "events",
        "metrics",
        "survey",
        "alerts",
    } <= leaves


@pytest.mark.parametrize(
    ("topic", "payload"), EXAMPLES, ids=[t.split("/", 3)[3] for t, _ in EXAMPLES]
)
def test_documented_messages_parse(topic: str, payload: bytes) -> None:
    msg = parse(topic, payload, prefix="minegate", max_bytes=MAX)
    obj = json.loads(payload)
    assert msg.topic_key == "qinzhou-1/gw01"
    assert msg.ts_ns == obj["ts_ns"]
    if "seq" in obj and msg.kind != "survey_alert":
        assert msg.seq == obj["seq"]
    if msg.kind in ("sample", "snapshot"):
        assert {pv.point: (pv.value, pv.quality) for pv in msg.values} == {
            p: (e["v"], e["q"]) for p, e in obj["values"].items()
        }
    if msg.kind == "alarm":
        assert (msg.alarm, msg.alarm_point, msg.alarm_state, msg.severity, msg.event) == (
            "gas-a1.ch4_high", "ch4", "active_unacked", "high", "raise")  # fmt: skip
        assert msg.retained == ("/alarms/active/" in topic)


def test_status_message() -> None:
    body = b'{"state": "offline", "reason": "connection lost", "site": "s", "gateway": "g", "ts": "", "ts_ns": 5}'
    msg = parse("minegate/s/g/status", body, prefix="minegate", max_bytes=MAX)
    assert (msg.kind, msg.state, msg.reason, msg.ts_ns) == (
        "status",
        "offline",
        "connection lost",
        5,
    )


GOOD = {"seq": 1, "kind": "sample", "ts": "", "ts_ns": 10, "device": "d",
        "values": {"p": {"v": 1.5, "u": "kW", "q": "good"}}}  # fmt: skip


def _with(**changes: object) -> bytes:
    obj = {**GOOD, **changes}
    return json.dumps(obj).encode()


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("minegate/s/g/telemetry/d", b"x" * (MAX + 1), "too_large"),
        ("minegate/s/g/telemetry/d", b"{not json", "bad_json"),
        ("minegate/s/g/telemetry/d", b"\xff\xfe", "bad_json"),
        ("minegate/s/g/telemetry/d", b"[1, 2]", "bad_json"),
        ("minegate/s/g/telemetry/d", b"[" * 5000 + b"]" * 5000, "bad_json"),
        ("minegate/s/g/telemetry/d", _with(seq="1"), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(seq=True), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(seq=-1), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(seq=2**64), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(ts_ns=1.5), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(device=None), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(device="a\x00b"), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values=[1]), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values={"p": 3}), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values={"p": {"v": [1], "q": "good"}}), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values={"p": {"v": 1, "q": "great"}}), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values={"p": {"v": 10**30, "q": "good"}}), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values={"p": {"v": "x" * 5000, "q": "good"}}), "bad_field"),
        ("minegate/s/g/telemetry/d", _with(values={f"p{i}": {"v": 1, "q": "good"} for i in range(2001)}), "too_many_points"),
        ("minegate/s/g/alarms/d", _with(kind="alarm"), "bad_field"),
        ("minegate/s/g/alarms/d", _with(fields={"alarm": "a", "state": "raised", "severity": "high"}), "bad_field"),
        ("minegate/s/g/alarms/d", _with(fields={"state": "normal", "severity": "high"}), "bad_field"),
        ("minegate/s/g/alarms/active/a", b"{", "bad_json"),
        ("minegate/s/g/status", b'{"state": "sleeping", "ts_ns": 1}', "bad_field"),
        ("minegate/s/g/whatever", _with(), "unknown_topic"),
        ("minegate/s/g", _with(), "unknown_topic"),
        ("other/s/g/telemetry/d", _with(), "unknown_topic"),
    ],
)  # fmt: skip
def test_hostile_or_malformed_input_is_dropped_with_a_reason(
    topic: str, payload: bytes, reason: str
) -> None:
    with pytest.raises(Dropped) as info:
        parse(topic, payload, prefix="minegate", max_bytes=MAX)
    assert info.value.reason == reason


def test_non_finite_and_boolean_values() -> None:
    msg = parse(
        "minegate/s/g/telemetry/d",
        _with(values={"a": {"v": True, "q": "good"}, "b": {"v": None, "q": "comm_loss"}}),
        prefix="minegate",
        max_bytes=MAX,
    )
    nums = {pv.point: pv.number for pv in msg.values}
    assert nums == {"a": 1.0, "b": None}


def test_alarm_topics_beside_the_transitions() -> None:
    """The empty retained ``alarms/active/<alarm>`` clears that alarm; the
    gateway's operator commands and replies share ``alarms/+`` and are not
    for the platform (neither a device's alarm nor malformed)."""
    clear = parse("minegate/s/g/alarms/active/gas.ch4_high", b"", prefix="minegate", max_bytes=MAX)
    assert (clear.kind, clear.alarm, clear.retained, clear.seq) == ("alarm_clear", "gas.ch4_high", True, None)  # fmt: skip
    for leaf in ("commands", "replies"):
        body = b'{"user": "li.wei", "cmd": "ack", "alarm": "gas.ch4_high"}'
        assert parse(f"minegate/s/g/alarms/{leaf}", body, prefix="minegate", max_bytes=MAX).kind == "ignored"  # fmt: skip

"""docs/schema.md is the contract: every example record there must encode to
exactly the line protocol and MQTT messages shown next to it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from gateway.model import Quality, Record, RecordKind
from gateway.sinks.lineproto import LineEncoder
from gateway.sinks.mqtt_schema import MqttEncoder

DOC = Path(__file__).resolve().parents[2] / "docs" / "schema.md"
BLOCK = re.compile(r"<!-- (record|influx|mqtt) (\w+) -->\s*```\w*\n(.*?)```", re.S)


def examples() -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    for what, name, body in BLOCK.findall(DOC.read_text(encoding="utf-8")):
        out.setdefault(name, {}).setdefault(what, []).append(body)
    return out


EXAMPLES = examples()


def to_record(body: str) -> Record:
    d = json.loads(body)
    return Record(
        kind=RecordKind(d["kind"]),
        device=d["device"],
        ts_ns=d["ts_ns"],
        points=d["points"],
        values=d["values"],
        units=d["units"],
        qualities=[Quality(q) for q in d["qualities"]],
        fields=d.get("fields", {}),
        seq=d["seq"],
    )


def test_every_kind_has_an_example() -> None:
    kinds = {json.loads(ex["record"][0])["kind"] for ex in EXAMPLES.values()}
    assert kinds == {k.value for k in RecordKind}
    assert all({"record", "influx", "mqtt"} <= set(ex) for ex in EXAMPLES.values())


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_influx_lines_match_the_doc(name: str) -> None:
    ex = EXAMPLES[name]
    rec = to_record(ex["record"][0])
    expected = ex["influx"][0].strip().splitlines()
    assert LineEncoder("qinzhou-1", "gw01").encode(rec) == expected


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_mqtt_messages_match_the_doc(name: str) -> None:
    ex = EXAMPLES[name]
    rec = to_record(ex["record"][0])
    msgs = MqttEncoder("minegate", "qinzhou-1", "gw01").encode(rec)
    documented = []
    for body in ex["mqtt"]:
        head, _, payload = body.partition("\n")
        retained = head.endswith(" (retained)")
        documented.append((head.removesuffix(" (retained)"), retained, json.loads(payload)))
    assert [(m.topic, m.retain, json.loads(m.payload)) for m in msgs] == documented

"""Sink tables: validated once, unknown keys rejected with the sink's name,
secrets kept out of reprs, one runner per table."""

from __future__ import annotations

import re
from typing import Any

import pytest

from gateway.sinks import SINK_TYPES, InfluxV1Sink, InfluxV2Sink, MqttSink, build_runners
from gateway.sinks.config import MqttConfig, SinkConfigError, parse_sink_config


def test_registry_covers_every_type() -> None:
    assert SINK_TYPES == {
        "influxdb_v2": InfluxV2Sink,
        "influxdb_v1": InfluxV1Sink,
        "mqtt": MqttSink,
    }


_MINIMAL = {
    "influxdb_v2": {"url": "http://127.0.0.1:8086", "bucket": "b"},
    "influxdb_v1": {"url": "http://127.0.0.1:8086", "database": "d"},
    "mqtt": {"host": "127.0.0.1"},
}


@pytest.mark.parametrize("type_name", sorted(_MINIMAL))
def test_each_registered_type_builds_its_sink_from_a_table(type_name: str) -> None:
    """The registry's model, class and constructor fit together: a minimal
    table of each type makes that type's sink, reporting that type."""
    from gateway.sinks import SINK_REGISTRY, make_sink

    cfg = parse_sink_config({"name": f"s-{type_name}", "type": type_name, **_MINIMAL[type_name]})
    assert type(cfg) is SINK_REGISTRY[type_name].config
    sink = make_sink(cfg, "site1", "gw1")
    assert type(sink) is SINK_TYPES[type_name] and sink.type_name == type_name
    assert sink.describe()


def test_registry_and_union_must_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """A sink type added to the registry but not to the config union (or the
    other way round) is refused when the package loads, not at a site."""
    import gateway.sinks.config as config

    monkeypatch.setitem(
        config.SINK_REGISTRY, "kafka", config.SinkType(MqttConfig, "x", "KafkaSink")
    )
    with pytest.raises(RuntimeError, match=re.escape("['kafka']: MqttConfig.type is 'mqtt'")):
        config._check_registry()
    monkeypatch.delitem(config.SINK_REGISTRY, "kafka")
    monkeypatch.delitem(config.SINK_REGISTRY, "mqtt")
    with pytest.raises(RuntimeError, match="AnySinkConfig"):
        config._check_registry()


@pytest.mark.parametrize(
    ("table", "words"),
    [
        ({"name": "a", "type": "mqtt", "host": "h", "hots": "x"}, "'a': hots: Extra inputs"),
        ({"name": "a", "type": "kafka"}, "does not match any of the expected tags"),
        ({"name": "a", "type": "influxdb_v1", "url": "db:8086", "database": "x"}, "url"),
        ({"name": "a", "type": "influxdb_v2", "url": "http://x"}, "bucket: Field required"),
        ({"name": "a", "type": "mqtt", "host": "h", "cert_file": "c.pem", "tls": True},
         "cert_file and key_file go together"),
        ({"name": "a", "type": "mqtt", "host": "h", "ca_file": "ca.pem"}, "need tls = true"),
        ({"name": "a", "type": "mqtt", "host": "h", "qos": 3}, "qos"),
        ({"name": "a b", "type": "mqtt", "host": "h"}, "name"),
    ],
)  # fmt: skip
def test_invalid_tables_name_the_sink_and_key(table: dict[str, Any], words: str) -> None:
    with pytest.raises(SinkConfigError, match="sinks") as info:
        parse_sink_config(table)
    assert words in str(info.value)


def test_defaults_and_secrets() -> None:
    cfg = parse_sink_config(
        {"name": "m", "type": "mqtt", "host": "h", "password": "s3cret", "tls": True}
    )
    assert isinstance(cfg, MqttConfig)
    assert (cfg.effective_port, cfg.qos, cfg.topic_prefix) == (8883, 1, "minegate")
    assert "s3cret" not in repr(cfg)
    v2 = parse_sink_config({"name": "i", "type": "influxdb_v2", "url": "http://x", "bucket": "b",
                            "token": "tok3n"})  # fmt: skip
    assert "tok3n" not in repr(v2)


class _Outbox:
    def __init__(self) -> None:
        self.registered: list[str] = []

    def register_sink(self, name: str) -> None:
        self.registered.append(name)


def test_build_runners_registers_cursors_and_rejects_duplicates() -> None:
    box = _Outbox()
    runners = build_runners(
        [{"name": "a", "type": "mqtt", "host": "h", "flush_ms": 5},
         {"name": "b", "type": "influxdb_v1", "url": "http://x", "database": "d"}],
        box, "site", "gw",  # type: ignore[arg-type]
    )  # fmt: skip
    assert [r.name for r in runners] == ["a", "b"] and box.registered == ["a", "b"]
    assert runners[0].flush_s == 0.005 and isinstance(runners[1].sink, InfluxV1Sink)
    with pytest.raises(SinkConfigError, match="duplicate"):
        build_runners([{"name": "a", "type": "mqtt", "host": "h"}] * 2, _Outbox(), "s", "g")  # type: ignore[arg-type]

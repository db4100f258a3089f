"""Sinks: deliver outbox records to InfluxDB (1.x, 2.x/VictoriaMetrics) and MQTT.

``SINK_REGISTRY`` (``gateway.sinks.config``) is the one registry table
(config ``type`` -> config model, module and class; the class is loaded on
use; ``SINK_TYPES`` maps ``type`` -> class);
``build_runners`` turns the site's ``[[sinks]]`` tables into runners the
runtime starts as tasks (``await runner.run(stop_event)``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from gateway.sinks.base import (
    AuthError,
    NotFound,
    Rejected,
    Sink,
    SinkError,
    TlsError,
    WriteResult,
    is_transient,
)
from gateway.sinks.config import (
    SINK_REGISTRY,
    RunnerSettings,
    SinkConfigError,
    SinkType,
    parse_sink_config,
)
from gateway.sinks.runner import Outbox, SinkRunner

if TYPE_CHECKING:
    from gateway.sinks.influx_v1 import InfluxV1Sink
    from gateway.sinks.influx_v2 import InfluxV2Sink
    from gateway.sinks.mqtt import MqttSink


def sink_class(type_name: str) -> type[Sink]:
    """The sink class registered for a config ``type`` (imported now)."""
    entry = SINK_REGISTRY[type_name]
    cls: type[Sink] = getattr(importlib.import_module(entry.module), entry.cls)
    return cls


def __getattr__(name: str) -> Any:
    # SINK_TYPES and the sink classes stay importable from here, loaded on use.
    if name == "SINK_TYPES":
        return {t: sink_class(t) for t in SINK_REGISTRY}
    for entry in SINK_REGISTRY.values():
        if entry.cls == name:
            return getattr(importlib.import_module(entry.module), entry.cls)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def make_sink(cfg: RunnerSettings, site: str, gateway_id: str) -> Sink:
    """The sink object for one validated config."""
    for type_name, entry in SINK_REGISTRY.items():
        if type(cfg) is entry.config:
            return sink_class(type_name).from_config(cfg, site, gateway_id)
    raise SinkConfigError(f"[[sinks]] {cfg.name!r}: no sink for {type(cfg).__name__}")


def build_runners(
    config_sinks: Sequence[Mapping[str, Any] | RunnerSettings],
    store: Outbox,
    site: str,
    gateway_id: str,
) -> list[SinkRunner]:
    """One runner per ``[[sinks]]`` table (raw mapping or parsed config).

    Raises :class:`SinkConfigError` for an invalid table or a duplicate name.
    Each sink's cursor is registered in the store here (a blocking call, once
    at start-up), so no record appended after this call is missed by a new
    sink; a known sink keeps its cursor.
    """
    runners: list[SinkRunner] = []
    seen: set[str] = set()
    for table in config_sinks:
        cfg = parse_sink_config(table)
        if cfg.name in seen:
            raise SinkConfigError(f"[[sinks]] {cfg.name!r}: duplicate sink name")
        seen.add(cfg.name)
    for table in config_sinks:
        cfg = parse_sink_config(table)
        store.register_sink(cfg.name)
        runners.append(
            SinkRunner(
                make_sink(cfg, site, gateway_id),
                store,
                cfg.name,
                batch_size=cfg.batch_size,
                max_batch_values=cfg.max_batch_values,
                flush_ms=cfg.flush_ms,
                catchup_factor=cfg.catchup_factor,
                max_backlog_rate=cfg.max_backlog_rate,
                retry_initial_s=cfg.retry_initial_s,
                retry_max_s=cfg.retry_max_s,
                retry_slow_s=cfg.retry_slow_s,
            )
        )
    return runners


__all__ = [
    "SINK_REGISTRY",
    "SINK_TYPES",
    "AuthError",
    "InfluxV1Sink",
    "InfluxV2Sink",
    "MqttSink",
    "NotFound",
    "Rejected",
    "Sink",
    "SinkConfigError",
    "SinkError",
    "SinkRunner",
    "SinkType",
    "TlsError",
    "WriteResult",
    "build_runners",
    "is_transient",
    "make_sink",
    "parse_sink_config",
    "sink_class",
]

"""Typed, validated configuration of each sink (one ``[[sinks]]`` table).

Unknown keys are rejected (``extra="forbid"``); the error names the sink and
the key. The runtime may hand raw TOML tables to :func:`parse_sink_config`
or to :func:`gateway.sinks.build_runners`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator


class SinkConfigError(ValueError):
    """A sink table is invalid; the message names the sink and the key."""


class RunnerSettings(BaseModel):
    """Keys every sink table accepts: name, type and the runner's batching."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: most records per write
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    #: most values per write (a record holds many values)
    max_batch_values: int = Field(default=50_000, ge=1)
    #: how long a partial batch may wait for more records (alarms never wait)
    flush_ms: int = Field(default=200, ge=0, le=60_000)
    #: while draining a backlog, write batches this many times larger
    catchup_factor: int = Field(default=5, ge=1, le=100)
    #: cap on the catch-up drain rate in values/s (None: as fast as the server takes)
    max_backlog_rate: float | None = Field(default=None, gt=0)
    #: backoff for transient faults: first delay and cap, seconds
    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    #: backoff for faults that need a human (credentials, TLS, unknown bucket)
    retry_slow_s: float = Field(default=60.0, gt=0)


class InfluxV2Config(RunnerSettings):
    type: Literal["influxdb_v2"] = "influxdb_v2"
    url: str = Field(pattern=r"^https?://")
    token: str = Field(default="", repr=False)
    org: str = ""
    bucket: str = Field(min_length=1)
    ca_file: str | None = None
    verify_tls: bool = True
    gzip: bool = False
    timeout_s: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=5000, ge=1, le=100_000)


class InfluxV1Config(RunnerSettings):
    type: Literal["influxdb_v1"] = "influxdb_v1"
    url: str = Field(pattern=r"^https?://")
    database: str = Field(min_length=1)
    retention_policy: str = ""
    username: str = ""
    password: str = Field(default="", repr=False)
    ca_file: str | None = None
    verify_tls: bool = True
    gzip: bool = False
    timeout_s: float = Field(default=10.0, gt=0)
    batch_size: int = Field(default=5000, ge=1, le=100_000)


class MqttConfig(RunnerSettings):
    type: Literal["mqtt"] = "mqtt"
    host: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535)
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    qos: Literal[0, 1, 2] = 1
    topic_prefix: str = Field(default="minegate", pattern=r"^[^#+]+$")
    client_id: str | None = None
    keepalive_s: int = Field(default=30, ge=5, le=3600)
    timeout_s: float = Field(default=10.0, gt=0)
    #: publishes in flight at once (each waits for its PUBACK)
    max_inflight: int = Field(default=100, ge=1, le=65535)
    # One message per record: a batch is only the unit of the ack, so a wide
    # batch that does not fill up while live (a full one switches to
    # catch-up batches 5x wider, which cost latency) and a short wait.
    batch_size: int = Field(default=1000, ge=1, le=100_000)
    flush_ms: int = Field(default=100, ge=0, le=60_000)

    @model_validator(mode="after")
    def _tls_files(self) -> MqttConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file go together (client certificate)")
        if (self.cert_file or self.ca_file) and not self.tls:
            raise ValueError("ca_file/cert_file/key_file need tls = true")
        return self

    @property
    def effective_port(self) -> int:
        return self.port if self.port is not None else (8883 if self.tls else 1883)


@dataclass(frozen=True)
class SinkType:
    """One sink type of the registry: its config model, and where its class
    is (module and name, imported on use: sink modules import their client
    libraries, about 0.3 s, which validating a config must not pay)."""

    config: type[RunnerSettings]
    module: str
    cls: str


#: The one registry of sink types: config ``type`` -> model and class. A new
#: sink is its module, its config model above, a line here and a member of
#: ``AnySinkConfig`` (the static union pydantic and mypy need; checked
#: against this table below).
SINK_REGISTRY: dict[str, SinkType] = {
    "influxdb_v2": SinkType(InfluxV2Config, "gateway.sinks.influx_v2", "InfluxV2Sink"),
    "influxdb_v1": SinkType(InfluxV1Config, "gateway.sinks.influx_v1", "InfluxV1Sink"),
    "mqtt": SinkType(MqttConfig, "gateway.sinks.mqtt", "MqttSink"),
}

AnySinkConfig = InfluxV2Config | InfluxV1Config | MqttConfig
SinkConfig = Annotated[AnySinkConfig, Field(discriminator="type")]
_ADAPTER: TypeAdapter[AnySinkConfig] = TypeAdapter(SinkConfig)


def _check_registry() -> None:
    """The union and the registry name the same models, each under its own
    ``type`` tag: a sink added to one but not the other fails at import."""
    in_union = set(get_args(AnySinkConfig))
    in_table = {t.config for t in SINK_REGISTRY.values()}
    if in_union != in_table:
        raise RuntimeError(
            f"gateway.sinks.config: AnySinkConfig {sorted(c.__name__ for c in in_union)} "
            f"!= SINK_REGISTRY {sorted(c.__name__ for c in in_table)}"
        )
    for name, t in SINK_REGISTRY.items():
        tag = t.config.model_fields["type"].default
        if tag != name:
            raise RuntimeError(f"SINK_REGISTRY[{name!r}]: {t.config.__name__}.type is {tag!r}")


_check_registry()


def parse_sink_config(table: Mapping[str, Any] | RunnerSettings) -> RunnerSettings:
    """Validate one ``[[sinks]]`` table; raises :class:`SinkConfigError`."""
    if isinstance(table, RunnerSettings):
        return table
    name = table.get("name", "?")
    try:
        return _ADAPTER.validate_python(dict(table))
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in _loc(err['loc'], table.get('type'))) or '(table)'}: "
            f"{err['msg']}"
            for err in exc.errors()
        )
        raise SinkConfigError(f"[[sinks]] {name!r}: {problems}") from exc


def _loc(loc: tuple[int | str, ...], type_name: object) -> tuple[int | str, ...]:
    """The key path inside the table (without the union's type tag)."""
    return loc[1:] if loc and loc[0] == type_name else loc

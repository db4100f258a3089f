"""The site configuration file's schema: pydantic models, one per TOML table.

Every model forbids unknown keys (a misspelt key is an error, never silently
ignored) and is frozen. Checks that need more than one table (does the bus a
device names exist? does its profile?) live in ``gateway.config``; this module
only states the shape and the ranges of each key. ``docs/configuration.md``
documents every key defined here; keep the two in step.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.sinks.config import SINK_REGISTRY, AnySinkConfig, SinkConfig

# Names become MQTT topic segments and InfluxDB tag values: keep them to
# characters that need no escaping in either.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


def _check_name(value: str) -> str:
    if not NAME_PATTERN.match(value):
        raise ValueError(
            f"invalid name {value!r}: use 1-64 letters, digits, '_', '-' or '.' "
            "(names become MQTT topic segments and InfluxDB tags)"
        )
    return value


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SiteSection(Model):
    name: str
    gateway: str = "gw1"
    data_dir: str = "/var/lib/minegate"
    profile_dirs: tuple[str, ...] = ()

    _names = field_validator("name", "gateway")(_check_name)


class StoreSection(Model):
    retention_days: float = Field(default=90.0, gt=0)
    max_mb: float = Field(default=2048.0, gt=0)
    batch_ms: int = Field(default=200, ge=1, le=60_000)
    # Records waiting for the writer. A full queue makes pollers wait (and
    # counts it as backpressure) instead of growing memory without bound.
    queue_size: int = Field(default=10_000, ge=10, le=1_000_000)


class StatsSection(Model):
    enabled: bool = True
    interval_s: float = Field(default=300.0, gt=0)
    snapshot_interval_s: float = Field(default=20.0, gt=0)


class MetricsSection(Model):
    interval_s: float = Field(default=10.0, gt=0)
    latency_window: int = Field(default=1000, ge=10, le=1_000_000)


# --- buses -------------------------------------------------------------------

Port = Annotated[int, Field(ge=1, le=65535)]
Parity = Literal["N", "E", "O"]


class _BusBase(Model):
    name: str
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    retries: int = Field(default=1, ge=0, le=10)

    _names = field_validator("name")(_check_name)


class TcpBus(_BusBase):
    type: Literal["tcp"]
    host: str
    port: Port


class _SerialLine(Model):
    baudrate: int = Field(default=9600, ge=300, le=921_600)
    parity: Parity = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class RtuBus(_BusBase, _SerialLine):
    type: Literal["rtu"]
    serial_port: str
    frame_pause_ms: float = Field(default=5.0, ge=0, le=1000)


class RtuOverTcpBus(_BusBase):
    type: Literal["rtu_over_tcp"]
    host: str
    port: Port
    frame_pause_ms: float = Field(default=5.0, ge=0, le=1000)
    # The serial side of the DTU: only used to estimate the bus load.
    baudrate: int | None = Field(default=None, ge=300, le=921_600)
    parity: Parity = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class AsciiBus(_BusBase, _SerialLine):
    type: Literal["ascii"]
    serial_port: str
    line_format: str


BusConfig = Annotated[TcpBus | RtuBus | RtuOverTcpBus | AsciiBus, Field(discriminator="type")]
BUS_MODELS: dict[str, type[Model]] = {
    "tcp": TcpBus,
    "rtu": RtuBus,
    "rtu_over_tcp": RtuOverTcpBus,
    "ascii": AsciiBus,
}
SERIAL_BUS_TYPES = ("rtu", "rtu_over_tcp")


# --- devices -----------------------------------------------------------------


class PointOverride(Model):
    """Per-point site overrides of the profile (``[devices.points.NAME]``)."""

    deadband: float | None = Field(default=None, ge=0)
    max_interval_s: float | None = Field(default=None, gt=0)
    stale_after_s: float | None = Field(default=None, ge=0)


class DeviceConfig(Model):
    name: str
    bus: str
    unit: int | None = None
    profile: str
    poll_interval_s: float = Field(default=1.0, gt=0, le=86_400)
    merge: bool | None = None
    max_gap: int | None = Field(default=None, ge=0, le=124)
    comm_loss_after: int = Field(default=3, ge=1, le=1000)
    stale_after_s: float = Field(default=0.0, ge=0)
    location: str = ""
    location_class: str = ""  # default alarms (gateway/alarms/defaults.py)
    enabled: bool = True
    points: dict[str, PointOverride] = Field(default_factory=dict)

    _names = field_validator("name")(_check_name)


# --- sinks -------------------------------------------------------------------
# Each sink type's keys are owned by the sinks package (gateway.sinks.config):
# one model per type, discriminated by ``type``; this schema only places them.

SINK_MODELS: dict[str, type[BaseModel]] = {t: e.config for t, e in SINK_REGISTRY.items()}


# --- alarms (docs/alarms.md; checked against the devices in gateway.config.alarms)

AlarmKind = Literal[
    "high",
    "high_high",
    "low",
    "low_low",
    "rate",
    "state",
    "power_off",
    "expr",
    "comm_loss",
    "stale",
    "sensor_fault",
]
PriorityName = Literal["low", "medium", "high", "critical"]
Right = Literal["ack", "shelve", "reset", "oos", "list"]


class AlarmTable(Model):
    """One ``[[alarms]]`` table (keys by kind: docs/alarms.md)."""

    name: str
    kind: AlarmKind
    point: str | None = None
    when: str | None = None
    limit: float | None = None
    restore: float | None = None
    deadband: float | None = Field(default=None, ge=0)
    range: tuple[float, float] | None = None
    value: bool | int | float | str | None = None
    per_min: float | None = None
    window_s: float | None = Field(default=None, gt=0, le=86_400)
    feed: str | None = None
    feed_after_s: float | None = Field(default=None, ge=0, le=3600)
    priority: PriorityName | None = None
    on_delay_s: float = Field(default=0.0, ge=0, le=3600)
    off_delay_s: float = Field(default=0.0, ge=0, le=3600)
    latched: bool | None = None
    message: str = ""
    suppress_when: str | None = None
    out_of_service_when: str | None = None

    _names = field_validator("name")(_check_name)


class AlarmUser(Model):
    name: str
    rights: tuple[Right, ...] = ("list",)

    _names = field_validator("name")(_check_name)


class AlarmOutput(Model):
    """A beacon or horn: a writable coil on while an alarm is active."""

    point: str  # device.point of a writable coil
    min_priority: PriorityName = "high"
    until_ack: bool = False  # a horn: on only while such an alarm is unacknowledged
    refresh_s: float = Field(default=30.0, gt=0, le=3600)  # written again this often


class AlarmControl(Model):
    """``[alarm_control]``: who may command alarms, and through what."""

    socket: bool = True  # a unix socket in data_dir for `minegate alarms`
    mqtt_sink: str | None = None  # an mqtt sink whose broker carries the command topic
    max_shelve_h: float = Field(default=8.0, gt=0, le=720)
    tick_ms: int = Field(default=250, ge=10, le=10_000)
    users: tuple[AlarmUser, ...] = ()
    outputs: tuple[AlarmOutput, ...] = ()


class SiteFile(Model):
    """The whole file as written."""

    site: SiteSection
    store: StoreSection = StoreSection()
    stats: StatsSection = StatsSection()
    metrics: MetricsSection = MetricsSection()
    buses: tuple[BusConfig, ...] = ()
    devices: tuple[DeviceConfig, ...] = ()
    sinks: tuple[SinkConfig, ...] = ()
    alarms: tuple[AlarmTable, ...] = ()
    alarm_classes: dict[str, dict[str, float]] = Field(default_factory=dict)
    alarm_control: AlarmControl = AlarmControl()


AnyBus = TcpBus | RtuBus | RtuOverTcpBus | AsciiBus
AnySink = AnySinkConfig


def model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    """The model of the table at ``loc`` (tags of tagged unions included),
    used to list the allowed keys when a key is unknown or missing."""
    tables: dict[str, type[BaseModel]] = {
        "site": SiteSection,
        "store": StoreSection,
        "stats": StatsSection,
        "metrics": MetricsSection,
    }
    if not loc:
        return SiteFile
    head = loc[0]
    if isinstance(head, str) and head in tables and len(loc) == 1:
        return tables[head]
    if head == "devices" and len(loc) == 2:
        return DeviceConfig
    if head == "devices" and len(loc) == 4 and loc[2] == "points":
        return PointOverride
    if head == "alarms" and len(loc) == 2:
        return AlarmTable
    if head == "alarm_control" and len(loc) == 1:
        return AlarmControl
    if head == "alarm_control" and len(loc) == 3 and loc[1] == "users":
        return AlarmUser
    if head == "alarm_control" and len(loc) == 3 and loc[1] == "outputs":
        return AlarmOutput
    if head == "buses" and len(loc) == 3:
        return BUS_MODELS.get(str(loc[2]))
    if head == "sinks" and len(loc) == 3:
        return SINK_MODELS.get(str(loc[2]))
    return None

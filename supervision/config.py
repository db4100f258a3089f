"""``platform.toml``: the platform's configuration, validated once at load.

Every problem is reported as ``FILE:LINE: key: message`` like the gateway's
site file, all of them at once. The rest of the platform receives a frozen
:class:`PlatformConfig`. Keys are documented in docs/platform.md.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import os
import re
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from gateway.config.tomlpos import TomlPositions, format_loc
from gateway.sinks.config import SINK_REGISTRY, SinkConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerSection(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8080, ge=1, le=65535)
    tls_cert: Path | None = None
    tls_key: Path | None = None
    #: a reverse proxy in front terminates TLS: allows a non-loopback
    #: address without tls_cert, trusts its X-Forwarded-* headers, and marks
    #: cookies Secure (the browser talks HTTPS to the proxy)
    behind_reverse_proxy: bool = False
    forwarded_allow_ips: str = "127.0.0.1"
    session_hours: float = Field(12.0, gt=0, le=24 * 30)
    page_refresh_s: int = Field(15, ge=0, le=3600)

    @model_validator(mode="after")
    def _tls_pair(self) -> ServerSection:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("give both tls_cert and tls_key, or neither")
        return self

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False


class DatabaseSection(_Section):
    #: sqlite:///path/platform.db (relative to the config file) or
    #: postgresql://user:password@host/dbname
    url: str = "sqlite:///data/platform.db"


class MqttSection(_Section):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    tls_ca: Path | None = None
    prefix: str = Field("minegate", min_length=1)
    #: MQTT 5 shared subscription group; instances with the same group share
    #: the load. Empty: plain subscriptions (every instance gets everything).
    shared_group: str = "minegate-platform"
    client_id: str = Field(default_factory=lambda: f"minegate-platform-{socket.gethostname()}")
    #: the broker keeps this instance's subscriptions and queued messages
    #: for this long while it is down (0: clean session)
    session_expiry_s: int = Field(3600, ge=0)
    keepalive_s: int = Field(30, ge=5, le=3600)
    max_payload_bytes: int = Field(256 * 1024, ge=1024)
    batch_max: int = Field(500, ge=1, le=100_000)
    #: a batch waits this long after its first message for more (one
    #: transaction for many messages instead of one each; not when the
    #: writer is behind and a full batch is queued already)
    batch_wait_s: float = Field(0.1, ge=0, le=5)
    #: applied seqs are remembered this long (dedupe window)
    dedupe_window_s: float = Field(7 * 86400, gt=0)

    @model_validator(mode="after")
    def _group_name(self) -> MqttSection:
        if any(c in self.shared_group for c in "/+#"):
            raise ValueError("shared_group must not contain '/', '+' or '#'")
        return self


class SuspendedWatch(_Section):
    """The suspended-mine watch: which points show production."""

    #: power points (kW), summed per mine and compared with its baseline
    power_points: tuple[str, ...] = ("active_power",)
    #: devices (glob patterns on the device name) whose `running_points`
    #: being true means production machinery runs
    production_devices: tuple[str, ...] = ("main_fan*", "*hoist*", "*crusher*", "*conveyor*")
    running_points: tuple[str, ...] = ("running",)
    #: points of a running production device shown with it as evidence
    #: (a hoist's speed and position, a crusher's throughput...)
    evidence_points: tuple[str, ...] = (
        "speed", "position", "motor_current", "motor_power", "throughput", "trips", "cycles",
    )  # fmt: skip
    #: power above baseline by more than this (kW) counts
    power_margin_kw: float = Field(0.0, ge=0)


class DataGapClass(_Section):
    """Devices of one class (glob patterns on device names: the platform
    knows devices by name) with their own reporting interval and limits;
    a key left out takes the ``[alerting.data_gap]`` default."""

    devices: tuple[str, ...] = Field(min_length=1)
    reporting_interval_s: float | None = Field(None, gt=0)
    intervals: float | None = Field(None, ge=1)
    min_gap_s: float | None = Field(None, ge=0)


class DataGapWatch(_Section):
    """Device data gaps measured by time: a device whose data (a value of
    any quality but ``comm_loss``) is missing for longer than
    ``max(intervals x reporting_interval_s, min_gap_s)`` of its class."""

    enabled: bool = True
    #: how often a healthy device's data arrives at least (the gateways'
    #: snapshots: every 20 s by default)
    reporting_interval_s: float = Field(20.0, gt=0)
    #: missing for this many reporting intervals...
    intervals: float = Field(3.0, ge=1)
    #: ...and at least this long (s)
    min_gap_s: float = Field(300.0, ge=0)
    severity: Literal["info", "minor", "major", "critical"] = "minor"
    #: per device class, first match wins: [alerting.data_gap.classes.power]
    classes: dict[str, DataGapClass] = Field(default_factory=dict)

    def _limit(self, c: DataGapClass | None) -> float:
        every = (c.reporting_interval_s if c else None) or self.reporting_interval_s
        n = c.intervals if c is not None and c.intervals is not None else self.intervals
        floor = c.min_gap_s if c is not None and c.min_gap_s is not None else self.min_gap_s
        return max(n * every, floor)

    def limit_for(self, device: str) -> tuple[str, float]:
        """(class name or "default", the gap length that alerts, s)."""
        for name, c in self.classes.items():
            if any(fnmatch.fnmatchcase(device, pat) for pat in c.devices):
                return name, self._limit(c)
        return "default", self._limit(None)

    @property
    def shortest_s(self) -> float:
        """The shortest limit of any class: a gap shorter than this alerts nowhere."""
        return min([self._limit(None), *(self._limit(c) for c in self.classes.values())])


class AlertingSection(_Section):
    evaluate_interval_s: float = Field(2.0, gt=0, le=3600)
    #: no message from a gateway for this long: offline (gateways send
    #: snapshots every 20 s and metrics every minute)
    heartbeat_timeout_s: float = Field(90.0, gt=0)
    #: an alert left firing and unacknowledged this long is escalated (an
    #: ``escalated`` event: give the city's webhook events = ["escalated"]);
    #: 0: never
    escalate_after_s: float = Field(0.0, ge=0)
    #: an alert still firing and unacknowledged gets a ``reminder`` event
    #: this often (receivers opt in with events = [..., "reminder"]); 0: never
    remind_every_s: float = Field(0.0, ge=0)
    suspended_watch: SuspendedWatch = Field(
        default_factory=lambda: SuspendedWatch.model_validate({})
    )
    data_gap: DataGapWatch = Field(default_factory=lambda: DataGapWatch.model_validate({}))


NOTIFY_EVENTS = frozenset({"fired", "updated", "acknowledged", "escalated", "reminder", "resolved"})


class _Receiver(_Section):
    """What every receiver has: a name, the events and the area it takes."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    events: tuple[str, ...] = ("fired", "resolved")
    #: only alerts of mines in this area: "region:GX", "city:QZ",
    #: "county:QN" or "mine:M-1" (codes); empty: every mine
    area: str = ""
    max_attempts: int = Field(8, ge=1, le=100)
    #: group window: events of one mine within it go out as one
    #: notification, sent this long after the first (0: each at once)
    group_wait_s: float = Field(0.0, ge=0, le=3600)

    @model_validator(mode="after")
    def _check(self) -> _Receiver:
        unknown = set(self.events) - NOTIFY_EVENTS
        if unknown:
            raise ValueError(f"events: unknown {sorted(unknown)}; use {sorted(NOTIFY_EVENTS)}")
        if self.area:
            level, _, code = self.area.partition(":")
            if level not in ("region", "city", "county", "mine") or not code:
                raise ValueError(
                    f"area {self.area!r}: write region:CODE, city:CODE, county:CODE or mine:CODE"
                )
        return self


class WebhookReceiver(_Receiver):
    """A webhook: alert events POSTed as JSON, signed with HMAC-SHA256."""

    url: str = Field(pattern=r"^https?://")
    #: HMAC key; the receiver checks X-Minegate-Signature with it
    secret: str = Field(min_length=16)
    timeout_s: float = Field(10.0, gt=0, le=120)


class EmailReceiver(_Receiver):
    """E-mail through an SMTP server (plain text, the evidence included)."""

    smtp_host: str
    smtp_port: int = Field(25, ge=1, le=65535)
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    sender: str = Field(pattern=r"^[^@\s]+@[^@\s]+$")
    to: tuple[str, ...] = Field(min_length=1)
    timeout_s: float = Field(10.0, gt=0, le=120)

    @model_validator(mode="after")
    def _addresses(self) -> EmailReceiver:
        bad = [a for a in self.to if a.count("@") != 1 or any(c.isspace() for c in a)]
        if bad:
            raise ValueError(f"to: not e-mail addresses: {', '.join(bad)}")
        return self


class MqttReceiver(_Receiver):
    """Alert events published to the broker of ``[mqtt]`` (QoS 1)."""

    #: {prefix}, {county}, {mine} and {kind} are filled in
    topic: str = "{prefix}/alerts/{county}/{mine}"
    retain: bool = False

    @model_validator(mode="after")
    def _topic(self) -> MqttReceiver:
        try:
            self.topic.format(prefix="p", county="c", mine="m", kind="k")
        except (KeyError, IndexError, ValueError) as exc:
            raise ValueError(
                f"topic: {exc!r}; use {{prefix}}, {{county}}, {{mine}}, {{kind}}"
            ) from None
        if "+" in self.topic or "#" in self.topic:
            raise ValueError("topic: no wildcards (+, #) in a topic to publish to")
        return self


AnyReceiver = WebhookReceiver | EmailReceiver | MqttReceiver


class UploadsSection(_Section):
    """Survey uploads (docs/uploads.md)."""

    #: where uploads, their files and the check results are kept
    dir: Path = Path("data/uploads")
    #: the largest survey (all its files, archives unpacked) per role, MB;
    #: a role not listed cannot upload even with the permission
    max_mb: dict[str, float] = Field(
        default_factory=lambda: {"contractor": 20480.0, "admin": 20480.0}
    )
    #: the largest plain (multipart) upload, MB; larger files go through tus
    multipart_max_mb: float = Field(200.0, gt=0)
    #: a zip archive: at most this many files ...
    zip_max_files: int = Field(64, ge=1, le=10_000)
    #: ... each unpacked at most this many times its compressed size
    zip_max_ratio: float = Field(200.0, ge=1)
    #: unfinished tus uploads are kept this many days
    tus_days_to_keep: int = Field(5, ge=1, le=365)


class JobsSection(_Section):
    """Where survey checks run: ``embedded`` (a worker pool inside the
    service, the job table in the database) or ``dramatiq`` (workers of
    ``minegate platform worker`` on other processes or machines, through
    Redis)."""

    engine: str = Field("embedded", pattern=r"^(embedded|dramatiq)$")
    #: embedded: checks run at once (each takes one core)
    workers: int = Field(1, ge=0, le=64)
    #: dramatiq: the broker
    redis_url: str = Field("redis://127.0.0.1:6379/0", pattern=r"^rediss?://")
    #: a running job is leased for this long and renewed while it runs; a
    #: job whose worker died is taken over after its lease ends
    lease_s: float = Field(60.0, ge=1)
    #: a job that failed by a crash (not by bad input) is tried this often
    max_attempts: int = Field(3, ge=1, le=20)
    #: how often the embedded pool looks for work when not woken
    poll_s: float = Field(2.0, gt=0, le=600)


class PublishSection(_Section):
    """Findings of checked uploads sent to InfluxDB and MQTT through the
    gateway's sinks (docs/platform.md "Findings to InfluxDB and MQTT").
    Each ``[[publish.sinks]]`` table is a gateway ``[[sinks]]`` table
    (docs/sinks.md: ``influxdb_v1``, ``influxdb_v2``, ``mqtt``)."""

    sinks: tuple[SinkConfig, ...] = ()
    #: the ``site`` and ``gateway`` of the records (InfluxDB tags, MQTT topic
    #: ``<topic_prefix>/<site>/<gateway>/survey/<check>``); each record also
    #: carries the mine's code (tag ``mine_code``) and the survey's id
    site: str = Field("platform", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    gateway: str = Field("uploads", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    #: a sink that failed is tried again after this, doubling up to retry_max_s
    retry_initial_s: float = Field(2.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    #: how often the outbox is looked at when nothing wakes the publisher
    poll_s: float = Field(5.0, gt=0, le=600)
    #: how long an instance's claim on the rows it sends lasts (renewed
    #: before each row is written): another instance of the service takes
    #: the rows of one that died after this
    claim_s: float = Field(60.0, gt=0, le=3600)

    @model_validator(mode="after")
    def _unique(self) -> PublishSection:
        names = [s.name for s in self.sinks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"sink name(s) used twice: {', '.join(dup)}")
        return self


class NotifySection(_Section):
    webhooks: tuple[WebhookReceiver, ...] = ()
    email: tuple[EmailReceiver, ...] = ()
    mqtt: tuple[MqttReceiver, ...] = ()
    interval_s: float = Field(1.0, gt=0, le=600)
    #: retry delays double from retry_initial_s up to retry_max_s (jittered)
    retry_initial_s: float = Field(2.0, gt=0)
    retry_max_s: float = Field(300.0, gt=0)
    #: a delivery being sent is leased for this long (another instance
    #: takes it over after that if this one died mid-send)
    lease_s: float = Field(120.0, gt=0)

    @property
    def receivers(self) -> tuple[AnyReceiver, ...]:
        return (*self.webhooks, *self.email, *self.mqtt)

    @model_validator(mode="after")
    def _unique(self) -> NotifySection:
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receiver names must be unique: {', '.join(dupes)} repeated")
        return self


class HistorySection(_Section):
    """Where the mine page's charts come from: the site's telemetry history
    (the gateways' ``snapshot`` measurement, docs/schema.md). Without the
    table the page shows no charts."""

    #: "influxdb_v1" (InfluxQL on /query) or "victoriametrics" (PromQL on
    #: /api/v1/query_range)
    backend: Literal["influxdb_v1", "victoriametrics"]
    url: str
    #: InfluxDB 1.x only
    database: str = "minegate"
    retention_policy: str = ""
    username: str | None = None
    password: str | None = Field(None, repr=False)
    tls_ca: Path | None = None
    timeout_s: float = Field(5.0, gt=0, le=60)
    #: how far back a chart reaches
    window_h: float = Field(6.0, gt=0, le=24 * 31)
    #: points charted on a mine page (glob patterns on the point name), in
    #: this order, numeric ones only
    charts: tuple[str, ...] = ("ch4", "active_power", "airflow", "wind_speed", "co")
    #: at most this many charts per mine page
    max_charts: int = Field(8, ge=1, le=50)
    #: points per chart (the window is cut into this many buckets)
    buckets: int = Field(120, ge=10, le=1000)

    @field_validator("url")
    @classmethod
    def _url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(
                "give the server as http://host:port or https://host:port "
                "(e.g. http://127.0.0.1:8086 for InfluxDB, http://127.0.0.1:8428 for VictoriaMetrics)"
            )
        return url


class PlatformConfig(_Section):
    server: ServerSection = Field(default_factory=lambda: ServerSection.model_validate({}))
    database: DatabaseSection = Field(default_factory=lambda: DatabaseSection.model_validate({}))
    mqtt: MqttSection = Field(default_factory=lambda: MqttSection.model_validate({}))
    alerting: AlertingSection = Field(default_factory=lambda: AlertingSection.model_validate({}))
    notify: NotifySection = Field(default_factory=lambda: NotifySection.model_validate({}))
    history: HistorySection | None = None
    uploads: UploadsSection = Field(default_factory=lambda: UploadsSection.model_validate({}))
    jobs: JobsSection = Field(default_factory=lambda: JobsSection.model_validate({}))
    publish: PublishSection = Field(default_factory=lambda: PublishSection.model_validate({}))
    source: str = ""  # the file it came from (set by load_config)

    def listen_problem(self) -> str | None:
        """Why ``serve`` must not listen as configured, or None."""
        s = self.server
        if s.loopback or s.tls or s.behind_reverse_proxy:
            return None
        return (
            f"server.host: {s.host!r} is not a loopback address and no TLS is configured: "
            "set server.tls_cert and server.tls_key, or server.behind_reverse_proxy = true "
            "if a reverse proxy terminates TLS in front of it"
        )


class PlatformConfigError(Exception):
    """The file cannot be used; ``errors`` lists every problem, located."""

    def __init__(self, errors: list[str]) -> None:
        self.errors = errors
        super().__init__("\n".join(errors))


def _resolve_paths(raw: dict[str, Any], base: Path) -> None:
    """Paths and SQLite files relative to the config file's folder."""
    db = raw.get("database")
    if isinstance(db, dict) and isinstance(db.get("url"), str):
        url: str = db["url"]
        if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
            rel = url[len("sqlite:///") :]
            if rel and rel != ":memory:":
                db["url"] = "sqlite:///" + str((base / rel).resolve())
    up = raw.setdefault("uploads", {})
    if isinstance(up, dict):
        up.setdefault("dir", str(UploadsSection.model_fields["dir"].default))
    for section, key in (
        ("server", "tls_cert"),
        ("server", "tls_key"),
        ("mqtt", "tls_ca"),
        ("uploads", "dir"),
        ("history", "tls_ca"),
    ):
        sec = raw.get(section)
        if isinstance(sec, dict) and isinstance(sec.get(key), str):
            sec[key] = str(base / os.path.expanduser(sec[key]))


def parse_config(
    text: str, source: str = "platform.toml", base: Path | None = None
) -> PlatformConfig:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PlatformConfigError([f"{source}: not valid TOML: {exc}"]) from None
    db = raw.setdefault("database", {})
    if isinstance(db, dict):
        # the default file is relative to the config file too, like a written one
        db.setdefault("url", DatabaseSection.model_fields["url"].default)
    _resolve_paths(raw, base or Path.cwd())
    raw["source"] = source
    try:
        return PlatformConfig.model_validate(raw)
    except ValidationError as exc:
        pos = TomlPositions(text)
        errors = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            if loc[:2] == ("publish", "sinks") and len(loc) > 3 and loc[3] in SINK_REGISTRY:
                loc = loc[:3] + loc[4:]  # the sink type's tag is not a key of the table
            line = pos.line_of(loc)
            where = f"{source}:{line}" if line else source
            msg = str(err["msg"]).removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key: remove it or fix the spelling (see docs/platform.md)"
            elif not isinstance(err.get("input"), dict | list):
                msg += f" (got {err.get('input')!r})"
            errors.append(f"{where}: {format_loc(loc) or 'top level'}: {msg}")
        raise PlatformConfigError(errors) from None


def load_config(path: str | Path) -> PlatformConfig:
    """Read and validate ``path``; :class:`PlatformConfigError` on any problem."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise PlatformConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError:
        raise PlatformConfigError([f"{p}: not UTF-8 text"]) from None
    return parse_config(text, str(p), p.resolve().parent)

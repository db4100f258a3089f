"""What a loaded site configuration is: the frozen, compiled objects the
runtime receives (``SiteConfig``, ``CompiledDevice``) and the errors of a
file that cannot be used (``ConfigError`` listing every ``ConfigIssue``).
``gateway.config.load`` builds them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from drivers.plan import PollPlan
from drivers.types import DeviceProfile, PointSpec
from gateway.alarms.rules import Rule
from gateway.config.schema import (
    AlarmControl,
    AlarmTable,
    AnyBus,
    AnySink,
    DeviceConfig,
    MetricsSection,
    SiteSection,
    StatsSection,
    StoreSection,
)


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration file, located for the user."""

    file: str
    line: int | None
    key: str
    message: str
    severity: str = "error"  # error | warning

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        prefix = "warning: " if self.severity == "warning" else ""
        key = f"{self.key}: " if self.key else ""
        return f"{where}: {prefix}{key}{self.message}"


class ConfigError(Exception):
    """The configuration cannot be used. ``errors`` lists every problem."""

    def __init__(self, errors: Sequence[ConfigIssue]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


@dataclass(frozen=True)
class CompiledDevice:
    """A device ready to poll: its validated config, resolved profile, the
    points after site overrides, and (Modbus) the poll plan built once."""

    config: DeviceConfig
    bus: AnyBus
    profile: DeviceProfile
    points: tuple[PointSpec, ...]
    plan: PollPlan | None  # None for ASCII line sensors
    stale_after_s: Mapping[str, float]  # per point; 0 = off

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def protocol(self) -> str:
        return self.profile.protocol

    @property
    def device_class(self) -> str:
        return self.profile.device_class

    @property
    def requests_per_poll(self) -> int:
        return len(self.plan.requests) if self.plan is not None else 0


@dataclass(frozen=True)
class SiteConfig:
    """The validated, compiled configuration the runtime receives."""

    path: Path
    site: SiteSection
    store: StoreSection
    stats: StatsSection
    metrics: MetricsSection
    buses: tuple[AnyBus, ...]
    devices: tuple[CompiledDevice, ...]
    sinks: tuple[AnySink, ...]
    alarms: tuple[AlarmTable, ...]
    bus_load: Mapping[str, float] = field(default_factory=dict)  # serial buses only
    warnings: tuple[ConfigIssue, ...] = ()
    alarm_control: AlarmControl = field(default_factory=AlarmControl)
    alarm_rules: tuple[Rule, ...] = ()  # compiled by gateway.config.alarms

    @property
    def data_dir(self) -> Path:
        """``site.data_dir``; a relative path is taken relative to the config file."""
        return resolve_path(self.path, self.site.data_dir)

    def bus(self, name: str) -> AnyBus:
        for b in self.buses:
            if b.name == name:
                return b
        raise KeyError(name)

    def summary(self) -> str:
        """What ``minegate check-config`` prints for a valid file."""
        points = sum(len(d.points) for d in self.devices)
        requests = sum(d.requests_per_poll for d in self.devices)
        lines = [
            f"{self.path}: OK",
            f"  site {self.site.name}, gateway {self.site.gateway}, data in {self.data_dir}",
            f"  {_n(len(self.buses), 'bus', 'buses')}, {_n(len(self.devices), 'device')}, "
            f"{_n(points, 'point')}, {_n(requests, 'request')} per poll cycle, "
            f"{_n(len(self.sinks), 'sink')}",
        ]
        for b in self.buses:
            devs = [d for d in self.devices if d.bus.name == b.name]
            line = f"  bus {b.name} ({b.type}): {_n(len(devs), 'device')}"
            if b.name in self.bus_load:
                line += f", estimated load {self.bus_load[b.name]:.0%} of the line"
            lines.append(line)
            for d in devs:
                unit = f" unit {d.config.unit}" if d.config.unit is not None else ""
                reads = (
                    f"{_n(d.requests_per_poll, 'request')} every {d.config.poll_interval_s:g} s"
                    if d.plan is not None
                    else f"a line expected every {d.config.poll_interval_s:g} s"
                )
                lines.append(
                    f"    {d.name}{unit}: {d.profile.name} ({d.device_class}), "
                    f"{_n(len(d.points), 'point')}, {reads}"
                )
        for s in self.sinks:
            lines.append(f"  sink {s.name} ({s.type})")
        if self.alarm_rules:
            lines.append(
                f"  {_n(len(self.alarm_rules), 'alarm rule')} (minegate alarms --config FILE rules)"
            )
        lines.extend(str(w) for w in self.warnings)
        return "\n".join(lines)


def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count} {singular if count == 1 else plural or singular + 's'}"


def resolve_path(config_path: Path, value: str) -> Path:
    p = Path(value).expanduser()
    return p if p.is_absolute() else (config_path.parent / p).resolve()

"""Load, validate and compile a site configuration file.

``load_config(path)`` is the only way the runtime gets its configuration. It
parses the TOML, validates it against ``gateway.config.schema`` (types,
ranges, unknown keys), then checks what spans tables (unique names, every
device's bus and profile exist, units fit the bus, serial buses are not
overloaded) and finally compiles each device into a frozen ``CompiledDevice``
holding its profile and poll plan. Every problem found is collected, not just
the first (an error in one table never hides one in another: see
``gateway.config.validate``), and each carries the file, line and key path so
a commissioning engineer can fix them all in one pass.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import re
import shutil
import tomllib
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from drivers.types import DeviceProfile, PointSpec
from gateway import busload
from gateway.config.schema import (
    AnyBus,
    AsciiBus,
    DeviceConfig,
    RtuBus,
    RtuOverTcpBus,
    SiteFile,
)
from gateway.config.site import (
    CompiledDevice,
    ConfigError,
    ConfigIssue,
    SiteConfig,
    resolve_path,
)
from gateway.config.tomlpos import TomlPositions, format_loc
from gateway.config.validate import Parts, validate
from gateway.sinks.config import InfluxV2Config, MqttConfig

if TYPE_CHECKING:
    from drivers.plan import PollPlan
    from gateway.alarms.rules import Rule

MODBUS_UNIT_MIN, MODBUS_UNIT_MAX = 1, 247


_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


def load_config(path: str | Path) -> SiteConfig:
    """Read, validate and compile ``path``; raise ``ConfigError`` listing every problem."""
    path = Path(path)
    fname = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            [ConfigIssue(fname, None, "", f"cannot read the file ({exc.strerror})")]
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [ConfigIssue(fname, None, "", f"not UTF-8 text ({exc}); save it as UTF-8")]
        ) from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = _TOML_POS.search(str(exc))
        msg = _TOML_POS.sub("", str(exc)).strip()
        line = int(m.group(1)) if m else None
        col = f", column {m.group(2)}" if m else ""
        raise ConfigError([ConfigIssue(fname, line, "", f"TOML syntax error{col}: {msg}")]) from exc
    pos = TomlPositions(text)
    env_errors = _expand_env(raw, (), pos, fname)
    return _load(path, raw, pos, env_errors)


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def _expand_env(
    node: Any, loc: tuple[str | int, ...], pos: TomlPositions, fname: str
) -> list[tuple[tuple[str | int, ...], ConfigIssue]]:
    """Replace ``${NAME}`` in string values with environment variables, in
    place, so secrets (sink tokens, passwords) can live in a root-only
    ``EnvironmentFile=`` instead of the site file. An unset variable is an
    error, never an empty string."""
    errors: list[tuple[tuple[str | int, ...], ConfigIssue]] = []
    items: Any = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        where = (*loc, key)
        if isinstance(value, dict | list):
            errors += _expand_env(value, where, pos, fname)
        elif isinstance(value, str) and "${" in value:
            missing = [m for m in _ENV_REF.findall(value) if m not in os.environ]
            if missing:
                issue = ConfigIssue(
                    fname,
                    pos.line_of(where),
                    format_loc(where),
                    f"environment variable {missing[0]} is not set: export it or add it "
                    "to the service's EnvironmentFile",
                )
                errors.append((where, issue))
                continue
            node[key] = _ENV_REF.sub(lambda m: os.environ[m.group(1)], value)
    return errors


def _load(
    path: Path,
    raw: dict[str, Any],
    pos: TomlPositions,
    env_errors: list[tuple[tuple[str | int, ...], ConfigIssue]],
) -> SiteConfig:
    fname = str(path)
    env_locs = {issue_loc for issue_loc, _ in env_errors}
    parts, issues = validate(raw, fname, pos, env_locs)
    checker = _CrossChecker(path, parts, pos)
    checker.errors += [i for _, i in env_errors] + issues
    return checker.run()


# --- checks across tables ------------------------------------------------------


class _CrossChecker:
    def __init__(self, path: Path, parts: Parts, pos: TomlPositions) -> None:
        self.path = path
        self.parts = parts
        self.pos = pos
        self.errors: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self.device_names = {i: d.name for i, d in parts.devices}
        # A site of 2,000 devices names a handful of profiles: each is read,
        # parsed and validated once, and devices with the same points and
        # merge settings share one (immutable) read plan and codec; per
        # device that took 10 ms at start and kilobytes for good.
        self._profiles: dict[tuple[str, tuple[Path, ...]], DeviceProfile] = {}
        self._plans: dict[tuple[tuple[PointSpec, ...], bool, int], PollPlan] = {}

    def error(self, loc: tuple[str | int, ...], message: str) -> None:
        if self.parts.is_set_aside(loc):
            return  # that key had an error of its own, already reported
        self.errors.append(
            ConfigIssue(str(self.path), self.pos.line_of(loc), format_loc(loc), message)
        )

    def warn(self, loc: tuple[str | int, ...], message: str) -> None:
        self.warnings.append(
            ConfigIssue(str(self.path), self.pos.line_of(loc), format_loc(loc), message, "warning")
        )

    def run(self) -> SiteConfig:
        parts = self.parts
        for table, written in parts.names.items():
            self._unique_names(table, written)
        buses = {b.name: b for _, b in parts.buses}
        profile_dirs = [resolve_path(self.path, d) for d in parts.site.profile_dirs]
        for i, d in enumerate(parts.site.profile_dirs):
            if not profile_dirs[i].is_dir():
                self.error(("site", "profile_dirs"), f"profile directory {d!r} does not exist")
        self._data_dir()
        self._secrets_in_clear()

        compiled: list[CompiledDevice] = []
        seen_units: dict[tuple[str, int], int] = {}
        ascii_users: dict[str, list[int]] = {}
        for i, dev in parts.devices:
            bus = buses.get(dev.bus)
            if bus is None:
                if dev.bus in parts.unusable_buses:
                    continue  # the bus's own errors are reported
                names = ", ".join(buses) or "none defined yet"
                self.error(
                    ("devices", i, "bus"),
                    f"bus {dev.bus!r} is not defined: add a [[buses]] table with "
                    f"name = {dev.bus!r} or use one of: {names}",
                )
                continue
            self._check_unit(i, dev, bus, seen_units)
            if isinstance(bus, AsciiBus):
                ascii_users.setdefault(bus.name, []).append(i)
            profile = self._profile(i, dev, profile_dirs)
            if profile is None:
                continue
            device = self._compile(i, dev, bus, profile)
            if device is not None and dev.enabled:
                compiled.append(device)
        for bus_name, users in ascii_users.items():
            for i in users[1:]:
                self.error(
                    ("devices", i, "bus"),
                    f"ASCII bus {bus_name!r} already carries device "
                    f"{self.device_names[users[0]]!r}: one line sensor per serial port",
                )
        bus_load = self._bus_load(compiled)
        if not parts.names.get("devices"):
            self.warn(("devices",), "no [[devices]] defined: the gateway will poll nothing")
        spec = parts.spec
        alarm_rules: tuple[Rule, ...] = ()
        if spec is not None:  # the alarm checks need the whole file
            from gateway.config.alarms import site_alarm_rules

            alarm_rules = site_alarm_rules(spec, compiled, self.error)
            self._check_store_room(spec)
        if self.errors or spec is None:
            raise ConfigError(sorted(self.errors, key=lambda e: e.line or 0))
        return SiteConfig(
            path=self.path,
            site=spec.site,
            store=spec.store,
            stats=spec.stats,
            metrics=spec.metrics,
            buses=spec.buses,
            devices=tuple(compiled),
            sinks=spec.sinks,
            alarms=spec.alarms,
            alarm_control=spec.alarm_control,
            alarm_rules=alarm_rules,
            bus_load=MappingProxyType(bus_load),
            warnings=tuple(self.warnings),
        )

    def _check_store_room(self, spec: SiteFile) -> None:
        """Warn when store.max_mb exceeds the file system of data_dir: the
        store is then bounded by the free space less a reserve instead
        (docs/store.md), and the operator should know which bound applies."""
        where = resolve_path(self.path, spec.site.data_dir)
        while not where.exists() and where != where.parent:
            where = where.parent
        try:
            usage = shutil.disk_usage(where)
        except OSError:
            return
        max_mb = spec.store.max_mb
        if max_mb * 2**20 > usage.total:
            self.warn(
                ("store", "max_mb"),
                f"store.max_mb = {max_mb:g} exceeds the whole file system of {where} "
                f"({usage.total / 2**20:.0f} MiB, {usage.free / 2**20:.0f} MiB free): the store "
                "will be bounded by the free space less a reserve; set max_mb to the room "
                "the store may really use",
            )

    def _unique_names(self, table: str, names: list[tuple[int, str]]) -> None:
        first: dict[str, int] = {}
        for i, name in names:
            if name in first:
                self.error(
                    (table, i, "name"),
                    f"duplicate name {name!r} (also {table}[{first[name]}]): names must be unique",
                )
            else:
                first[name] = i

    def _data_dir(self) -> None:
        """``data_dir`` must be a directory or a path one can be made at."""
        value = self.parts.site.data_dir
        path = resolve_path(self.path, value)
        for p in (path, *path.parents):
            if p.is_dir():
                return
            if p.exists():
                what = "is" if p == path else f"lies under {str(p)!r}, which is"
                self.error(
                    ("site", "data_dir"),
                    f"{value!r} {what} a file, not a directory: point data_dir at a "
                    "directory (the gateway keeps minegate.sqlite in it)",
                )
                return

    def _secrets_in_clear(self) -> None:
        """Warn when a password or token would cross the network unencrypted."""
        for i, sink in self.parts.sinks:
            if isinstance(sink, MqttConfig):
                if sink.password and not sink.tls and not _is_loopback(sink.host):
                    self.warn(
                        ("sinks", i, "password"),
                        f"the password goes to broker {sink.host}:{sink.effective_port} in "
                        "clear text: set tls = true (the broker's TLS port, usually 8883)",
                    )
                continue
            secret = "token" if isinstance(sink, InfluxV2Config) else "password"
            host = urlsplit(sink.url).hostname or ""
            if (
                getattr(sink, secret)
                and sink.url.lower().startswith("http://")
                and not _is_loopback(host)
            ):
                self.warn(
                    ("sinks", i, secret),
                    f"the {secret} goes to {host} in clear text over http://: use an https:// url",
                )

    def _check_unit(
        self, i: int, dev: DeviceConfig, bus: AnyBus, seen: dict[tuple[str, int], int]
    ) -> None:
        if isinstance(bus, AsciiBus):
            if dev.unit is not None:
                self.error(
                    ("devices", i, "unit"),
                    f"bus {bus.name!r} is an ASCII line bus: remove `unit` "
                    "(units are for Modbus devices)",
                )
            return
        if dev.unit is None:
            self.error(
                ("devices", i, "unit"),
                f"required for a Modbus device: add `unit = N` "
                f"({MODBUS_UNIT_MIN}..{MODBUS_UNIT_MAX}, the device's slave address)",
            )
            return
        if not MODBUS_UNIT_MIN <= dev.unit <= MODBUS_UNIT_MAX:
            self.error(
                ("devices", i, "unit"),
                f"Modbus unit {dev.unit} out of range: use {MODBUS_UNIT_MIN}..{MODBUS_UNIT_MAX}",
            )
            return
        key = (bus.name, dev.unit)
        if key in seen:
            other = self.device_names[seen[key]]
            self.error(
                ("devices", i, "unit"),
                f"unit {dev.unit} on bus {bus.name!r} is already used by device {other!r}: "
                "each device on a bus needs its own address",
            )
        else:
            seen[key] = i

    def _profile(self, i: int, dev: DeviceConfig, dirs: list[Path]) -> DeviceProfile | None:
        from drivers.profile import ProfileError, find_profile

        ref = dev.profile
        if ref.endswith(".toml") or "/" in ref or "\\" in ref:
            # A profile path in a site file is relative to that file, not to
            # wherever the service happens to be started from.
            ref = str(resolve_path(self.path, ref))
        key = (ref, tuple(dirs))
        cached = self._profiles.get(key)
        if cached is not None:
            return cached
        try:
            found = self._profiles[key] = find_profile(ref, dirs)
            return found
        except ProfileError as exc:
            if self.parts.is_set_aside(("site", "profile_dirs")):
                return None  # the folders it should look in are wrong: reported
            # The message already says where it looked and what exists.
            self.error(("devices", i, "profile"), str(exc))
            return None

    def _compile(
        self, i: int, dev: DeviceConfig, bus: AnyBus, profile: DeviceProfile
    ) -> CompiledDevice | None:
        is_ascii_bus = isinstance(bus, AsciiBus)
        if (profile.protocol == "ascii") != is_ascii_bus:
            self.error(
                ("devices", i, "profile"),
                f"profile {profile.name!r} speaks {profile.protocol} but bus {bus.name!r} "
                f"is {bus.type}: pick a profile for this bus type or another bus",
            )
            return None
        by_name = {p.name: p for p in profile.points}
        stale: dict[str, float] = {}
        points: list[PointSpec] = []
        for pname in dev.points:
            if pname not in by_name:
                self.error(
                    ("devices", i, "points", pname),
                    f"profile {profile.name!r} has no point {pname!r}; its points are: "
                    + ", ".join(by_name),
                )
        for p in profile.points:
            ov = dev.points.get(p.name)
            changes: dict[str, Any] = {}
            if ov is not None and ov.deadband is not None:
                changes["deadband"] = ov.deadband
            if ov is not None and ov.max_interval_s is not None:
                changes["max_interval"] = ov.max_interval_s
            points.append(dataclasses.replace(p, **changes) if changes else p)
            after = ov.stale_after_s if ov is not None and ov.stale_after_s is not None else None
            stale[p.name] = dev.stale_after_s if after is None else after
        plan = None
        if not is_ascii_bus:
            from drivers.plan import build_plan
            from drivers.profile import manual_reference_hint

            for p in points:
                hint = manual_reference_hint(p.kind, p.address)
                if hint is not None:
                    self.warn(
                        ("devices", i, "profile"),
                        f"profile {profile.name!r} point {p.name!r}: {hint} "
                        "(ignore this if the device really maps it there)",
                    )

            merge = profile.merge if dev.merge is None else dev.merge
            max_gap = profile.max_gap if dev.max_gap is None else dev.max_gap
            plan_key = (tuple(points), merge, max_gap)
            try:
                plan = self._plans.get(plan_key)
                if plan is None:
                    plan = self._plans[plan_key] = build_plan(points, merge=merge, max_gap=max_gap)
            except ValueError as exc:
                self.error(("devices", i, "profile"), f"cannot plan the reads: {exc}")
                return None
        return CompiledDevice(
            config=dev,
            bus=bus,
            profile=profile,
            points=tuple(points),
            plan=plan,
            stale_after_s=MappingProxyType(stale),
        )

    def _bus_load(self, devices: list[CompiledDevice]) -> dict[str, float]:
        loads: dict[str, float] = {}
        for bi, bus in self.parts.buses:
            if not isinstance(bus, RtuBus | RtuOverTcpBus) or self.parts.is_set_aside(
                ("buses", bi)
            ):
                continue
            baud = bus.baudrate
            if baud is None:
                continue
            load = 0.0
            for d in devices:
                if d.bus.name != bus.name or d.plan is None:
                    continue
                cycle = busload.cycle_time_s(
                    ((r.kind, r.count) for r in d.plan.requests),
                    baudrate=baud,
                    parity=bus.parity,
                    stopbits=bus.stopbits,
                    bytesize=bus.bytesize,
                    frame_pause_ms=bus.frame_pause_ms,
                )
                load += cycle / d.config.poll_interval_s
            loads[bus.name] = load
            if load > 1.0:
                self.error(
                    ("buses", bi, "baudrate"),
                    f"the devices on this bus need about {load:.0%} of its time at "
                    f"{baud} baud: the poll cycles cannot fit. Raise poll_interval_s, "
                    "merge requests, drop points, raise the baud rate or split the bus",
                )
            elif load > busload.WARN_LOAD:
                self.warn(
                    ("buses", bi, "baudrate"),
                    f"estimated load {load:.0%} at {baud} baud leaves little room for "
                    "retries: consider a longer poll_interval_s",
                )
        return loads


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

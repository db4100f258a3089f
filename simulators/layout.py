"""Which simulated devices a mine has, on which buses, and the gateway site
configuration that points at them.

A :class:`MineLayout` is plain data: buses (one per transport endpoint) and
their devices (profile, unit id, physics entity, location). The default is a
small but complete mine spread over every transport the gateway speaks.
:func:`render_site_config` turns a layout plus the actual ports and pty paths
into the gateway's site configuration (TOML, keys as in ``gateway/config``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from simulators.physics import DEFAULT_ENTITIES, EntitySpec

BUS_TYPES = ("tcp", "rtu", "rtu_over_tcp", "ascii")


@dataclass(frozen=True)
class DeviceLayout:
    """One device. ``entity`` is the physics entity driving it (default: the
    device name); ``unit`` is ignored for ASCII sensors."""

    name: str
    profile: str
    unit: int = 1
    location: str = ""
    entity: str = ""
    poll_interval_s: float = 1.0
    location_class: str = ""  # the gateway's default alarms (docs/alarms.md)

    @property
    def physics_entity(self) -> str:
        return self.entity or self.name


@dataclass(frozen=True)
class BusLayout:
    """One transport endpoint: a Modbus TCP listener, an RS-485 line on a pty
    pair, a DTU (RTU over TCP) or a serial line sensor."""

    name: str
    type: str
    devices: tuple[DeviceLayout, ...]
    baudrate: int = 9600
    timeout_s: float = 1.0
    retries: int = 1
    # Modbus TCP only: answer absent units with this exception (10/11), as a
    # TCP-to-serial gateway does, instead of staying silent.
    absent_answer: int | None = None
    # RTU only: each device's time from seeing the end of a request to
    # starting its answer (simulators.seriallink), on the baud-paced line.
    turnaround_ms: float = 0.0
    # rtu and rtu_over_tcp: the gateway's frame_pause_ms in the site file.
    frame_pause_ms: float = 5.0

    def __post_init__(self) -> None:
        if self.type not in BUS_TYPES:
            raise ValueError(f"bus {self.name!r}: type {self.type!r} not in {BUS_TYPES}")
        if self.type == "ascii" and len(self.devices) != 1:
            raise ValueError(f"bus {self.name!r}: an ASCII line carries exactly one sensor")
        units = [d.unit for d in self.devices]
        if self.type != "ascii" and len(set(units)) != len(units):
            raise ValueError(f"bus {self.name!r}: duplicate unit ids {units}")


@dataclass(frozen=True)
class MineLayout:
    name: str
    buses: tuple[BusLayout, ...]
    entities: Mapping[str, EntitySpec] = field(default_factory=lambda: dict(DEFAULT_ENTITIES))

    def __post_init__(self) -> None:
        names = [d.name for b in self.buses for d in b.devices]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"layout {self.name!r}: devices named twice: {duplicates}")

    def device(self, name: str) -> tuple[BusLayout, DeviceLayout]:
        for bus in self.buses:
            for device in bus.devices:
                if device.name == name:
                    return bus, device
        raise KeyError(f"layout {self.name!r} has no device {name!r}")


DEFAULT_LAYOUT = MineLayout(
    name="sim-mine",
    buses=(
        BusLayout(
            "vent-tcp",
            "tcp",
            (
                DeviceLayout("main_fan_1", "main_fan", 1, "No.1 return shaft fan house"),
                DeviceLayout("main_fan_2", "main_fan", 2, "No.2 return shaft fan house"),
            ),
        ),
        BusLayout(
            "power-tcp",
            "tcp",
            (
                DeviceLayout("power_meter_1", "power_meter", 1, "Main substation, 6 kV incomer"),
                DeviceLayout("power_meter_2", "power_meter", 2, "-80 m central substation, 660 V"),
            ),
        ),
        BusLayout(
            "rs485-env",
            "rtu",
            (
                DeviceLayout("gas_monitor_1", "gas_monitor", 1, "Main return airway, -80 m"),
                DeviceLayout("gas_monitor_2", "gas_monitor", 2, "1201 development heading"),
                DeviceLayout("aux_fan_1", "aux_fan", 3, "1201 development heading"),
                DeviceLayout("smoke_1", "smoke", 4, "Main belt roadway, drive head"),
            ),
        ),
        BusLayout(
            "dtu-pumps",
            "rtu_over_tcp",
            (
                DeviceLayout("drainage_1", "drainage", 1, "-120 m main sump pump room"),
                DeviceLayout("drainage_2", "drainage", 2, "-40 m secondary sump"),
                DeviceLayout("fire_water_1", "fire_water", 3, "Shaft bottom fire main, -120 m"),
            ),
        ),
        BusLayout(
            "gas-ascii",
            "ascii",
            (DeviceLayout("gas_ascii_1", "gas_ascii", 3, "Return airway, -40 m"),),
            # A line every second: allow a few missed lines before "no data".
            timeout_s=3.0,
        ),
    ),
)


@dataclass(frozen=True)
class Endpoint:
    """Where a running bus can be reached by the gateway."""

    host: str = ""
    port: int = 0
    serial_port: str = ""


def _s(value: str) -> str:
    """A TOML basic string (JSON's escapes are valid TOML escapes)."""
    return json.dumps(value, ensure_ascii=False)


def _num(value: float) -> str:
    return repr(float(value))


def render_site_config(
    layout: MineLayout,
    endpoints: Mapping[str, Endpoint],
    data_dir: str,
    *,
    gateway: str = "gw1",
    profile_dirs: tuple[str, ...] = (),
) -> str:
    """The gateway site configuration for ``layout`` running at
    ``endpoints`` (bus name -> where it listens)."""
    lines = [
        "# Written by the minegate mine simulator; ports and pty paths are",
        "# those of one simulator run.",
        "[site]",
        f"name = {_s(layout.name)}",
        f"gateway = {_s(gateway)}",
        f"data_dir = {_s(data_dir)}",
        f"profile_dirs = [{', '.join(_s(d) for d in profile_dirs)}]",
        "",
        "[store]",
        "retention_days = 90",
        "max_mb = 2048",
        "batch_ms = 200",
    ]
    for bus in layout.buses:
        end = endpoints[bus.name]
        lines += ["", "[[buses]]", f"name = {_s(bus.name)}", f"type = {_s(bus.type)}"]
        if bus.type in ("tcp", "rtu_over_tcp"):
            lines += [f"host = {_s(end.host)}", f"port = {end.port}"]
        if bus.type in ("rtu", "ascii"):
            lines += [f"serial_port = {_s(end.serial_port)}"]
        if bus.type in ("rtu", "ascii", "rtu_over_tcp"):
            lines += [f"baudrate = {bus.baudrate}", 'parity = "N"', "stopbits = 1", "bytesize = 8"]
        lines += [f"timeout_s = {_num(bus.timeout_s)}", f"retries = {bus.retries}"]
        if bus.type in ("rtu", "rtu_over_tcp"):
            lines += [f"frame_pause_ms = {_num(bus.frame_pause_ms)}"]
        if bus.type == "ascii":
            lines += ['line_format = "gas_nmea"']
    for bus in layout.buses:
        for device in bus.devices:
            lines += [
                "",
                "[[devices]]",
                f"name = {_s(device.name)}",
                f"bus = {_s(bus.name)}",
            ]
            if bus.type != "ascii":
                lines.append(f"unit = {device.unit}")
            lines += [
                f"profile = {_s(device.profile)}",
                f"poll_interval_s = {_num(device.poll_interval_s)}",
                f"location = {_s(device.location)}",
            ]
            if device.location_class:
                lines.append(f"location_class = {_s(device.location_class)}")
    return "\n".join(lines) + "\n"

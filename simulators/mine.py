"""A whole simulated mine: physics plus every device on its transport.

    async with SimulatedMine(seed=1) as mine:
        Path("site.toml").write_text(mine.site_config_toml("/tmp/gw-data"))
        mine.operate("main_fan_1", "running", 0)       # stop a main fan
        mine.inject("gas_monitor_2", "silent")          # unplug an outstation
        mine.clear("gas_monitor_2")

The default layout (:data:`simulators.layout.DEFAULT_LAYOUT`) puts the fans
and power meters on Modbus TCP, the environment outstations on an RS-485
line (Modbus RTU on a pty pair), the pump stations and fire main behind a
DTU (RTU over TCP) and a line gas sensor on a serial pty. Every ``tick_s``
the physics advances by ``tick_s`` of mine time and the devices' registers
are refreshed; with ``tick_s=0`` nothing moves unless :meth:`advance` is
called, which is how tests drive it on virtual time.

A control port (:mod:`simulators.control`) lets another process (the
gateway demo, a test, an operator with ``nc``) do the same operations.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path

from drivers.profile import find_profile
from drivers.types import DeviceProfile, Value
from simulators.ascii_sensor import AsciiSensor
from simulators.control import ControlServer, serve_control
from simulators.dtu import Dtu
from simulators.faults import Fault, FaultBoard
from simulators.layout import DEFAULT_LAYOUT, BusLayout, Endpoint, MineLayout, render_site_config
from simulators.lifecycle import ClosesOnExit, stop_tasks
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics
from simulators.ptybridge import PtyPair
from simulators.seriallink import SerialLink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeviceInfo:
    """A running device: what it is and where the gateway finds it."""

    name: str
    profile: DeviceProfile
    transport: str  # tcp | rtu | rtu_over_tcp | ascii
    bus: str
    unit: int | None
    endpoint: str  # "127.0.0.1:5020" or "/dev/pts/7"
    location: str


class SimulatedMine(ClosesOnExit):
    """Physics and device servers for ``layout`` (default: the built-in
    mine). ``base_port`` 0 takes free ports; otherwise TCP and DTU buses
    listen on ``base_port``, ``base_port + 1``... in layout order.
    ``control_port`` None disables the control port, 0 takes a free one.
    ``bus_timing`` paces serial lines at their baud rate: an RTU bus is then
    a :class:`~simulators.seriallink.SerialLink` (characters at the baud
    rate, 3.5-character silences, the layout's device turnaround), other
    lines a paced :class:`~simulators.ptybridge.PtyPair`."""

    def __init__(
        self,
        layout: MineLayout | None = None,
        seed: int = 1,
        tick_s: float = 0.5,
        base_port: int = 0,
        *,
        host: str = "127.0.0.1",
        control_port: int | None = None,
        bus_timing: bool = True,
        ascii_interval_s: float = 1.0,
        profile_dirs: tuple[str, ...] = (),
    ) -> None:
        self.layout = layout or DEFAULT_LAYOUT
        self.seed = seed
        self.tick_s = tick_s
        self.base_port = base_port
        self.host = host
        self.control_port = control_port
        self.bus_timing = bus_timing
        self.ascii_interval_s = ascii_interval_s
        self.profile_dirs = profile_dirs
        self.physics = MinePhysics(seed, self.layout.entities)
        self.devices: dict[str, DeviceInfo] = {}
        self.endpoints: dict[str, Endpoint] = {}
        self.buses: dict[str, ModbusBus] = {}
        self.sensors: dict[str, AsciiSensor] = {}
        self._boards: dict[str, FaultBoard] = {}
        self._entities: dict[str, str] = {}
        self._dtus: list[Dtu] = []
        self._ptys: list[PtyPair | SerialLink] = []
        self._lines: dict[str, PtyPair | SerialLink] = {}  # serial bus name -> its wire
        self._tick_task: asyncio.Task[None] | None = None
        self._control: ControlServer | None = None

    # ----------------------------------------------------------------- running

    async def start(self) -> None:
        next_port = self.base_port
        try:
            for bus in self.layout.buses:
                port = next_port if self.base_port and bus.type in ("tcp", "rtu_over_tcp") else 0
                await self._start_bus(bus, port)
                if self.base_port and bus.type in ("tcp", "rtu_over_tcp"):
                    next_port += 1
            if self.control_port is not None:
                self._control = await serve_control(self, self.host, self.control_port)
                self.control_port = self._control.port
            if self.tick_s > 0:
                self._tick_task = asyncio.create_task(self._tick(), name="mine physics")
        except BaseException:
            await self.close()
            raise

    def _profile(self, name: str) -> DeviceProfile:
        return find_profile(name, self.profile_dirs)

    async def _start_bus(self, bus: BusLayout, port: int) -> None:
        if bus.type == "ascii":
            (sensor_layout,) = bus.devices
            pty = PtyPair(baudrate=bus.baudrate if self.bus_timing else None)
            self._ptys.append(pty)
            self._lines[bus.name] = pty
            near, far = await pty.open()
            sensor = AsciiSensor(
                sensor_layout.name,
                self._profile(sensor_layout.profile),
                self.physics,
                far,
                station=sensor_layout.unit,
                interval_s=self.ascii_interval_s,
                entity=sensor_layout.physics_entity,
                seed=self.seed,
            )
            sensor.start()
            self.sensors[sensor_layout.name] = sensor
            self._boards[sensor_layout.name] = sensor.faults
            self.endpoints[bus.name] = Endpoint(serial_port=near)
            self._register(
                bus, sensor_layout.name, sensor.profile, None, near, sensor_layout.location
            )
            self._entities[sensor_layout.name] = sensor_layout.physics_entity
            return
        devices = [
            SimulatedDevice(
                d.name, self._profile(d.profile), d.unit, self.physics, entity=d.physics_entity
            )
            for d in bus.devices
        ]
        framing = "tcp" if bus.type == "tcp" else "rtu"
        modbus = ModbusBus(
            bus.name,
            devices,
            framing=framing,
            absent_answer=bus.absent_answer if bus.type == "tcp" else None,
        )
        self.buses[bus.name] = modbus
        if bus.type == "tcp":
            port = await modbus.serve_tcp(self.host, port)
            self.endpoints[bus.name] = Endpoint(host=self.host, port=port)
            where = f"{self.host}:{port}"
        elif bus.type == "rtu_over_tcp":
            dtu = Dtu(
                bus.name,
                modbus,
                host=self.host,
                port=port,
                baudrate=bus.baudrate,
                bus_timing=self.bus_timing,
                # Give the line back a little before the gateway gives up.
                response_timeout_s=bus.timeout_s * 0.8,
            )
            self._dtus.append(dtu)
            self._lines[bus.name] = dtu.line
            port = await dtu.start()
            self.endpoints[bus.name] = Endpoint(host=self.host, port=port)
            where = f"{self.host}:{port}"
        else:
            line: PtyPair | SerialLink = (
                SerialLink(bus.baudrate, turnaround_s=bus.turnaround_ms / 1000.0)
                if self.bus_timing
                else PtyPair()
            )
            self._ptys.append(line)
            self._lines[bus.name] = line
            near, far = await line.open()
            await modbus.serve_serial(far, baudrate=bus.baudrate)
            self.endpoints[bus.name] = Endpoint(serial_port=near)
            where = near
        for layout_device, device in zip(bus.devices, devices, strict=True):
            self._boards[device.name] = device.faults
            self._entities[device.name] = device.entity
            self._register(
                bus, device.name, device.profile, device.unit, where, layout_device.location
            )

    def _register(
        self,
        bus: BusLayout,
        name: str,
        profile: DeviceProfile,
        unit: int | None,
        endpoint: str,
        location: str,
    ) -> None:
        self.devices[name] = DeviceInfo(name, profile, bus.type, bus.name, unit, endpoint, location)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(self.tick_s)
            self.advance(self.tick_s)

    def advance(self, dt_s: float) -> None:
        """Step the physics by ``dt_s`` seconds of mine time and refresh
        every device's registers (frozen devices keep theirs)."""
        self.physics.step(dt_s)
        for bus in self.buses.values():
            bus.refresh()

    async def close(self) -> None:
        await stop_tasks(self._tick_task)
        self._tick_task = None
        if self._control is not None:
            await self._control.close()
            self._control = None
        for sensor in self.sensors.values():
            await sensor.close()
        for dtu in self._dtus:
            await dtu.close()  # closes its bus
        dtu_buses = {dtu.bus.name for dtu in self._dtus}
        for name, bus in self.buses.items():
            if name not in dtu_buses:
                await bus.close()
        for pty in self._ptys:
            await pty.close()
        self._dtus.clear()
        self._ptys.clear()
        self._lines.clear()

    async def __aenter__(self) -> SimulatedMine:
        await self.start()
        return self

    # --------------------------------------------------------------- operating

    def _board(self, device: str) -> FaultBoard:
        try:
            return self._boards[device]
        except KeyError:
            raise KeyError(f"no device {device!r}; devices: {', '.join(self._boards)}") from None

    def inject(self, device: str, fault: str, **params: float | int | str) -> None:
        """Make ``device`` show ``fault`` (silent, slow delay_s=, exception
        code=, corrupt, frozen; garbage for line sensors) until cleared."""
        self._board(device).inject(Fault.make(fault, **params))
        log.info("device %s: fault %s", device, self._board(device).describe())

    def clear(self, device: str, fault: str | None = None) -> None:
        """Clear one fault kind, or all of the device's faults."""
        self._board(device).clear(fault)
        log.info("device %s: %s", device, self._board(device).describe())

    def serial_link(self, bus: str) -> SerialLink:
        """The baud-paced line of RTU bus ``bus`` (with ``bus_timing``): its
        counters give the bus utilisation."""
        line = self._lines.get(bus)
        if not isinstance(line, SerialLink):
            raise KeyError(f"bus {bus!r} is not a baud-paced RTU line of this mine")
        return line

    def line_noise(self, bus: str, probability: float) -> None:
        """Flip a bit in a fraction ``probability`` of the chunks (on an RTU
        line: frames) crossing serial line ``bus`` (RTU, DTU or ASCII), both
        directions: EMI on a long RS-485 run. 0 turns it off."""
        try:
            line = self._lines[bus]
        except KeyError:
            raise KeyError(
                f"no serial line {bus!r}; serial lines: {', '.join(self._lines) or 'none'}"
            ) from None
        line.corrupt(probability)
        log.info("line %s: noise probability %g", bus, probability)

    def faults(self, device: str) -> str:
        return self._board(device).describe()

    def entity(self, device: str) -> str:
        """The physics entity behind ``device``."""
        self._board(device)
        return self._entities[device]

    def operate(self, device: str, quantity: str, value: Value) -> None:
        """Operator action on the equipment behind ``device`` (start/stop a
        fan or pump, open a valve, trip a breaker) or a pinned reading."""
        self.physics.set(self.entity(device), quantity, value)

    def release(self, device: str, quantity: str | None = None) -> None:
        self.physics.release(self.entity(device), quantity)

    def value(self, device: str, quantity: str) -> Value:
        return self.physics.get(self.entity(device), quantity)

    # ------------------------------------------------------------ configuration

    def site_config_toml(self, data_dir: str | Path, *, gateway: str = "gw1") -> str:
        """The gateway site configuration for this running mine."""
        if not self.endpoints:
            raise RuntimeError("the mine is not running; use 'async with SimulatedMine()'")
        return render_site_config(
            self.layout,
            self.endpoints,
            str(data_dir),
            gateway=gateway,
            profile_dirs=self.profile_dirs,
        )

    def describe(self) -> list[str]:
        """One line per device: name, transport, where, unit, profile."""
        lines = []
        for info in self.devices.values():
            unit = f" unit {info.unit}" if info.unit is not None else ""
            lines.append(
                f"{info.name:<15} {info.transport:<13} {info.endpoint}{unit}  ({info.profile.name})"
            )
        return lines

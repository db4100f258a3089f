"""Shared fixtures of the gateway tests."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from gateway.config import SiteConfig, load_config
from simulators.modbus_server import ModbusBus, SimulatedDevice
from simulators.physics import MinePhysics


@contextlib.asynccontextmanager
async def _fan_site(tmp_path: Path, template: str) -> AsyncIterator[SiteConfig]:
    """A simulated main fan (unit 1) on a real pymodbus TCP server, and the
    site config ``template`` with ``{port}`` replaced by the server's port.
    The template's first device must be the fan."""
    site = tmp_path / "site.toml"
    site.write_text(template.replace("{port}", "1"))  # to read the fan's profile
    fan = load_config(site).devices[0]
    bus = ModbusBus("vent", [SimulatedDevice("main_fan_1", fan.profile, 1, MinePhysics(seed=1))])
    bus.refresh()
    port = await bus.serve_tcp()
    site.write_text(template.replace("{port}", str(port)))
    try:
        yield load_config(site)
    finally:
        assert bus.server is not None
        await bus.server.shutdown()


@pytest.fixture
def fan_site() -> Any:
    return _fan_site

"""Fixtures for the sink tests: real servers (shared per module), records,
and a store."""

from __future__ import annotations

import importlib.util
import itertools
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.model import Quality, Record, RecordKind


def _load_servers():  # type: ignore[no-untyped-def]
    path = Path(__file__).resolve().parents[1] / "servers.py"
    name = "minegate_test_servers"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


servers = _load_servers()

SITE = "qinzhou-1"
GATEWAY = "gw01"
BASE_TS = 1_764_000_000_000_000_000  # 2025-11-24T16:00:00Z, fixed so results are checkable


@pytest.fixture(scope="module")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    srv = servers.mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def influxd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    srv = servers.influxd(tmp_path_factory.mktemp("influxd")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def vm_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    srv = servers.victoria(tmp_path_factory.mktemp("vm")).start()
    yield srv
    srv.stop()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[object]:
    from gateway.store import Store

    st = Store(tmp_path / "store.db", synchronous="NORMAL")
    yield st
    st.close()


_counter = itertools.count()


def unique(prefix: str) -> str:
    """A name no other test in the session uses (databases, devices)."""
    return f"{prefix}{next(_counter)}"


def sample(
    device: str,
    i: int,
    *,
    ts_ns: int | None = None,
    points: int = 3,
    kind: RecordKind = RecordKind.SAMPLE,
) -> Record:
    """A telemetry record with deterministic values derived from ``i``."""
    names = ["ch4", "co", "fan_on", "airflow", "temp", "pressure"][:points]
    if points > 6:
        names = [f"p{j}" for j in range(points)]
    vals: list[object] = []
    for j, n in enumerate(names):
        if n == "fan_on":
            vals.append(i % 2 == 0)
        elif n == "co":
            vals.append(int(i % 50))
        else:
            vals.append(round(0.01 * i + j, 4))
    units = {"ch4": "%", "co": "ppm", "airflow": "m/s", "temp": "C", "pressure": "Pa"}
    return Record(
        kind=kind,
        device=device,
        ts_ns=(BASE_TS + i * 1_000_000_000) if ts_ns is None else ts_ns,
        points=names,
        values=vals,  # type: ignore[arg-type]
        units=[units.get(n, "") for n in names],
        qualities=[Quality.GOOD] * len(names),
    )


class Helpers:
    """What the test modules share (importlib mode: tests cannot import
    each other, so they receive this through the ``h`` fixture)."""

    SITE = SITE
    GATEWAY = GATEWAY
    BASE_TS = BASE_TS
    servers = servers
    sample = staticmethod(sample)
    unique = staticmethod(unique)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers

"""Fixtures of the platform tests. Every test taking ``engine`` (or
``db_url``) runs twice: on SQLite and on a real PostgreSQL server started
once per session."""

from __future__ import annotations

import importlib.util
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

HERE = Path(__file__).resolve().parent


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


servers = _load("minegate_test_servers", HERE.parent / "servers.py")
pg = _load("minegate_test_pg", HERE / "pg.py")
helpers = _load("minegate_platform_helpers", HERE / "helpers.py")


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Any]:
    srv = pg.PostgresServer(servers.free_port()).start()
    yield srv
    srv.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'platform.db'}"
        return
    import psycopg

    srv = request.getfixturevalue("pg_server")
    name = "t_" + uuid.uuid4().hex[:12]
    with psycopg.connect(
        f"host=127.0.0.1 port={srv.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield srv.url(name)
    with psycopg.connect(
        f"host=127.0.0.1 port={srv.port} user=postgres dbname=postgres", autocommit=True
    ) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    from supervision.db import make_engine
    from supervision.db.migrate import upgrade

    eng = make_engine(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def world(engine: Engine) -> Any:
    """Two counties of one city (and a second region), mines, gateways and
    users of every role with their tokens: see helpers.build_world."""
    return helpers.build_world(engine)


@pytest.fixture(scope="module")
def mosquitto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    srv = servers.mosquitto(tmp_path_factory.mktemp("mosquitto")).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def pit_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``minegate survey sample --open-pit``'s output, made once a session."""
    import os
    import subprocess

    out = tmp_path_factory.mktemp("pit-sample")
    r = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "survey", "sample", "--open-pit", "--out", str(out)],
        env={**os.environ, "PYTHONPATH": str(HERE.parents[1])}, capture_output=True, text=True,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out

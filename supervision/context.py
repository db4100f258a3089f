"""What every request and background task shares: config, database, clock."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session, sessionmaker

from supervision.db.base import Clock, system_clock

if TYPE_CHECKING:
    from supervision.config import PlatformConfig
    from supervision.ingest.stats import IngestStats


@dataclass
class PlatformContext:
    config: PlatformConfig
    sessions: sessionmaker[Session]
    clock: Clock = system_clock
    ingest_stats: IngestStats | None = None
    extra: dict[str, object] = field(default_factory=dict)


def context(request: Request) -> PlatformContext:
    ctx: PlatformContext = request.app.state.ctx
    return ctx


def get_db(request: Request) -> Iterator[Session]:
    """One session per request, committed when the endpoint returns."""
    with context(request).sessions() as db, db.begin():
        yield db


DbSession = Annotated[Session, Depends(get_db)]

"""The declarative base every table derives from, and the clock type."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

#: nanoseconds since the Unix epoch, UTC
Clock = Callable[[], int]


def system_clock() -> int:
    return time.time_ns()


# Named constraints: Alembic can alter them later (SQLite batch mode and
# PostgreSQL both need a name to drop a constraint).
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)

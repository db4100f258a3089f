"""Storage: SQLAlchemy 2 engine and sessions, Alembic migrations.

SQLite (WAL) is the embedded default, PostgreSQL the production choice; the
test suite runs against both. Every time in the store is an integer of
nanoseconds since the Unix epoch (UTC), as in the gateway's records, so
rules and tests work on an injected clock.
"""

from supervision.db.base import Base, Clock, system_clock
from supervision.db.engine import make_engine, make_sessionmaker

__all__ = ["Base", "Clock", "make_engine", "make_sessionmaker", "system_clock"]

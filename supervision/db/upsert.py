"""Idempotent writes that work on SQLite and PostgreSQL alike.

Both dialects have ``INSERT ... ON CONFLICT``; SQLAlchemy spells it per
dialect, so this module picks the right ``insert``. Writes guarded by a
timestamp never let an older message overwrite a newer one, so two
instances applying the same messages in any order end in the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert(db: Session, table: Table) -> Any:
    name = db.get_bind().dialect.name
    if name == "postgresql":
        return postgresql.insert(table)
    if name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"database {name!r} is not supported (use SQLite or PostgreSQL)")


def insert_new(db: Session, table: Table, row: dict[str, Any]) -> bool:
    """Insert ``row`` unless its key exists; True if it was new."""
    # RETURNING, not rowcount: drivers disagree on the count of a skipped row
    key = next(iter(table.primary_key.columns))
    stmt = _insert(db, table).values(**row).on_conflict_do_nothing().returning(key)
    return db.execute(stmt).first() is not None


def upsert(
    db: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    newer: str | None = None,
) -> None:
    """Insert ``rows``; on a key conflict update the other columns, only if
    ``newer`` (a column) is not older than the stored one (or NULL)."""
    if not rows:
        return
    ins = _insert(db, table)
    stmt = ins.values(list(rows))
    cols = [c for c in rows[0] if c not in keys]
    where = None
    if newer is not None:
        stored = table.c[newer]
        where = stored.is_(None) | (stored <= stmt.excluded[newer])
    stmt = stmt.on_conflict_do_update(
        index_elements=list(keys), set_={c: stmt.excluded[c] for c in cols}, where=where
    )
    db.execute(stmt)

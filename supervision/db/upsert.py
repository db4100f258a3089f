"""Idempotent writes that work on SQLite and PostgreSQL alike.

Both dialects have ``INSERT ... ON CONFLICT``; SQLAlchemy spells it per
dialect, so this module picks the right ``insert``. Writes guarded by a
timestamp never let an older message overwrite a newer one, so two
instances applying the same messages in any order end in the same state.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Table, case, func
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


def insert_new_many(
    db: Session, table: Table, rows: Sequence[dict[str, Any]], keys: Sequence[str]
) -> set[tuple[Any, ...]]:
    """Insert the rows whose key is not stored yet (one statement, run as
    executemany); the keys of those inserted. ``rows`` must not repeat a key."""
    if not rows:
        return set()
    cols = [table.c[k] for k in keys]
    stmt = _insert(db, table).on_conflict_do_nothing().returning(*cols)
    return {tuple(r) for r in db.execute(stmt, list(rows))}


def upsert(
    db: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
    newer: str | None = None,
    keep: Sequence[str] = (),
) -> None:
    """Insert ``rows``; on a key conflict update the other columns, only if
    ``newer`` (a column) is not older than the stored one (or NULL); a
    column in ``keep`` keeps its stored value where the new one is NULL."""
    if not rows:
        return
    # executemany of one statement: compiled once and cached, where a
    # multi-row VALUES would be compiled afresh for every batch size
    stmt = _insert(db, table)
    cols = [c for c in rows[0] if c not in keys]
    where = None
    if newer is not None:
        stored = table.c[newer]
        where = stored.is_(None) | (stored <= stmt.excluded[newer])
    set_ = {
        c: func.coalesce(stmt.excluded[c], table.c[c]) if c in keep else stmt.excluded[c]
        for c in cols
    }
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_=set_, where=where)
    db.execute(stmt, list(rows))


def upsert_forward(
    db: Session,
    table: Table,
    rows: Sequence[dict[str, Any]],
    *,
    keys: Sequence[str],
) -> None:
    """Insert ``rows``; on a key conflict each other column only moves
    forward: it takes the new value when that is larger than the stored one
    (or the stored one is NULL), and a NULL never replaces a value. One
    statement for the whole batch (``rows`` must not repeat a key)."""
    if not rows:
        return
    stmt = _insert(db, table)
    new = stmt.excluded
    set_ = {}
    for c in rows[0]:
        if c in keys:
            continue
        stored = table.c[c]
        moves = new[c].is_not(None) & (stored.is_(None) | (stored < new[c]))
        set_[c] = case((moves, new[c]), else_=stored)
    db.execute(stmt.on_conflict_do_update(index_elements=list(keys), set_=set_), list(rows))

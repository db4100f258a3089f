"""Idempotent writes that work on SQLite and PostgreSQL alike.

Both dialects have ``INSERT ... ON CONFLICT``; SQLAlchemy spells it per
dialect, so this module picks the right ``insert``. Writes guarded by a
timestamp never let an older message overwrite a newer one, so two
instances applying the same messages in any order end in the same state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, Integer, Table, case, func, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import TextClause

#: from this many rows on, PostgreSQL gets one ``INSERT ... SELECT FROM
#: unnest(arrays)`` instead of an executemany: one statement and one
#: execution on the server, and no per-row parameter processing in Python
#: (bench/results/platform_profile.md)
UNNEST_MIN_ROWS = 8


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
    if _unnest(db, rows):
        names = tuple(rows[0])
        stmt_u = _unnest_upsert(table, names, tuple(keys), None, "new")
        return {tuple(r) for r in db.execute(stmt_u, _arrays(table, names, rows))}
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
    if _unnest(db, rows):
        names = tuple(rows[0])
        stmt_k = _unnest_upsert(table, names, tuple(keys), newer, keep=tuple(keep))
        db.execute(stmt_k, _arrays(table, names, rows))
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
    if _unnest(db, rows):
        names = tuple(rows[0])
        stmt_u = _unnest_upsert(table, names, tuple(keys), None, "forward")
        db.execute(stmt_u, _arrays(table, names, rows))
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


def _pg_array_type(table: Table, col: str) -> str:
    t = table.c[col].type
    if isinstance(t, JSON):
        return "text[]"  # sent as JSON text, cast per row
    if isinstance(t, BigInteger | Integer):
        return "bigint[]"
    if isinstance(t, Float):
        return "float8[]"
    if isinstance(t, Boolean):
        return "bool[]"
    return "text[]"


@lru_cache(maxsize=64)
def _unnest_upsert(
    table: Table,
    cols: tuple[str, ...],
    keys: tuple[str, ...],
    newer: str | None,
    mode: str = "update",
    keep: tuple[str, ...] = (),
) -> TextClause:
    """``mode``: ``update`` (guarded by ``newer``; a column in ``keep`` keeps
    its stored value where the new one is NULL), ``forward`` (each column
    moves forward only, as :func:`upsert_forward`), ``new`` (insert the new
    keys only, returning them, as :func:`insert_new_many`)."""
    name = table.name
    args = ", ".join(f"CAST(:{c} AS {_pg_array_type(table, c)})" for c in cols)
    select_cols = ", ".join(
        f"u.{c}::json" if isinstance(table.c[c].type, JSON) else f"u.{c}" for c in cols
    )
    head = (
        f"INSERT INTO {name} ({', '.join(cols)}) SELECT {select_cols} "
        f"FROM unnest({args}) AS u({', '.join(cols)}) "
    )
    if mode == "new":
        return text(head + f"ON CONFLICT DO NOTHING RETURNING {', '.join(keys)}")
    others = [c for c in cols if c not in keys]
    if mode == "forward":
        sets = ", ".join(
            f"{c} = CASE WHEN EXCLUDED.{c} IS NOT NULL AND ({name}.{c} IS NULL"
            f" OR {name}.{c} < EXCLUDED.{c}) THEN EXCLUDED.{c} ELSE {name}.{c} END"
            for c in others
        )
        where = ""
    else:
        sets = ", ".join(
            f"{c} = COALESCE(EXCLUDED.{c}, {name}.{c})" if c in keep else f"{c} = EXCLUDED.{c}"
            for c in others
        )
        where = f" WHERE {name}.{newer} IS NULL OR {name}.{newer} <= EXCLUDED.{newer}" if newer else ""  # fmt: skip
    return text(head + f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {sets}{where}")


def _unnest(db: Session, rows: Sequence[dict[str, Any]]) -> bool:
    return len(rows) >= UNNEST_MIN_ROWS and db.get_bind().dialect.name == "postgresql"


def _arrays(
    table: Table, cols: tuple[str, ...], rows: Sequence[dict[str, Any]]
) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for c in cols:
        if isinstance(table.c[c].type, JSON):
            out[c] = [json.dumps(r[c]) for r in rows]
        else:
            out[c] = [r[c] for r in rows]
    return out

"""The store's errors, and the SQLite errors an operator can act on turned
into them (each says what to do). Callers catch these; the file-level checks
that raise them live in ``gateway.store.schema``."""

from __future__ import annotations

import sqlite3
from pathlib import Path


class StoreError(Exception):
    """Base of the store's errors."""


class StoreFileError(StoreError):
    """The file cannot be used as a store (damaged, not SQLite, another
    program's database, or written by a newer minegate)."""


class StoreFullError(StoreError):
    """The disk (or file system quota) is full: nothing of the failed call
    was stored. Free space, or lower ``max_bytes`` so enforce_limits keeps
    the store smaller."""


class StoreClosedError(StoreError):
    """The store was used after close()."""


class UnknownSinkError(StoreError, KeyError):
    """A sink name that was never registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def move_aside_hint(path: Path) -> str:
    return (
        f"move it aside (mv {path} {path}.bad) and restart: the gateway then "
        "creates an empty store; keep the old file for inspection"
    )


def translate(path: Path, exc: sqlite3.Error) -> StoreError | None:
    """A StoreError saying what to do for the SQLite errors an operator can
    act on (disk full, damaged file); None for the others."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return StoreFullError(
            f"{path}: disk full ({exc}); nothing was stored: free disk space or lower "
            "store.max_mb so the size bound keeps the store smaller"
        )
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreFileError(f"{path}: damaged store ({exc}); " + move_aside_hint(path))
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return StoreFileError(
            f"{path}: cannot write the store ({exc}); the file, its -wal/-shm companions and "
            "their directory must be writable by the gateway's user"
        )
    if code == sqlite3.SQLITE_IOERR:
        return StoreError(
            f"{path}: I/O error ({exc}); the disk or file system is failing: check the "
            "kernel log; nothing of this call was stored"
        )
    return None

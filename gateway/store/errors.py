"""The store's errors, and the SQLite errors an operator can act on turned
into them (each says what to do). Callers catch these; the file-level checks
that raise them live in ``gateway.store.schema``."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

# Below this many free bytes the file system of the store counts as full: an
# I/O error there (a -shm or -wal that cannot grow, a write) is the disk
# being full, not the file being damaged. SQLite reports a full disk as
# SQLITE_FULL only for the main file and the WAL; for the -shm it is an
# SQLITE_IOERR_SHMSIZE ("disk I/O error").
FULL_BELOW_BYTES = 1 << 20


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


def check_hint(path: Path) -> str:
    """What to do about an error that does not prove the file damaged: check
    it first, never discard a store that may be intact (it holds unsent records)."""
    return (
        f"check the file with: sqlite3 {path} 'PRAGMA integrity_check' (it should say ok); "
        "move it aside only if that reports damage"
    )


def disk_free_bytes(path: Path) -> int | None:
    """Free bytes on the file system holding ``path`` (None when unknown)."""
    for where in (path.parent, path.parent.parent):
        try:
            return shutil.disk_usage(where).free
        except OSError:
            continue
    return None


def disk_is_full(path: Path) -> bool:
    free = disk_free_bytes(path)
    return free is not None and free < FULL_BELOW_BYTES


def full_error(path: Path, exc: BaseException) -> StoreFullError:
    free = disk_free_bytes(path)
    left = "" if free is None else f", {free} bytes free"
    return StoreFullError(
        f"{path}: disk full ({exc}{left}); a full disk does not damage the store, do not "
        "move it aside: free disk space on its file system (or lower store.max_mb so the size "
        "bound keeps the store smaller); nothing of the failed call was stored"
    )


def translate(path: Path, exc: sqlite3.Error) -> StoreError | None:
    """A StoreError saying what to do for the SQLite errors an operator can
    act on (disk full, damaged file, permissions, failing disk); None for
    the others. Only SQLITE_CORRUPT and SQLITE_NOTADB say the file is
    damaged: a full disk (SQLITE_FULL, or an I/O / cannot-open error on a
    file system with no room left) is told apart and never advises moving
    the store aside."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    if code == sqlite3.SQLITE_FULL:
        return full_error(path, exc)
    if code in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
        return StoreFileError(f"{path}: damaged store ({exc}); " + move_aside_hint(path))
    if code in (sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CANTOPEN) and disk_is_full(path):
        return full_error(path, exc)
    if code in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM):
        return StoreFileError(
            f"{path}: cannot write the store ({exc}); the file, its -wal/-shm companions and "
            "their directory must be writable by the gateway's user"
        )
    if code == sqlite3.SQLITE_IOERR:
        return StoreError(
            f"{path}: I/O error ({exc}); the disk or file system is failing: check the "
            f"kernel log; nothing of this call was stored; the file may be intact: "
            + check_hint(path)
        )
    return None

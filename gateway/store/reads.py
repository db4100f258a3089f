"""The decorator of the store's read-only methods: SQLite errors an operator
can act on, and undecodable payloads, become StoreErrors that say what to do."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Concatenate, ParamSpec, Protocol, TypeVar

from gateway.store.codec import PayloadError
from gateway.store.errors import StoreFileError, translate


class _HasPath(Protocol):
    path: Path


_S = TypeVar("_S", bound=_HasPath)
_P = ParamSpec("_P")
_R = TypeVar("_R")


def reads(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """Turn SQLite errors an operator can act on (damaged file, I/O error)
    and undecodable payloads into StoreErrors that say what to do, for
    methods that only read."""

    @functools.wraps(method)
    def wrapper(self: _S, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return method(self, *args, **kwargs)
        except PayloadError as exc:  # SQLite has no checksums: damage can reach a payload
            raise StoreFileError(
                f"{self.path}: damaged store ({exc}); move it aside "
                f"(mv {self.path} {self.path}.bad) and restart"
            ) from exc
        except sqlite3.Error as exc:
            mapped = translate(self.path, exc)
            if mapped is None:
                raise
            raise mapped from exc

    return wrapper

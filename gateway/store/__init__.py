"""The embedded SQLite store: the gateway's local history and the sinks'
outbox (docs/store.md).

``Store`` is the one object callers hold; its errors come from
``gateway.store.errors`` and are re-exported here. The other modules are
its parts: ``schema`` (DDL, opening a file), ``codec`` (payload of one
record), ``rows`` (record <-> row), ``latest`` (latest values),
``outbox`` (per-sink cursors) and ``limits`` (retention and size bound).
"""

from gateway.store.errors import (
    StoreClosedError,
    StoreError,
    StoreFileError,
    StoreFullError,
    UnknownSinkError,
)
from gateway.store.store import Store

__all__ = [
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreFileError",
    "StoreFullError",
    "UnknownSinkError",
]

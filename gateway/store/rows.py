"""From a Record to a row of the ``records`` table and back.

A row refers to point names and units through the ``names`` table (see
store_codec), so this module keeps an in-memory copy of that table. The
copy only ever learns ids that are committed: new names found while
encoding are handed back to the caller, who calls :meth:`RowCodec.learn`
after COMMIT. A reader that meets an id it does not know (committed by the
writer a moment ago, or by another process) reloads the table.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from typing import Any

from gateway.model import Record, RecordKind
from gateway.store.codec import (
    PayloadError,
    decode_fields,
    decode_payload,
    encode_fields,
    encode_packed,
    pack_ids,
)

Name = tuple[str, str]  # (point, unit)

_KINDS = frozenset(k.value for k in RecordKind)
_MAX_LAYOUTS = 4096  # remembered record layouts (report by exception makes subsets)

# Columns every record query selects, in the order decode_rows expects.
RECORD_COLUMNS = "seq, kind, device, ts_ns, payload, fields, n_values"


class RowCodec:
    """Encodes and decodes records; thread-safe (one lock around the cache)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._id_of: dict[Name, int] = {}
        self._name_of: dict[int, Name] = {}
        # (points, units) of a record layout -> its packed name ids: a device
        # sends the same layout read after read
        self._layouts: dict[tuple[tuple[str, ...], tuple[str, ...]], tuple[int, bytes]] = {}

    def load(self, conn: sqlite3.Connection) -> None:
        rows = conn.execute("SELECT id, point, unit FROM names").fetchall()
        with self._lock:
            for name_id, point, unit in rows:
                self._name_of[name_id] = (point, unit)
                self._id_of[(point, unit)] = name_id

    def learn(self, new: dict[Name, int]) -> None:
        """Add names the caller's transaction committed."""
        with self._lock:
            for name, name_id in new.items():
                self._id_of[name] = name_id
                self._name_of[name_id] = name

    def ids_of_point(self, conn: sqlite3.Connection, point: str) -> frozenset[int]:
        """Every name id of ``point`` (one per unit it was stored with)."""
        return frozenset(
            r[0] for r in conn.execute("SELECT id FROM names WHERE point = ?", (point,))
        )

    def names_of(self, conn: sqlite3.Connection, ids: Sequence[int]) -> list[Name]:
        name_of = self._name_of
        try:
            return [name_of[i] for i in ids]
        except KeyError:
            self.load(conn)
            try:
                return [name_of[i] for i in ids]
            except KeyError as exc:
                raise PayloadError(f"record refers to unknown name id {exc}") from exc

    def encode(self, conn: sqlite3.Connection, rec: Record, new: dict[Name, int]) -> bytes:
        """The payload of ``rec``. Names not yet in the table are inserted
        within the caller's transaction and recorded in ``new``.

        Raises ValueError when the parallel lists differ in length and
        TypeError for a value that cannot be stored."""
        n = len(rec.points)
        if len(rec.values) != n or len(rec.units) != n or len(rec.qualities) != n:
            raise ValueError(
                f"record of {rec.device!r} at {rec.ts_ns}: points, values, units and "
                f"qualities must have the same length ({n}, {len(rec.values)}, "
                f"{len(rec.units)}, {len(rec.qualities)})"
            )
        layout = (tuple(rec.points), tuple(rec.units))
        packed = self._layouts.get(layout)
        if packed is None:
            keys = list(zip(rec.points, rec.units, strict=True))
            get = self._id_of.get
            ids = [get(k) for k in keys]
            if None in ids:
                for i, key in enumerate(keys):
                    if ids[i] is None:
                        ids[i] = new.get(key) or self._insert_name(conn, key, new)
                # ids not committed yet: not remembered (the transaction may fail)
                return encode_packed(pack_ids(ids), rec.values, rec.qualities)  # type: ignore[arg-type]
            packed = pack_ids(ids)  # type: ignore[arg-type]
            if len(self._layouts) >= _MAX_LAYOUTS:
                self._layouts.clear()
            self._layouts[layout] = packed
        return encode_packed(packed, rec.values, rec.qualities)

    @staticmethod
    def _insert_name(conn: sqlite3.Connection, key: Name, new: dict[Name, int]) -> int:
        # ON CONFLICT: another process may have added the same name since our
        # cache was loaded; then its id is the one to use.
        conn.execute(
            "INSERT INTO names (point, unit) VALUES (?, ?) ON CONFLICT (point, unit) DO NOTHING",
            key,
        )
        name_id = int(
            conn.execute("SELECT id FROM names WHERE point = ? AND unit = ?", key).fetchone()[0]
        )
        new[key] = name_id
        return name_id

    def row(
        self, conn: sqlite3.Connection, rec: Record, seq: int, new: dict[Name, int]
    ) -> tuple[Any, ...]:
        """Parameters for inserting ``rec`` as ``seq`` (RECORD_COLUMNS order)."""
        payload = self.encode(conn, rec, new)
        return (
            seq,
            rec.kind.value,
            rec.device,
            rec.ts_ns,
            payload,
            encode_fields(rec.fields),
            len(rec),
        )

    def decode_rows(self, conn: sqlite3.Connection, rows: Sequence[Sequence[Any]]) -> list[Record]:
        """Records from rows selected as RECORD_COLUMNS (extra columns ignored)."""
        out = []
        for row in rows:
            seq, kind, device, ts_ns, payload, fields = row[:6]
            if kind not in _KINDS:
                raise PayloadError(f"record {seq}: unknown kind {kind!r}")
            ids, values, qualities = decode_payload(payload)
            names = self.names_of(conn, ids)
            out.append(
                Record(
                    kind=RecordKind(kind),
                    device=device,
                    ts_ns=ts_ns,
                    points=[p for p, _ in names],
                    values=values,
                    units=[u for _, u in names],
                    qualities=qualities,
                    fields=decode_fields(fields),
                    seq=seq,
                )
            )
        return out

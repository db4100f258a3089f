"""Watch a running minegate's store: what each sink's server acknowledged, when.

A thread samples the sink's row of the ``sinks`` table every ``period_s``
through a read-only SQLite connection (WAL lets it read beside the
gateway). When the cursor moves from ``a`` to ``b``, every record with
``a < seq <= b`` was acknowledged by the server and the ack was written to the
store between the previous sample and this one; its latency is this sample's
time minus the record's ``ts_ns`` (the time the read was sent to the device),
so it is exact to within one ``period_s``.

This is how the benchmark measures delivery to InfluxDB (the gateway's own
ack record, no server-side counting) and cross-checks MQTT, and how it times
the backlog drain after an outage (``pending_values``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Sample:
    t: float  # time.time()
    cursor: int
    pending_values: int
    acked_values: int  # SAMPLE values acked since the watcher started
    acked_all_values: int  # values of every kind acked since the watcher started


class StoreWatcher(threading.Thread):
    def __init__(self, store: Path, sink: str, period_s: float = 0.05, max_s: float = 3600.0):
        super().__init__(name=f"watch-{sink}", daemon=True)
        self.store = store
        self.sink = sink
        self.period_s = period_s
        self.max_s = max_s
        self.lock = threading.Lock()
        self.samples: list[Sample] = []
        self.acks: list[tuple[float, float]] = []  # (ack time, latency s) per SAMPLE record
        self.stopping = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.max_s
        conn: sqlite3.Connection | None = None
        cursor = -1
        acked = acked_all = 0
        try:
            while not self.stopping.is_set() and time.monotonic() < deadline:
                self.stopping.wait(self.period_s)
                if conn is None:
                    conn = self._open()
                    if conn is None:
                        continue
                try:
                    row = conn.execute(
                        "SELECT cursor, pending_values FROM sinks WHERE name = ?", (self.sink,)
                    ).fetchone()
                except sqlite3.OperationalError:
                    continue  # schema not created yet, or a checkpoint in progress
                if row is None:
                    continue
                now = time.time()
                new_cursor, pending = int(row[0]), int(row[1])
                if cursor < 0:
                    cursor = new_cursor  # acks before the watcher started are not ours
                if new_cursor > cursor:
                    rows = conn.execute(
                        "SELECT kind, ts_ns, n_values FROM records WHERE seq > ? AND seq <= ?",
                        (cursor, new_cursor),
                    ).fetchall()
                    lat = []
                    for kind, ts_ns, n in rows:
                        acked_all += n
                        if kind == "sample":
                            acked += n
                            lat.append((now, now - ts_ns / 1e9))
                    cursor = new_cursor
                    with self.lock:
                        self.acks.extend(lat)
                with self.lock:
                    self.samples.append(Sample(now, cursor, pending, acked, acked_all))
        except sqlite3.Error as exc:
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if conn is not None:
                conn.close()

    def _open(self) -> sqlite3.Connection | None:
        if not self.store.exists():
            return None
        try:
            return sqlite3.connect(f"file:{self.store}?mode=ro", uri=True, timeout=1.0)
        except sqlite3.Error:
            return None

    def last_seq(self) -> int:
        """The highest seq appended so far (read now, on its own connection)."""
        conn = self._open()
        if conn is None:
            return 0
        try:
            row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'records'").fetchone()
            return int(row[0]) if row else 0
        finally:
            conn.close()

    def stop(self) -> None:
        self.stopping.set()
        self.join(5.0)

    # -- views ---------------------------------------------------------------

    def last(self) -> Sample | None:
        with self.lock:
            return self.samples[-1] if self.samples else None

    def at(self, t: float) -> Sample | None:
        """The last sample taken at or before ``t``."""
        with self.lock:
            found = None
            for s in reversed(self.samples):
                if s.t <= t:
                    found = s
                    break
            return found

    def between(self, t0: float, t1: float) -> list[Sample]:
        with self.lock:
            return [s for s in self.samples if t0 <= s.t <= t1]

    def latencies(self, t0: float, t1: float) -> list[float]:
        """Poll-to-ack latencies (s) of SAMPLE records acked in [t0, t1]."""
        with self.lock:
            return [lat for t, lat in self.acks if t0 <= t <= t1]

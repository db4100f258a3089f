"""What the gateway does while its store cannot write (a full disk, a
failing card): polling goes on, alarms and the latest values still leave.

The writer hands every batch the store refused to :class:`StoreOutage`,
which

* **holds** the records in memory, in order, to append them when the store
  writes again (bounded by ``max_values``; when full, the oldest samples,
  snapshots and metrics go first, then the oldest of any kind; every drop is
  counted ``outage_dropped_<kind>``);
* says **when to try again** (the one backoff, ``drivers.backoff``): between
  tries the writer keeps taking from the queue, so the pollers never wait;
* keeps **the health file** (``minegate.health`` beside the store) that
  ``minegate status`` reads: the store cannot hold that news itself. The
  file is written once at start at a fixed size and afterwards overwritten
  in place, which needs no new disk blocks, so it works on a full disk;
* logs the first failure as an ERROR, the following ones at DEBUG, and one
  INFO line when writes succeed again.

Meanwhile the runtime offers the alarms and samples of every refused batch
to each sink runner (``SinkRunner.offer_live``): memory only, drop-oldest,
counted; see docs/store.md "When the store cannot write".
"""

from __future__ import annotations

import heapq
import json
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from drivers.backoff import Backoff
from gateway.model import Record, RecordKind

log = logging.getLogger("minegate.store")

HEALTH_FILENAME = "minegate.health"
HEALTH_BYTES = 1024  # fixed size: rewritten in place, never grown
HELD_MAX_VALUES = 500_000  # ~50 MB of records in memory at most
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 30.0
LIVE_KINDS = frozenset({RecordKind.ALARM, RecordKind.SAMPLE})  # what still leaves


def health_path(store_file: Path) -> Path:
    return Path(store_file).with_name(HEALTH_FILENAME)


class StoreOutage:
    """The writer's memory while the store refuses writes (module docstring)."""

    def __init__(
        self,
        *,
        max_values: int = HELD_MAX_VALUES,
        wall_ns: Callable[[], int] = time.time_ns,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_values = max_values
        self._wall = wall_ns
        self._clock = clock
        self._backoff = Backoff(RETRY_FIRST_S, RETRY_MAX_S)
        # (order, record): droppable kinds and the others apart, so the
        # oldest droppable one is found at once; merged back by order.
        self._droppable: deque[tuple[int, Record]] = deque()
        self._kept: deque[tuple[int, Record]] = deque()
        self._order = 0
        self._values = 0
        self.dropped: Counter[str] = Counter()
        self.failing_since_ns: int | None = None
        self.failures = 0
        self.last_error = ""
        self._next_try = 0.0
        self._health: Path | None = None

    @property
    def failing(self) -> bool:
        return self.failing_since_ns is not None

    @property
    def held_records(self) -> int:
        return len(self._droppable) + len(self._kept)

    # -- the writer's calls ---------------------------------------------------

    def prepare(self, store_file: Path) -> None:
        """Create the health file (fixed size) beside the store, saying ok."""
        self._health = health_path(store_file)
        try:
            with self._health.open("wb") as f:
                f.write(self._health_bytes())
        except OSError as exc:  # a full disk at start: status cannot be told
            log.warning("cannot write %s (%s): minegate status will not show store health",
                        self._health, exc)  # fmt: skip
            self._health = None

    def hold(self, batch: Iterable[Record]) -> None:
        """Keep records the store has not taken, after those already held."""
        for rec in batch:
            self._order += 1
            (self._droppable if rec.kind.droppable else self._kept).append((self._order, rec))
            self._values += len(rec)
        while self._values > self.max_values and self.held_records > 1:
            _, old = (self._droppable or self._kept).popleft()
            self._values -= len(old)
            self.dropped[f"outage_dropped_{old.kind.value}"] += 1

    def take_held(self) -> list[Record]:
        """Every held record, oldest first; the outage forgets them."""
        merged = [rec for _, rec in heapq.merge(self._droppable, self._kept, key=lambda p: p[0])]
        self._droppable.clear()
        self._kept.clear()
        self._values = 0
        return merged

    def due(self) -> bool:
        """Time to try the store again."""
        return self._clock() >= self._next_try

    def failed(self, batch: list[Record], exc: Exception) -> None:
        """The store refused ``batch`` (the held records first, then new
        ones): hold it all again and wait before the next try."""
        self.hold(batch)
        self.failures += 1
        self.last_error = str(exc)
        delay = self._backoff.next_delay()
        self._next_try = self._clock() + delay
        if self.failing_since_ns is None:
            self.failing_since_ns = self._wall()
            log.error(
                "cannot write to the store: %s; polling goes on, %d records held in memory "
                "(retrying in %.1f s), alarms and latest values still go to the sinks",
                exc, self.held_records, delay,
            )  # fmt: skip
        else:
            log.debug("store still failing (%d records held): %s", self.held_records, exc)
        self._write_health()

    def recovered(self, stored: int) -> dict[str, int]:
        """The store took a batch again: log it, say so in the health file,
        and return the drop counters to add to the store's counters."""
        if self.failing_since_ns is None:
            return {}
        lasted = (self._wall() - self.failing_since_ns) / 1e9
        dropped = dict(self.dropped)
        log.info(
            "store writes succeed again after %.1f s (%d failed tries): %d held records "
            "stored, %d dropped from memory",
            lasted, self.failures, stored, sum(dropped.values()),
        )  # fmt: skip
        self.failing_since_ns = None
        self.failures = 0
        self.dropped.clear()
        self._backoff.reset()
        self._write_health()
        return dropped

    # -- the health file -----------------------------------------------------

    def health(self) -> dict[str, Any]:
        if self.failing_since_ns is None:
            return {"store": "ok", "pid": os.getpid(), "updated_ns": self._wall()}
        return {
            "store": "failing",
            "since_ns": self.failing_since_ns,
            "error": self.last_error[:400],
            "held_records": self.held_records,
            "dropped": sum(self.dropped.values()),
            "pid": os.getpid(),
            "updated_ns": self._wall(),
        }

    def _health_bytes(self) -> bytes:
        data = json.dumps(self.health()).encode()[: HEALTH_BYTES - 1]
        return data.ljust(HEALTH_BYTES - 1) + b"\n"

    def _write_health(self) -> None:
        if self._health is None:
            return
        try:  # in place: the blocks exist already, so a full disk does not refuse it
            fd = os.open(self._health, os.O_WRONLY)
            try:
                os.pwrite(fd, self._health_bytes(), 0)
            finally:
                os.close(fd)
        except OSError as exc:
            log.debug("cannot update %s: %s", self._health, exc)


def read_health(store_file: Path) -> dict[str, Any] | None:
    """The health file of the gateway writing ``store_file`` (None: none)."""
    try:
        data = json.loads(health_path(store_file).read_bytes() or b"null")
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def health_line(health: dict[str, Any] | None, now_ns: int) -> str | None:
    """The line ``minegate status`` shows when the store is failing."""
    if not health or health.get("store") != "failing":
        return None
    since = int(health.get("since_ns", now_ns))
    line = (
        f"STORE FAILING for {max(0, now_ns - since) / 1e9:.0f} s "
        f"(since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(since / 1e9))}): "
        f"{health.get('error', '')}; {health.get('held_records', 0)} records held in memory, "
        f"{health.get('dropped', 0)} dropped"
    )
    pid = health.get("pid")
    if isinstance(pid, int) and not _alive(pid):
        line += f" (gateway process {pid} is no longer running)"
    return line


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

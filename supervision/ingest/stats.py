"""Counters of what ingest applied and dropped, per reason (this instance)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("minegate.platform.ingest")


@dataclass
class IngestStats:
    """``quiet`` counters belong to one database transaction: they are
    merged into the instance's counters (and logged) only once it commits,
    so a batch retried after a database failure is not counted twice."""

    applied: Counter[str] = field(default_factory=Counter)  # by kind
    dropped: Counter[str] = field(default_factory=Counter)  # by reason
    quiet: bool = False
    topics: dict[str, str] = field(default_factory=dict)  # reason -> a topic, for the log

    def drop(self, reason: str, topic: str) -> None:
        """Count a dropped message; log the first of each reason, then every
        1000th, so a flood of junk cannot flood the log."""
        if self.quiet:
            self.dropped[reason] += 1
            self.topics.setdefault(reason, topic)
            return
        self._add(reason, 1, topic)

    def _add(self, reason: str, n: int, topic: str) -> None:
        before = self.dropped[reason]
        after = self.dropped[reason] = before + n
        if before == 0 or after // 1000 > before // 1000:
            log.warning("dropped message on %r: %s (%d so far)", topic[:300], reason, after)

    def merge(self, batch: IngestStats) -> None:
        self.applied.update(batch.applied)
        for reason, n in batch.dropped.items():
            self._add(reason, n, batch.topics.get(reason, "?"))

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"applied": dict(self.applied), "dropped": dict(self.dropped)}

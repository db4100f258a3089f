"""Counters of what ingest applied and dropped, per reason (this instance)."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

log = logging.getLogger("minegate.platform.ingest")


@dataclass
class IngestStats:
    applied: Counter[str] = field(default_factory=Counter)  # by kind
    dropped: Counter[str] = field(default_factory=Counter)  # by reason

    def drop(self, reason: str, topic: str) -> None:
        """Count a dropped message; log the first of each reason, then every
        1000th, so a flood of junk cannot flood the log."""
        self.dropped[reason] += 1
        n = self.dropped[reason]
        if n == 1 or n % 1000 == 0:
            log.warning("dropped message on %r: %s (%d so far)", topic[:300], reason, n)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"applied": dict(self.applied), "dropped": dict(self.dropped)}

"""The result of one attempt to send a notification, for every channel."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None  # HTTP or SMTP reply code, None when there was none
    error: str | None
    duration_ms: float
    #: repeating will not help (a 4xx, a refused recipient): no retry
    permanent: bool = False

    @classmethod
    def sent(cls, t0: float, status: int | None = None) -> Outcome:
        return cls(True, status, None, (time.perf_counter() - t0) * 1000)

    @classmethod
    def failed(
        cls, error: str, t0: float, *, status: int | None = None, permanent: bool = False
    ) -> Outcome:
        return cls(False, status, error[:1000], (time.perf_counter() - t0) * 1000, permanent)

"""Capped, jittered exponential backoff between reconnect attempts, shared
by the Modbus hubs (:mod:`drivers.modbus`) and the ASCII line ports
(:mod:`drivers.ascii`)."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """Capped, jittered exponential backoff.

    ``next_delay()`` returns ``min(max_s, initial_s * factor**n)`` scaled by
    a random factor in ``[1 - jitter, 1]`` (so many hubs restarted together
    spread out), then advances ``n``. ``reset()`` after a success.
    """

    def __init__(
        self,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        *,
        factor: float = 2.0,
        jitter: float = 0.5,
        rng: random.Random | None = None,
    ) -> None:
        if not (0 < initial_s <= max_s and factor >= 1 and 0 <= jitter <= 1):
            raise ValueError("backoff needs 0 < initial_s <= max_s, factor >= 1, 0 <= jitter <= 1")
        self.initial_s, self.max_s, self.factor, self.jitter = initial_s, max_s, factor, jitter
        self._rng = rng or random.Random()
        self.failures = 0

    def next_delay(self) -> float:
        exponent = min(self.failures, 64)  # no float overflow after long outages
        base = min(self.max_s, self.initial_s * self.factor**exponent)
        self.failures += 1
        return base * (1.0 - self.jitter * self._rng.random())

    def reset(self) -> None:
        self.failures = 0

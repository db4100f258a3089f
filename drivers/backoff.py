"""The one backoff of minegate: capped, jittered exponential delays between
attempts. Used by the Modbus hubs and the ASCII line ports to reconnect
(:class:`Backoff`), by the sink runners between failed writes and by the
gateway's writer while the store refuses a batch (:func:`backoff_delay`)."""

from __future__ import annotations

import random
from collections.abc import Callable

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(
    attempt: int,
    initial_s: float,
    max_s: float,
    rng: Callable[[], float] = random.random,
    *,
    factor: float = 2.0,
    jitter: float = 0.5,
) -> float:
    """The delay before retry number ``attempt`` (0 for the first retry):
    ``d = min(max_s, initial_s * factor**attempt)`` scaled by a random factor
    in ``[1 - jitter, 1]`` (``rng()`` in ``[0, 1)``), so many clients failing
    together spread out. The default jitter gives "equal jitter", ``[d/2, d]``."""
    exponent = min(attempt, 64)  # no float overflow after long outages
    d = min(max_s, initial_s * factor**exponent)
    return d * (1.0 - jitter + jitter * rng())


class Backoff:
    """:func:`backoff_delay` with its own count of consecutive failures.

    ``next_delay()`` returns the delay for the failures so far, then counts
    one more; ``reset()`` after a success.
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
        delay = backoff_delay(
            self.failures,
            self.initial_s,
            self.max_s,
            self._rng.random,
            factor=self.factor,
            jitter=self.jitter,
        )
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0

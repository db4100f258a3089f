"""Drift-free periodic scheduling on an injected clock.

Cycle k is due at ``start + k * interval``, always: the time a cycle takes
never shifts the cycles after it (``sleep(interval)`` after each poll would
drift by the poll time every cycle). A cycle that runs past one or more later
slots skips them (the next cycle starts on the grid, at the first slot still
ahead) and counts one overrun per missed slot, so a slow device
shows up in the metrics instead of quietly stretching its own interval.

The clock is injected (``Clock``: ``now()`` in seconds and ``sleep_until``),
so tests drive the schedule on virtual time without sleeping.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Monotonic seconds, and a way to wait until a given instant."""

    def now(self) -> float: ...

    async def sleep_until(self, deadline: float) -> None: ...


class MonotonicClock:
    """The real clock: ``time.monotonic`` and the event loop's timers."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep_until(self, deadline: float) -> None:
        delay = deadline - time.monotonic()
        # sleep(0) still yields, so a tight schedule cannot starve other tasks.
        await asyncio.sleep(max(delay, 0.0))


class VirtualClock:
    """Test clock: time moves only when every waiter is parked and
    ``advance`` / ``run_until`` is called, or when a task ``sleep``s on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._waiters: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0

    def now(self) -> float:
        return self._now

    async def sleep_until(self, deadline: float) -> None:
        if deadline <= self._now:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._seq += 1
        heapq.heappush(self._waiters, (deadline, self._seq, fut))
        await fut

    async def sleep(self, seconds: float) -> None:
        """Simulate work that takes ``seconds`` of virtual time."""
        await self.sleep_until(self._now + seconds)

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking each waiter at its deadline
        in order and letting the woken tasks run before moving on."""
        target = self._now + seconds
        await _settle()
        while self._waiters and self._waiters[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._waiters)
            self._now = max(self._now, deadline)
            if not fut.done():
                fut.set_result(None)
            await _settle()
        self._now = target


async def stopped_within(
    stop: asyncio.Event, seconds: float, *, wake: asyncio.Event | None = None
) -> bool:
    """Wait up to ``seconds`` for ``stop`` to be set, or for ``wake`` if
    given (new work); return whether ``stop`` is set, so a service loop
    reads ``while not await stopped_within(stop, interval): ...``. Returns
    at once when ``stop`` is already set."""
    if stop.is_set():
        return True
    waiters = {asyncio.ensure_future(stop.wait())}
    if wake is not None:
        waiters.add(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return stop.is_set()


def spread_phases(intervals: Sequence[float]) -> list[float]:
    """The offset of each schedule's first slot, so schedules of the same
    interval are spread evenly over it instead of all firing together.

    With 2,000 devices polled every second, a common start makes every
    cycle a burst of 2,000 requests (and at start-up 2,000 connects at
    once, past a listener's accept backlog), then a second of idle: the
    queueing in the burst is what the last device's readings wait for.
    Schedule ``i`` of the ``n`` sharing an interval starts ``i / n`` of it
    later, in the order given; offsets are below one interval, so every
    device is polled within its first interval."""
    index: dict[float, int] = {}
    count: dict[float, int] = {}
    for iv in intervals:
        count[iv] = count.get(iv, 0) + 1
    out: list[float] = []
    for iv in intervals:
        i = index.get(iv, 0)
        index[iv] = i + 1
        out.append(iv * i / count[iv])
    return out


async def _settle(rounds: int = 20) -> None:
    for _ in range(rounds):
        await asyncio.sleep(0)


@dataclass
class ScheduleMetrics:
    cycles: int = 0
    overruns: int = 0  # slots skipped because a cycle ran past them
    last_lateness_s: float = 0.0  # how late the last cycle started


class Schedule:
    """Slots ``start + k * interval``; iterate with ``async for k in schedule``.

    The body of the loop is the poll; when it returns, the iterator waits for
    the next slot still in the future.
    """

    def __init__(self, interval_s: float, clock: Clock, *, start: float | None = None) -> None:
        if not interval_s > 0:
            raise ValueError(f"interval must be > 0, got {interval_s}")
        self.interval = interval_s
        self.clock = clock
        self.start = clock.now() if start is None else start
        self.stats = ScheduleMetrics()
        self._next_slot = 0

    def slot_time(self, k: int) -> float:
        return self.start + k * self.interval

    def _advance_past(self, now: float) -> int:
        """Index of the next slot to run: the due one, or if time has passed
        it, the first slot at or after ``now`` (the skipped ones count as overruns)."""
        due = self._next_slot
        # The epsilon keeps a cycle that ends exactly on the next slot from
        # being counted as having missed it because of float rounding.
        first_future = math.ceil((now - self.start) / self.interval - 1e-9)
        if first_future > due:
            self.stats.overruns += first_future - due
            due = first_future
        return due

    async def wait_next(self) -> int:
        """Wait for the next slot and return its index."""
        k = self._advance_past(self.clock.now())
        await self.clock.sleep_until(self.slot_time(k))
        self.stats.last_lateness_s = max(0.0, self.clock.now() - self.slot_time(k))
        self.stats.cycles += 1
        self._next_slot = k + 1
        return k

    def __aiter__(self) -> AsyncIterator[int]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[int]:
        while True:
            yield await self.wait_next()

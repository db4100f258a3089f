"""Drift-free scheduling on virtual time: no test here sleeps."""

from __future__ import annotations

import asyncio

import pytest

from gateway.scheduler import Schedule, VirtualClock


async def _run(
    schedule: Schedule, clock: VirtualClock, work_s: list[float], starts: list[float]
) -> None:
    async for k in schedule:
        starts.append(clock.now())
        await clock.sleep(work_s[k] if k < len(work_s) else 0.1)


async def test_slots_do_not_drift_with_poll_time() -> None:
    clock = VirtualClock(start=100.0)
    schedule = Schedule(1.0, clock)
    starts: list[float] = []
    task = asyncio.create_task(_run(schedule, clock, [0.3] * 20, starts))
    await clock.advance(9.95)
    task.cancel()
    # Each poll takes 0.3 s, yet cycles start exactly on the second.
    assert starts == pytest.approx([100.0 + k for k in range(10)])
    assert schedule.stats.overruns == 0


async def test_slow_cycle_skips_missed_slots_and_keeps_the_grid() -> None:
    clock = VirtualClock(start=0.0)
    schedule = Schedule(1.0, clock)
    starts: list[float] = []
    # Cycle 2 takes 2.5 s: slots 3 and 4 are missed; the next runs at 5.0.
    task = asyncio.create_task(_run(schedule, clock, [0.1, 0.1, 2.5], starts))
    await clock.advance(7.5)
    task.cancel()
    assert starts == pytest.approx([0.0, 1.0, 2.0, 5.0, 6.0, 7.0])
    assert schedule.stats.overruns == 2


async def test_cycle_ending_exactly_on_next_slot_is_not_an_overrun() -> None:
    clock = VirtualClock(start=0.0)
    schedule = Schedule(0.5, clock)
    starts: list[float] = []
    task = asyncio.create_task(_run(schedule, clock, [0.5, 0.5, 0.5], starts))
    await clock.advance(1.6)
    task.cancel()
    assert starts == pytest.approx([0.0, 0.5, 1.0, 1.5])
    assert schedule.stats.overruns == 0


def test_interval_must_be_positive() -> None:
    with pytest.raises(ValueError, match="interval"):
        Schedule(0.0, VirtualClock())


def test_first_slots_spread_over_each_interval() -> None:
    from gateway.scheduler import spread_phases

    intervals = [1.0] * 4 + [10.0] * 2 + [1.0]
    phases = spread_phases(intervals)
    # five schedules of 1 s: 0, 0.2 .. 0.8 s; two of 10 s: 0 and 5 s
    assert phases == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.0, 5.0, 0.8])
    big = spread_phases([1.0] * 2000)
    assert all(0.0 <= p < 1.0 for p in big) and len(set(big)) == 2000
    # no second of the interval gets more than its share
    per_tenth = [sum(1 for p in big if k / 10 <= p < (k + 1) / 10) for k in range(10)]
    assert per_tenth == [200] * 10

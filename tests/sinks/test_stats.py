"""Regulatory statistics and snapshots on virtual time."""

from __future__ import annotations

import math
import random

from gateway.model import Quality, Record, RecordKind
from gateway.stats import NS, Snapshotter, StatsAggregator

T0 = 1_764_000_000 * NS  # a multiple of 300 s and of 20 s


def rec(device: str, ts_ns: int, **points: object) -> Record:
    qualities = [Quality.COMM_LOSS if v is None else Quality.GOOD for v in points.values()]
    return Record(
        RecordKind.SAMPLE, device, ts_ns, list(points), list(points.values()),  # type: ignore[arg-type]
        ["%"] * len(points), qualities,
    )  # fmt: skip


def test_five_minute_windows_match_a_reference() -> None:
    rng = random.Random(7)
    agg = StatsAggregator(300, grace_s=5, clock=lambda: T0)
    seen: dict[int, list[float]] = {}
    for _ in range(2000):
        ts = T0 + rng.randrange(0, 900 * NS)  # three windows, out of order
        v = rng.uniform(0, 2)
        agg.add(rec("gas1", ts, ch4=v))
        seen.setdefault((ts - T0) // (300 * NS), []).append(v)
    assert agg.flush(T0 + 300 * NS) == []  # grace not over yet
    out = agg.flush(T0 + 900 * NS + 5 * NS)
    assert [r.ts_ns for r in out] == [T0, T0 + 300 * NS, T0 + 600 * NS]
    for r in out:
        vals = seen[(r.ts_ns - T0) // (300 * NS)]
        st = r.fields["ch4"]
        assert isinstance(st, dict)
        assert st["count"] == len(vals)
        assert st["max"] == max(vals) and st["min"] == min(vals)
        assert math.isclose(st["mean"], sum(vals) / len(vals), rel_tol=1e-12)  # type: ignore[arg-type]
        assert r.kind is RecordKind.STAT and r.units == ["%"] and st["window_s"] == 300


def test_only_good_finite_numbers_count() -> None:
    agg = StatsAggregator(300, clock=lambda: T0)
    agg.add(rec("d", T0 + 1, ch4=1.0, fan=True, label="x"))
    agg.add(rec("d", T0 + 2, ch4=None, fan=False, label="y"))  # comm loss
    agg.add(rec("d", T0 + 3, ch4=float("nan"), fan=True, label="z"))
    bad = rec("d", T0 + 4, ch4=9.0, fan=True, label="z")
    bad.qualities = [Quality.BAD] * 3
    agg.add(bad)
    agg.add(rec("d", T0 + 5, ch4=3, fan=True, label="z"))
    (r,) = agg.flush(T0 + 400 * NS)
    assert r.fields["ch4"] == {"max": 3.0, "min": 1.0, "mean": 2.0, "count": 2, "window_s": 300}
    assert r.fields["fan"] == {"count": 0, "window_s": 300}
    assert r.values[r.points.index("fan")] is None


def test_late_samples_are_counted_not_mixed_in() -> None:
    agg = StatsAggregator(300, grace_s=2, clock=lambda: T0)
    agg.add(rec("d", T0 + 10 * NS, ch4=1.0))
    assert len(agg.flush(T0 + 302 * NS)) == 1
    agg.add(rec("d", T0 + 299 * NS, ch4=5.0))
    assert agg.late == 1
    assert agg.flush(T0 + 1000 * NS) == []


def test_a_restart_splits_a_window_into_two_partial_records() -> None:
    """Stop at T0+100 s, start again at T0+160 s: the two parts of the window
    are both marked partial and stamped apart, so neither overwrites the
    other upstream (same series, same timestamp would)."""
    now = [T0]
    before = StatsAggregator(300, clock=lambda: now[0])
    before.add(rec("d", T0 + 50 * NS, ch4=1.5))
    before.add(rec("d", T0 + 90 * NS, ch4=2.5))
    now[0] = T0 + 100 * NS
    (first,) = before.flush_all()
    now[0] = T0 + 160 * NS
    after = StatsAggregator(300, clock=lambda: now[0])
    after.add(rec("d", T0 + 170 * NS, ch4=0.5))
    assert after.flush(T0 + 300 * NS) == []  # grace
    (second,) = after.flush(T0 + 310 * NS)
    assert first.fields["ch4"] == {"max": 2.5, "min": 1.5, "mean": 2.0, "count": 2,
                                   "window_s": 300, "partial": True}  # fmt: skip
    assert second.fields["ch4"] == {"max": 0.5, "min": 0.5, "mean": 0.5, "count": 1,
                                    "window_s": 300, "partial": True}  # fmt: skip
    assert (first.ts_ns, second.ts_ns) == (T0 + 50 * NS, T0 + 170 * NS)
    # the next window is whole again, stamped with its start
    after.add(rec("d", T0 + 301 * NS, ch4=1.0))
    (whole,) = after.flush(T0 + 700 * NS)
    assert whole.ts_ns == T0 + 300 * NS and "partial" not in whole.fields["ch4"]  # type: ignore[operator]


def test_a_partial_window_is_stamped_per_device() -> None:
    """Two devices in one cut window: each STAT carries its own first
    reading, not the other device's; ``count`` is an int, never a bool
    (one reading counts 1, not True)."""
    now = [T0]
    agg = StatsAggregator(300, clock=lambda: now[0])
    agg.add(rec("fan", T0 + 20 * NS, ch4=1.0))
    agg.add(rec("gas", T0 + 80 * NS, ch4=0.4))
    agg.add(rec("fan", T0 + 90 * NS, ch4=3.0))
    now[0] = T0 + 100 * NS
    stamps = {r.device: r.ts_ns for r in agg.flush_all()}
    assert stamps == {"fan": T0 + 20 * NS, "gas": T0 + 80 * NS}
    agg.add(rec("gas", T0 + 400 * NS, ch4=0.5))
    now[0] = T0 + 410 * NS
    (one,) = agg.flush_all()
    count = one.fields["ch4"]["count"]  # type: ignore[index]
    assert type(count) is int and count == 1


def test_snapshot_every_interval_with_latest_values() -> None:
    now = [T0 + 3 * NS]
    snap = Snapshotter(20, clock=lambda: now[0])
    snap.add(rec("fan1", T0 + 1 * NS, airflow=3.2, power=None))
    snap.add(rec("fan1", T0 + 2 * NS, airflow=3.4))
    snap.add(rec("fan1", T0 + 1 * NS, airflow=9.9))  # older than what we have
    snap.add(rec("gas1", T0 + 2 * NS, ch4=0.3))
    assert snap.flush() == []
    assert snap.next_due_ns() == T0 + 20 * NS
    now[0] = T0 + 20 * NS
    out = {r.device: r for r in snap.flush()}
    assert set(out) == {"fan1", "gas1"}
    fan = out["fan1"]
    assert fan.kind is RecordKind.SNAPSHOT and fan.ts_ns == T0 + 20 * NS
    assert dict(zip(fan.points, fan.values, strict=True)) == {"airflow": 3.4, "power": None}
    assert fan.qualities[fan.points.index("power")] is Quality.COMM_LOSS
    assert snap.flush() == []  # not due again until T0 + 40 s
    now[0] = T0 + 95 * NS  # several boundaries missed: one snapshot, on the last boundary
    assert {r.ts_ns for r in snap.flush()} == {T0 + 80 * NS}
    assert snap.next_due_ns() == T0 + 100 * NS

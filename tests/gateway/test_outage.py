"""The writer's memory while the store refuses writes (gateway.outage) and
the sink runner's live queue: bounded, drop-oldest, counted, alarms last."""

from __future__ import annotations

from pathlib import Path

from gateway.model import Quality, Record, RecordKind
from gateway.outage import StoreOutage, health_line, read_health
from gateway.sinks import build_runners
from gateway.store import Store

T0 = 1_764_000_000_000_000_000


def rec(i: int, kind: RecordKind = RecordKind.SAMPLE, n: int = 10) -> Record:
    return Record(
        kind, "fan", T0 + i, [f"p{j}" for j in range(n)], [float(i)] * n, [""] * n,
        [Quality.GOOD] * n,
    )  # fmt: skip


def test_held_records_drop_oldest_samples_first_and_keep_their_order(tmp_path: Path) -> None:
    now = [T0]
    outage = StoreOutage(max_values=100, wall_ns=lambda: now[0], clock=lambda: 0.0)
    outage.prepare(tmp_path / "minegate.sqlite")
    alarm, stat = rec(0, RecordKind.ALARM), rec(1, RecordKind.STAT)
    outage.failed([alarm, rec(2), stat, rec(3)], OSError("disk full"))
    assert outage.failing and outage.held_records == 4
    outage.hold([rec(i) for i in range(4, 12)])  # 120 values: 2 records over
    assert outage.dropped == {"outage_dropped_sample": 2}
    held = outage.take_held()
    assert [r.ts_ns - T0 for r in held] == [0, 1, *range(4, 12)]  # samples 2, 3 went
    assert outage.held_records == 0
    health = read_health(tmp_path / "minegate.sqlite")
    assert health is not None and health["store"] == "failing"
    line = health_line(health, now[0] + 5 * 10**9)
    assert line is not None and "STORE FAILING for 5 s" in line and "disk full" in line
    assert outage.recovered(len(held)) == {"outage_dropped_sample": 2}
    assert not outage.failing
    assert health_line(read_health(tmp_path / "minegate.sqlite"), now[0]) is None


def test_only_alarms_left_the_oldest_alarm_goes(tmp_path: Path) -> None:
    outage = StoreOutage(max_values=30)
    outage.hold([rec(i, RecordKind.ALARM) for i in range(5)])
    assert outage.dropped == {"outage_dropped_alarm": 2}
    assert [r.ts_ns - T0 for r in outage.take_held()] == [2, 3, 4]


def test_runner_live_queue_drops_oldest_samples_before_alarms(tmp_path: Path) -> None:
    with Store(tmp_path / "s.db") as store:
        (runner,) = build_runners(
            [{"name": "live", "type": "mqtt", "host": "127.0.0.1"}], store, "site", "gw"
        )
    runner.LIVE_MAX_RECORDS = 3
    runner.offer_live([rec(0, RecordKind.ALARM), rec(1), rec(2)])
    runner.offer_live([rec(3), rec(4)])
    assert [r.ts_ns - T0 for r in runner._live] == [0, 3, 4]
    assert runner.live_dropped == 2
    assert runner.status()["live_dropped"] == 2

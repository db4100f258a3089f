"""Quality, staleness and comm-loss decisions, on synthetic readings and
virtual timestamps (the device side is covered by test_poller.py)."""

from __future__ import annotations

import math

from drivers.errors import DecodeError, DeviceTimeout
from drivers.types import DataType, PointSpec, RegisterKind
from gateway.metrics import DeviceMetrics
from gateway.model import Quality, Record, RecordKind
from gateway.quality import DeviceRecorder

S = 1_000_000_000
POINTS = (
    PointSpec("ch4", RegisterKind.INPUT, 0, DataType.FLOAT32, unit="%", deadband=0.01),
    PointSpec("running", RegisterKind.COIL, 0, DataType.BOOL),
)


def recorder(stale_s: float = 0.0, comm_loss_after: int = 3) -> tuple[DeviceRecorder, list[Record]]:
    seen: list[Record] = []
    rec = DeviceRecorder(
        "gm1",
        POINTS,
        {"ch4": stale_s, "running": 0.0},
        comm_loss_after,
        DeviceMetrics(),
        seen.append,
    )
    return rec, seen


def test_nan_infinity_and_decode_errors_are_bad_without_value() -> None:
    rec, _ = recorder()
    for bad in (math.nan, math.inf, DecodeError("bad string")):
        r = rec.values_record(0, {"ch4": bad})
        assert r is not None and r.values == [None] and r.qualities == [Quality.BAD]
        rec.values_record(1, {"ch4": 0.5})  # back to good before the next case


def test_frozen_value_turns_stale_and_back() -> None:
    rec, _ = recorder(stale_s=10)
    assert rec.values_record(0, {"ch4": 0.5}).qualities == [Quality.GOOD]  # type: ignore[union-attr]
    assert rec.values_record(10 * S, {"ch4": 0.5}) is None  # unchanged, not yet stale
    r = rec.values_record(11 * S, {"ch4": 0.5})
    assert r is not None and r.qualities == [Quality.STALE] and r.values == [0.5]
    r = rec.values_record(12 * S, {"ch4": 0.52})
    assert r is not None and r.qualities == [Quality.GOOD]


def test_comm_loss_once_then_recovery_event() -> None:
    rec, observed = recorder(comm_loss_after=3)
    rec.values_record(0, {"ch4": 0.5, "running": True})
    rec.cycle_ok(0)
    err = DeviceTimeout("no answer")
    assert rec.cycle_failed(1 * S, err) == []
    assert rec.cycle_failed(2 * S, err) == []
    loss, event = rec.cycle_failed(3 * S, err)
    assert loss.kind is RecordKind.SAMPLE and loss.values == [None, None]
    assert loss.qualities == [Quality.COMM_LOSS] * 2
    assert event.kind is RecordKind.EVENT and event.fields["event"] == "comm_loss"
    assert "timeout" in str(event.fields["error"])
    assert observed[-1] is loss  # alarms and statistics see the loss too
    assert rec.cycle_failed(4 * S, err) == []  # written once per outage
    (restored,) = rec.cycle_ok(6 * S)
    assert restored.fields["event"] == "comm_restored"
    assert restored.fields["down_s"] == 5.0  # since the first failed cycle
    # The unchanged value after the outage is recorded: its quality changed.
    r = rec.values_record(6 * S, {"ch4": 0.5, "running": True})
    assert r is not None and r.qualities == [Quality.GOOD] * 2
    assert rec.stats.comm_losses == 1 and rec.stats.state == "online"


def test_observer_sees_every_reading_rbe_does_not_filter_it() -> None:
    rec, observed = recorder()
    rec.values_record(0, {"ch4": 0.5})
    assert rec.values_record(1 * S, {"ch4": 0.501}) is None  # within the deadband
    assert [r.values for r in observed] == [[0.5], [0.501]]
    assert rec.stats.readings == 2

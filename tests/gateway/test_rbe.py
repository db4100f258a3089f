"""Report by exception decisions."""

from __future__ import annotations

from gateway.model import Quality
from gateway.rbe import RbePolicy, ReportByException

G = Quality.GOOD
S = 1_000_000_000


def test_deadband_compares_with_last_recorded_value() -> None:
    rbe = ReportByException({"ch4": RbePolicy(deadband=0.05)})
    assert rbe.should_record("ch4", 0.40, G, 0)
    assert not rbe.should_record("ch4", 0.43, G, 1 * S)
    assert not rbe.should_record("ch4", 0.45, G, 2 * S)  # |0.45-0.40| == deadband: not beyond
    # A slow creep is caught once it adds up against the last *recorded* value.
    assert rbe.should_record("ch4", 0.46, G, 3 * S)
    assert not rbe.should_record("ch4", 0.50, G, 4 * S)
    assert rbe.should_record("ch4", 0.40, G, 5 * S)


def test_quality_change_is_always_recorded() -> None:
    rbe = ReportByException({"p": RbePolicy(deadband=10.0)})
    assert rbe.should_record("p", 1.0, G, 0)
    assert rbe.should_record("p", 1.0, Quality.STALE, S)
    assert rbe.should_record("p", None, Quality.COMM_LOSS, 2 * S)
    assert not rbe.should_record("p", None, Quality.COMM_LOSS, 3 * S)
    assert rbe.should_record("p", 1.0, G, 4 * S)


def test_max_interval_heartbeat() -> None:
    rbe = ReportByException({"p": RbePolicy(deadband=1.0, max_interval_ns=10 * S)})
    assert rbe.should_record("p", 5.0, G, 0)
    assert not rbe.should_record("p", 5.0, G, 9 * S)
    assert rbe.should_record("p", 5.0, G, 10 * S)
    assert not rbe.should_record("p", 5.0, G, 19 * S)
    assert rbe.should_record("p", 5.0, G, 20 * S)


def test_strings_and_bools_on_any_change() -> None:
    rbe = ReportByException({"run": RbePolicy(deadband=5.0), "mode": RbePolicy(deadband=5.0)})
    assert rbe.should_record("run", True, G, 0)
    assert not rbe.should_record("run", True, G, S)
    assert rbe.should_record("run", False, G, 2 * S)
    assert rbe.should_record("mode", "AUTO", G, 0)
    assert rbe.should_record("mode", "MANUAL", G, S)
    assert not rbe.should_record("mode", "MANUAL", G, 2 * S)


def test_zero_deadband_records_every_change_only() -> None:
    rbe = ReportByException({})
    assert rbe.should_record("x", 1, G, 0)
    assert not rbe.should_record("x", 1, G, S)
    assert rbe.should_record("x", 2, G, 2 * S)

"""`minegate status` shows what the store holds now: values stored since the
last (lazy) flush of the ``latest`` table, whether the gateway runs or
stopped and since when, and numbers in full."""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console

from gateway.metrics import METRICS_SOURCE
from gateway.model import Quality, Record, RecordKind
from gateway.status import format_value, read_status, render, show_status
from gateway.store import Store

NS = 1_000_000_000
T0 = 1_764_000_000_000_000_000


def sample(device: str, ts_ns: int, quality: Quality = Quality.GOOD, **values: float) -> Record:
    names = list(values)
    return Record(
        RecordKind.SAMPLE,
        device,
        ts_ns,
        names,
        [values[n] if quality is Quality.GOOD else None for n in names],  # type: ignore[misc]
        ["kWh"] * len(names),
        [quality] * len(names),
    )


def event(name: str, ts_ns: int) -> Record:
    return Record(
        RecordKind.EVENT, METRICS_SOURCE, ts_ns, ["event"], [name], [""], [Quality.GOOD],
        fields={"event": name},
    )  # fmt: skip


def text_of(path: Path, now_ns: int) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    render(read_status(path), console, now_ns)
    return console.export_text()


def test_values_stored_since_the_last_flush_show_at_once(tmp_path: Path) -> None:
    """The store rewrites ``latest`` lazily; status still shows the newest
    stored value, and a device whose records now say comm_loss is not
    ``online/good``."""
    path = tmp_path / "s.sqlite"
    store = Store(path, latest_flush_s=3600)  # no flush while the test runs
    try:
        store.append([event("gateway_start", T0), sample("meter", T0 + NS, energy=100.0)])
        store.flush()
        store.append([sample("meter", T0 + 8 * NS, energy=183500.0)])
        store.append([sample("meter", T0 + 9 * NS, quality=Quality.COMM_LOSS, energy=0.0)])
        store.append([sample("fan", T0 + 9 * NS, airflow=12.5)])
        report = read_status(path)
    finally:
        store.close()
    latest = {(v.device, v.point): (v.value, v.quality, v.ts_ns) for v in report.latest}
    assert latest == {
        ("meter", "energy"): (None, "comm_loss", T0 + 9 * NS),
        ("fan", "airflow"): (12.5, "good", T0 + 9 * NS),
    }
    assert report.device_states() == {"meter": "comm_loss", "fan": "online"}


def test_a_poller_in_comm_loss_wins_over_older_good_values(tmp_path: Path) -> None:
    """The simulator died: the poller's METRIC record says comm_loss before
    a comm-loss value is stored; the device is not ``online`` meanwhile.
    Once a value newer than that record arrives, the values decide again."""
    path = tmp_path / "s.sqlite"
    state = Record(
        RecordKind.METRIC, METRICS_SOURCE, T0 + 10 * NS, ["meter.state", "fan.state"],
        ["comm_loss", "comm_loss"], ["", ""], [Quality.GOOD] * 2,
    )  # fmt: skip
    with Store(path) as store:
        store.append([sample("meter", T0 + NS, energy=1.0), sample("fan", T0 + 11 * NS, x=2.0)])
        store.append([state])
    assert read_status(path).device_states() == {"meter": "comm_loss", "fan": "online"}


def test_a_stopped_gateway_says_stopped_and_since_when(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        store.append([event("gateway_start", T0), sample("meter", T0 + NS, energy=183500.0)])
    running = read_status(path)
    assert running.gateway == ("running", T0)
    assert running.device_states() == {"meter": "online"}
    assert "gateway running since 2025-11-24 16:00:00 UTC" in text_of(path, T0 + 2 * NS)

    with Store(path) as store:
        store.append([event("gateway_stop", T0 + 5 * NS)])
    stopped = read_status(path)
    assert stopped.gateway == ("stopped", T0 + 5 * NS)
    assert stopped.device_states() == {"meter": "stopped"}
    assert stopped.last_device_states() == {"meter": "online"}
    text = text_of(path, T0 + 305 * NS)
    assert "gateway stopped at 2025-11-24 16:00:05 UTC (5 min ago)" in text
    assert "stopped (was online)" in text
    assert "183500.0" in text and "e+05" not in text

    console = Console(width=200, record=True, file=io.StringIO())
    show_status(path, as_json=True, console=console, wall_ns=lambda: T0 + 305 * NS)
    doc = json.loads(console.export_text())
    assert doc["gateway"] == {
        "state": "stopped", "since": "2025-11-24 16:00:05 UTC", "since_ns": T0 + 5 * NS,
    }  # fmt: skip
    assert doc["devices"] == {"meter": "stopped"}
    assert doc["last_device_states"] == {"meter": "online"}


def test_numbers_in_full() -> None:
    assert format_value(183500.0) == "183500.0"
    assert format_value(1.0e20) == "100000000000000000000.0"
    assert format_value(0.1 + 0.2) == "0.3"
    assert format_value(1.23456e-7) == "0.0000001235"
    assert format_value(12) == "12" and format_value(None) == "-"

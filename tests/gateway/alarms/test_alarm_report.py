"""`minegate alarms report`: the ISA-18.2 figures from ALARM records in a
real store (records made by the engine on virtual time)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.alarms.engine import AlarmEngine
from gateway.alarms.records import to_record
from gateway.alarms.rules import LimitKind, LimitRule, PointRef, Rule
from gateway.alarms.state import Event
from gateway.cli import main
from gateway.model import Quality, Record, RecordKind
from gateway.runtime import store_path
from gateway.store import Store

S = 1_000_000_000
T0 = 1_764_000_000 * S  # 2025-11-24T16:00:00Z
H = 3600 * S


def high(name: str) -> LimitRule:
    return LimitRule(
        name=name, point=PointRef(name, "v"), kind=LimitKind.HIGH, limit=1.0, restore=1.0
    )


def make_store(data_dir: Path) -> None:
    rules: list[Rule] = [high("chatter"), high("old"), high("acked")] + [
        high(f"f{i}") for i in range(12)
    ]
    clock = [T0]
    e = AlarmEngine(rules, clock=lambda: clock[0])
    out: list[Record] = []

    def reading(dev: str, t: int, v: float) -> None:
        for tr in e.observe(Record(RecordKind.SAMPLE, dev, t, ["v"], [v], [""], [Quality.GOOD])):
            out.append(to_record(tr, e.conditions[tr.alarm]))

    reading("old", T0 - 30 * H, 2.0)  # active for 30 h by the end: stale
    for k in range(3):  # three annunciations within 50 s: chattering
        reading("chatter", T0 + (10 + 20 * k) * S, 2.0)
        reading("chatter", T0 + (15 + 20 * k) * S, 0.0)
    reading("acked", T0 + 100 * S, 2.0)
    clock[0] = T0 + 130 * S
    for tr in e.command("acked", Event.ACK, "li"):
        out.append(to_record(tr, e.conditions[tr.alarm]))
    for i in range(12):  # 12 alarms in one 10-minute window: a flood
        reading(f"f{i}", T0 + 20 * 60 * S + i * S, 2.0)
    data_dir.mkdir()
    with Store(store_path(data_dir), retention_s=1e12, max_bytes=2**30) as store:
        store.append(out)


def test_report_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    make_store(data)
    html = tmp_path / "report.html"
    args = ["alarms", "--data-dir", str(data), "report", "--since", "2025-11-24T16:00:00Z",
            "--until", "2025-11-24T17:00:00Z", "--json", "--html", str(html)]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    r = json.loads(out.splitlines()[0])
    assert r["annunciations"] == 3 + 1 + 12  # "old" was raised before the period
    assert r["per_10min_max"] == 12 and r["flood_windows_percent"] == pytest.approx(
        100 / 6, abs=0.01
    )
    assert [f["annunciations"] for f in r["floods"]] == [12]
    assert r["top10"][0] == {"alarm": "chatter", "annunciations": 3}
    assert r["chattering"] == [{"alarm": "chatter", "within_60s": 3}]
    assert r["stale"] == [{"alarm": "old", "active_h": 31.0}]
    assert r["ack_median_s"] == 30.0 and r["unacknowledged"] == 13  # alarms, not occurrences
    page = html.read_text()
    assert "<svg" in page and "annunciated alarms per 10 minutes" in page


def test_report_text_and_bad_dates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "data"
    make_store(data)
    assert main(["alarms", "--data-dir", str(data), "report", "--since", "2025-11-24T16:00",
                 "--until", "2025-11-24T17:00"]) == 0  # fmt: skip
    text = capsys.readouterr().out
    assert "per 10 minutes: mean 2.67, max 12" in text and "flood 2025-11-24T16:20:00Z" in text
    assert main(["alarms", "--data-dir", str(data), "report", "--since", "yesterday"]) == 2
    assert "--since/--until" in capsys.readouterr().err

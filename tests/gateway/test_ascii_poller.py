"""The ASCII line-sensor poller against the simulated gas detector on a pty."""

from __future__ import annotations

import asyncio
from pathlib import Path

from drivers.ascii import make_port
from gateway.config import load_config
from gateway.metrics import DeviceMetrics
from gateway.model import Quality, Record, RecordKind
from gateway.poller import AsciiPoller
from gateway.runtime import cancel_tasks
from simulators.mine import SimulatedMine


async def test_ascii_sensor_values_comm_loss_and_recovery(tmp_path: Path) -> None:
    records: list[Record] = []

    async def emit(rec: Record) -> None:
        records.append(rec)

    async with SimulatedMine(seed=2, ascii_interval_s=0.2) as mine:
        site = tmp_path / "site.toml"
        # Only the line sensor runs fast here (its expected line interval).
        head, sep, tail = mine.site_config_toml(tmp_path / "data").partition(
            'profile = "gas_ascii"'
        )
        tail = tail.replace("poll_interval_s = 1.0", "poll_interval_s = 0.2", 1)
        site.write_text(head + sep + tail)
        config = load_config(site)
        device = next(d for d in config.devices if d.protocol == "ascii")
        stats = DeviceMetrics()
        poller = AsciiPoller(device, lambda: make_port(device.bus), emit, stats)
        task = asyncio.create_task(poller.run())
        try:
            await asyncio.sleep(1.0)
            good = [r for r in records if r.kind is RecordKind.SAMPLE]
            assert good and all(q is Quality.GOOD for r in good for q in r.qualities)
            assert {p for r in good for p in r.points} == {p.name for p in device.points}
            ch4 = next(r.values[r.points.index("ch4")] for r in good if "ch4" in r.points)
            assert isinstance(ch4, float) and 0 <= ch4 < 5

            mine.inject(device.name, "silent")
            await asyncio.sleep(1.6)
            loss = [r for r in records if Quality.COMM_LOSS in r.qualities]
            assert len(loss) == 1 and all(v is None for v in loss[0].values)
            mark = len(records)
            await asyncio.sleep(0.6)
            # Nothing is written for a silent sensor after the one comm-loss record.
            assert not [r for r in records[mark:] if r.kind is RecordKind.SAMPLE]

            mine.clear(device.name)
            await asyncio.sleep(1.0)
        finally:
            await cancel_tasks([task])
    events = [r.fields["event"] for r in records if r.kind is RecordKind.EVENT]
    assert events == ["comm_loss", "comm_restored"]
    last = [r for r in records if r.kind is RecordKind.SAMPLE][-1]
    assert all(q is Quality.GOOD for q in last.qualities)
    assert stats.comm_losses == 1

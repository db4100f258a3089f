"""After a SIGKILL of a real ``minegate run``: the persistent counters kept
up with what was stored, and the restart records an ``unclean_stop`` event
with the time of the last stored record and writes the interrupted
window's statistics from the stored samples, marked partial."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path
from typing import Any

from gateway.config import load_config
from gateway.model import Quality, RecordKind
from gateway.runtime import Gateway, store_path
from gateway.store import Store

REPO = Path(__file__).resolve().parents[2]
NS = 1_000_000_000

SITE = """
[site]
name = "kill"
data_dir = "data"

[store]
batch_ms = 100

[metrics]
interval_s = 60        # the old counters waited for this; a kill lost them all

[[buses]]
name = "vent"
type = "tcp"
host = "127.0.0.1"
port = {port}
timeout_s = 0.5

[[devices]]
name = "main_fan_1"
bus = "vent"
unit = 1
profile = "main_fan"
poll_interval_s = 0.05

[devices.points.airflow]
max_interval_s = 0.05  # a stored sample every poll
"""


def _all(path: Path) -> tuple[list[Any], dict[str, int]]:
    with Store(path) as store:
        store.register_sink("check", start_at="start")
        return store.take("check", 1_000_000), store.counters()


async def test_a_restart_after_sigkill_says_so_and_writes_the_interrupted_window(
    tmp_path: Path, fan_site: Any
) -> None:
    async with fan_site(tmp_path, SITE) as config:
        path = store_path(config.data_dir)
        log = (tmp_path / "run.log").open("wb")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "gateway.cli", "run", "--config", str(tmp_path / "site.toml"),
            cwd=REPO, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while not (path.exists() and path.stat().st_size > 0 and _enough(path)):
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-2000:]
                await asyncio.sleep(0.3)
            await asyncio.sleep(1.0)
        finally:
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
            log.close()

        killed, counters = _all(path)
        samples = [r for r in killed if r.kind is RecordKind.SAMPLE]
        # The counters are written with the batches, not once a minute: at
        # most the batch in flight (a few records) is missing from them.
        assert 0 <= len(killed) - counters.get("records_stored", 0) <= 10, counters
        assert RecordKind.STAT not in {r.kind for r in killed}
        (start,) = [r for r in killed if r.kind is RecordKind.EVENT and r.device == "gateway"]
        assert start.fields["event"] == "gateway_start"
        last_ns = killed[-1].ts_ns

        gateway = Gateway(load_config(tmp_path / "site.toml"))
        run = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.started.wait(), 10)
        gateway.request_stop()
        await asyncio.wait_for(run, 20)

        # A run after a clean stop is a plain start.
        gateway = Gateway(load_config(tmp_path / "site.toml"))
        run = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.started.wait(), 10)
        gateway.request_stop()
        await asyncio.wait_for(run, 20)

    after, _ = _all(path)
    new = after[len(killed) :]
    last_run = max(i for i, r in enumerate(new) if r.fields.get("event") == "gateway_start")
    assert not [r for r in new[last_run:] if r.fields.get("event") == "unclean_stop"]
    assert not [r for r in new[last_run:] if r.kind is RecordKind.STAT and r.ts_ns <= last_ns]
    new = new[:last_run]
    events = [r.fields for r in new if r.kind is RecordKind.EVENT and r.device == "gateway"]
    assert [e["event"] for e in events] == ["unclean_stop", "gateway_start", "gateway_stop"]
    assert events[0]["last_record_ns"] == last_ns
    assert events[0]["run_started_ns"] == start.ts_ns
    # The killed run's window, from its stored samples: partial, recovered,
    # stamped with its first reading; the new run's own window part apart.
    recovered = [r for r in new if r.kind is RecordKind.STAT and r.ts_ns <= last_ns]
    assert recovered and all(r.device == "main_fan_1" for r in recovered)
    window_ns = 300 * NS
    for stat in recovered:
        ws = stat.ts_ns - stat.ts_ns % window_ns
        airflow = [
            r.values[r.points.index("airflow")]
            for r in samples
            if ws <= r.ts_ns < ws + window_ns
            and "airflow" in r.points
            and r.qualities[r.points.index("airflow")] is Quality.GOOD
        ]
        st = stat.fields["airflow"]
        assert st == {
            "max": max(airflow), "min": min(airflow), "mean": st["mean"],  # type: ignore[index]
            "count": len(airflow), "window_s": 300, "partial": True, "recovered": True,
        }  # fmt: skip
        assert stat.ts_ns == min(r.ts_ns for r in samples if ws <= r.ts_ns < ws + window_ns)


def _enough(path: Path) -> bool:
    try:
        records, _ = _all(path)
    except Exception:  # the gateway is still creating the file
        return False
    return sum(1 for r in records if r.kind is RecordKind.SAMPLE) >= 20

"""After a SIGKILL of a real ``minegate run``: the persistent counters
``records_stored`` and ``values_stored`` are exactly what the store holds
(wherever the kill lands in the writer's cycle), and the restart records an ``unclean_stop`` event
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
from gateway.model import Quality, Record, RecordKind
from gateway.recovery import UncleanStop, interrupted_window_stats, unclean_stop
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


def _assert_counters_match(records: list[Record], counters: dict[str, int]) -> None:
    assert counters["records_stored"] == len(records), counters
    assert counters["values_stored"] == sum(len(r) for r in records), counters


async def _run_and_kill(tmp_path: Path, path: Path, samples: int, after_s: float) -> None:
    """Run ``minegate run`` until the store holds ``samples`` SAMPLE records,
    then ``after_s`` more, and SIGKILL it."""
    log = (tmp_path / "run.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "run", "--config", str(tmp_path / "site.toml"),
        cwd=REPO, stdout=log, stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not _enough(path, samples):
            assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-2000:]
            await asyncio.sleep(0.3)
        await asyncio.sleep(after_s)
    finally:
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        log.close()


async def test_the_stored_counters_are_what_the_store_holds_after_every_sigkill(
    tmp_path: Path, fan_site: Any
) -> None:
    """Killed three times, at offsets a third of the writer's 100 ms batch
    window apart (so the kill lands in different phases: gathering a batch,
    appending it, waiting for a record): each time ``records_stored`` and
    ``values_stored`` equal the stored records, the restarts' own records
    (unclean_stop, recovered statistics) included, and after a clean stop."""
    async with fan_site(tmp_path, SITE) as config:
        path = store_path(config.data_dir)
        seen = 0
        for after_s in (0.5, 0.533, 0.567):
            await _run_and_kill(tmp_path, path, seen + 10, after_s)
            records, counters = _all(path)
            _assert_counters_match(records, counters)
            seen = sum(1 for r in records if r.kind is RecordKind.SAMPLE)

        gateway = Gateway(load_config(tmp_path / "site.toml"))
        run = asyncio.create_task(gateway.run())
        await asyncio.wait_for(gateway.started.wait(), 10)
        gateway.request_stop()
        await asyncio.wait_for(run, 20)
    _assert_counters_match(*_all(path))


async def test_a_restart_after_sigkill_says_so_and_writes_the_interrupted_window(
    tmp_path: Path, fan_site: Any
) -> None:
    async with fan_site(tmp_path, SITE) as config:
        path = store_path(config.data_dir)
        await _run_and_kill(tmp_path, path, 20, 1.0)

        killed, counters = _all(path)
        samples = [r for r in killed if r.kind is RecordKind.SAMPLE]
        _assert_counters_match(killed, counters)  # written with the batches they count
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


def _enough(path: Path, samples: int) -> bool:
    if not path.exists() or path.stat().st_size == 0:
        return False
    try:
        records, _ = _all(path)
    except Exception:  # the gateway is still creating the file
        return False
    return sum(1 for r in records if r.kind is RecordKind.SAMPLE) >= samples


def _ev(name: str, ts_ns: int) -> Record:
    return Record(
        RecordKind.EVENT, "gateway", ts_ns, ["event"], [name], [""], [Quality.GOOD],
        fields={"event": name},
    )  # fmt: skip


def _s(device: str, ts_ns: int, v: float) -> Record:
    return Record(RecordKind.SAMPLE, device, ts_ns, ["ch4"], [v], ["%"], [Quality.GOOD])


def test_the_window_before_is_recovered_only_while_its_statistics_were_pending(
    tmp_path: Path,
) -> None:
    """Killed 2 s into a window: the window before had not been written yet
    (5 s grace) for device b, and is recovered for b only; device a's STAT
    of it was written and is left alone. A clean stop recovers nothing."""
    w = 1_764_000_000_000_000_000 - 1_764_000_000_000_000_000 % (300 * NS)
    stat_a = Record(  # the killed run began in that window: partial, at a's first reading
        RecordKind.STAT, "a", w - 90 * NS, ["ch4"], [1.0], ["%"], [Quality.GOOD],
        fields={"ch4": {"max": 1.0, "min": 1.0, "mean": 1.0, "count": 1, "window_s": 300,
                        "partial": True}},
    )  # fmt: skip
    with Store(tmp_path / "s.sqlite") as store:
        store.append([_ev("gateway_start", w - 100 * NS), _s("a", w - 90 * NS, 1.0)])
        store.append([_s("b", w - 80 * NS, 2.0), _s("b", w - 70 * NS, 4.0), stat_a])
        store.append([_s("a", w + NS, 3.0), _s("b", w + 2 * NS, 5.0)])
        found = unclean_stop(store)
        assert found == UncleanStop(w - 100 * NS, w + 2 * NS)
        stats = interrupted_window_stats(store, found, 300)
        got = {(r.device, r.ts_ns): r.fields["ch4"] for r in stats}
        part = {"window_s": 300, "partial": True, "recovered": True}
        assert got == {
            ("b", w - 80 * NS): {"max": 4.0, "min": 2.0, "mean": 3.0, "count": 2, **part},
            ("a", w + NS): {"max": 3.0, "min": 3.0, "mean": 3.0, "count": 1, **part},
            ("b", w + 2 * NS): {"max": 5.0, "min": 5.0, "mean": 5.0, "count": 1, **part},
        }
        # 10 s into the window, the one before is no longer pending
        store.append([_s("a", w + 10 * NS, 3.0)])
        later = interrupted_window_stats(store, UncleanStop(w - 100 * NS, w + 10 * NS), 300)
        assert {r.ts_ns for r in later} == {w + NS, w + 2 * NS}
        store.append([_ev("gateway_stop", w + 11 * NS)])
        assert unclean_stop(store) is None

"""Property: whatever a flaky server does (refuse, time out after confirming a
prefix, reject malformed records, accept), the runner ends with every record
either delivered or set aside, never both, delivered in order."""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.model import Quality, Record, RecordKind
from gateway.sinks.base import Rejected, Sink, SinkError, WriteResult
from gateway.sinks.runner import SinkRunner
from gateway.store import Store

# what the server does with the next write: ok, fail (nothing confirmed),
# prefix (confirms part, then the link breaks), reject (refuses malformed ones)
ACTIONS = st.lists(st.sampled_from(["ok", "fail", "prefix", "reject"]), max_size=30)


class FlakySink(Sink):
    type_name = "flaky"

    def __init__(self, script: list[str], bad: set[int]) -> None:
        self.script = list(script)
        self.bad = bad
        self.connected = False
        self.server: list[int] = []

    async def connect(self) -> None:
        self.connected = True

    async def write(self, batch: list[Record]) -> WriteResult:
        action = self.script.pop(0) if self.script else "reject"
        if action == "fail":
            raise SinkError("HTTP 503")
        if action == "prefix":
            # confirms the first half, but never past a malformed record
            upto = 0
            for r in batch[: len(batch) // 2 + 1]:
                if r.seq in self.bad:
                    break
                upto = r.seq
                self.server.append(r.seq)
            self.connected = False
            raise SinkError("connection reset", accepted_upto=upto)
        rejected = [Rejected(r, "bad") for r in batch if r.seq in self.bad and action == "reject"]
        refused = {r.record.seq for r in rejected}
        if action == "ok" and any(r.seq in self.bad for r in batch):
            raise SinkError("HTTP 503")  # a malformed record only ever gets refused
        self.server += [r.seq for r in batch if r.seq not in refused]
        return WriteResult(batch[-1].seq, rejected)

    async def close(self) -> None:
        self.connected = False


def rec(i: int) -> Record:
    return Record(RecordKind.SAMPLE, "d", 1_000 + i, ["x"], [float(i)], [""], [Quality.GOOD])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 60),
    script=ACTIONS,
    bad_every=st.integers(0, 7),
    batch=st.integers(1, 9),
)
def test_every_record_delivered_or_set_aside(
    n: int, script: list[str], bad_every: int, batch: int
) -> None:
    with tempfile.TemporaryDirectory() as d:
        store = Store(Path(d) / "s.db", synchronous="OFF")
        try:
            asyncio.run(_run(store, n, script, bad_every, batch))
        finally:
            store.close()


async def _run(store: Any, n: int, script: list[str], bad_every: int, batch: int) -> None:
    store.register_sink("up")
    store.append([rec(i) for i in range(n)])
    bad = {s for s in range(1, n + 1) if bad_every and s % bad_every == 0}
    sink = FlakySink(script, bad)
    runner = SinkRunner(
        sink, store, "up", batch_size=batch, flush_ms=0, catchup_factor=2,
        retry_initial_s=0.0001, retry_max_s=0.0005, retry_slow_s=0.0005, idle_poll_s=0.001,
    )  # fmt: skip
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    for _ in range(5000):
        if store.backlog("up") == (0, 0):
            break
        await asyncio.sleep(0.001)
    stop.set()
    await asyncio.wait_for(task, 10)
    aside = [r.seq for r, _ in store.rejected("up")]
    delivered = set(sink.server)
    assert store.backlog("up") == (0, 0)
    assert set(aside) == bad and not (delivered & bad)
    assert delivered | set(aside) == set(range(1, n + 1))
    # in order: each record's first arrival comes after every earlier one's
    first = list(dict.fromkeys(sink.server))
    assert first == sorted(first)

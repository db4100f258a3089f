"""Durability: a writer process killed with SIGKILL in the middle of a burst
of appends loses nothing it reported committed, and the file reopens clean."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from gateway.model import RecordKind
from gateway.store import Store

ROOT = Path(__file__).resolve().parents[2]

WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from gateway.model import Quality, Record, RecordKind
    from gateway.store import Store

    store = Store(Path(sys.argv[1]), synchronous="FULL", latest_flush_s=0.05)
    store.register_sink("s")
    print("ready", flush=True)
    i = int(sys.argv[2])  # continue the timestamps of the previous run
    while True:
        batch = [
            Record(RecordKind.SAMPLE, f"dev{j}", 10**18 + i * 10 + j, [f"p{k}" for k in range(50)],
                   [float(i * 10 + j)] * 50, ["m"] * 50, [Quality.GOOD] * 50)
            for j in range(10)
        ]
        store.append(batch)
        print("seq", batch[-1].seq, flush=True)
        if i % 7 == 3:
            store.ack("s", batch[-1].seq - 5)
            print("ack", batch[-1].seq - 5, flush=True)
        i += 1
    """
)


def run_and_kill(path: Path, kill_after_s: float, first_batch: int) -> tuple[int, int]:
    """Run the writer, SIGKILL it after ``kill_after_s`` of appending; return
    the last seq and the last ack it reported committed."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path), str(first_batch)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.monotonic() + kill_after_s
    last_seq = last_ack = 0
    for line in proc.stdout:
        word, n = line.split()
        if word == "seq":
            last_seq = int(n)
        else:
            last_ack = int(n)
        if time.monotonic() >= deadline:
            proc.send_signal(signal.SIGKILL)
            break
    # Lines already written were printed after their commit returned: count them.
    for line in proc.stdout:
        word, n = line.split()
        if word == "seq":
            last_seq = max(last_seq, int(n))
        else:
            last_ack = max(last_ack, int(n))
    assert proc.wait(timeout=10) == -signal.SIGKILL
    return last_seq, last_ack


@pytest.mark.slow
def test_sigkill_during_appends_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    previous_max = 0
    for kill_after in (0.4, 0.25, 0.6):
        last_seq, last_ack = run_and_kill(path, kill_after, previous_max)
        assert last_seq > previous_max  # the writer made progress after reopening

        conn = sqlite3.connect(path)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        conn.close()

        with Store(path) as store:
            seqs = [r.seq for r in _all_records(store)]
            assert seqs == list(range(1, len(seqs) + 1))  # no holes, nothing lost
            assert len(seqs) >= last_seq
            assert store.sinks()["s"] >= last_ack
            newest = max(_all_records(store), key=lambda r: r.seq)
            latest = {(s.device, s.point): s.value for s in store.latest()}
            assert latest[(newest.device, "p0")] == newest.values[0]  # replayed after the crash
            records, _ = store.backlog("s")
            assert records == len(seqs) - store.sinks()["s"]
            previous_max = len(seqs)


def _all_records(store: Store) -> list:  # type: ignore[type-arg]
    name = "audit"
    store.register_sink(name, start_at="start")
    out = store.take(name, 10**7)
    store.unregister_sink(name)
    assert all(r.kind is RecordKind.SAMPLE for r in out)
    return out

"""Model-based test of the store's outbox: a hypothesis state machine drives
the real store and a plain in-memory model side by side.

Rules: append, take and ack (all, part, nothing = a failed send; with
max_values and kinds), take now and ack later (drops in between), set a
record aside, crash (drop connections and in-memory state, reopen), clean
reopen, retention (advance the injected clock), overflow (shrink max_bytes),
register a late sink. Invariants: every take returns exactly the records the
model says the sink has not acked, in seq order (so each sink receives every
record that was not dropped, at least once, in order, and nothing acked is
re-delivered); cursors, backlogs, drop counters and latest values match
the model; undroppable kinds are never dropped for space.
"""

from __future__ import annotations

import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from gateway.model import Quality, Record, RecordKind
from gateway.store import Store

T0 = 1_700_000_000 * 10**9
DAY_NS = 86400 * 10**9
RETENTION_DAYS = 30
BIG = 1 << 30


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


@dataclass(frozen=True)
class ModelRecord:
    kind: RecordKind
    device: str
    ts_ns: int
    n: int


class OutboxMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="store-model-"))
        self.clock = Clock()
        self.store = self.open()
        self.records: dict[int, ModelRecord] = {}
        self.next_seq = 1
        self.cursor: dict[str, int] = {}
        self.aside: dict[str, set[int]] = {}
        self.counters: Counter[str] = Counter()
        self.appended = 0
        self.held: dict[str, int] = {}  # sink -> last seq of a batch taken, not yet acked
        self.latest: dict[tuple[str, str], tuple[float, int]] = {}  # -> (value, ts)
        self.last_events: dict[str, int] = {}  # device -> seq of its newest EVENT
        for name in ("a", "b"):
            self.store.register_sink(name)
            self.cursor[name] = 0
            self.aside[name] = set()

    def open(self) -> Store:
        return Store(
            self.dir / "s.db",
            retention_s=RETENTION_DAYS * 86400,
            max_bytes=BIG,
            clock=self.clock,
            synchronous="OFF",  # durability has its own test; this one is about logic
            latest_flush_s=3600,
        )

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # ------------------------------------------------------------ model helpers

    def pending(self, sink: str) -> list[int]:
        return [
            s for s in sorted(self.records) if s > self.cursor[sink] and s not in self.aside[sink]
        ]

    def remove(self, seqs: set[int], prefix: str) -> Counter[str]:
        deltas: Counter[str] = Counter()
        for seq in seqs:
            deltas[f"{prefix}_{self.records[seq].kind.value}"] += 1
            for sink in self.cursor:
                if seq > self.cursor[sink] and seq not in self.aside[sink]:
                    deltas[f"dropped_unsent_{sink}"] += 1
        for seq in seqs:
            del self.records[seq]
        self.counters.update(deltas)
        return deltas

    def stored_seqs(self) -> set[int]:
        return {r[0] for r in self.store._conn().execute("SELECT seq FROM records")}

    # ------------------------------------------------------------ rules

    @rule(
        specs=st.lists(
            st.tuples(
                st.sampled_from(list(RecordKind)),
                st.integers(0, 2 * RETENTION_DAYS),
                st.integers(1, 40),
            ),
            min_size=1,
            max_size=6,
        )
    )
    def append(self, specs: list[tuple[RecordKind, int, int]]) -> None:
        batch = []
        for kind, age_days, n in specs:
            self.appended += 1
            batch.append(
                Record(
                    kind=kind,
                    device=f"dev{self.appended % 3}",
                    ts_ns=self.clock.now - age_days * DAY_NS + self.appended,
                    points=[f"p{i}" for i in range(n)],
                    values=[float(self.appended)] * n,
                    units=["u"] * n,
                    qualities=[Quality.GOOD] * n,
                )
            )
        self.store.append(batch)
        for rec in batch:
            assert rec.seq == self.next_seq
            self.records[rec.seq] = ModelRecord(rec.kind, rec.device, rec.ts_ns, len(rec))
            self.next_seq += 1
            if rec.kind is RecordKind.EVENT:
                self.last_events[rec.device] = rec.seq
            if rec.kind is RecordKind.SAMPLE:
                for point, value in zip(rec.points, rec.values, strict=True):
                    old = self.latest.get((rec.device, point))
                    if old is None or rec.ts_ns >= old[1]:
                        self.latest[(rec.device, point)] = (value, rec.ts_ns)  # type: ignore[assignment]

    def check_take(
        self,
        sink: str,
        n: int,
        max_values: int | None = None,
        kinds: frozenset[RecordKind] | None = None,
    ) -> list[Record]:
        got = self.store.take(sink, n, max_values=max_values, kinds=kinds)
        expected = [s for s in self.pending(sink) if kinds is None or self.records[s].kind in kinds]
        expected = expected[:n]
        if max_values is not None:  # cut by values, but never below one record
            total = 0
            for i, seq in enumerate(expected):
                total += self.records[seq].n
                if total > max_values and i > 0:
                    expected = expected[:i]
                    break
        assert [r.seq for r in got] == expected
        for r in got:
            m = self.records[r.seq]
            assert (r.kind, r.device, r.ts_ns, len(r)) == (m.kind, m.device, m.ts_ns, m.n)
            assert r.values == [r.values[0]] * m.n
        return got

    @rule(
        sink=st.sampled_from(["a", "b", "c"]),
        n=st.integers(1, 12),
        how=st.sampled_from(["all", "part", "none"]),
        max_values=st.none() | st.integers(1, 80),
        kinds=st.none() | st.frozensets(st.sampled_from(list(RecordKind)), min_size=1),
    )
    def take_and_ack(
        self,
        sink: str,
        n: int,
        how: str,
        max_values: int | None,
        kinds: frozenset[RecordKind] | None,
    ) -> None:
        if sink not in self.cursor:
            return
        got = self.check_take(sink, n, max_values, kinds)
        if not got or how == "none":  # "none": the send failed, nothing acked
            return
        upto = got[-1].seq if how == "all" else got[(len(got) - 1) // 2].seq
        self.store.ack(sink, upto)
        self.cursor[sink] = upto
        assert all(r.seq > upto for r in self.store.take(sink, n))

    @rule(sink=st.sampled_from(["a", "b"]), n=st.integers(1, 12))
    def take_and_hold(self, sink: str, n: int) -> None:
        # A batch in flight: other rules (drops, crashes, other acks) run
        # before ack_held acknowledges it.
        got = self.check_take(sink, n)
        if got:
            self.held[sink] = got[-1].seq

    @rule(sink=st.sampled_from(["a", "b"]))
    def ack_held(self, sink: str) -> None:
        upto = self.held.pop(sink, None)
        if upto is not None:
            self.store.ack(sink, upto)
            self.cursor[sink] = max(self.cursor[sink], upto)

    @rule(sink=st.sampled_from(["a", "b"]), pick=st.integers(0, 4))
    def set_aside(self, sink: str, pick: int) -> None:
        got = self.check_take(sink, 5)
        if not got:
            return
        rec = got[pick % len(got)]
        self.store.set_aside(sink, rec, "malformed")
        self.aside[sink].add(rec.seq)
        self.counters[f"rejected_{sink}"] += 1

    @precondition(lambda self: "c" not in self.cursor)
    @rule(start_at=st.sampled_from(["end", "start"]))
    def register_late_sink(self, start_at: str) -> None:
        self.store.register_sink("c", start_at=start_at)  # type: ignore[arg-type]
        self.cursor["c"] = 0 if start_at == "start" else self.next_seq - 1
        self.aside["c"] = set()

    @rule()
    def crash_and_reopen(self) -> None:
        # Like SIGKILL for this process's view: connections vanish without
        # close(), in-memory state (latest not yet flushed) is lost.
        for conn in self.store._conns:
            conn.close()
        self.store._closed = True
        self.store = self.open()

    @rule()
    def clean_reopen(self) -> None:
        self.store.close()
        self.store = self.open()

    @rule(days=st.integers(1, RETENTION_DAYS))
    def retention(self, days: int) -> None:
        self.clock.now += days * DAY_NS
        cutoff = self.clock.now - RETENTION_DAYS * DAY_NS
        expired = {s for s, m in self.records.items() if m.ts_ns < cutoff}
        expected = self.remove(expired, "expired")
        assert self.store.enforce_limits() == dict(expected)
        assert self.stored_seqs() == set(self.records)

    @rule(fraction=st.floats(0.05, 0.95))
    def overflow(self, fraction: float) -> None:
        cutoff = self.clock.now - RETENTION_DAYS * DAY_NS
        expected = self.remove({s for s, m in self.records.items() if m.ts_ns < cutoff}, "expired")
        self.store.max_bytes = max(1, int(self.store.size_bytes() * fraction))
        try:
            removed = self.store.enforce_limits()
            present = self.stored_seqs()
            dropped = set(self.records) - present
            assert not present - set(self.records)
            assert all(self.records[s].kind.droppable for s in dropped)
            if dropped:  # oldest droppable first: none older than a dropped one is left
                assert not [
                    s for s in present if s < max(dropped) and self.records[s].kind.droppable
                ]
            kept_droppable = [s for s in present if self.records[s].kind.droppable]
            assert self.store.size_bytes() <= self.store.max_bytes or not kept_droppable
            expected.update(self.remove(dropped, "dropped"))
            assert removed == dict(expected)
        finally:
            self.store.max_bytes = BIG

    # ------------------------------------------------------------ invariants

    @invariant()
    def cursors_match(self) -> None:
        assert self.store.sinks() == self.cursor

    @invariant()
    def backlogs_match(self) -> None:
        for sink in self.cursor:
            pending = self.pending(sink)
            assert self.store.backlog(sink) == (
                len(pending),
                sum(self.records[s].n for s in pending),
            )

    @invariant()
    def drop_counters_match(self) -> None:
        got = {
            k: v
            for k, v in self.store.counters().items()
            if k.startswith(("expired_", "dropped_", "rejected_"))
        }
        assert got == {k: v for k, v in self.counters.items() if v}

    @invariant()
    def latest_matches(self) -> None:
        # Survives crashes (replayed from records), retention and overflow.
        got = {(s.device, s.point): (s.value, s.ts_ns) for s in self.store.latest()}
        assert got == self.latest

    @invariant()
    def record_count_matches(self) -> None:
        # kept in meta for `minegate status` (no count(*) of millions of rows)
        row = self.store._conn().execute("SELECT value FROM meta WHERE key = 'record_count'")
        assert row.fetchone()[0] == len(self.records)

    @invariant()
    def last_events_match(self) -> None:
        # the newest event of each source, kept after retention drops it
        rows = self.store._conn().execute("SELECT device, seq FROM last_events")
        assert dict(rows.fetchall()) == self.last_events

    @invariant()
    def undroppable_only_expire(self) -> None:
        for kind in RecordKind:
            if not kind.droppable:
                assert self.counters[f"dropped_{kind.value}"] == 0


OutboxMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestOutbox = OutboxMachine.TestCase

"""Ingest against a simple model (ARCHITECTURE.md lesson 10): any sequence
of messages, with duplicates and out-of-order times, cut into any batches,
leaves exactly what applying them one by one to a dict would."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from supervision.db import make_engine, make_sessionmaker
from supervision.db.migrate import upgrade
from supervision.ingest.models import LatestValue
from supervision.ingest.parse import parse
from supervision.ingest.service import GatewayDirectory, apply_batch
from supervision.ingest.stats import IngestStats
from supervision.registry import service as reg

messages = st.lists(
    st.tuples(st.integers(0, 15), st.integers(0, 8), st.integers(-100, 100)),  # seq, ts, value
    min_size=1,
    max_size=30,
)
cuts = st.lists(st.integers(1, 8), min_size=1, max_size=30)


def test_ingest_matches_the_model(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'model.db'}")
    upgrade(engine)
    sm = make_sessionmaker(engine)
    with sm() as db, db.begin():
        reg.add_region(db, "R", "R")
        reg.add_city(db, "R", "C", "C")
        reg.add_county(db, "C", "K", "K")
        reg.add_mine(db, "K", "M", "M")
    sites = itertools.count()

    @settings(max_examples=40, deadline=None)
    @given(messages, cuts)
    def check(msgs: list[tuple[int, int, int]], sizes: list[int]) -> None:
        site = f"s{next(sites)}"  # a fresh gateway per example
        with sm() as db, db.begin():
            gid = reg.add_gateway(db, "M", site, "gw", now_ns=0).id
        # the model: one at a time, first of each seq (every seq 0: sent
        # live while the gateway's store failed), newest time wins
        seen: set[int] = set()
        applied = 0
        latest: tuple[int, int] | None = None  # (ts, value)
        for seq, ts, value in msgs:
            if seq in seen:
                continue
            if seq:
                seen.add(seq)
            applied += 1
            if latest is None or ts >= latest[0]:
                latest = (ts, value)
        # the platform: the same messages, in batches of the drawn sizes
        topic = f"minegate/{site}/gw/telemetry/d"
        parsed = [
            (topic, parse(topic, json.dumps({"seq": s, "kind": "sample", "ts": "", "ts_ns": t, "device": "d",
                                             "values": {"p": {"v": v, "u": "", "q": "good"}}}).encode(),
                          prefix="minegate", max_bytes=1 << 16))
            for s, t, v in msgs
        ]  # fmt: skip
        stats = IngestStats()
        directory = GatewayDirectory()
        i = 0
        for size in itertools.cycle(sizes):
            if i >= len(parsed):
                break
            with sm() as db, db.begin():
                apply_batch(db, parsed[i : i + size], now_ns=1, directory=directory, stats=stats)
            i += size
        assert stats.applied["sample"] == applied
        assert stats.dropped["duplicate_seq"] == len(msgs) - applied
        with sm() as db:
            row = db.get(LatestValue, (gid, "d", "p"))
            assert row is not None and latest is not None
            assert (row.ts_ns, row.value) == latest

    check()
    engine.dispose()

"""LatestValues (the store's in-memory latest values) against a plain
model: any order of records, any subsets of points, equal timestamps,
folds at any moment; the newest value of each point wins, a later record
wins a tie, and what is dirty is exactly what changed since the last take."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import Quality, Record, RecordKind
from gateway.store.latest import LatestValues

POINTS = ["a", "b", "c", "d"]

record = st.tuples(
    st.sampled_from(["d1", "d2"]),
    st.integers(0, 6),  # ts: ties and older records are common
    st.lists(st.sampled_from(POINTS), min_size=1, max_size=4, unique=True),
    st.integers(0, 1000),
    st.booleans(),  # take the dirty entries after this record
)


@settings(max_examples=300, deadline=None)
@given(st.lists(record, max_size=60), st.integers(1, 5))
def test_the_newest_value_of_each_point_wins(ops: list, fold_every: int) -> None:
    latest = LatestValues()
    latest.FOLD_EVERY = fold_every  # type: ignore[misc]
    model: dict[tuple[str, str], tuple[int, int]] = {}  # -> (value, ts)
    dirty_model: dict[tuple[str, str], tuple[int, int]] = {}
    for device, ts, points, value, take in ops:
        values: list[int] = [value + i for i in range(len(points))]
        n = len(points)
        rec = Record(
            RecordKind.SAMPLE, device, ts, list(points), list(values), ["u"] * n, [Quality.GOOD] * n
        )
        latest.merge(rec)
        for p, v in zip(points, values, strict=True):
            cur = model.get((device, p))
            if cur is None or ts >= cur[1]:
                model[(device, p)] = dirty_model[(device, p)] = (v, ts)
        if take:
            got = {
                (dev, p): (e[0], e[3])
                for dev, es in latest.take_dirty().items()
                for p, e in es.items()
            }
            assert got == dirty_model
            dirty_model = {}
    assert {(s.device, s.point): (s.value, s.ts_ns) for s in latest.samples()} == model

"""What a restart after an unclean stop (SIGKILL, power cut) writes.

A clean stop ends with a ``gateway_stop`` event; when the last run event of
the store is a ``gateway_start`` instead, the previous run was killed. Its
records are all in the store (each batch is one transaction), but:

* nothing said so: :func:`recover` returns an ``unclean_stop`` EVENT record
  (source ``gateway``) whose fields give the time of the last record the
  killed run stored (``last_record_ns`` and ``last_record`` in UTC) and when
  that run started (``run_started_ns``);
* the 5-minute statistics of the interrupted window were never written:
  they are computed from the SAMPLE records the killed run stored in it and
  returned as STAT records marked ``partial`` and ``recovered`` (stamped
  with each device's first reading in the window, like any partial window).
  Those samples passed report by exception, so ``count`` is the number of
  stored values, not of readings. A window whose STAT the killed run did
  write is left alone.

The persistent counters need no repair: the runtime writes them with every
stored batch (``Gateway._store_batch``), so a kill loses at most the
increments of the batch in flight, whose records are lost with it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.metrics import METRICS_SOURCE
from gateway.model import Quality, Record, RecordKind
from gateway.stats import StatsAggregator

if TYPE_CHECKING:
    from gateway.store import Store

log = logging.getLogger("minegate.runtime")

NS = 1_000_000_000
#: the events by which a run starts and ends cleanly
START_EVENT, STOP_EVENT, UNCLEAN_EVENT = "gateway_start", "gateway_stop", "unclean_stop"


def recover(
    store: Store,
    *,
    site: str,
    gateway: str,
    stats_window_s: int | None,
    now_ns: int,
) -> list[Record]:
    """The records to store before this run's ``gateway_start`` when the
    previous run did not stop cleanly; empty after a clean stop or on a new
    store. ``stats_window_s``: the statistics window (None: statistics off)."""
    last = store.last_event(METRICS_SOURCE)
    if last is None or last[1].get("event") != START_EVENT:
        return []
    run_started_ns = last[0]
    last_ns = store.last_record_ts() or run_started_ns
    stats = (
        []
        if stats_window_s is None
        else _window_stats(store, stats_window_s, run_started_ns, last_ns)
    )
    when = datetime.fromtimestamp(last_ns / NS, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
    log.warning(
        "the previous run did not stop cleanly (killed?); its last stored record is of "
        "%s UTC; %d statistics records of the interrupted window written from stored samples",
        when,
        len(stats),
    )
    event = Record(
        RecordKind.EVENT,
        METRICS_SOURCE,
        now_ns,
        ["event"],
        [UNCLEAN_EVENT],
        [""],
        [Quality.GOOD],
        fields={
            "event": UNCLEAN_EVENT,
            "site": site,
            "gateway": gateway,
            "last_record_ns": last_ns,
            "last_record": when + " UTC",
            "run_started_ns": run_started_ns,
            "stats_recovered": len(stats),
        },
    )
    return [event, *stats]


def _window_stats(store: Store, window_s: int, run_started_ns: int, last_ns: int) -> list[Record]:
    """Partial STAT records of the windows the killed run was in when it
    died (the current one, and the one before while its grace ran), for
    the devices whose STAT of that window it had not written."""
    window_ns = int(window_s * NS)
    current = last_ns - last_ns % window_ns
    out: list[Record] = []
    for start in (current - window_ns, current):
        since = max(start, run_started_ns)
        until = min(start + window_ns, last_ns + 1)
        if since >= until:
            continue
        done = {
            r.device for r in store.records_between(since, start + window_ns, [RecordKind.STAT])
        }
        samples = [
            r
            for r in store.records_between(since, until, [RecordKind.SAMPLE])
            if r.device not in done and r.device != METRICS_SOURCE
        ]
        if not samples:
            continue
        clock: Callable[[], int] = lambda: last_ns + 1  # noqa: E731 - every window is cut
        agg = StatsAggregator(window_s, clock=clock)
        for rec in samples:
            agg.add(rec)
        for rec in agg.flush_all():
            for st in rec.fields.values():
                if isinstance(st, dict):
                    st["recovered"] = True
            out.append(rec)
    return out

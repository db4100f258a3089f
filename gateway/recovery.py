"""What a restart after an unclean stop (SIGKILL, power cut) writes.

A clean stop ends with a ``gateway_stop`` event; when the last run event of
the store is a ``gateway_start`` instead, the previous run was killed. Its
records are all in the store (each batch is one transaction), but:

* nothing said so: :func:`unclean_stop` finds it, and
  :meth:`UncleanStop.event` is the ``unclean_stop`` EVENT record
  (source ``gateway``) whose fields give the time of the last record the
  killed run stored (``last_record_ns`` and ``last_record`` in UTC) and when
  that run started (``run_started_ns``);
* the 5-minute statistics of the interrupted window were never written:
  :func:`interrupted_window_stats` computes them from the SAMPLE records
  the killed run stored in it, as STAT records marked ``partial`` and
  ``recovered`` (stamped with each device's first reading in the window,
  like any partial window).
  Those samples passed report by exception, so ``count`` is the number of
  stored values, not of readings. A window whose STAT the killed run did
  write is left alone.

The persistent counters need no repair: ``records_stored`` and
``values_stored`` are added in the transaction of the batch they count
(``Gateway._store_batch`` through ``Store.append``), so they are exactly
what the store holds; the others (``polls``, ...) ride that transaction too
and lose at most what happened since the last batch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.metrics import METRICS_SOURCE
from gateway.model import Quality, Record, RecordKind
from gateway.stats import StatsAggregator

if TYPE_CHECKING:
    from gateway.store import Store

log = logging.getLogger("minegate.runtime")

NS = 1_000_000_000
GRACE_NS = 5 * NS  # StatsAggregator's default grace, which the runtime uses
#: the events by which a run starts and ends cleanly
START_EVENT, STOP_EVENT, UNCLEAN_EVENT = "gateway_start", "gateway_stop", "unclean_stop"


@dataclass(frozen=True)
class UncleanStop:
    """What the store tells of a run that did not stop cleanly."""

    run_started_ns: int  # its gateway_start event
    last_record_ns: int  # the last record it stored (highest seq)

    def event(self, *, site: str, gateway: str, now_ns: int) -> Record:
        """The ``unclean_stop`` EVENT record (source ``gateway``)."""
        return Record(
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
                "last_record_ns": self.last_record_ns,
                "last_record": _utc(self.last_record_ns),
                "run_started_ns": self.run_started_ns,
            },
        )


def unclean_stop(store: Store) -> UncleanStop | None:
    """The previous run, if it did not stop cleanly; None after a clean stop
    or on a new store. Cheap: two indexed reads."""
    last = store.last_event(METRICS_SOURCE)
    if last is None or last[1].get("event") != START_EVENT:
        return None
    found = UncleanStop(last[0], store.last_record_ts() or last[0])
    log.warning(
        "the previous run did not stop cleanly (killed?); its last stored record is of %s",
        _utc(found.last_record_ns),
    )
    return found


def interrupted_window_stats(store: Store, stop: UncleanStop, window_s: int) -> list[Record]:
    """Partial, recovered STAT records of the window(s) the killed run was
    in when it died. Reads every sample it stored there: seconds on a big
    site (about 150,000 values/s on one core), so the runtime calls it in a
    worker thread while polling goes on."""
    out = _window_stats(store, window_s, stop.run_started_ns, stop.last_record_ns)
    log.info(
        "%d statistics records of the interrupted window written from stored samples", len(out)
    )
    return out


def _utc(ts_ns: int) -> str:
    return datetime.fromtimestamp(ts_ns / NS, tz=UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _window_stats(store: Store, window_s: int, run_started_ns: int, last_ns: int) -> list[Record]:
    """Partial STAT records of the windows the killed run was in when it
    died (the current one, and the one before while its grace ran), for
    the devices whose STAT of that window it had not written."""
    window_ns = int(window_s * NS)
    current = last_ns - last_ns % window_ns
    out: list[Record] = []
    # the window before the current one was still open for late readings
    # during the aggregator's grace; later its STAT was written, or it had none
    starts = (current - window_ns, current) if last_ns - current < GRACE_NS else (current,)
    for start in starts:
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

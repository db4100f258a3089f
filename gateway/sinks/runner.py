"""The sink runner: moves records from the store's outbox to one sink.

The runner owns everything between the outbox and a sink: batching, the
transaction (take -> write -> ack), setting aside what the server rejects as
malformed, backoff, reconnection, and the status shown by ``minegate status``.

Guarantees:

* **at-least-once**: records are acked only after the server accepted them;
  a crash between acceptance and ack re-sends them, never loses them;
* **order**: records leave in ``seq`` order; a batch is retried until it is
  accepted, so a later record never overtakes an earlier one;
* **never gives up**: transient faults retry fast (capped exponential backoff
  with jitter); faults that need a human (wrong credentials, TLS, unknown
  bucket) retry slowly and show in ``status()``; nothing is dropped here
  (the store's retention and size policy is the only place data can go).
* **live while the store fails**: when the store cannot write, the runtime
  offers the alarms and samples it could not store (``offer_live``); they
  are sent ahead of the outbox, from memory only (not acked, ``seq`` 0),
  at most ``LIVE_MAX_RECORDS`` waiting, the oldest samples dropped first
  and counted (``live_dropped``). They are stored and sent again through
  the outbox once the store writes: at-least-once, as always. An ack the
  store refuses (a full disk) is kept in memory: the runner goes on after
  it instead of sending the same batch again, acks it with the next ack
  that succeeds, and after a restart those records are sent again.

Batching policy:

* *live* (the last take came back short): a batch leaves when it holds
  ``batch_size`` records, when it holds an alarm, or ``flush_ms`` after the
  previous write, whichever is first;
* *catch-up* (the last take came back full, so a backlog is waiting): batches
  ``catchup_factor`` times larger are written back-to-back, throttled to
  ``max_backlog_rate`` values/s if set. The outbox is strictly ordered, so
  live data is reached as soon as the backlog is drained; ``status()``
  reports the drain rate and the remaining backlog;
* *alarms first*: before every take of the in-order pass the runner takes
  the alarms not yet sent (the store's partial index makes that cheap) and
  sends them ahead of any backlog; the in-order pass then skips them. An
  alarm stored while a batch is being written (``notify(alarm=True)``)
  need not wait for the whole batch: a sink that can (MQTT, a message per
  record) ends the write early (``Sink.yield_now``), the runner acks the
  part accepted, sends the alarm and takes the rest again.

The store is blocking (SQLite): every store call runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Collection
from typing import Any, Protocol

from drivers.backoff import backoff_delay
from drivers.types import Value
from gateway.model import Record, RecordKind
from gateway.scheduler import stopped_within
from gateway.sinks.base import AuthError, NotFound, Sink, SinkError, TlsError, is_transient
from gateway.store.errors import StoreError

log = logging.getLogger(__name__)

# The status keys a runner reports as metrics (SinkRunner.metrics).
METRIC_KEYS = (
    "state",
    "connected",
    "last_error",
    "sent_values",
    "failures",
    "drain_values_per_s",
    "set_aside",
    "live_sent",
    "live_dropped",
)


class Outbox(Protocol):
    """The part of :class:`gateway.store.Store` a runner uses."""

    def register_sink(self, name: str) -> None: ...
    def take(
        self,
        sink: str,
        max_records: int,
        *,
        max_values: int | None = None,
        kinds: Collection[RecordKind] | None = None,
        after_seq: int = 0,
    ) -> list[Record]: ...
    def ack(self, sink: str, upto_seq: int) -> None: ...
    def set_aside(self, sink: str, record: Record, reason: str) -> None: ...
    def backlog(self, sink: str) -> tuple[int, int]: ...


def _state_of(exc: SinkError) -> str:
    if isinstance(exc, AuthError):
        return "auth_error"
    if isinstance(exc, NotFound):
        return "not_found"
    if isinstance(exc, TlsError):
        return "tls_error"
    return "retrying"


class SinkRunner:
    """Runs one sink until ``stop`` is set. See the module docstring."""

    BACKLOG_REFRESH_S = 1.0
    RATE_WINDOW_S = 10.0
    LIVE_MAX_RECORDS = 1000  # waiting live records (store failing), drop-oldest beyond

    def __init__(
        self,
        sink: Sink,
        store: Outbox,
        name: str,
        *,
        batch_size: int = 1000,
        max_batch_values: int = 50_000,
        flush_ms: int = 200,
        catchup_factor: int = 5,
        max_backlog_rate: float | None = None,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        retry_slow_s: float = 60.0,
        idle_poll_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.sink = sink
        self.store = store
        self.name = name
        self.batch_size = batch_size
        self.max_batch_values = max_batch_values
        self.flush_s = flush_ms / 1000.0
        self.catchup_factor = catchup_factor
        self.max_backlog_rate = max_backlog_rate
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.retry_slow_s = retry_slow_s
        self.idle_poll_s = idle_poll_s
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng
        self._wake = asyncio.Event()
        self._catching_up = True  # until a take comes back short
        self._last_write = -1e18
        self._attempt = 0
        self._state = "starting"
        self._last_error: str | None = None
        self._last_error_at: float | None = None
        self._last_success_at: float | None = None
        self._backlog: tuple[int, int] = (0, 0)
        self._backlog_at = -1e18
        self._acked: deque[tuple[float, int]] = deque()
        self.sent_records = 0
        self.sent_values = 0
        self.set_aside_count = 0
        self.failures = 0
        self._live: deque[Record] = deque()
        self.live_sent = 0
        self.live_dropped = 0
        # Alarms go ahead of any backlog: those with seq <= this were sent
        # ahead of the cursor; the in-order pass skips them. Kept in memory:
        # after a restart the alarms after the cursor are sent again
        # (at-least-once), never lost.
        self._alarms_sent_upto = 0
        self._ahead = False  # the batch being delivered is alarms sent ahead
        self._batch_end = 0  # last seq taken, skipped alarms included
        # Sent and accepted up to here, but the store refused the ack (a full
        # disk): takes start after it; stored with the next ack that succeeds.
        self._acked_in_memory = 0
        self._alarm_waiting = False  # an alarm was stored since the last alarm take
        self._may_yield = False  # writing an in-order batch: it may end early for one
        sink.yield_now = self._yield_now

    # -- public ------------------------------------------------------------

    def notify(self, *, alarm: bool = False) -> None:
        """New records were appended (``alarm``: an alarm among them): wake
        an idle runner now; a batch being written yields to the alarm."""
        if alarm:
            self._alarm_waiting = True
        self._wake.set()

    def _yield_now(self) -> bool:
        return self._alarm_waiting and self._may_yield

    def offer_live(self, records: list[Record]) -> None:
        """The store could not write these: send them from memory, ahead of
        the outbox (module docstring). Beyond ``LIVE_MAX_RECORDS`` waiting,
        the oldest sample goes (the oldest alarm only when no sample is
        left), counted in ``live_dropped``."""
        for rec in records:
            self._live.append(rec)
            if rec.kind is RecordKind.ALARM:
                self._alarm_waiting = True  # a batch being written yields to it
        self._trim_live()
        if records:
            self._wake.set()

    def _trim_live(self) -> None:
        while len(self._live) > self.LIVE_MAX_RECORDS:
            victim = next((r for r in self._live if r.kind is not RecordKind.ALARM), None)
            if victim is None:
                self._live.popleft()
            else:
                self._live.remove(victim)
            self.live_dropped += 1

    def status(self) -> dict[str, Any]:
        """A JSON-able snapshot for ``minegate status``."""
        return {
            "name": self.name,
            "type": self.sink.type_name,
            "target": self.sink.describe(),
            "state": self._state,
            "connected": self.sink.connected,
            "last_error": self._last_error,
            "last_error_at": self._last_error_at,
            "last_success_at": self._last_success_at,
            "backlog_records": self._backlog[0],
            "backlog_values": self._backlog[1],
            "catching_up": self._catching_up,
            "drain_values_per_s": round(self.drain_rate(), 1),
            "sent_records": self.sent_records,
            "sent_values": self.sent_values,
            "set_aside": self.set_aside_count,
            "failures": self.failures,
            "live_sent": self.live_sent,
            "live_dropped": self.live_dropped,
        }

    def metrics(self) -> dict[str, Value]:
        """What of ``status()`` goes into the gateway's METRIC record (and so
        into `minegate status`, which cannot ask the running process)."""
        status = self.status()
        return {
            key: value
            for key in METRIC_KEYS
            if isinstance(value := status.get(key), str | int | float | bool)
        }

    def drain_rate(self) -> float:
        """Values acked per second over the last ``RATE_WINDOW_S``."""
        now = self._clock()
        while self._acked and now - self._acked[0][0] > self.RATE_WINDOW_S:
            self._acked.popleft()
        if not self._acked:
            return 0.0
        span = max(now - self._acked[0][0], 1e-3)
        return sum(n for _, n in self._acked) / max(span, min(self.RATE_WINDOW_S, 1.0))

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set, then close the sink."""
        await asyncio.to_thread(self.store.register_sink, self.name)
        await self._refresh_backlog(force=True)
        try:
            while not stop.is_set():
                if not self.sink.connected:
                    self._state = "connecting"
                    try:
                        await self.sink.connect()
                    except SinkError as exc:
                        self._failed(exc, "connect")
                        await self._backoff(stop, exc)
                        continue
                    self._state = "ok"
                if self._live:
                    await self._send_live(stop)
                    continue
                batch = await self._next_batch(stop)
                if not batch:
                    continue
                await self._deliver(batch, stop)
            await self._final_flush()
        finally:
            self._state = "stopped"
            await self.sink.close()

    async def _final_flush(self) -> None:
        """At a clean stop, one attempt (no retry) to send what the flush
        wait was holding back; what fails stays in the outbox for next time.
        The runtime bounds the time this may take."""
        if not self.sink.connected:
            return
        stopped = asyncio.Event()
        stopped.set()  # no backoff sleep after a failure: we are stopping
        if self._live:  # the store failed: what it could not take, once
            await self._send_live(stopped)
        batch = await asyncio.to_thread(
            self.store.take,
            self.name,
            self.batch_size,
            max_values=self.max_batch_values,
            after_seq=self._acked_in_memory,
        )
        if batch:
            batch = await self._skip_sent_alarms(batch)
        if batch:
            await self._deliver(batch, stopped)

    # -- internals ---------------------------------------------------------

    async def _send_live(self, stop: asyncio.Event) -> None:
        """Send the waiting live records (store failing): one batch, never
        acked; on failure they wait again (bounded) behind the backoff."""
        batch = [self._live.popleft() for _ in range(min(len(self._live), self.batch_size))]
        try:
            result = await self.sink.write(batch)
        except SinkError as exc:
            self._live.extendleft(reversed(batch))
            self._trim_live()
            self._failed(exc, "write")
            await self._backoff(stop, exc)
            return
        self.live_sent += len(batch) - len(result.rejected)
        if result.rejected:
            log.warning(
                "sink %s: server rejected %d live record(s) as malformed: %s",
                self.name, len(result.rejected), result.rejected[0].reason,
            )  # fmt: skip
        self._attempt = 0
        self._state = "ok"
        self._last_success_at = self._wall()
        self._last_write = self._clock()

    async def _deliver(self, batch: list[Record], stop: asyncio.Event) -> None:
        started = self._clock()
        self._may_yield = not self._ahead
        try:
            result = await self.sink.write(batch)
        except SinkError as exc:
            if exc.accepted_upto >= batch[0].seq:
                await self._ack([r for r in batch if r.seq <= exc.accepted_upto], [])
            self._ahead = False
            self._failed(exc, "write")
            await self._backoff(stop, exc)
            return
        finally:
            self._may_yield = False
        rejected_seqs = set()
        for rej in result.rejected:
            rejected_seqs.add(rej.record.seq)
            try:
                await asyncio.to_thread(self.store.set_aside, self.name, rej.record, rej.reason)
            except StoreError as exc:  # offered again after a restart, then set aside
                log.warning("sink %s: cannot set aside seq=%d: %s", self.name, rej.record.seq, exc)
            self.set_aside_count += 1
            log.debug(
                "sink %s: set aside seq=%d (%s %s): %s",
                self.name, rej.record.seq, rej.record.kind, rej.record.device, rej.reason,
            )  # fmt: skip
        if result.rejected:
            # one line per batch (the store keeps every record and reason)
            first = result.rejected[0]
            log.warning(
                "sink %s: server rejected %d record(s) as malformed, set aside "
                "(first seq=%d, %s %s): %s",
                self.name, len(result.rejected), first.record.seq, first.record.kind,
                first.record.device, first.reason,
            )  # fmt: skip
        accepted = [r for r in batch if r.seq <= result.accepted_upto]
        await self._ack(accepted, rejected_seqs)
        if not self._ahead and accepted and accepted[-1] is batch[-1]:
            if self._batch_end > batch[-1].seq:  # alarms sent ahead ended the take
                await self._store_ack(self._batch_end)
        if self._attempt:
            log.info("sink %s: delivering again after %d failure(s)", self.name, self._attempt)
        self._attempt = 0
        self._state = "ok"
        self._last_success_at = self._wall()
        self._last_write = self._clock()
        if self._catching_up and self.max_backlog_rate:
            n = sum(len(r) for r in accepted)
            wait = n / self.max_backlog_rate - (self._clock() - started)
            if wait > 0:
                await self._sleep(stop, wait)

    async def _ack(self, accepted: list[Record], rejected: set[int] | list[int]) -> None:
        if not accepted:
            return
        if self._ahead:
            self._alarms_sent_upto = max(self._alarms_sent_upto, accepted[-1].seq)
        else:
            await self._store_ack(accepted[-1].seq)
        n_rec = len(accepted) - len(rejected)
        n_val = sum(len(r) for r in accepted if r.seq not in rejected)
        self.sent_records += n_rec
        self.sent_values += n_val
        self._acked.append((self._clock(), n_val))
        await self._refresh_backlog()

    async def _next_batch(self, stop: asyncio.Event) -> list[Record]:
        while not stop.is_set():
            if self._live:  # records the store could not take go first
                return []
            factor = self.catchup_factor if self._catching_up else 1
            limit = self.batch_size * factor
            vlimit = self.max_batch_values * factor
            # cleared before the take: a notify() during it wakes the wait below
            self._wake.clear()
            self._alarm_waiting = False
            ahead = await asyncio.to_thread(
                self.store.take,
                self.name,
                self.batch_size,
                kinds=(RecordKind.ALARM,),
                after_seq=max(self._alarms_sent_upto, self._acked_in_memory),
            )
            self._ahead = bool(ahead)
            if ahead:
                return ahead
            batch = await asyncio.to_thread(
                self.store.take,
                self.name,
                limit,
                max_values=vlimit,
                after_seq=self._acked_in_memory,
            )
            if batch and not (batch := await self._skip_sent_alarms(batch)):
                continue
            n_values = sum(len(r) for r in batch)
            # short by records and by values: nothing more is waiting
            full = len(batch) >= limit or (batch and n_values + len(batch[-1]) > vlimit)
            self._catching_up = bool(full)
            if not batch:
                if self._acked_in_memory:  # idle: try to store the ack again
                    await self._store_ack(self._acked_in_memory)
                await self._refresh_backlog()
                await stopped_within(stop, self.idle_poll_s, wake=self._wake)
                continue
            waited = self._clock() - self._last_write
            if full or waited >= self.flush_s or any(r.kind is RecordKind.ALARM for r in batch):
                return batch
            # a partial batch waits for the flush time, or for new records
            # (an alarm among them must not wait)
            await stopped_within(stop, self.flush_s - waited, wake=self._wake)
        return []

    async def _skip_sent_alarms(self, batch: list[Record]) -> list[Record]:
        """``batch`` without the alarms already sent ahead; a batch of only
        those is acked here (and comes back empty)."""
        sent = self._alarms_sent_upto
        self._batch_end = batch[-1].seq
        if not sent or batch[0].seq > sent:
            return batch
        unsent = [r for r in batch if r.kind is not RecordKind.ALARM or r.seq > sent]
        if not unsent:
            await self._store_ack(batch[-1].seq)
        return unsent

    async def _store_ack(self, upto_seq: int) -> None:
        """Move the sink's cursor; when the store refuses (a full disk), keep
        it in memory so the next takes start after it (module docstring)."""
        upto_seq = max(upto_seq, self._acked_in_memory)
        try:
            await asyncio.to_thread(self.store.ack, self.name, upto_seq)
        except StoreError as exc:
            if not self._acked_in_memory:
                log.warning(
                    "sink %s: the store cannot record what was sent (%s); going on from "
                    "memory, records after the last stored ack are sent again after a restart",
                    self.name, exc,
                )  # fmt: skip
            self._acked_in_memory = upto_seq
            return
        if self._acked_in_memory:
            log.info("sink %s: acks stored again (up to seq %d)", self.name, upto_seq)
            self._acked_in_memory = 0

    async def _refresh_backlog(self, force: bool = False) -> None:
        now = self._clock()
        if force or now - self._backlog_at >= self.BACKLOG_REFRESH_S:
            self._backlog_at = now
            self._backlog = await asyncio.to_thread(self.store.backlog, self.name)

    def _failed(self, exc: SinkError, during: str) -> None:
        self.failures += 1
        self._state = _state_of(exc)
        self._last_error = f"{during}: {exc}"
        self._last_error_at = self._wall()
        level = logging.WARNING if self._attempt == 0 else logging.DEBUG
        log.log(level, "sink %s: %s failed (%s): %s", self.name, during, self._state, exc)

    async def _backoff(self, stop: asyncio.Event, exc: SinkError) -> None:
        if is_transient(exc):
            delay = backoff_delay(self._attempt, self.retry_initial_s, self.retry_max_s, self._rng)
        else:
            delay = backoff_delay(0, self.retry_slow_s, self.retry_slow_s, self._rng)
        self._attempt += 1
        await self._refresh_backlog()
        await self._sleep(stop, delay)

    async def _sleep(self, stop: asyncio.Event, seconds: float) -> None:
        if seconds > 0:
            await stopped_within(stop, seconds)

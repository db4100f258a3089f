"""The gateway process: one event loop running every part.

``Gateway(config).run(stop)`` opens the store, one hub per bus, then runs

* one poller task per device (separate tasks, so a silent device only ever
  costs its own bus time; serial buses are serialised inside their hub),
  their first polls spread over the poll interval
  (``gateway.scheduler.spread_phases``: no burst of every device at once);
* one writer task that batches records from a bounded queue into
  ``Store.append`` every ``store.batch_ms`` (in a worker thread, so SQLite
  never blocks polling); a full queue makes producers wait, and each wait is
  counted as backpressure, so memory stays bounded; a store that cannot
  write never holds them back (``gateway.outage``: held in memory, alarms
  and samples sent live);
* the metrics task (a METRIC record every ``metrics.interval_s``), the
  retention task (``enforce_limits`` every minute), and one runner per
  configured sink (``gateway.sinks.build_runners``);
* extra tasks registered with ``add_task``; ``add_observer`` callbacks see
  every reading before report by exception (the hook for alarms).

On ``stop`` (SIGTERM/SIGINT in ``minegate run``) it stops the pollers, lets
the writer store everything still queued (the writer is never cancelled, so
the record it holds through a batch window is stored too), stores the final
metrics, stops the sink runners, closes the hubs and closes the store:
nothing polled is lost on a clean shutdown. A start after an unclean stop
first stores what ``gateway.recovery`` finds missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from drivers.backoff import Backoff
from drivers.hubmetrics import HubMetrics
from drivers.types import Value
from gateway.config import CompiledDevice, SiteConfig
from gateway.config.schema import AnyBus, AsciiBus
from gateway.metrics import METRICS_SOURCE, GatewayMetrics
from gateway.model import Quality, Record, RecordKind
from gateway.outage import LIVE_KINDS, StoreOutage
from gateway.poller import AsciiPoller, Hub, LineSource, ModbusPoller
from gateway.scheduler import spread_phases, stopped_within

if TYPE_CHECKING:  # imported when used: sqlite3, the sinks' clients
    from gateway.alarms.service import AlarmService
    from gateway.recovery import UncleanStop
    from gateway.sinks.runner import SinkRunner
    from gateway.stats import Snapshotter, StatsAggregator
    from gateway.store import Store

log = logging.getLogger("minegate.runtime")

STORE_FILENAME = "minegate.sqlite"
RETENTION_EVERY_S = 60.0
SINK_STOP_TIMEOUT_S = 5.0
MAX_BATCH_RECORDS = 5000
OPEN_HUBS_AT_ONCE = 64  # buses connecting at the same time at start-up
DRAIN_GIVE_UP_S = 10.0  # within systemd's TimeoutStopSec=30
STORE_RETRY_FIRST_S, STORE_RETRY_MAX_S = 0.5, 30.0  # backoff while the store refuses a batch
# An alarm the store has not committed within this (an fsync stalled by a
# busy disk) is sent live from memory meanwhile, and again once stored.
SLOW_ALARM_COMMIT_S = 0.1

TaskFactory = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


class BusHub(Hub, Protocol):
    """A bus's hub as the runtime holds it: read by the pollers, keeping its
    own metrics (registered as ``bus.<name>``)."""

    stats: HubMetrics


def store_path(data_dir: Path) -> Path:
    return Path(data_dir) / STORE_FILENAME


def open_store(config: SiteConfig) -> Store:
    """The store configured for this site."""
    from gateway.store import Store

    return Store(
        store_path(config.data_dir),
        retention_s=config.store.retention_days * 86400,
        max_bytes=int(config.store.max_mb * 2**20),
    )


class Gateway:
    """Polls, stores and forwards, until its stop event is set."""

    def __init__(
        self,
        config: SiteConfig,
        *,
        store: Store | None = None,
        wall_ns: Callable[[], int] = time.time_ns,
        hub_factory: Callable[[AnyBus], contextlib.AbstractAsyncContextManager[BusHub]]
        | None = None,
    ) -> None:
        self.config = config
        self.metrics = GatewayMetrics(latency_window=config.metrics.latency_window)
        self.queue: asyncio.Queue[Record] = asyncio.Queue(maxsize=config.store.queue_size)
        self.wall_ns = wall_ns
        self._store = store
        self._owns_store = store is None
        self._hub_factory = hub_factory or _default_hub
        self._extra: list[tuple[str, TaskFactory]] = []
        self._held: list[Record] = []
        self._writer_stop = asyncio.Event()
        self._give_up_at: float | None = None  # set by a stop: when the writer gives up
        self._observers: list[Callable[[Record], None]] = []
        self.runners: list[SinkRunner] = []
        # while the store refuses writes: records held, alarms and samples live
        self.outage = StoreOutage(wall_ns=wall_ns)
        self.metrics.registry.register("store", self._store_health)
        self.hubs: dict[str, BusHub] = {}  # by bus name, once run() opened them
        self.stop_event = asyncio.Event()
        self.started = asyncio.Event()
        # The regulatory statistics and the snapshots, when enabled.
        self._stats: tuple[StatsAggregator, Snapshotter] | None = None
        if config.stats.enabled:
            from gateway.stats import Snapshotter, StatsAggregator

            self._stats = (
                StatsAggregator(int(config.stats.interval_s), clock=wall_ns),
                Snapshotter(config.stats.snapshot_interval_s, clock=wall_ns),
            )
        # An alarm is committed at once, not after the writer's batch interval.
        self._alarm_queued = asyncio.Event()
        self.alarms: AlarmService | None = None
        if config.alarm_rules:
            from gateway.alarms.service import AlarmService

            self.alarms = AlarmService(config, clock=wall_ns)
            self.alarms.attach(self)

    @property
    def store(self) -> Store | None:
        """The store, once ``run`` has opened it (or the one given)."""
        return self._store

    @property
    def _opened(self) -> Store:
        if self._store is None:
            raise RuntimeError("the gateway's store is opened by run()")
        return self._store

    def add_task(self, name: str, factory: TaskFactory) -> None:
        """Run ``factory(stop_event)`` alongside the pollers (before ``run``)."""
        self._extra.append((name, factory))

    def add_observer(self, observer: Callable[[Record], None]) -> None:
        """Call ``observer`` with every reading (a SAMPLE record of all the
        points of one request, before report by exception) and every
        comm-loss record. It runs on the event loop: keep it quick, hand
        heavy work to a task (``add_task``). Alarms hook in here."""
        self._observers.append(observer)

    def request_stop(self) -> None:
        self.stop_event.set()

    async def emit(self, record: Record) -> None:
        """Queue a record for the store; waits (and counts it) when full."""
        if self.alarms is not None:
            self.alarms.mark(record)
        if self.queue.full():
            self.metrics.writer.backpressure += 1
            try:
                await self.queue.put(record)
            except asyncio.CancelledError:
                # Stopped while waiting for room: the record was read from
                # the device, so it is kept for the final flush (at most one
                # per producer, so memory stays bounded).
                self._held.append(record)
                raise
        else:
            self.queue.put_nowait(record)
        if record.kind is RecordKind.ALARM:
            self._alarm_queued.set()
        self.metrics.queue_depth = self.queue.qsize()

    # -- lifecycle ---------------------------------------------------------

    async def run(self) -> None:
        if self._store is None:
            self._store = await asyncio.to_thread(open_store, self.config)
        self.outage.prepare(self._store.path)
        try:
            async with contextlib.AsyncExitStack() as hubs:
                hub_of = await self._open_hubs(hubs)
                await self._run_tasks(hub_of)
        finally:
            if self._owns_store:
                await asyncio.to_thread(self._close_store, self._store)

    @staticmethod
    def _close_store(store: Store) -> None:
        from gateway.store.errors import StoreError

        try:
            store.close()  # releases the file even when its last flush fails
        except StoreError as exc:  # a full disk at stop: the records are stored
            log.error(
                "store closed without its last flush: %s; the latest values are "
                "rebuilt from the stored records at the next start", exc,
            )  # fmt: skip

    async def _open_hubs(self, stack: contextlib.AsyncExitStack) -> dict[str, Hub]:
        """Open every used bus, ``OPEN_HUBS_AT_ONCE`` at a time: a hub
        connects as it opens, and one after the other 2,000 Modbus TCP
        devices took minutes before the first poll."""
        hub_of: dict[str, Hub] = {}
        used = {d.bus.name for d in self.config.devices}
        buses = [b for b in self.config.buses if not isinstance(b, AsciiBus) and b.name in used]
        managers = [self._hub_factory(bus) for bus in buses]
        gate = asyncio.Semaphore(OPEN_HUBS_AT_ONCE)

        async def enter(cm: contextlib.AbstractAsyncContextManager[BusHub]) -> BusHub:
            async with gate:
                hub = await cm.__aenter__()
                # closed at the end (in reverse), even when a stop cancels the rest
                stack.push_async_exit(cm.__aexit__)
                return hub

        opened = await asyncio.gather(*(enter(cm) for cm in managers), return_exceptions=True)
        failed: BaseException | None = None
        for bus, hub in zip(buses, opened, strict=True):
            if isinstance(hub, BaseException):
                failed = failed or hub
                continue
            self.metrics.registry.register(f"bus.{bus.name}", hub.stats.as_dict)
            hub_of[bus.name] = self.hubs[bus.name] = hub
        if failed is not None:
            raise failed
        return hub_of

    async def _run_tasks(self, hub_of: dict[str, Hub]) -> None:
        from gateway.recovery import unclean_stop

        unclean = await asyncio.to_thread(unclean_stop, self._opened)
        if unclean is not None:  # killed last time: say so before this start
            site = self.config.site
            await self.emit(
                unclean.event(site=site.name, gateway=site.gateway, now_ns=self.wall_ns())
            )
        await self.emit(self._event("gateway_start", {"devices": len(self.config.devices)}))
        recovery = None
        if unclean is not None and self._stats is not None:
            recovery = asyncio.create_task(self._recover_stats(unclean), name="recovery")
        writer = asyncio.create_task(self._writer(), name="writer")
        # first polls spread over each interval: no burst of every device at once
        devices = self.config.devices
        now = time.monotonic()
        phases = spread_phases([d.config.poll_interval_s for d in devices])
        pollers = [
            asyncio.create_task(self._poller(d, hub_of, now + phase), name=f"poll:{d.name}")
            for d, phase in zip(devices, phases, strict=True)
        ]
        service_stop = asyncio.Event()
        services = [
            asyncio.create_task(self._metrics_loop(service_stop), name="metrics"),
            asyncio.create_task(self._retention_loop(service_stop), name="retention"),
        ]
        if self._stats is not None:
            services.append(
                asyncio.create_task(self._stats_loop(service_stop, *self._stats), name="stats")
            )
        services += [
            asyncio.create_task(factory(service_stop), name=name) for name, factory in self._extra
        ]
        sink_stop = asyncio.Event()
        sinks = await self._start_sinks(sink_stop)
        log.info(
            "gateway running",
            extra={"site": self.config.site.name, "devices": len(pollers), "sinks": len(sinks)},
        )
        self.started.set()
        try:
            watched = [*pollers, writer, *services]
            stop_wait = asyncio.create_task(self.stop_event.wait())
            done, _ = await asyncio.wait([stop_wait, *watched], return_when=asyncio.FIRST_COMPLETED)
            stop_wait.cancel()
            for task in done:
                if task is not stop_wait and not task.cancelled() and task.exception():
                    # A task died: that is a bug or a broken store, not a
                    # device fault (those are handled inside the pollers).
                    raise RuntimeError(f"task {task.get_name()} failed") from task.exception()
        finally:
            log.info("gateway stopping")
            await cancel_tasks(pollers)
            service_stop.set()
            await cancel_tasks(services, grace_s=2.0)
            if recovery is not None:
                await cancel_tasks([recovery], grace_s=DRAIN_GIVE_UP_S)
            await self.emit(self._event("gateway_stop", {}))
            await self._drain(writer)
            await self._final_metrics()
            sink_stop.set()
            await cancel_tasks(sinks, grace_s=SINK_STOP_TIMEOUT_S)
            log.info(
                "gateway stopped",
                extra={
                    "records_stored": self.metrics.writer.records_stored,
                    "values_stored": self.metrics.writer.values_stored,
                },
            )

    async def _poller(
        self, device: CompiledDevice, hub_of: dict[str, Hub], start: float | None = None
    ) -> None:
        stats = self.metrics.device(device.name)
        if isinstance(device.bus, AsciiBus):
            bus = device.bus
            poller = AsciiPoller(
                device, lambda: _open_ascii(bus), self.emit, stats, observe=self._observe
            )
            await poller.run()
        else:
            hub = hub_of[device.bus.name]
            modbus = ModbusPoller(device, hub, self.emit, stats, observe=self._observe)
            await modbus.run(start)

    def _observe(self, record: Record) -> None:
        """Every reading, before report by exception: statistics and snapshots."""
        if self._stats is not None:
            for collector in self._stats:
                collector.add(record)
        for observer in self._observers:
            observer(record)

    async def _start_sinks(self, stop: asyncio.Event) -> list[asyncio.Task[None]]:
        if not self.config.sinks:
            return []
        from gateway.sinks import build_runners

        self.runners = build_runners(
            self.config.sinks, self._opened, self.config.site.name, self.config.site.gateway
        )
        for runner in self.runners:
            self.metrics.registry.register(f"sink.{runner.name}", runner.metrics)
        return [asyncio.create_task(r.run(stop), name=f"sink:{r.name}") for r in self.runners]

    # -- writer ------------------------------------------------------------

    async def _writer(self) -> None:
        """Store queued records, one batch per ``store.batch_ms``, until
        ``_drain`` sets ``_writer_stop`` and the queue is empty. Never
        cancelled: a record it has taken from the queue is always stored
        (or, at a stop on a failing store, counted as lost)."""
        batch_s = self.config.store.batch_ms / 1000.0
        stop = self._writer_stop
        while (first := await self._next_record(stop)) is not None:
            # Let a batch gather: one transaction per batch_ms, not per
            # record (cut short by a stop, which wants everything stored now,
            # and by an alarm, which must leave at once).
            if first.kind is not RecordKind.ALARM:
                await stopped_within(stop, batch_s, wake=self._alarm_queued)
            self._alarm_queued.clear()
            await self._store_batch([first, *self._take_queued()])

    async def _next_record(self, stop: asyncio.Event) -> Record | None:
        """The next queued record, or None once ``stop`` is set and the
        queue is empty."""
        while True:
            if not self.queue.empty():
                return self.queue.get_nowait()
            if stop.is_set():
                return None
            get = asyncio.ensure_future(self.queue.get())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({get, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                get.cancel()  # a get cancelled before it finished takes nothing
            if get.done() and not get.cancelled():
                return get.result()

    def _take_queued(self) -> list[Record]:
        batch: list[Record] = []
        while len(batch) < MAX_BATCH_RECORDS:
            try:
                batch.append(self.queue.get_nowait())
            except asyncio.QueueEmpty:
                break
        self.metrics.queue_depth = self.queue.qsize()
        return batch

    async def _store_batch(self, batch: list[Record]) -> None:
        """Append one batch. While running, a store error never holds the
        pollers back: the batch goes to ``self.outage`` (held in memory, its
        alarms and samples offered live to the sinks) and is tried again,
        with what was held before it, when the backoff allows. Once a stop
        has set ``_give_up_at`` (``DRAIN_GIVE_UP_S`` after the stop) it
        retries until then, so a full disk cannot block the stop forever,
        and logs what was lost."""
        from gateway.store.errors import StoreError

        outage = self.outage
        if outage.failing:
            self._offer_live(batch)
            outage.hold(batch)
            if self._give_up_at is None and not outage.due():
                return
            batch = outage.take_held()
        # Stored with the batch, in its transaction: after a kill the stored
        # counters are exactly what the store holds. The other counters (polls,
        # ...) ride the same transaction, as pending bumps.
        stored = {"records_stored": len(batch), "values_stored": sum(len(r) for r in batch)}
        for name, n in self.metrics.counter_deltas().items():
            self._opened.bump(name, n)
        backoff = Backoff(STORE_RETRY_FIRST_S, STORE_RETRY_MAX_S)
        alarms = [] if outage.failing else [r for r in batch if r.kind is RecordKind.ALARM]
        while True:
            try:
                await self._append(batch, stored, alarms)
                break
            except StoreError as exc:
                self.metrics.writer.store_errors += 1
                deadline = self._give_up_at
                if deadline is None:  # running: hold it, keep polling
                    if not outage.failing:
                        offered = {id(r) for r in alarms}
                        self._offer_live([r for r in batch if id(r) not in offered])
                    outage.failed(batch, exc)
                    return
                if time.monotonic() >= deadline:
                    log.error(
                        "store still failing at shutdown: %d records lost: %s", len(batch), exc
                    )
                    return
                delay = min(backoff.next_delay(), max(0.0, deadline - time.monotonic()))
                log.error("cannot write to the store, retrying in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
        for name, n in outage.recovered(len(batch)).items():
            self._opened.bump(name, n)
        w = self.metrics.writer
        w.batches += 1
        w.records_stored += stored["records_stored"]
        w.values_stored += stored["values_stored"]
        alarm = any(r.kind is RecordKind.ALARM for r in batch)
        for runner in self.runners:
            runner.notify(alarm=alarm)

    async def _append(
        self, batch: list[Record], stored: dict[str, int], alarms: list[Record]
    ) -> None:
        """``Store.append`` in a worker thread. When the batch has alarms
        and the commit takes longer than ``SLOW_ALARM_COMMIT_S``, they are
        offered live meanwhile (and leave ``alarms`` emptied: offered once)."""
        append = asyncio.ensure_future(asyncio.to_thread(self._opened.append, batch, stored))
        if alarms and self.runners:
            done, _ = await asyncio.wait({append}, timeout=SLOW_ALARM_COMMIT_S)
            if not done:
                for runner in self.runners:
                    runner.offer_live(list(alarms))
                self.metrics.writer.slow_alarm_commits += 1
            else:
                alarms.clear()
        await append

    def _offer_live(self, batch: list[Record]) -> None:
        """Alarms and latest values leave even when the store cannot take them."""
        live = [r for r in batch if r.kind in LIVE_KINDS]
        if live:
            for runner in self.runners:
                runner.offer_live(live)

    def _store_health(self) -> dict[str, Value]:
        return {
            "failing": self.outage.failing,
            "held_records": self.outage.held_records,
            "outage_dropped": sum(self.outage.dropped.values()),
        }

    async def _drain(self, writer: asyncio.Task[None]) -> None:
        """Let the writer store whatever is queued and end; then store the
        records producers held when they were stopped waiting for room."""
        self._give_up_at = time.monotonic() + DRAIN_GIVE_UP_S
        self._writer_stop.set()
        with contextlib.suppress(Exception):  # a writer that died was reported by run
            await writer
        while not self.queue.empty():  # left by a writer that died
            await self._store_batch(self._take_queued())
        if self._held:
            held, self._held = self._held, []
            await self._store_batch(sorted(held, key=lambda r: r.ts_ns))

    # -- housekeeping ------------------------------------------------------

    async def _metrics_loop(self, stop: asyncio.Event) -> None:
        interval = self.config.metrics.interval_s
        while not await stopped_within(stop, interval):
            await self._publish_metrics()

    async def _publish_metrics(self) -> None:
        self.metrics.store_bytes = await asyncio.to_thread(self._opened.size_bytes)
        self.metrics.queue_depth = self.queue.qsize()
        for name, n in self.metrics.counter_deltas().items():
            self._opened.bump(name, n)
        await self.emit(self.metrics.snapshot(self.wall_ns()))

    async def _final_metrics(self) -> None:
        """The last numbers of a run, after the final flush, stored directly
        (the writer has ended): the METRIC record and the persistent
        counters then agree with what the run stored, this record included
        (the demo and `minegate status` rely on it; ``_store_batch`` bumps
        the counters)."""
        self.metrics.store_bytes = await asyncio.to_thread(self._opened.size_bytes)
        self.metrics.queue_depth = self.queue.qsize()
        await self._store_batch([self.metrics.snapshot(self.wall_ns())])

    async def _recover_stats(self, unclean: UncleanStop) -> None:
        """The statistics of the window the killed run was in, from the
        samples it stored (in a worker thread: a big site takes seconds)."""
        from gateway.recovery import interrupted_window_stats

        window_s = int(self.config.stats.interval_s)
        try:
            records = await asyncio.to_thread(
                interrupted_window_stats, self._opened, unclean, window_s
            )
        except asyncio.CancelledError:
            log.warning("stopped before the interrupted window's statistics were computed")
            raise
        for record in records:
            await self.emit(record)

    async def _stats_loop(
        self, stop: asyncio.Event, stats: StatsAggregator, snapshots: Snapshotter
    ) -> None:
        while True:
            stopped = await stopped_within(stop, 1.0)
            out = stats.flush_all() if stopped else stats.flush()
            out += snapshots.flush()
            for rec in out:
                await self.emit(rec)
            if stopped:
                return

    async def _retention_loop(self, stop: asyncio.Event) -> None:
        from gateway.store.errors import StoreError

        while not await stopped_within(stop, RETENTION_EVERY_S):
            try:
                removed = await asyncio.to_thread(self._opened.enforce_limits)
            except StoreError as exc:  # a full disk: the writer's outage says the rest
                log.warning("store limits could not run: %s", exc)
                continue
            if any(removed.values()):
                log.warning("store limits removed records", extra={"removed": removed})

    def _event(self, name: str, extra: dict[str, object]) -> Record:
        return Record(
            RecordKind.EVENT,
            METRICS_SOURCE,
            self.wall_ns(),
            ["event"],
            [name],
            [""],
            [Quality.GOOD],
            fields={
                "event": name,
                "site": self.config.site.name,
                "gateway": self.config.site.gateway,
                **extra,
            },
        )


async def cancel_tasks(tasks: list[asyncio.Task[None]], grace_s: float = 0.0) -> None:
    """Let tasks finish on their own for ``grace_s``, then cancel the rest.

    Cancellation is repeated until each task has ended: in Python 3.11 a
    cancel that races with an ``asyncio.wait_for`` finishing inside a client
    library is lost, and a poller would then run on forever. Exceptions other
    than cancellation are logged, never swallowed silently."""
    if not tasks:
        return
    if grace_s > 0:
        await asyncio.wait(tasks, timeout=grace_s)
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.5)
    for t in tasks:
        if t.cancelled():
            continue
        exc = t.exception()
        if exc is not None:
            log.error("task %s ended with an error", t.get_name(), exc_info=exc)


def _default_hub(bus: AnyBus) -> contextlib.AbstractAsyncContextManager[BusHub]:
    from drivers.modbus import make_hub

    hub: contextlib.AbstractAsyncContextManager[BusHub] = make_hub(bus)
    return hub


def _open_ascii(bus: AsciiBus) -> contextlib.AbstractAsyncContextManager[LineSource]:
    from drivers.ascii import make_port

    return make_port(bus)

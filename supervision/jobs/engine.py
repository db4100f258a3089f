"""The two job engines, one job code (:func:`supervision.jobs.run.run_job`).

* :class:`Dispatcher` runs in the service's event loop with either engine.
  It looks for claimable jobs (new ones, and ones whose worker's lease
  ended) when poked and every ``poll_s``; ``embedded`` runs them in a
  thread pool of ``workers``; ``dramatiq`` sends each as a message to Redis
  for the workers of ``minegate platform worker`` (the same job sent twice
  is harmless: only one claim runs it). So a job whose worker died is run
  again by either engine, whether or not its message survived.
* :func:`serve_worker` is ``minegate platform worker``: a Dramatiq worker
  on this process. Messages are acknowledged after the job ran (Dramatiq's
  Redis broker acks late); a worker killed mid-check leaves its message to
  be requeued and its job's lease to end.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from supervision.jobs.run import JobSettings, claimable, run_job
from supervision.uploads.files import sweep_tus

if TYPE_CHECKING:
    from supervision.config import JobsSection, PlatformConfig
    from supervision.context import PlatformContext

log = logging.getLogger("minegate.platform.jobs")

QUEUE = "minegate-surveys"
SWEEP_EVERY_S = 3600.0  # expired unfinished tus uploads removed this often
ACTOR = "check_survey"


def settings_of(config: PlatformConfig) -> JobSettings:
    return JobSettings(
        config.uploads.dir, config.jobs.lease_s, config.jobs.max_attempts, config.publish
    )


def make_broker(jobs: JobsSection) -> Any:
    from dramatiq.brokers.redis import RedisBroker

    broker = RedisBroker(
        url=jobs.redis_url,
        heartbeat_timeout=int(jobs.lease_s * 1000),
        # check for dead workers' messages often: there are few messages
        maintenance_chance=100_000,
    )
    broker.declare_queue(QUEUE)
    return broker


class Dispatcher:
    def __init__(self, ctx: PlatformContext, on_done: Callable[[int], None] | None = None) -> None:
        """``on_done`` is called in the event loop when a job finished here."""
        self.ctx = ctx
        self.cfg = ctx.config.jobs
        self.settings = settings_of(ctx.config)
        self.on_done = on_done
        self._wake = asyncio.Event()
        self._running: set[int] = set()
        self._sent: dict[int, float] = {}  # dramatiq: job -> when sent
        self._broker: Any = None
        self._next_sweep = 0.0

    def poke(self) -> None:
        """A new job: look now (thread-safe)."""
        loop = getattr(self, "_loop", None)
        if loop is not None:
            loop.call_soon_threadsafe(self._wake.set)

    def _free(self) -> list[int]:
        with self.ctx.sessions() as db:
            return claimable(db, self.ctx.clock())

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        pool = None
        if self.cfg.engine == "embedded":
            pool = ThreadPoolExecutor(max(1, self.cfg.workers), thread_name_prefix="survey-job")
        else:
            self._broker = await asyncio.to_thread(make_broker, self.cfg)
        try:
            while True:
                try:
                    ids = await asyncio.to_thread(self._free)
                except OperationalError as exc:  # the database away: wait it out
                    log.error("survey jobs: database unavailable: %s", exc.orig)
                    ids = []
                except PoolTimeout as exc:  # every connection busy for a while: next round
                    log.error("survey jobs: no database connection free: %s", exc)
                    ids = []
                if pool is not None:
                    for job_id in ids:
                        if job_id in self._running or len(self._running) >= self.cfg.workers:
                            continue
                        self._running.add(job_id)
                        fut = self._loop.run_in_executor(pool, self._run_one, job_id)
                        fut.add_done_callback(functools.partial(self._finished, job_id))
                elif ids:
                    from redis.exceptions import RedisError

                    try:
                        await asyncio.to_thread(self._send, ids)
                    except RedisError as exc:  # Redis away: the jobs wait in the table
                        log.error("survey jobs: Redis %s unavailable: %s", self.cfg.redis_url, exc)
                if time.monotonic() >= self._next_sweep:
                    self._next_sweep = time.monotonic() + SWEEP_EVERY_S
                    await asyncio.to_thread(self._sweep)
                try:
                    await asyncio.wait_for(self._wake.wait(), self.cfg.poll_s)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
            if self._broker is not None:
                self._broker.close()

    def _done(self, job_id: int) -> None:
        """From a pool thread: tell the loop (the evaluator) a job finished."""
        if self.on_done is None:
            return
        try:
            self._loop.call_soon_threadsafe(self.on_done, job_id)
        except RuntimeError:  # the service stopped while this job ran: it is stored done
            log.info("job %d finished after the service stopped", job_id)

    def _sweep(self) -> None:
        try:
            n = sweep_tus(self.ctx.config.uploads.dir, time.time())
        except OSError as exc:
            log.warning("expired tus uploads not swept: %s", exc)
            return
        if n:
            log.info("removed %d expired unfinished tus upload(s)", n)

    def _run_one(self, job_id: int) -> None:
        try:
            run_job(self.ctx.sessions, job_id, self.settings, self.ctx.clock, self._done)
        except Exception:
            log.exception("job %d: the job runner failed; the job will be claimed again", job_id)

    def _finished(self, job_id: int, _fut: object = None) -> None:
        self._running.discard(job_id)
        self._wake.set()

    def _send(self, ids: list[int]) -> None:
        from dramatiq import Message

        now = time.monotonic()
        for job_id in ids:
            if now - self._sent.get(job_id, -1e9) < self.cfg.lease_s:
                continue  # sent lately: a worker has it, or will
            self._broker.enqueue(
                Message(queue_name=QUEUE, actor_name=ACTOR, args=(job_id,), kwargs={}, options={})
            )
            self._sent[job_id] = now


def serve_worker(config: PlatformConfig, threads: int = 1) -> None:
    """Consume survey jobs from Redis until SIGTERM or SIGINT."""
    import dramatiq
    from dramatiq import Worker

    from supervision.db import make_engine, make_sessionmaker, system_clock

    broker = make_broker(config.jobs)
    sessions = make_sessionmaker(make_engine(config.database.url))
    settings = settings_of(config)

    def check_survey(job_id: int) -> None:
        outcome = run_job(sessions, job_id, settings, system_clock)
        log.info("job %d: %s", job_id, outcome)
        if outcome == "crashed":
            raise RuntimeError(f"job {job_id}: the check crashed (retried)")

    dramatiq.actor(
        broker=broker,
        actor_name=ACTOR,
        queue_name=QUEUE,
        max_retries=config.jobs.max_attempts,
        min_backoff=1000,
        max_backoff=30_000,
        time_limit=7 * 24 * 3600 * 1000,
    )(check_survey)
    worker = Worker(broker, worker_threads=threads)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    worker.start()
    log.info("survey worker on %s (%d thread(s))", config.jobs.redis_url, threads)
    print("worker started", flush=True)
    try:
        stop.wait()
    finally:
        worker.stop()
        broker.close()

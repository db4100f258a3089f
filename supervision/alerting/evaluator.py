"""The evaluation loop.

Two kinds of round (bench/results/platform_profile.md says why):

- **incremental**, at once when ingest applied alarms, statuses or survey
  checks: ingest names the gateways (``poke(gateways)``) and only their
  rows are read and their alerts reconciled (``evaluate_gateways``);
- **the sweep**, every ``evaluate_interval_s``: every rule over the whole
  store, for what time alone changes (heartbeat expiry, suspension orders,
  silent devices, escalation, reminders). One instance sweeps at a time:
  the one holding the ``alert-sweep`` lease (``supervision.db.lease``),
  renewed every sweep; when its holder dies the lease expires and another
  instance takes it over. ``poke()`` without gateways (a survey job
  finished) asks for a full round on this instance, lease or not.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy.exc import OperationalError

from supervision.alerting.service import Reconciled, evaluate, evaluate_gateways
from supervision.context import PlatformContext
from supervision.db.lease import hold, release

log = logging.getLogger("minegate.platform.alerting")

SWEEP_LEASE = "alert-sweep"


class Evaluator:
    def __init__(self, ctx: PlatformContext, on_change: Callable[[], None] = lambda: None) -> None:
        self.ctx = ctx
        self.on_change = on_change  # alerts changed: the notifier can start at once
        self.wake = asyncio.Event()
        self.rounds = 0
        self.sweeps = 0
        self.started_ns = ctx.clock()
        self.holder = f"{ctx.config.mqtt.client_id}/{uuid.uuid4().hex[:12]}"
        interval = ctx.config.alerting.evaluate_interval_s
        #: a dead holder's lease is taken over this long after its last renewal
        self.lease_ttl_s = max(3 * interval, 10.0)
        self._pending: set[int] = set()
        self._full = True  # the first round is a full one

    def poke(self, gateways: Iterable[int] | None = None) -> None:
        """Evaluate these gateways' alerts now; without gateways, all."""
        if gateways is None:
            self._full = True
        else:
            self._pending.update(gateways)
        self.wake.set()

    def _report(self, res: Reconciled) -> None:
        if res.fired or res.resolved:
            log.info("alerts: %d fired, %d resolved", res.fired, res.resolved)
        if res.fired or res.resolved or res.updated or res.escalated or res.reminded:
            self.on_change()
        self.rounds += 1

    def run_once(self) -> None:
        """A full evaluation, whoever holds the lease."""
        with self.ctx.sessions() as db, db.begin():
            res = evaluate(db, self.ctx.clock(), self.ctx.config.alerting, self.started_ns)
        self._report(res)

    def holds_lease(self) -> bool:
        with self.ctx.sessions() as db, db.begin():
            return hold(db, SWEEP_LEASE, self.holder, self.ctx.clock(), self.lease_ttl_s)

    def sweep(self) -> bool:
        """The periodic full round if this instance holds the lease."""
        if not self.holds_lease():
            return False
        self.run_once()
        self.sweeps += 1
        return True

    def run_gateways(self, gateways: set[int]) -> None:
        with self.ctx.sessions() as db, db.begin():
            res = evaluate_gateways(
                db, gateways, self.ctx.clock(), self.ctx.config.alerting, self.started_ns
            )
        self._report(res)

    def _round(self, sweep_due: bool, full: bool, pending: set[int]) -> None:
        """One round, in a worker thread. ``full`` and ``pending`` were
        taken from ``poke``'s on the event loop before it started, so a poke
        during the round is never lost: it waits for the next round."""
        if full:
            self.run_once()
        elif sweep_due and self.sweep():
            pass  # the sweep read every gateway after the pokes it covers
        elif pending:
            self.run_gateways(pending)

    async def run(self) -> None:
        interval = self.ctx.config.alerting.evaluate_interval_s
        next_sweep = 0.0
        try:
            while True:
                now = time.monotonic()
                due = now >= next_sweep
                if due:
                    next_sweep = now + interval
                full, self._full = self._full, False
                pending, self._pending = self._pending, set()
                try:
                    await asyncio.to_thread(self._round, due, full, pending)
                except OperationalError as exc:
                    log.error("alert evaluation: database unavailable: %s", exc.orig)
                    self._full = self._full or full  # not done: next round
                    self._pending |= pending
                if not self._pending and not self._full:
                    try:
                        timeout = max(0.0, next_sweep - time.monotonic())
                        await asyncio.wait_for(self.wake.wait(), timeout)
                    except TimeoutError:
                        pass
                self.wake.clear()
        finally:
            try:  # a clean stop hands the sweep over at once
                with self.ctx.sessions() as db, db.begin():
                    release(db, SWEEP_LEASE, self.holder)
            except Exception as exc:
                log.warning("alert sweep lease not released: %s", exc)

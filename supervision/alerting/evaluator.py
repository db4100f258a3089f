"""The evaluation loop: every ``evaluate_interval_s``, and at once when
ingest applied an alarm or a status (``wake``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.exc import OperationalError

from supervision.alerting.service import evaluate
from supervision.context import PlatformContext

log = logging.getLogger("minegate.platform.alerting")


class Evaluator:
    def __init__(self, ctx: PlatformContext, on_change: Callable[[], None] = lambda: None) -> None:
        self.ctx = ctx
        self.on_change = on_change  # alerts changed: the notifier can start at once
        self.wake = asyncio.Event()
        self.rounds = 0
        self.started_ns = ctx.clock()

    def poke(self) -> None:
        self.wake.set()

    def run_once(self) -> None:
        with self.ctx.sessions() as db, db.begin():
            res = evaluate(db, self.ctx.clock(), self.ctx.config.alerting, self.started_ns)
        if res.fired or res.resolved:
            log.info("alerts: %d fired, %d resolved", res.fired, res.resolved)
        if res.fired or res.resolved or res.updated or res.escalated or res.reminded:
            self.on_change()
        self.rounds += 1

    async def run(self) -> None:
        interval = self.ctx.config.alerting.evaluate_interval_s
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except OperationalError as exc:
                log.error("alert evaluation: database unavailable: %s", exc.orig)
            try:
                await asyncio.wait_for(self.wake.wait(), interval)
            except TimeoutError:
                pass
            self.wake.clear()

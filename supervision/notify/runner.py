"""The notify loop: queue deliveries for new alert events, send those due;
every ``notify.interval_s`` and at once when the evaluator changed alerts."""

from __future__ import annotations

import asyncio
import logging
import random

from sqlalchemy.exc import OperationalError

from supervision.context import PlatformContext
from supervision.notify.pipeline import Muter, dispatch
from supervision.notify.sender import send_due

log = logging.getLogger("minegate.platform.notify")


class Notifier:
    def __init__(self, ctx: PlatformContext, muters: tuple[Muter, ...] = ()) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.notify
        self.muters = muters
        self.wake = asyncio.Event()
        self.rng = random.Random()

    def poke(self) -> None:
        self.wake.set()

    def run_once(self) -> tuple[int, int]:
        """(deliveries queued, deliveries attempted)."""
        receivers = self.cfg.receivers
        with self.ctx.sessions() as db, db.begin():
            queued = dispatch(db, receivers, self.ctx.clock(), muters=self.muters)
        mqtt = self.ctx.config.mqtt
        sent = send_due(self.ctx.sessions, receivers, self.cfg, self.ctx.clock(), self.rng, mqtt)
        return queued, sent

    async def run(self) -> None:
        while True:
            try:
                await asyncio.to_thread(self.run_once)
            except OperationalError as exc:
                log.error("notify: database unavailable: %s", exc.orig)
            try:
                await asyncio.wait_for(self.wake.wait(), self.cfg.interval_s)
            except TimeoutError:
                pass
            self.wake.clear()

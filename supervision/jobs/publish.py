"""Findings of checked uploads to InfluxDB and MQTT, through the gateway's
own sinks (``gateway.sinks``: the same InfluxDB 1.x / 2.x and MQTT classes,
config models and encoders as ``minegate survey check --publish``).

* The records are the check's own: ``survey.findings.findings_records``
  (underground) or ``survey.openpit.findings.pit_records`` (open pit), with
  the mine's code and the survey's id added as tags. They are made by the
  job and written to ``publish_outbox`` (a row per configured sink) in the
  transaction that completes the job (:func:`outbox_rows`): a job is never
  done without its findings waiting to be sent, whichever engine ran it.
* :class:`Publisher`, a task of the service, sends the rows that are due,
  oldest first, one survey's records per write, and marks each sent only
  after the sink accepted it. A sink down (refused connection, 5xx, broker
  gone) leaves its rows to be tried again with a doubling delay
  (``publish.retry_initial_s`` .. ``retry_max_s``), forever: at-least-once,
  a record may arrive twice (after a crash between the sink's acceptance
  and the mark), never zero times. Records a server rejects as malformed
  are logged with its reason and not retried.
* Several instances of the service share the outbox: an instance
  **claims** the rows it is about to send (``claim``, ``claimed_until_ns``:
  a token of its own and a lease of ``publish.claim_s``), by
  ``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL and, on both
  backends, an update that only takes rows unclaimed or whose lease has
  passed; each row's claim is renewed just before it is written and
  released when it is sent or failed. So one row is sent by one instance at
  a time, and the rows of an instance that died are taken by another when
  its lease ends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError

from gateway.model import Quality, Record, RecordKind
from supervision.jobs.models import PublishOutbox

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from gateway.sinks.base import Sink
    from supervision.config import PublishSection
    from supervision.context import PlatformContext

log = logging.getLogger("minegate.platform.publish")

#: most outbox rows taken per sink per round
TAKE = 50


def dump_records(records: Sequence[Record]) -> str:
    return json.dumps(
        [
            {
                "kind": r.kind.value,
                "device": r.device,
                "ts_ns": r.ts_ns,
                "points": list(r.points),
                "values": list(r.values),
                "units": list(r.units),
                "qualities": [q.value for q in r.qualities],
                "fields": r.fields,
            }
            for r in records
        ],
        default=str,
    )


def load_records(text: str) -> list[Record]:
    return [
        Record(
            RecordKind(d["kind"]),
            d["device"],
            int(d["ts_ns"]),
            list(d["points"]),
            list(d["values"]),
            list(d["units"]),
            [Quality(q) for q in d["qualities"]],
            dict(d["fields"]),
        )
        for d in json.loads(text)
    ]


def tagged(records: list[Record], mine_code: str, survey_id: int) -> list[Record]:
    """The check's records with the mine's code and the survey's id as tags."""
    for r in records:
        tags = r.fields.get("tags")
        if isinstance(tags, dict):
            tags["mine_code"] = mine_code
            tags["survey"] = str(survey_id)
    return records


def outbox_rows(
    cfg: PublishSection, survey_id: int, records: list[Record], now_ns: int
) -> list[PublishOutbox]:
    """One row per configured sink (none without sinks)."""
    if not cfg.sinks or not records:
        return []
    text = dump_records(records)
    return [
        PublishOutbox(
            survey_id=survey_id,
            sink=s.name,
            records=text,
            created_ns=now_ns,
            attempts=0,
            next_try_ns=0,
            error="",
        )
        for s in cfg.sinks
    ]


def pending(db: Session) -> dict[str, int]:
    """Rows not yet sent, per sink (for status and tests)."""
    out: dict[str, int] = {}
    for sink in db.scalars(select(PublishOutbox.sink).where(PublishOutbox.sent_ns.is_(None))):
        out[sink] = out.get(sink, 0) + 1
    return out


class Publisher:
    """Sends the outbox to the sinks of ``publish.sinks``; one per service
    instance, several instances share the outbox by claims."""

    def __init__(self, ctx: PlatformContext) -> None:
        self.ctx = ctx
        self.cfg = ctx.config.publish
        self._sinks: dict[str, Sink] = {}
        self._wake = asyncio.Event()
        self._retry_at: dict[str, int] = {}  # a sink that failed: not before (clock ns)
        #: this instance's claim on the outbox rows it sends
        self._token = secrets.token_hex(16)
        self.status: dict[str, dict[str, Any]] = {
            s.name: {"sent": 0, "failures": 0, "last_error": ""} for s in self.cfg.sinks
        }

    def poke(self) -> None:
        """A job finished: look now (call from the event loop)."""
        self._wake.set()

    def _sink(self, name: str) -> Sink:
        from gateway.sinks import make_sink

        if name not in self._sinks:
            cfg = next(s for s in self.cfg.sinks if s.name == name)
            self._sinks[name] = make_sink(cfg, self.cfg.site, self.cfg.gateway)
        return self._sinks[name]

    def _due(self, name: str) -> list[tuple[int, int, str, int]]:
        """Claim up to TAKE due rows of the sink for this instance."""
        now = self.ctx.clock()
        until = now + int(self.cfg.claim_s * 1e9)
        free = or_(PublishOutbox.claimed_until_ns.is_(None), PublishOutbox.claimed_until_ns < now)
        cols = (PublishOutbox.id, PublishOutbox.survey_id, PublishOutbox.records,
                PublishOutbox.attempts)  # fmt: skip
        with self.ctx.sessions() as db, db.begin():
            candidates = (
                select(PublishOutbox.id)
                .where(
                    PublishOutbox.sink == name,
                    PublishOutbox.sent_ns.is_(None),
                    PublishOutbox.next_try_ns <= now,
                    free,
                )
                .order_by(PublishOutbox.id)
                .limit(TAKE)
            )
            if db.get_bind().dialect.name == "postgresql":
                # rows another instance is claiming right now are passed over
                candidates = candidates.with_for_update(skip_locked=True)
            ids = list(db.scalars(candidates))
            if not ids:
                return []
            # taken only if still free: on SQLite the write lock orders two
            # instances, the second finds them claimed
            db.execute(
                update(PublishOutbox)
                .where(PublishOutbox.id.in_(ids), PublishOutbox.sent_ns.is_(None), free)
                .values(claim=self._token, claimed_until_ns=until)
                .execution_options(synchronize_session=False)
            )
            rows = db.execute(
                select(*cols)
                .where(PublishOutbox.id.in_(ids), PublishOutbox.claim == self._token)
                .order_by(PublishOutbox.id)
            ).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def _renew(self, row_id: int) -> bool:
        """Our claim on the row extended before it is written; False: lost
        (another instance took it after our lease ended, or it was sent)."""
        with self.ctx.sessions() as db, db.begin():
            res = db.execute(
                update(PublishOutbox)
                .where(
                    PublishOutbox.id == row_id,
                    PublishOutbox.claim == self._token,
                    PublishOutbox.sent_ns.is_(None),
                )
                .values(claimed_until_ns=self.ctx.clock() + int(self.cfg.claim_s * 1e9))
                .execution_options(synchronize_session=False)
            )
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    def _mark(self, row_id: int, **values: Any) -> bool:
        """Sent or failed, and the claim released (only while it is ours)."""
        with self.ctx.sessions() as db, db.begin():
            res = db.execute(
                update(PublishOutbox)
                .where(PublishOutbox.id == row_id, PublishOutbox.claim == self._token)
                .values(claim=None, claimed_until_ns=None, **values)
                .execution_options(synchronize_session=False)
            )
            return bool(res.rowcount == 1)  # type: ignore[attr-defined]

    def _release(self) -> None:
        """The rows claimed and not sent left to the next round (a sink down)."""
        with self.ctx.sessions() as db, db.begin():
            db.execute(
                update(PublishOutbox)
                .where(PublishOutbox.claim == self._token, PublishOutbox.sent_ns.is_(None))
                .values(claim=None, claimed_until_ns=None)
                .execution_options(synchronize_session=False)
            )

    def _delay_ns(self, attempts: int) -> int:
        delay = min(self.cfg.retry_initial_s * 2 ** max(attempts - 1, 0), self.cfg.retry_max_s)
        return int(delay * 1e9)

    async def _send_sink(self, name: str) -> None:
        from gateway.sinks.base import SinkError, is_transient

        if self.ctx.clock() < self._retry_at.get(name, 0):
            return
        due = await asyncio.to_thread(self._due, name)
        if not due:
            return
        sink = self._sink(name)
        st = self.status[name]
        for row_id, survey_id, text, attempts in due:
            if not await asyncio.to_thread(self._renew, row_id):
                log.info("findings of survey %d for %s: taken by another instance", survey_id, name)
                continue
            records = load_records(text)
            for seq, r in enumerate(records, 1):
                r.seq = seq
            try:
                if not sink.connected:
                    await sink.connect()
                result = await sink.write(records)
            except Exception as exc:  # a sink's failure is retried, never fatal
                if not (isinstance(exc, SinkError) or is_transient(exc)):
                    log.exception("publish to %s: unexpected failure", name)
                with _suppress():
                    await sink.close()
                attempts += 1
                st["failures"] += 1
                st["last_error"] = str(exc) or type(exc).__name__
                self._retry_at[name] = self.ctx.clock() + self._delay_ns(attempts)
                await asyncio.to_thread(
                    self._mark,
                    row_id,
                    attempts=attempts,
                    error=st["last_error"][:2000],
                    next_try_ns=self.ctx.clock() + self._delay_ns(attempts),
                )
                log.warning(
                    "findings of survey %d not sent to %s (%s): tried again in %.0f s",
                    survey_id, name, st["last_error"], self._delay_ns(attempts) / 1e9,
                )  # fmt: skip
                await asyncio.to_thread(self._release)
                return  # this sink is down: the rest waits for the next round
            for rej in result.rejected:
                log.error(
                    "survey %d: %s refused a finding record (%s); not sent again",
                    survey_id, name, rej.reason,
                )  # fmt: skip
            if not await asyncio.to_thread(
                self._mark, row_id, sent_ns=self.ctx.clock(), attempts=attempts + 1, error=""
            ):  # our lease ended while the sink took it: another instance may send it again
                log.warning(
                    "findings of survey %d sent to %s after this instance's claim ended "
                    "(publish.claim_s %g s too short?): they may arrive twice",
                    survey_id, name, self.cfg.claim_s,
                )  # fmt: skip
            self._retry_at.pop(name, None)
            st["sent"] += 1
            st["last_error"] = ""
            log.info("findings of survey %d sent to %s (%d records)", survey_id, name, len(records))

    async def run(self) -> None:
        try:
            while True:
                for s in self.cfg.sinks:
                    try:
                        await self._send_sink(s.name)
                    except OperationalError as exc:  # the database away: wait it out
                        log.error("publish: database unavailable: %s", exc.orig)
                try:
                    await asyncio.wait_for(self._wake.wait(), self.cfg.poll_s)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            for sink in self._sinks.values():
                with _suppress():
                    await sink.close()


def _suppress() -> Any:
    import contextlib

    return contextlib.suppress(Exception)

"""The job table: one check per survey. A worker claims a job by a
conditional update (state and lease), renews the lease while it runs and
completes it by another conditional update that only its own claim can
make: a job is never completed twice, and a job whose worker died is taken
again when its lease ends."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from supervision.db.base import Base


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


#: the stages a running check reports, in order
STAGES = ("read", "classify", "incidents", "report")


class Job(Base):
    __tablename__ = "job"
    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"), unique=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value, index=True)
    stage: Mapped[str] = mapped_column(String(16), default="")
    #: 0..1 within the stage when known
    progress: Mapped[float | None] = mapped_column()
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    #: who holds the job now: a random token per claim
    claim: Mapped[str | None] = mapped_column(String(64))
    lease_until_ns: Mapped[int | None] = mapped_column(BigInteger)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    started_ns: Mapped[int | None] = mapped_column(BigInteger)
    finished_ns: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str] = mapped_column(Text, default="")


class PublishOutbox(Base):
    """A finished check's finding records waiting for one sink (a row per
    survey and sink of ``[[publish.sinks]]``), written in the transaction
    that completes the job: the findings are never lost when a sink is
    down. The service's publisher sends them and sets ``sent_ns``; a row
    whose sink failed is tried again at ``next_try_ns`` (at-least-once)."""

    __tablename__ = "publish_outbox"
    __table_args__ = (UniqueConstraint("survey_id", "sink"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("survey.id"), index=True)
    sink: Mapped[str] = mapped_column(String(100))
    #: the records as JSON (``supervision.jobs.publish.dump_records``)
    records: Mapped[str] = mapped_column(Text)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    sent_ns: Mapped[int | None] = mapped_column(BigInteger, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_try_ns: Mapped[int] = mapped_column(BigInteger, default=0)
    error: Mapped[str] = mapped_column(Text, default="")
    #: the publisher instance sending it now (a random token per claim) and
    #: until when: another instance takes the row only after that
    claim: Mapped[str | None] = mapped_column(String(64))
    claimed_until_ns: Mapped[int | None] = mapped_column(BigInteger)

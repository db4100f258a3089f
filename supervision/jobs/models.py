"""The job table: one check per survey. A worker claims a job by a
conditional update (state and lease), renews the lease while it runs and
completes it by another conditional update that only its own claim can
make: a job is never completed twice, and a job whose worker died is taken
again when its lease ends."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
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

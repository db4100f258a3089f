"""Cursors, deliveries and every delivery attempt."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from supervision.db.base import Base


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"  # given up: a dead letter, kept and listed
    MUTED = "muted"  # not sent: a silence or an inhibition (reason in last_error)


class NotifyCursor(Base):
    """The last alert event a receiver's pipeline has taken."""

    __tablename__ = "notify_cursor"
    receiver: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_event_id: Mapped[int] = mapped_column(BigInteger, default=0)


class Delivery(Base):
    """One alert event for one receiver. Unique per (receiver, event): a
    restart or a second instance never queues it twice."""

    __tablename__ = "delivery"
    __table_args__ = (UniqueConstraint("receiver", "alert_event_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    receiver: Mapped[str] = mapped_column(String(100))
    alert_event_id: Mapped[int] = mapped_column(ForeignKey("alert_event.id"))
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"))
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_ns: Mapped[int] = mapped_column(BigInteger)
    lease_until_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_error: Mapped[str | None] = mapped_column(String(1000))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    done_ns: Mapped[int | None] = mapped_column(BigInteger)


class Silence(Base):
    """No notifications for a mine's alerts (of one kind, or all) until
    ``expires_ns``; alerts still fire and show on the pages. Who set it and
    why are kept; ending it early sets ``ended_ns``."""

    __tablename__ = "silence"
    id: Mapped[int] = mapped_column(primary_key=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    kind: Mapped[str | None] = mapped_column(String(64))
    comment: Mapped[str] = mapped_column(String(1000))
    created_by: Mapped[str] = mapped_column(String(200))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    expires_ns: Mapped[int] = mapped_column(BigInteger)
    ended_ns: Mapped[int | None] = mapped_column(BigInteger)
    ended_by: Mapped[str | None] = mapped_column(String(200))


class DeliveryAttempt(Base):
    __tablename__ = "delivery_attempt"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("delivery.id"), index=True)
    at_ns: Mapped[int] = mapped_column(BigInteger)
    status_code: Mapped[int | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(String(1000))
    duration_ms: Mapped[float] = mapped_column(Float)

"""Alerts and their transitions."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from supervision.db.base import Base


class AlertKind(StrEnum):
    GATEWAY_OFFLINE = "gateway_offline"
    SUSPECTED_ILLEGAL_PRODUCTION = "suspected_illegal_production"
    GATEWAY_ALARM = "gateway_alarm"
    DEVICE_SILENT = "device_silent"
    DEVICE_DATA_GAP = "device_data_gap"
    SURVEY_VIOLATION = "survey_violation"


class AlertState(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class Alert(Base):
    """One occurrence of a condition, from firing to resolved.

    ``fingerprint`` names the condition (``gateway_offline:gw:12``); while
    the alert fires ``open_fingerprint`` holds it too, and its unique
    constraint means one open alert per condition even when two instances
    evaluate at once. Resolved alerts keep NULL there.
    """

    __tablename__ = "alert"
    id: Mapped[int] = mapped_column(primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(500), index=True)
    open_fingerprint: Mapped[str | None] = mapped_column(String(500), unique=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    gateway_id: Mapped[int | None] = mapped_column(ForeignKey("gateway.id"))
    kind: Mapped[str] = mapped_column(String(64))
    severity: Mapped[str] = mapped_column(String(32))
    summary: Mapped[str] = mapped_column(String(1000))
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16))
    started_ns: Mapped[int] = mapped_column(BigInteger)
    updated_ns: Mapped[int] = mapped_column(BigInteger)
    resolved_ns: Mapped[int | None] = mapped_column(BigInteger)
    acked_ns: Mapped[int | None] = mapped_column(BigInteger)
    acked_by: Mapped[str | None] = mapped_column(String(200))
    #: left unacknowledged for ``alerting.escalate_after_s``: passed up
    #: (an ``escalated`` event, for the city's receivers)
    escalated_ns: Mapped[int | None] = mapped_column(BigInteger)
    #: the last ``reminder`` event (alerting.remind_every_s)
    reminded_ns: Mapped[int | None] = mapped_column(BigInteger)


class AlertEvent(Base):
    """Every transition of an alert (fired, updated, acknowledged,
    escalated, reminder, resolved), in order: the log a notify pipeline
    consumes."""

    __tablename__ = "alert_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[int] = mapped_column(ForeignKey("alert.id"), index=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    at_ns: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)

"""What ingest keeps: per gateway its liveness, the seqs already applied,
the latest value of every point, the latest state of every alarm.
History stays in InfluxDB / VictoriaMetrics."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from supervision.db.base import Base


class GatewayLiveness(Base):
    """``last_seen_ns``: platform clock at the last message from the gateway;
    ``state``: from its retained ``status`` topic (``online``/``offline``,
    the last will says ``offline`` / ``connection lost``)."""

    __tablename__ = "gateway_liveness"
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id"), primary_key=True)
    last_seen_ns: Mapped[int | None] = mapped_column(BigInteger)
    state: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(200))
    state_ts_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_seq: Mapped[int | None] = mapped_column(BigInteger)


class ReceivedSeq(Base):
    """Deduplication by (site, gateway, seq): a message whose row exists was
    applied already (at-least-once delivery, or a replay) and is dropped."""

    __tablename__ = "received_seq"
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    received_ns: Mapped[int] = mapped_column(BigInteger, index=True)


def _data_ts(ctx: Any) -> int | None:
    row = ctx.get_current_parameters()
    return None if row.get("quality") == "comm_loss" else row.get("ts_ns")


class LatestValue(Base):
    """The newest value of a point (from telemetry or snapshots); an older
    message never overwrites a newer one."""

    __tablename__ = "latest_value"
    # every snapshot rewrites its points: room on the page for HOT updates
    # (migration 0009)
    __table_args__ = ({"postgresql_with": {"fillfactor": 50}},)
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id"), primary_key=True)
    device: Mapped[str] = mapped_column(String(200), primary_key=True)
    point: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    number: Mapped[float | None] = mapped_column(Float)  # value as a number, for rules
    unit: Mapped[str] = mapped_column(String(32), default="")
    quality: Mapped[str] = mapped_column(String(16))
    ts_ns: Mapped[int] = mapped_column(BigInteger)
    #: the newest value with data (quality not ``comm_loss``): a device's
    #: ``comm_loss`` reports replace the row but not this (data gaps);
    #: written by ingest, or from ``ts_ns`` by an insert that leaves it out
    data_ts_ns: Mapped[int | None] = mapped_column(BigInteger, default=_data_ts)


class SurveyCheck(Base):
    """The latest survey check of a licence reported through a gateway
    (docs/schema.md, ``survey/<check>``): its verdict decides whether a
    ``survey_violation`` alert fires; a newer compliant check resolves it."""

    __tablename__ = "survey_check"
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id"), primary_key=True)
    licence: Mapped[str] = mapped_column(String(200), primary_key=True)
    check_id: Mapped[str] = mapped_column(String(200))
    violation: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(String(1000), default="")
    values: Mapped[Any] = mapped_column(JSON, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts_ns: Mapped[int] = mapped_column(BigInteger)


class GatewayAlarm(Base):
    """The latest transition of each alarm a gateway raised (docs/alarms.md):
    ``alarm`` is its id as a topic level, as in ``alarms/active/<alarm>``;
    ``event`` the transition (raise, ack, clear, shelve, ...) and ``actor``
    the gateway's user who made it (``(by design)`` for the rules')."""

    __tablename__ = "gateway_alarm"
    gateway_id: Mapped[int] = mapped_column(ForeignKey("gateway.id"), primary_key=True)
    alarm: Mapped[str] = mapped_column(String(200), primary_key=True)
    device: Mapped[str] = mapped_column(String(200))
    point: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(32), default="")
    actor: Mapped[str] = mapped_column(String(200), default="")
    message: Mapped[str] = mapped_column(String(1000), default="")
    value: Mapped[Any] = mapped_column(JSON, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    ts_ns: Mapped[int] = mapped_column(BigInteger)

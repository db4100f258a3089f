"""The audit trail: one row per change of the registry or the users."""

from __future__ import annotations

from sqlalchemy import BigInteger, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from supervision.db.base import Base


class AuditEvent(Base):
    """A change: who (``actor``, the user's name as it was), what
    (``action`` such as ``mine.status``, ``target`` such as ``mine M-QN-2``,
    ``detail`` in words), when (``ts_ns``), and where: the area ids of the
    object changed, so each regulator sees the changes of their area. No
    foreign keys: the trail outlives the rows it names."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(primary_key=True)
    ts_ns: Mapped[int] = mapped_column(BigInteger, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(300))
    detail: Mapped[str] = mapped_column(Text, default="")
    region_id: Mapped[int | None] = mapped_column(Integer, index=True)
    city_id: Mapped[int | None] = mapped_column(Integer, index=True)
    county_id: Mapped[int | None] = mapped_column(Integer, index=True)
    mine_id: Mapped[int | None] = mapped_column(Integer, index=True)

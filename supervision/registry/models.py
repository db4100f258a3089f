"""Registry tables: the administrative hierarchy, mines and their gateways."""

from __future__ import annotations

from datetime import date
from enum import StrEnum

from sqlalchemy import BigInteger, Date, Float, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supervision.db.base import Base


class MineStatus(StrEnum):
    PRODUCING = "producing"
    SUSPENDED = "suspended"  # 停产整顿: under a suspension order
    CLOSED = "closed"


class Region(Base):
    __tablename__ = "region"
    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    cities: Mapped[list[City]] = relationship(back_populates="region")


class City(Base):
    __tablename__ = "city"
    id: Mapped[int] = mapped_column(primary_key=True)
    region_id: Mapped[int] = mapped_column(ForeignKey("region.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    region: Mapped[Region] = relationship(back_populates="cities")
    counties: Mapped[list[County]] = relationship(back_populates="city")


class County(Base):
    __tablename__ = "county"
    id: Mapped[int] = mapped_column(primary_key=True)
    city_id: Mapped[int] = mapped_column(ForeignKey("city.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    city: Mapped[City] = relationship(back_populates="counties")
    mines: Mapped[list[Mine]] = relationship(back_populates="county")


class Mine(Base):
    """A mine. ``status`` with the suspension (or closure) order's number and
    dates; ``baseline_power_kw`` is what ventilation and drainage draw while
    the mine does not produce (the suspended-mine watch compares with it)."""

    __tablename__ = "mine"
    id: Mapped[int] = mapped_column(primary_key=True)
    county_id: Mapped[int] = mapped_column(ForeignKey("county.id"), index=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    licence_file: Mapped[str | None] = mapped_column(String(1000))
    status: Mapped[str] = mapped_column(String(16), default=MineStatus.PRODUCING.value)
    order_no: Mapped[str | None] = mapped_column(String(200))
    order_from: Mapped[date | None] = mapped_column(Date)
    order_to: Mapped[date | None] = mapped_column(Date)
    baseline_power_kw: Mapped[float | None] = mapped_column(Float)
    county: Mapped[County] = relationship(back_populates="mines")
    gateways: Mapped[list[Gateway]] = relationship(back_populates="mine")

    def order_active(self, day: date) -> bool:
        """A suspension order in force on ``day`` (open ends allowed)."""
        if self.status != MineStatus.SUSPENDED:
            return False
        if self.order_from is not None and day < self.order_from:
            return False
        return self.order_to is None or day <= self.order_to


class Gateway(Base):
    """A gateway of a mine, known by its MQTT topic levels ``<site>/<name>``
    (``topic_key``, with the gateway's escaping of ``/ + #``)."""

    __tablename__ = "gateway"
    __table_args__ = (UniqueConstraint("site", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), index=True)
    site: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    topic_key: Mapped[str] = mapped_column(String(402), unique=True)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    mine: Mapped[Mine] = relationship(back_populates="gateways")

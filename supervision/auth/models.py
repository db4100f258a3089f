"""Auth tables. Secrets are never stored: API tokens and session ids as
their SHA-256, passwords as scrypt (or argon2 when installed) hashes."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from supervision.db.base import Base


class Role(StrEnum):
    ADMIN = "admin"  # the platform's operators: everything, everywhere
    REGULATOR = "regulator"  # a region, city or county office
    OPERATOR = "operator"  # a mine's own staff: their mine
    VIEWER = "viewer"  # read-only, in their area
    CONTRACTOR = "contractor"  # a surveyor: uploads and reads surveys of the mines assigned


class User(Base):
    """A person or a machine. Exactly one area is set for every role but
    admin and contractor: ``region_id``, ``city_id``, ``county_id`` or
    ``mine_id``. A contractor's mines are rows of :class:`ContractorMine`."""

    __tablename__ = "app_user"  # "user" is reserved in PostgreSQL
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    region_id: Mapped[int | None] = mapped_column(ForeignKey("region.id"))
    city_id: Mapped[int | None] = mapped_column(ForeignKey("city.id"))
    county_id: Mapped[int | None] = mapped_column(ForeignKey("county.id"))
    mine_id: Mapped[int | None] = mapped_column(ForeignKey("mine.id"))
    password_hash: Mapped[str | None] = mapped_column(String(400))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    tokens: Mapped[list[ApiToken]] = relationship(back_populates="user")


class ApiToken(Base):
    __tablename__ = "api_token"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    label: Mapped[str] = mapped_column(String(200), default="")
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_ns: Mapped[int] = mapped_column(BigInteger)
    expires_ns: Mapped[int | None] = mapped_column(BigInteger)
    last_used_ns: Mapped[int | None] = mapped_column(BigInteger)
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)
    user: Mapped[User] = relationship(back_populates="tokens")


class WebSession(Base):
    """A browser login; the cookie holds the random id, the table its hash."""

    __tablename__ = "web_session"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), index=True)
    session_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_ns: Mapped[int] = mapped_column(BigInteger)
    expires_ns: Mapped[int] = mapped_column(BigInteger)


class ContractorMine(Base):
    """A contractor assigned to a mine by a regulator (or an admin): the
    contractor's scope is the set of these mines."""

    __tablename__ = "contractor_mine"
    user_id: Mapped[int] = mapped_column(ForeignKey("app_user.id"), primary_key=True)
    mine_id: Mapped[int] = mapped_column(ForeignKey("mine.id"), primary_key=True, index=True)
    assigned_by: Mapped[str] = mapped_column(String(200))
    assigned_ns: Mapped[int] = mapped_column(BigInteger)

"""Leases: one platform instance at a time does a periodic job (the alert
evaluator's timer sweep), and another takes it over when the holder dies.

A lease is a row (name, holder, expiry). :func:`hold` claims or renews it in
one idempotent statement that works on SQLite and PostgreSQL alike: the row
is taken when it is free, expired, or already ours; the statement returns
the holder, so a refused claim costs no second query. A holder that dies
stops renewing; the lease expires ``ttl_s`` later and the next claimant
takes it. (A PostgreSQL advisory lock would free at once on a dead
connection but ties the lease to one pooled connection and does not exist
on SQLite; the expiry is bounded and the same on both.)
"""

from __future__ import annotations

from typing import cast

from sqlalchemy import BigInteger, String, Table
from sqlalchemy.orm import Mapped, Session, mapped_column

from supervision.db.base import Base
from supervision.db.upsert import _insert


class Lease(Base):
    __tablename__ = "lease"
    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    expires_ns: Mapped[int] = mapped_column(BigInteger)


_LEASE = cast(Table, Lease.__table__)


def hold(db: Session, name: str, holder: str, now_ns: int, ttl_s: float) -> bool:
    """Claim or renew lease ``name`` for ``holder`` until ``now_ns + ttl_s``;
    True if ``holder`` has it now. Run in the caller's transaction (commit
    it promptly: the row stays locked until then)."""
    stmt = _insert(db, _LEASE).values(
        name=name, holder=holder, expires_ns=now_ns + int(ttl_s * 1e9)
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=["name"],
        set_={"holder": stmt.excluded.holder, "expires_ns": stmt.excluded.expires_ns},
        where=(_LEASE.c.holder == stmt.excluded.holder) | (_LEASE.c.expires_ns < now_ns),
    ).returning(_LEASE.c.holder)
    return db.execute(stmt).scalar() == holder


def release(db: Session, name: str, holder: str) -> None:
    """Give the lease up at once (a clean stop), if ``holder`` has it."""
    db.query(Lease).filter(Lease.name == name, Lease.holder == holder).delete()

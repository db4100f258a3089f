"""Recording changes and reading them back, scoped like everything else.

Every change made through the API, the web pages or ``minegate platform
admin`` calls :func:`record` in the same transaction as the change itself:
the change and its audit row are committed together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from supervision.audit.models import AuditEvent
from supervision.auth.scope import AreaLevel, Scope, mine_ids_in


@dataclass(frozen=True, slots=True)
class Where:
    """The area of a changed object, as ids (None: above that level)."""

    region_id: int | None = None
    city_id: int | None = None
    county_id: int | None = None
    mine_id: int | None = None


def record(
    db: Session, actor: str, action: str, target: str, detail: str, where: Where, now_ns: int
) -> AuditEvent:
    row = AuditEvent(
        ts_ns=now_ns,
        actor=actor[:200],
        action=action[:64],
        target=target[:300],
        detail=detail,
        region_id=where.region_id,
        city_id=where.city_id,
        county_id=where.county_id,
        mine_id=where.mine_id,
    )
    db.add(row)
    db.flush()
    return row


def _visible(scope: Scope) -> ColumnElement[bool] | None:
    match scope.level:
        case AreaLevel.ALL:
            return None
        case AreaLevel.REGION:
            return AuditEvent.region_id == scope.area_id
        case AreaLevel.CITY:
            return AuditEvent.city_id == scope.area_id
        case AreaLevel.COUNTY:
            return AuditEvent.county_id == scope.area_id
        case _:
            mines = mine_ids_in(scope)
            assert mines is not None
            return AuditEvent.mine_id.in_(mines)


def events(
    db: Session, scope: Scope, *, limit: int = 200, before_id: int | None = None
) -> list[AuditEvent]:
    """The newest changes in ``scope`` first (``before_id``: the next page)."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
    clause = _visible(scope)
    if clause is not None:
        stmt = stmt.where(clause)
    if before_id is not None:
        stmt = stmt.where(AuditEvent.id < before_id)
    return list(db.scalars(stmt))

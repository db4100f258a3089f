"""What a user may see, and the one data-layer function that applies it.

Every query of scoped rows goes through :func:`scoped_select` (or
:func:`get_scoped`), so no endpoint can forget the filter: a county
regulator's query of another county's mine returns nothing, and the view
answers 404 (the mine's existence is not disclosed either).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import Session

from supervision.auth.models import ContractorMine, Role, User
from supervision.registry.models import City, County, Gateway, Mine

T = TypeVar("T")


class AreaLevel(StrEnum):
    ALL = "all"
    REGION = "region"
    CITY = "city"
    COUNTY = "county"
    MINE = "mine"
    ASSIGNED = "assigned"  # a contractor: the mines assigned to user ``area_id``


@dataclass(frozen=True, slots=True)
class Scope:
    level: AreaLevel
    area_id: int | None = None

    def __str__(self) -> str:
        return self.level.value if self.area_id is None else f"{self.level.value}:{self.area_id}"


NOTHING = Scope(AreaLevel.MINE, -1)  # a user without an area sees no mine


def scope_of(user: User) -> Scope:
    """Admins see everything; a contractor the mines assigned to them;
    everyone else the one area set on them."""
    if user.role == Role.ADMIN:
        return Scope(AreaLevel.ALL)
    if user.role == Role.CONTRACTOR:
        return Scope(AreaLevel.ASSIGNED, user.id)
    for level, area in (
        (AreaLevel.MINE, user.mine_id),
        (AreaLevel.COUNTY, user.county_id),
        (AreaLevel.CITY, user.city_id),
        (AreaLevel.REGION, user.region_id),
    ):
        if area is not None:
            return Scope(level, area)
    return NOTHING


def mine_ids_in(scope: Scope) -> Select[int] | None:
    """The ids of the mines in ``scope`` as a subquery; None: every mine."""
    match scope.level:
        case AreaLevel.ALL:
            return None
        case AreaLevel.REGION:
            return (
                select(Mine.id)
                .join(County, Mine.county_id == County.id)
                .join(City, County.city_id == City.id)
                .where(City.region_id == scope.area_id)
            )
        case AreaLevel.CITY:
            return (
                select(Mine.id)
                .join(County, Mine.county_id == County.id)
                .where(County.city_id == scope.area_id)
            )
        case AreaLevel.COUNTY:
            return select(Mine.id).where(Mine.county_id == scope.area_id)
        case AreaLevel.MINE:
            return select(Mine.id).where(Mine.id == scope.area_id)
        case AreaLevel.ASSIGNED:
            return select(ContractorMine.mine_id).where(ContractorMine.user_id == scope.area_id)
    raise AssertionError(scope)


def scope_filter(model: Any, scope: Scope) -> ColumnElement[bool] | None:
    """The WHERE clause limiting rows of ``model`` to ``scope``: the mine
    itself, rows with a ``mine_id``, or rows with a ``gateway_id``."""
    mines = mine_ids_in(scope)
    if mines is None:
        return None
    if model is Mine:
        return Mine.id.in_(mines)
    if hasattr(model, "mine_id"):
        return model.mine_id.in_(mines)
    if hasattr(model, "gateway_id"):
        gateways = select(Gateway.id).where(Gateway.mine_id.in_(mines))
        return model.gateway_id.in_(gateways)
    raise TypeError(f"{model.__name__} rows have no mine: they cannot be scoped")


def scoped_select(model: type[T], scope: Scope) -> Select[T]:
    """``select(model)`` limited to the rows ``scope`` may see."""
    stmt = select(model)
    clause = scope_filter(model, scope)
    return stmt if clause is None else stmt.where(clause)


def get_scoped(db: Session, model: type[T], row_id: int, scope: Scope) -> T | None:
    """The row with ``row_id`` if it exists and is in scope, else None."""
    pk = model.id  # type: ignore[attr-defined]
    return db.scalars(scoped_select(model, scope).where(pk == row_id)).first()

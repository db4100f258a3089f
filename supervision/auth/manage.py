"""Users and tokens managed by a user: scoped to their area and audited.

A regulator manages the users whose area lies inside theirs (a city
regulator: the city's own users and those of its counties and mines) and
the contractors assigned only to mines of their area; admins everyone. Only
an admin makes an admin. A user outside the manager's area is reported like
one that does not exist. Tokens are shown once and stored hashed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from supervision.audit.service import Where, record
from supervision.auth import service
from supervision.auth.models import ApiToken, ContractorMine, Role, User
from supervision.auth.scope import AreaLevel, Scope, mine_ids_in
from supervision.auth.service import AuthInputError, Principal
from supervision.registry.models import City, County, Mine, Region


def where_user(db: Session, user: User) -> Where:
    """The area of a user's own as ids (contractors and admins: none)."""
    if user.mine_id is not None:
        mine = db.get(Mine, user.mine_id)
        assert mine is not None
        c = mine.county
        return Where(c.city.region_id, c.city_id, c.id, mine.id)
    if user.county_id is not None:
        county = db.get(County, user.county_id)
        assert county is not None
        return Where(county.city.region_id, county.city_id, county.id)
    if user.city_id is not None:
        city = db.get(City, user.city_id)
        assert city is not None
        return Where(city.region_id, city.id)
    return Where(user.region_id)


def _area_where(db: Session, area: AreaLevel, code: str) -> Where | None:
    """The ids of the area ``code`` at ``area`` level; None: no such area."""
    model = {AreaLevel.REGION: Region, AreaLevel.CITY: City, AreaLevel.COUNTY: County,
             AreaLevel.MINE: Mine}.get(area)  # fmt: skip
    if model is None:
        return None
    row: Any = db.scalar(select(model).where(model.code == code))  # type: ignore[attr-defined,arg-type]
    if row is None:
        return None
    probe = User(name="", role=Role.VIEWER)
    setattr(probe, f"{area.value}_id", row.id)
    return where_user(db, probe)


def _inside(where: Where, scope: Scope) -> bool:
    match scope.level:
        case AreaLevel.ALL:
            return True
        case AreaLevel.REGION:
            return where.region_id == scope.area_id
        case AreaLevel.CITY:
            return where.city_id == scope.area_id
        case AreaLevel.COUNTY:
            return where.county_id == scope.area_id
        case AreaLevel.MINE:
            return where.mine_id == scope.area_id
    return False


def _assigned(db: Session, user: User) -> list[int]:
    return list(db.scalars(select(ContractorMine.mine_id).where(ContractorMine.user_id == user.id)))


def _mines_in(db: Session, scope: Scope) -> set[int] | None:
    stmt = mine_ids_in(scope)
    return None if stmt is None else set(db.scalars(stmt))


def visible(db: Session, scope: Scope, user: User) -> bool:
    """May a manager with ``scope`` see ``user``: their area inside the
    scope, or (a contractor) assigned to a mine of it."""
    if scope.level is AreaLevel.ALL:
        return True
    if user.role == Role.ADMIN:
        return False
    if user.role == Role.CONTRACTOR:
        mines = _mines_in(db, scope) or set()
        return any(m in mines for m in _assigned(db, user))
    return _inside(where_user(db, user), scope)


def manageable(db: Session, scope: Scope, user: User) -> bool:
    """May they change ``user`` (disable, tokens): as :func:`visible`, but a
    contractor only when every mine they are assigned to is in the scope
    (a contractor working for another county too is that county's as
    well: their admin or a regulator above both decides)."""
    if not visible(db, scope, user):
        return False
    if scope.level is AreaLevel.ALL or user.role != Role.CONTRACTOR:
        return True
    mines = _mines_in(db, scope) or set()
    return all(m in mines for m in _assigned(db, user))


def users_in(db: Session, scope: Scope) -> list[User]:
    return [u for u in db.scalars(select(User).order_by(User.name)) if visible(db, scope, u)]


def user_in(db: Session, scope: Scope, user_id: int) -> User | None:
    user = db.get(User, user_id)
    return user if user is not None and visible(db, scope, user) else None


def user_named(db: Session, scope: Scope, name: str) -> User | None:
    user = db.scalar(select(User).where(User.name == name))
    return user if user is not None and visible(db, scope, user) else None


@dataclass
class UserForm:
    name: str
    role: str
    area: AreaLevel = AreaLevel.ALL
    area_code: str | None = None
    password: str | None = None
    mine: str | None = None  # a contractor's first mine (required from a regulator)


def create_user(db: Session, by: Principal, f: UserForm, *, now_ns: int) -> User:
    """Add a user in ``by``'s area (checked before anything is written)."""
    admin = by.scope.level is AreaLevel.ALL
    if f.role == Role.ADMIN and not admin:
        raise AuthInputError("only a platform admin makes an admin", "role")
    if f.role == Role.CONTRACTOR and not admin and not (f.mine or "").strip():
        raise AuthInputError("give the contractor's first mine (of your area)", "mine")
    code = (f.area_code or "").strip()
    if f.role not in (Role.ADMIN, Role.CONTRACTOR) and f.area is not AreaLevel.ALL and code:
        where = _area_where(db, f.area, code)
        if where is not None and not _inside(where, by.scope):
            raise AuthInputError(f"no {f.area.value} with code {code!r} in your area", "area_code")
    user = service.create_user(
        db, f.name, f.role, area=f.area, area_code=code or None,
        password=f.password or None, now_ns=now_ns,
    )  # fmt: skip
    where = where_user(db, user)
    area = "" if user.role in (Role.ADMIN, Role.CONTRACTOR) else f", {f.area.value} {f.area_code}"
    record(db, by.name, "user.add", f"user {user.name}", f"role {user.role}{area}", where, now_ns)
    if user.role == Role.CONTRACTOR and (f.mine or "").strip():
        service.assign_contractor(db, by, user.name, (f.mine or "").strip(), now_ns=now_ns)
    return user


def _where_for_audit(db: Session, by: Principal, user: User) -> Where:
    """Contractors have no area: their change is filed under the manager's."""
    if user.role != Role.CONTRACTOR:
        return where_user(db, user)
    mines = _assigned(db, user)
    if len(mines) == 1:
        from supervision.registry.manage import where_mine

        mine = db.get(Mine, mines[0])
        assert mine is not None
        return where_mine(mine)
    s = by.scope
    return Where(
        s.area_id if s.level is AreaLevel.REGION else None,
        s.area_id if s.level is AreaLevel.CITY else None,
        s.area_id if s.level is AreaLevel.COUNTY else None,
    )


def _check_manageable(db: Session, by: Principal, user: User) -> None:
    if not manageable(db, by.scope, user):
        raise AuthInputError(
            f"{user.name} also works outside your area: an admin or a regulator over both "
            "areas changes them",
            "user",
        )


def set_active(db: Session, by: Principal, user: User, active: bool, *, now_ns: int) -> bool:
    """Disable (tokens revoked, sessions ended, no login) or enable again."""
    _check_manageable(db, by, user)
    if user.id == by.user_id and not active:
        raise AuthInputError("you cannot disable yourself", "user")
    if user.active == active:
        return False
    if active:
        user.active = True
        db.flush()
        detail = "enabled (tokens stay revoked: issue new ones)"
    else:
        n = service.revoke_access(db, user, disable=True)
        detail = f"disabled, {n} token(s) revoked, web sessions ended"
    action = "user.enable" if active else "user.disable"
    record(db, by.name, action, f"user {user.name}", detail, _where_for_audit(db, by, user), now_ns)
    return True


def issue_token(
    db: Session, by: Principal, user: User, *, label: str, ttl_days: float | None, now_ns: int
) -> str:
    _check_manageable(db, by, user)
    if not user.active:
        raise AuthInputError(f"{user.name} is disabled: enable them first", "user")
    label = label.strip()
    if len(label) > 200:
        raise AuthInputError("label: at most 200 characters", "label")
    if ttl_days is not None and not 0 < ttl_days <= 3660:
        raise AuthInputError("valid for: 1 to 3660 days, or empty for no expiry", "days")
    token = service.issue_token(
        db, user, label=label, now_ns=now_ns, ttl_s=None if ttl_days is None else ttl_days * 86400
    )
    expiry = "no expiry" if ttl_days is None else f"valid {ttl_days:g} days"
    record(db, by.name, "token.issue", f"user {user.name}", f"label {label!r}, {expiry}",
           _where_for_audit(db, by, user), now_ns)  # fmt: skip
    return token


def revoke_token(db: Session, by: Principal, user: User, token_id: int, *, now_ns: int) -> bool:
    _check_manageable(db, by, user)
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise AuthInputError(f"{user.name} has no token {token_id}", "token")
    if row.revoked:
        return False
    row.revoked = True
    db.flush()
    record(db, by.name, "token.revoke", f"user {user.name}", f"token {row.id} {row.label!r}",
           _where_for_audit(db, by, user), now_ns)  # fmt: skip
    return True


def assigned_mines(db: Session, user: User) -> list[Mine]:
    return list(
        db.scalars(
            select(Mine)
            .join(ContractorMine, ContractorMine.mine_id == Mine.id)
            .where(ContractorMine.user_id == user.id)
            .order_by(Mine.code)
        )
    )

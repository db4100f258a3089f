"""Users, tokens and sessions on a database session. Secrets are returned
once (to be shown to the user) and stored only as hashes."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from supervision.auth.models import ApiToken, ContractorMine, Role, User, WebSession
from supervision.auth.scope import AreaLevel, Scope, mine_ids_in, scope_of
from supervision.auth.secrets import hash_password, new_token, sha256_hex, verify_password
from supervision.registry.models import City, County, Mine, Region


class AuthInputError(ValueError):
    """A user or token request that cannot be carried out (message says
    why; ``field`` names the form field or JSON key at fault)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking, and over what: what the auth dependency yields."""

    user_id: int
    name: str
    role: str
    scope: Scope
    via: str  # "token" | "session"
    csrf_token: str | None = None  # sessions only


_AREA_MODELS = {
    AreaLevel.REGION: Region,
    AreaLevel.CITY: City,
    AreaLevel.COUNTY: County,
    AreaLevel.MINE: Mine,
}


def create_user(
    db: Session,
    name: str,
    role: str,
    *,
    area: AreaLevel = AreaLevel.ALL,
    area_code: str | None = None,
    password: str | None = None,
    now_ns: int,
) -> User:
    """Add a user. Every role but admin needs an area (region, city, county
    or mine, by its code); an operator's area is a mine."""
    name = name.strip()
    if not name:
        raise AuthInputError("user name is empty", "name")
    if len(name) > 200:
        raise AuthInputError("user name: at most 200 characters", "name")
    if role not in {r.value for r in Role}:
        raise AuthInputError(
            f"unknown role {role!r}; use one of {', '.join(r for r in Role)}", "role"
        )
    if db.scalar(select(User.id).where(User.name == name)) is not None:
        raise AuthInputError(f"user {name!r} exists already", "name")
    user = User(name=name, role=role, created_ns=now_ns, active=True)
    if role in (Role.ADMIN, Role.CONTRACTOR):
        if area is not AreaLevel.ALL:
            raise AuthInputError(
                f"a{'n' if role == Role.ADMIN else ''} {role} has no area: leave out the area "
                "option"
                + ("; assign the contractor to mines instead" if role != Role.ADMIN else ""),
                "area",
            )
    else:
        if area is AreaLevel.ALL or not area_code:
            raise AuthInputError(
                f"a {role} needs an area: give a region, city, county or mine", "area"
            )
        if role == Role.OPERATOR and area is not AreaLevel.MINE:
            raise AuthInputError("an operator's area is one mine: give the mine's code", "area")
        model = _AREA_MODELS[area]
        area_id = db.scalar(select(model.id).where(model.code == area_code))  # type: ignore[attr-defined]
        if area_id is None:
            raise AuthInputError(f"no {area.value} with code {area_code!r}", "area_code")
        setattr(user, f"{area.value}_id", area_id)
    if password is not None:
        if len(password) < 8:
            raise AuthInputError("password too short: at least 8 characters", "password")
        user.password_hash = hash_password(password)
    db.add(user)
    db.flush()
    return user


def assign_contractor(
    db: Session,
    by: Principal,
    contractor: str,
    mine_code: str,
    *,
    now_ns: int,
    remove: bool = False,
) -> bool:
    """Assign the contractor named ``contractor`` to the mine ``mine_code``
    (or, with ``remove``, end the assignment). The mine must be in the
    assigning user's scope; an unknown mine or one outside it is reported
    the same way. True if something changed."""
    user = db.scalar(select(User).where(User.name == contractor))
    if user is None or user.role != Role.CONTRACTOR:
        raise AuthInputError(f"no contractor named {contractor!r}", "contractor")
    stmt = select(Mine.id).where(Mine.code == mine_code)
    in_scope = mine_ids_in(by.scope)
    if in_scope is not None:
        stmt = stmt.where(Mine.id.in_(in_scope))
    mine_id = db.scalar(stmt)
    if mine_id is None:
        raise AuthInputError(f"no mine with code {mine_code!r} in your area", "mine")
    row = db.get(ContractorMine, (user.id, mine_id))
    if remove:
        if row is None:
            return False
        db.delete(row)
    else:
        if row is not None:
            return False
        db.add(
            ContractorMine(
                user_id=user.id, mine_id=mine_id, assigned_by=by.name, assigned_ns=now_ns
            )
        )
    db.flush()
    from supervision.audit.service import record
    from supervision.registry.manage import where_mine

    mine = db.get(Mine, mine_id)
    assert mine is not None
    action = "contractor.unassign" if remove else "contractor.assign"
    record(db, by.name, action, f"user {user.name}", f"mine {mine.code}", where_mine(mine), now_ns)
    return True


def issue_token(
    db: Session, user: User, *, label: str = "", now_ns: int, ttl_s: float | None = None
) -> str:
    """A new API token for ``user``; the only time its text exists."""
    token = new_token()
    db.add(
        ApiToken(
            user_id=user.id,
            label=label,
            token_sha256=sha256_hex(token),
            created_ns=now_ns,
            expires_ns=None if ttl_s is None else now_ns + int(ttl_s * 1e9),
        )
    )
    db.flush()
    return token


def revoke_access(db: Session, user: User, *, disable: bool) -> int:
    """Revoke every token of ``user`` and end their web sessions; with
    ``disable`` the user cannot log in again either. The number of tokens
    revoked."""
    tokens = [t for t in user.tokens if not t.revoked]
    for t in tokens:
        t.revoked = True
    db.execute(delete(WebSession).where(WebSession.user_id == user.id))
    if disable:
        user.active = False
    db.flush()
    return len(tokens)


def principal_for(user: User, via: str, csrf_token: str | None = None) -> Principal:
    return Principal(user.id, user.name, user.role, scope_of(user), via, csrf_token)


def user_by_token(db: Session, token: str, now_ns: int) -> User | None:
    row = db.scalar(select(ApiToken).where(ApiToken.token_sha256 == sha256_hex(token)))
    if row is None or row.revoked or (row.expires_ns is not None and row.expires_ns <= now_ns):
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_ns = now_ns
    return user


def user_by_password(db: Session, name: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.name == name))
    if user is None or not user.active or not user.password_hash:
        # spend the same time as a real check: no user-name oracle by timing
        verify_password(password, hash_password("not-a-password"))
        return None
    return user if verify_password(password, user.password_hash) else None


def open_session(db: Session, user: User, *, now_ns: int, ttl_s: float) -> tuple[str, str]:
    """A web session: (cookie value, CSRF token)."""
    sid = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    db.add(
        WebSession(
            user_id=user.id,
            session_sha256=sha256_hex(sid),
            csrf_token=csrf,
            created_ns=now_ns,
            expires_ns=now_ns + int(ttl_s * 1e9),
        )
    )
    db.execute(delete(WebSession).where(WebSession.expires_ns <= now_ns))
    db.flush()
    return sid, csrf


def session_user(db: Session, sid: str, now_ns: int) -> tuple[User, str] | None:
    row = db.scalar(select(WebSession).where(WebSession.session_sha256 == sha256_hex(sid)))
    if row is None or row.expires_ns <= now_ns:
        return None
    user = db.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user, row.csrf_token


def close_session(db: Session, sid: str) -> None:
    db.execute(delete(WebSession).where(WebSession.session_sha256 == sha256_hex(sid)))

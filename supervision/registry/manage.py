"""Registry changes made by a user: scoped to their area and audited.

The API, the web pages and the admin command call these (the command as an
admin of everything). A county regulator manages the mines of their county,
a city regulator also the counties of their city, a region regulator the
cities' counties of their region; regions and cities are the platform
admins'. A parent named in a request that lies outside the user's area is
reported exactly like one that does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from supervision.audit.service import Where, record
from supervision.auth.scope import AreaLevel, Scope, get_scoped, scoped_select
from supervision.registry import service
from supervision.registry.models import City, County, Gateway, Mine, MineStatus
from supervision.registry.service import RegistryInputError

if TYPE_CHECKING:
    from supervision.auth.service import Principal


def where_county(county: County) -> Where:
    return Where(county.city.region_id, county.city_id, county.id)


def where_mine(mine: Mine) -> Where:
    c = mine.county
    return Where(c.city.region_id, c.city_id, c.id, mine.id)


def cities_in(db: Session, scope: Scope) -> list[City]:
    """The cities whose counties the user may add: admins every city, a
    region regulator their region's, a city regulator their own."""
    stmt = select(City).order_by(City.code)
    if scope.level is AreaLevel.REGION:
        stmt = stmt.where(City.region_id == scope.area_id)
    elif scope.level is AreaLevel.CITY:
        stmt = stmt.where(City.id == scope.area_id)
    elif scope.level is not AreaLevel.ALL:
        return []
    return list(db.scalars(stmt))


def counties_in(db: Session, scope: Scope) -> list[County]:
    """The counties of the user's area (a county regulator: their own)."""
    stmt = select(County).join(City, County.city_id == City.id).order_by(County.code)
    match scope.level:
        case AreaLevel.ALL:
            pass
        case AreaLevel.REGION:
            stmt = stmt.where(City.region_id == scope.area_id)
        case AreaLevel.CITY:
            stmt = stmt.where(County.city_id == scope.area_id)
        case AreaLevel.COUNTY:
            stmt = stmt.where(County.id == scope.area_id)
        case _:
            return []
    return list(db.scalars(stmt))


def county_in(db: Session, scope: Scope, county_id: int) -> County | None:
    return next((c for c in counties_in(db, scope) if c.id == county_id), None)


def _county_by_code(db: Session, scope: Scope, code: str) -> County:
    found = next((c for c in counties_in(db, scope) if c.code == code.strip()), None)
    if found is None:
        raise RegistryInputError(f"no county with code {code.strip()!r} in your area", "county")
    return found


def _name(name: str, code: str) -> str:
    name = name.strip()
    if len(name) > 200:
        raise RegistryInputError("name: at most 200 characters", "name")
    return name or code


def create_county(
    db: Session, by: Principal, city_code: str, code: str, name: str, *, now_ns: int
) -> County:
    city = next((c for c in cities_in(db, by.scope) if c.code == city_code.strip()), None)
    if city is None:
        raise RegistryInputError(f"no city with code {city_code.strip()!r} in your area", "city")
    county = service.add_county(db, city.code, code, _name(name, code))
    record(db, by.name, "county.add", f"county {county.code}", f"name {county.name!r}, city {city.code}",
           where_county(county), now_ns)  # fmt: skip
    return county


def rename_county(db: Session, by: Principal, county: County, name: str, *, now_ns: int) -> bool:
    new = _name(name, county.code)
    if new == county.name:
        return False
    old, county.name = county.name, new
    db.flush()
    record(db, by.name, "county.edit", f"county {county.code}", f"name {old!r} → {new!r}",
           where_county(county), now_ns)  # fmt: skip
    return True


@dataclass
class MineForm:
    """A mine's editable fields, as the form or the API sends them."""

    county: str
    name: str
    licence_file: str | None = None
    status: str = MineStatus.PRODUCING.value
    order_no: str | None = None
    order_from: date | None = None
    order_to: date | None = None
    baseline_power_kw: float | None = None


def _check_order(f: MineForm) -> None:
    service.check_status(f.status, f.order_from, f.order_to)
    if f.status == MineStatus.SUSPENDED and not (f.order_no or "").strip():
        raise RegistryInputError("a suspended mine needs the suspension order's number", "order_no")
    if f.status == MineStatus.SUSPENDED and f.order_from is None:
        raise RegistryInputError(
            "a suspended mine needs the date the order takes effect", "order_from"
        )
    if f.baseline_power_kw is not None and not f.baseline_power_kw >= 0:
        raise RegistryInputError(
            f"baseline power must be >= 0 kW, got {f.baseline_power_kw}", "baseline_power_kw"
        )
    if f.order_no is not None and len(f.order_no) > 200:
        raise RegistryInputError("order number: at most 200 characters", "order_no")


def _check_licence(
    db: Session, by: Principal, path: str | None, current: str | None, stored: bool
) -> None:
    """A licence path from a regulator is one the platform stored from an
    upload (``stored``), the mine's own, or one of their area's mines': no
    pointing the platform at any file of its server. Admins name any file,
    as with the admin command."""
    if path is None or path == current or stored or by.scope.level is AreaLevel.ALL:
        return
    known = db.scalar(scoped_select(Mine, by.scope).where(Mine.licence_file == path).limit(1))
    if known is None:
        raise RegistryInputError(
            "licence: upload the file, or choose one of your area's mines' licences", "licence"
        )


def create_mine(
    db: Session, by: Principal, code: str, f: MineForm, *, now_ns: int, stored_licence: bool = False
) -> Mine:
    county = _county_by_code(db, by.scope, f.county)
    _check_order(f)
    _check_licence(db, by, f.licence_file, None, stored_licence)
    mine = service.add_mine(
        db, county.code, code, _name(f.name, code), licence_file=f.licence_file, status=f.status,
        order_no=(f.order_no or "").strip() or None, order_from=f.order_from, order_to=f.order_to,
        baseline_power_kw=f.baseline_power_kw,
    )  # fmt: skip
    record(db, by.name, "mine.add", f"mine {mine.code}", _describe(mine), where_mine(mine), now_ns)
    return mine


def _describe(m: Mine) -> str:
    parts = [f"name {m.name!r}", f"county {m.county.code}", f"status {m.status}"]
    if m.order_no or m.order_from:
        parts.append(f"order {m.order_no or ''} {m.order_from or ''}..{m.order_to or 'open'}")
    if m.baseline_power_kw is not None:
        parts.append(f"baseline {m.baseline_power_kw:g} kW")
    if m.licence_file:
        parts.append(f"licence {m.licence_file}")
    return ", ".join(parts)


_FIELDS = (
    "name",
    "licence_file",
    "status",
    "order_no",
    "order_from",
    "order_to",
    "baseline_power_kw",
)


def update_mine(
    db: Session,
    by: Principal,
    mine: Mine,
    f: MineForm,
    *,
    now_ns: int,
    stored_licence: bool = False,
) -> list[str]:
    """Apply the form to ``mine`` (in the user's scope: the caller fetched
    it with ``get_scoped``); the changes in words, [] if none. A status
    change is what the suspended-mine watch reads at its next evaluation."""
    county = _county_by_code(db, by.scope, f.county)
    _check_order(f)
    _check_licence(db, by, f.licence_file, mine.licence_file, stored_licence)
    new = {
        "name": _name(f.name, mine.code),
        "licence_file": f.licence_file,
        "status": f.status,
        "order_no": (f.order_no or "").strip() or None,
        "order_from": f.order_from,
        "order_to": f.order_to,
        "baseline_power_kw": f.baseline_power_kw,
    }
    changes = []
    before = where_mine(mine)
    if county.id != mine.county_id:
        changes.append(f"county {mine.county.code} → {county.code}")
        mine.county_id = county.id
        mine.county = county
    for key in _FIELDS:
        old = getattr(mine, key)
        if old != new[key]:
            changes.append(f"{key} {_show(old)} → {_show(new[key])}")
            setattr(mine, key, new[key])
    if not changes:
        return []
    db.flush()
    action = "mine.status" if _old_status(changes) is not None else "mine.edit"
    record(db, by.name, action, f"mine {mine.code}", "; ".join(changes), where_mine(mine), now_ns)
    if before.county_id != mine.county_id:  # the old county sees the mine leave
        record(db, by.name, action, f"mine {mine.code}", "; ".join(changes),
               Where(before.region_id, before.city_id, before.county_id, None), now_ns)  # fmt: skip
    return changes


def _old_status(changes: list[str]) -> str | None:
    for c in changes:
        if c.startswith("status "):
            return c.split()[1]
    return None


def _show(v: object) -> str:
    return "—" if v is None or v == "" else (f"{v:g}" if isinstance(v, float) else str(v))


def register_gateway(
    db: Session, by: Principal, mine: Mine, site: str, name: str, *, now_ns: int
) -> Gateway:
    if len(site.strip()) > 200 or len(name.strip()) > 200:
        raise RegistryInputError("site and gateway names: at most 200 characters each", "site")
    gw = service.add_gateway(db, mine.code, site, name, now_ns=now_ns)
    record(db, by.name, "gateway.add", f"gateway {gw.site}/{gw.name}", f"mine {mine.code}",
           where_mine(mine), now_ns)  # fmt: skip
    return gw


def gateway_in(db: Session, scope: Scope, gateway_id: int) -> Gateway | None:
    return db.scalars(
        select(Gateway)
        .where(Gateway.id == gateway_id)
        .where(Gateway.mine_id.in_(select(scoped_select(Mine, scope).subquery().c.id)))
    ).first()


def retire_gateway(db: Session, by: Principal, gw: Gateway, *, now_ns: int) -> None:
    """Retire a gateway: its registration and its live state (liveness,
    latest values, alarms, dedupe memory) are deleted, so its messages are
    dropped as from an unknown gateway and no offline alert follows; the
    alert history stays (detached from the gateway; the summaries name it)
    and the audit trail says who retired it. The same site/gateway names
    may be registered again later."""
    from supervision.alerting.models import Alert
    from supervision.ingest import models as ingest

    mine = gw.mine
    for model in (ingest.GatewayLiveness, ingest.ReceivedSeq, ingest.LatestValue,
                  ingest.GatewayAlarm, ingest.SurveyCheck):  # fmt: skip
        db.execute(delete(model).where(model.gateway_id == gw.id))
    db.execute(update(Alert).where(Alert.gateway_id == gw.id).values(gateway_id=None))
    label = f"gateway {gw.site}/{gw.name}"
    db.delete(gw)
    db.flush()
    record(db, by.name, "gateway.retire", label, f"mine {mine.code}", where_mine(mine), now_ns)


def mine_in(db: Session, scope: Scope, mine_id: int) -> Mine | None:
    return get_scoped(db, Mine, mine_id, scope)

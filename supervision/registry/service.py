"""Adding and changing registry rows; used by the API and the admin command.

Areas are named by their codes (unique), mines by code, gateways by their
``site/gateway`` names as the gateway's MQTT topics spell them.
"""

from __future__ import annotations

from datetime import date
from typing import TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.sinks.mqtt_schema import topic_segment
from supervision.registry.models import City, County, Gateway, Mine, MineStatus, Region

M = TypeVar("M", Region, City, County, Mine)


class RegistryInputError(ValueError):
    """A registry change that cannot be made; the message says why and
    ``field`` names the form field or JSON key at fault (None: the whole)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


def _code(code: str, what: str) -> str:
    code = code.strip()
    if not code or len(code) > 64:
        raise RegistryInputError(f"{what} code must be 1..64 characters, got {code!r}", "code")
    return code


def _unique(db: Session, model: type[Region | City | County | Mine], code: str, what: str) -> None:
    if db.scalar(select(model.id).where(model.code == code)) is not None:
        raise RegistryInputError(f"a {what} with code {code!r} exists already", "code")


def _by_code(db: Session, model: type[M], code: str, what: str) -> M:
    row = db.scalar(select(model).where(model.code == code))
    if row is None:
        raise RegistryInputError(f"no {what} with code {code!r}", what)
    return row


def add_region(db: Session, code: str, name: str) -> Region:
    code = _code(code, "region")
    _unique(db, Region, code, "region")
    row = Region(code=code, name=name.strip() or code)
    db.add(row)
    db.flush()
    return row


def add_city(db: Session, region_code: str, code: str, name: str) -> City:
    region = _by_code(db, Region, region_code, "region")
    code = _code(code, "city")
    _unique(db, City, code, "city")
    row = City(region_id=region.id, code=code, name=name.strip() or code)
    db.add(row)
    db.flush()
    return row


def add_county(db: Session, city_code: str, code: str, name: str) -> County:
    city = _by_code(db, City, city_code, "city")
    code = _code(code, "county")
    _unique(db, County, code, "county")
    row = County(city_id=city.id, code=code, name=name.strip() or code)
    db.add(row)
    db.flush()
    return row


def check_status(status: str, order_from: date | None, order_to: date | None) -> None:
    if status not in {s.value for s in MineStatus}:
        raise RegistryInputError(
            f"unknown mine status {status!r}; use one of {', '.join(s for s in MineStatus)}",
            "status",
        )
    if order_from and order_to and order_to < order_from:
        raise RegistryInputError(
            f"order ends ({order_to}) before it starts ({order_from})", "order_to"
        )


def add_mine(
    db: Session,
    county_code: str,
    code: str,
    name: str,
    *,
    licence_file: str | None = None,
    status: str = MineStatus.PRODUCING.value,
    order_no: str | None = None,
    order_from: date | None = None,
    order_to: date | None = None,
    baseline_power_kw: float | None = None,
) -> Mine:
    county = _by_code(db, County, county_code, "county")
    code = _code(code, "mine")
    _unique(db, Mine, code, "mine")
    check_status(status, order_from, order_to)
    if baseline_power_kw is not None and not baseline_power_kw >= 0:
        raise RegistryInputError(
            f"baseline power must be >= 0 kW, got {baseline_power_kw}", "baseline_power_kw"
        )
    row = Mine(
        county_id=county.id,
        code=code,
        name=name.strip() or code,
        licence_file=licence_file,
        status=status,
        order_no=order_no,
        order_from=order_from,
        order_to=order_to,
        baseline_power_kw=baseline_power_kw,
    )
    db.add(row)
    db.flush()
    return row


def set_mine_status(
    db: Session,
    mine: Mine,
    status: str,
    *,
    order_no: str | None = None,
    order_from: date | None = None,
    order_to: date | None = None,
) -> Mine:
    check_status(status, order_from, order_to)
    mine.status = status
    mine.order_no, mine.order_from, mine.order_to = order_no, order_from, order_to
    db.flush()
    return mine


def topic_key(site: str, gateway: str) -> str:
    return f"{topic_segment(site)}/{topic_segment(gateway)}"


def add_gateway(db: Session, mine_code: str, site: str, name: str, *, now_ns: int) -> Gateway:
    """Register a gateway; ``site`` and ``name`` as in its site file's [site]."""
    mine = _by_code(db, Mine, mine_code, "mine")
    site, name = site.strip(), name.strip()
    if not site or not name:
        raise RegistryInputError("a gateway needs its site and gateway names", "site")
    key = topic_key(site, name)
    if db.scalar(select(Gateway.id).where(Gateway.topic_key == key)) is not None:
        raise RegistryInputError(f"gateway {site}/{name} is registered already", "name")
    row = Gateway(mine_id=mine.id, site=site, name=name, topic_key=key, created_ns=now_ns)
    db.add(row)
    db.flush()
    return row

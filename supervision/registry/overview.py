"""Read models for pages and the API: the mines a user sees, one mine's
gateways, latest values and alerts. Every query goes through
``scoped_select`` / ``get_scoped``."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from supervision.alerting.models import Alert, AlertState
from supervision.auth.scope import Scope, get_scoped, scoped_select
from supervision.ingest.models import GatewayAlarm, GatewayLiveness, LatestValue
from supervision.registry.models import City, County, Gateway, Mine, Region


@dataclass
class MineRow:
    id: int
    code: str
    name: str
    status: str
    county: str
    city: str
    region: str
    firing: int  # open alerts
    offline: bool  # an open gateway-offline alert


@dataclass
class GatewayRow:
    id: int
    site: str
    name: str
    state: str | None
    reason: str | None
    last_seen_ns: int | None


@dataclass
class MineDetail:
    mine: Mine
    area: str
    gateways: list[GatewayRow]
    values: list[LatestValue]
    alarms: list[GatewayAlarm]
    alerts: list[Alert]  # open first, then recent resolved
    extra: dict[str, Any] = field(default_factory=dict)


def list_mines(db: Session, scope: Scope) -> list[MineRow]:
    mines = db.scalars(scoped_select(Mine, scope).order_by(Mine.code)).all()
    ids = [m.id for m in mines]
    open_alerts = db.execute(
        scoped_select(Alert, scope)
        .with_only_columns(Alert.mine_id, Alert.kind, func.count())
        .where(Alert.state == AlertState.FIRING, Alert.mine_id.in_(ids))
        .group_by(Alert.mine_id, Alert.kind)
    )
    firing: dict[int, int] = {}
    offline: set[int] = set()
    for mine_id, kind, n in open_alerts:
        firing[mine_id] = firing.get(mine_id, 0) + n
        if kind == "gateway_offline":
            offline.add(mine_id)
    areas = {
        c.id: (c.name, ci.name, r.name)
        for c, ci, r in db.execute(
            select(County, City, Region)
            .join(City, County.city_id == City.id)
            .join(Region, City.region_id == Region.id)
            .where(County.id.in_({m.county_id for m in mines}))
        )
    }
    return [
        MineRow(
            m.id,
            m.code,
            m.name,
            m.status,
            *areas[m.county_id],
            firing.get(m.id, 0),
            m.id in offline,
        )
        for m in mines
    ]


def mine_detail(db: Session, mine_id: int, scope: Scope, history: int = 20) -> MineDetail | None:
    mine = get_scoped(db, Mine, mine_id, scope)
    if mine is None:
        return None
    county = db.get(County, mine.county_id)
    assert county is not None
    city = db.get(City, county.city_id)
    assert city is not None
    region = db.get(Region, city.region_id)
    assert region is not None
    gws = db.execute(
        scoped_select(Gateway, scope)
        .add_columns(GatewayLiveness)
        .outerjoin(GatewayLiveness, GatewayLiveness.gateway_id == Gateway.id)
        .where(Gateway.mine_id == mine.id)
        .order_by(Gateway.site, Gateway.name)
    )
    gateways = [
        GatewayRow(
            g.id,
            g.site,
            g.name,
            live.state if live else None,
            live.reason if live else None,
            live.last_seen_ns if live else None,
        )
        for g, live in gws
    ]
    gw_ids = [g.id for g in gateways]
    values = list(
        db.scalars(
            scoped_select(LatestValue, scope)
            .where(LatestValue.gateway_id.in_(gw_ids))
            .order_by(LatestValue.device, LatestValue.point)
        )
    )
    alarms = list(
        db.scalars(
            scoped_select(GatewayAlarm, scope)
            .where(GatewayAlarm.gateway_id.in_(gw_ids), GatewayAlarm.state != "normal")
            .order_by(GatewayAlarm.ts_ns.desc())
        )
    )
    open_alerts = list(
        db.scalars(
            scoped_select(Alert, scope)
            .where(Alert.mine_id == mine.id, Alert.state == AlertState.FIRING)
            .order_by(Alert.started_ns.desc())
        )
    )
    resolved = list(
        db.scalars(
            scoped_select(Alert, scope)
            .where(Alert.mine_id == mine.id, Alert.state == AlertState.RESOLVED)
            .order_by(Alert.resolved_ns.desc())
            .limit(history)
        )
    )
    return MineDetail(
        mine, f"{region.name} / {city.name} / {county.name}", gateways, values, alarms,
        open_alerts + resolved,
    )  # fmt: skip

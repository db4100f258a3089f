"""From alert events to deliveries: the pipeline of stages.

For each receiver, :func:`dispatch` takes the alert events after its cursor
(in id order), builds a :class:`Notification` for each, passes the list
through the receiver's stages and queues a :class:`Delivery` for each one
left, then moves the cursor, all in one transaction. Stages are plain
functions ``list[Notification] -> list[Notification]``. Muters (silences,
inhibition: ``mute.py``) are objects whose ``mutes(notification)`` returns
the reason or None, asked after the stages, as Alertmanager's pipeline
asks its muters; a muted notification is kept as a ``muted`` delivery.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from sqlalchemy import Table, func, select
from sqlalchemy.orm import Session

from supervision.alerting.models import Alert, AlertEvent
from supervision.alerting.rules import iso
from supervision.auth.scope import AreaLevel, Scope, mine_ids_in
from supervision.config import AnyReceiver
from supervision.db.upsert import insert_new
from supervision.notify.models import Delivery, DeliveryState, NotifyCursor
from supervision.registry.models import City, County, Mine, Region

_DELIVERY = cast(Table, Delivery.__table__)
_CURSOR = cast(Table, NotifyCursor.__table__)


@dataclass(frozen=True, slots=True)
class Notification:
    receiver: str
    event: AlertEvent
    alert: Alert


Stage = Callable[[list[Notification]], list[Notification]]


class Muter(Protocol):
    def mutes(self, notification: Notification) -> str | None:
        """Why the notification must not go out, or None."""
        ...


def event_filter(events: Sequence[str]) -> Stage:
    wanted = frozenset(events)
    return lambda ns: [n for n in ns if n.event.event in wanted]


def area_filter(mine_ids: set[int] | None) -> Stage:
    if mine_ids is None:
        return lambda ns: ns
    return lambda ns: [n for n in ns if n.alert.mine_id in mine_ids]


_AREA_MODELS: dict[str, Any] = {"region": Region, "city": City, "county": County, "mine": Mine}


def receiver_mines(db: Session, area: str) -> set[int] | None:
    """The mine ids of ``area`` ("county:QN"); None for every mine. An area
    whose code does not exist matches no mine (and says so in the log of
    the caller), never every mine."""
    if not area:
        return None
    level, _, code = area.partition(":")
    model = _AREA_MODELS[level]
    area_id = db.scalar(select(model.id).where(model.code == code))
    if area_id is None:
        return set()
    subq = mine_ids_in(Scope(AreaLevel(level), area_id))
    return set(db.scalars(subq)) if subq is not None else None


def build_pipeline(receiver: AnyReceiver, mine_ids: set[int] | None) -> list[Stage]:
    return [event_filter(receiver.events), area_filter(mine_ids)]


def muted_by(muters: Sequence[Muter], n: Notification) -> str | None:
    for m in muters:
        reason = m.mutes(n)
        if reason:
            return reason
    return None


def payload(db: Session, n: Notification) -> dict[str, Any]:
    """The JSON a receiver gets: the event as it was when it happened."""
    ev, alert = n.event, n.alert
    mine = db.get_one(Mine, alert.mine_id)
    county = db.get_one(County, mine.county_id)
    return {
        "receiver": n.receiver,
        "event": ev.event,
        "event_id": ev.id,
        "at": iso(ev.at_ns),
        "at_ns": ev.at_ns,
        "actor": ev.actor,
        "alert": {
            "id": alert.id,
            "kind": alert.kind,
            "severity": alert.severity,
            "fingerprint": alert.fingerprint,
            "summary": ev.detail.get("summary", alert.summary),
            "evidence": ev.detail.get("evidence", alert.evidence),
            "started": iso(alert.started_ns),
        },
        "mine": {
            "id": mine.id,
            "code": mine.code,
            "name": mine.name,
            "status": mine.status,
            "county": county.code,
        },
    }


def _open_group(db: Session, r: AnyReceiver, mine_id: int, now_ns: int) -> int:
    """When the receiver's group for this mine goes out: the time of a
    group still waiting, or a new group's, ``group_wait_s`` from now."""
    waiting = db.scalar(
        select(func.min(Delivery.next_attempt_ns)).where(
            Delivery.receiver == r.name,
            Delivery.mine_id == mine_id,
            Delivery.state == DeliveryState.PENDING,
            Delivery.attempts == 0,
            Delivery.next_attempt_ns > now_ns,
        )
    )
    return int(waiting) if waiting is not None else now_ns + int(r.group_wait_s * 1e9)


def dispatch(
    db: Session,
    receivers: Sequence[AnyReceiver],
    now_ns: int,
    *,
    muters: Sequence[Muter] = (),
    batch: int = 500,
) -> int:
    """Queue deliveries for new alert events; the number queued (muted ones
    are stored too, in state ``muted``, and not counted). The built-in
    muters (gateway-offline inhibition, silences) come first."""
    from supervision.notify.mute import GatewayOfflineInhibitor, SilenceMuter

    if not receivers:
        return 0
    muters = [GatewayOfflineInhibitor(db), SilenceMuter(db, now_ns), *muters]
    queued = 0
    for r in receivers:
        insert_new(db, _CURSOR, {"receiver": r.name, "last_event_id": 0})
        # row lock on PostgreSQL: two instances dispatching take turns
        cursor = db.get_one(NotifyCursor, r.name, with_for_update=True)
        events = db.execute(
            select(AlertEvent, Alert)
            .join(Alert, Alert.id == AlertEvent.alert_id)
            .where(AlertEvent.id > cursor.last_event_id)
            .order_by(AlertEvent.id)
            .limit(batch)
        ).all()
        if not events:
            continue
        notes = [Notification(r.name, ev, alert) for ev, alert in events]
        for stage in build_pipeline(r, receiver_mines(db, r.area)):
            notes = stage(notes)
        group_due: dict[int, int] = {}  # mine -> when its open group goes out
        for n in notes:
            reason = muted_by(muters, n)
            due = now_ns
            if r.group_wait_s > 0 and not reason:
                due = group_due.get(n.alert.mine_id) or _open_group(db, r, n.alert.mine_id, now_ns)
                group_due[n.alert.mine_id] = due
            if (
                insert_new(
                    db,
                    _DELIVERY,
                    {
                        "receiver": r.name,
                        "alert_event_id": n.event.id,
                        "alert_id": n.alert.id,
                        "mine_id": n.alert.mine_id,
                        "payload": payload(db, n),
                        "state": (DeliveryState.MUTED if reason else DeliveryState.PENDING).value,
                        "attempts": 0,
                        "next_attempt_ns": due,
                        "created_ns": now_ns,
                        "last_error": reason,
                        "done_ns": now_ns if reason else None,
                    },
                )
                and not reason
            ):
                queued += 1
        cursor.last_event_id = events[-1][0].id
    db.flush()
    return queued

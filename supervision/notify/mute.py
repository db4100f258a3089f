"""Muters: what keeps a notification from going out. The pipeline asks
each muter in turn (Alertmanager's ``inhibit.Inhibitor.Mutes`` and
``silence.Silencer.Mutes``); a muted notification is kept as a delivery in
state ``muted`` with the reason, never silently lost."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from supervision.alerting.models import Alert, AlertKind, AlertState
from supervision.alerting.rules import iso
from supervision.notify.models import Silence
from supervision.notify.pipeline import Notification


class GatewayOfflineInhibitor:
    """A gateway that is offline does not also notify each of its alarms
    and silent devices: the offline alert says it all (Alertmanager's
    inhibition)."""

    def __init__(self, db: Session) -> None:
        self.offline = set(
            db.scalars(
                select(Alert.gateway_id).where(
                    Alert.kind == AlertKind.GATEWAY_OFFLINE, Alert.state == AlertState.FIRING
                )
            )
        )

    INHIBITED = frozenset(
        {AlertKind.GATEWAY_ALARM, AlertKind.DEVICE_SILENT, AlertKind.DEVICE_DATA_GAP}
    )

    def mutes(self, n: Notification) -> str | None:
        if n.alert.kind in self.INHIBITED and n.alert.gateway_id in self.offline:
            return "inhibited: its gateway is offline"
        return None


class SilenceMuter:
    """Active silences of the notification's mine (all kinds, or its kind)."""

    def __init__(self, db: Session, now_ns: int) -> None:
        rows = db.scalars(
            select(Silence)
            .where(Silence.expires_ns > now_ns)
            .where(or_(Silence.ended_ns.is_(None), Silence.ended_ns > now_ns))
            .order_by(Silence.id)
        )
        self.by_mine: dict[int, list[Silence]] = {}
        for s in rows:
            self.by_mine.setdefault(s.mine_id, []).append(s)

    def mutes(self, n: Notification) -> str | None:
        for s in self.by_mine.get(n.alert.mine_id, ()):
            if s.kind is None or s.kind == n.alert.kind:
                return f"silenced by {s.created_by} until {iso(s.expires_ns)} (silence {s.id}: {s.comment})"[
                    :1000
                ]
        return None

"""The facts of the data-gap rule (:func:`supervision.alerting.rules.data_gaps`)
from the store: devices whose newest data is older than the shortest limit.

A device's data time is the newest ``latest_value.data_ts_ns`` of its
points (when a value with data, any quality but ``comm_loss``, last
arrived); its report time the newest ``ts_ns`` (``comm_loss`` reports
included). Only devices with a point past the cutoff are grouped, as the
silent-device query does: grouping every latest value of 10,000 gateways
each round is what the evaluator cannot afford.
"""

from __future__ import annotations

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from supervision.alerting.models import Alert
from supervision.alerting.rules import DATA_GAP, DeviceDataFact
from supervision.config import DataGapWatch
from supervision.ingest.models import LatestValue
from supervision.registry.models import Gateway


def device_data(db: Session, now_ns: int, watch: DataGapWatch) -> list[DeviceDataFact]:
    """Devices with no data for at least ``watch.shortest_s``: the only
    ones that can be in a gap (the rule applies each one's own limit),
    each marked ``alerting`` when its data-gap alert is open."""
    if not watch.enabled:
        return []
    G, L = Gateway, LatestValue
    cutoff = now_ns - int(watch.shortest_s * 1e9)
    stale = (
        select(L.gateway_id, L.device)
        .where(or_(L.data_ts_ns.is_(None), L.data_ts_ns < cutoff))
        .distinct()
        .subquery()
    )
    data = func.max(L.data_ts_ns)
    rows = db.execute(
        select(G.mine_id, G.id, G.site, G.name, L.device, func.count(), data, func.max(L.ts_ns))
        .join(stale, (stale.c.gateway_id == L.gateway_id) & (stale.c.device == L.device))
        .join(G, G.id == L.gateway_id)
        .group_by(G.mine_id, G.id, G.site, G.name, L.device)
        .having(func.coalesce(data, 0) < cutoff)
    )
    open_gaps = set(
        db.scalars(
            select(Alert.open_fingerprint).where(
                Alert.kind == DATA_GAP, Alert.open_fingerprint.is_not(None)
            )
        )
    )
    return [
        DeviceDataFact(
            mine_id, gid, f"{site}/{name}", device, n, last_data, last_report,
            alerting=f"{DATA_GAP}:{gid}:{device}" in open_gaps,
        )
        for mine_id, gid, site, name, device, n, last_data, last_report in rows
    ]  # fmt: skip

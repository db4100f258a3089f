"""Apply parsed messages to the store, idempotently.

A message is applied at most once per (gateway, seq): the ``received_seq``
row is inserted first, in the same transaction as the message's effects, and
a message whose row exists is dropped as a duplicate. Latest values and
alarm states only move forward in time. Two kinds skip the seq check: a
record with seq 0 (sent live while the gateway's store could not write,
docs/schema.md; it comes again with its real seq) and the retained
``alarms/active/<alarm>`` copy of an alarm transition, which carries the
seq of its ``alarms/<device>`` twin: both only set a state, forward in time.
The empty retained message that clears an alarm sets it ``normal`` and
keeps its time, so a later copy of a newer transition still wins. Statuses follow arrival order
instead: a last will carries the time its connection was made, older than
the ``online`` published on that connection, yet it comes after it (the
broker publishes it when the connection dies), and every instance receives
the status topic whole and in order. So a redelivered message, two
instances sharing a subscription, or a replay all end in the same state.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import Table, delete, select, update
from sqlalchemy.orm import Session

from supervision.db.upsert import insert_new_many, upsert, upsert_forward
from supervision.ingest.models import (
    GatewayAlarm,
    GatewayLiveness,
    LatestValue,
    ReceivedSeq,
    SurveyCheck,
)
from supervision.ingest.parse import Message
from supervision.ingest.stats import IngestStats
from supervision.registry.models import Gateway

_LATEST = cast(Table, LatestValue.__table__)
_ALARM = cast(Table, GatewayAlarm.__table__)
_LIVE = cast(Table, GatewayLiveness.__table__)
_SEQ = cast(Table, ReceivedSeq.__table__)
_CHECK = cast(Table, SurveyCheck.__table__)


@dataclass
class GatewayDirectory:
    """``<site>/<gateway>`` topic levels → gateway id. On a miss the whole
    registry is read in one query (at most once per ``negative_ttl_s``; a
    platform starting under a region's load would otherwise spend a round
    trip per gateway, a third of its write time in the profile,
    bench/results/platform_profile.md); between full reads a miss costs one
    query for that key. Known gateways are cached for good; unknown ones for
    ``negative_ttl_s``, so a flood from an unregistered gateway costs one
    query per interval, and a gateway registered meanwhile is picked up."""

    negative_ttl_s: float = 10.0
    _known: dict[str, int] = field(default_factory=dict)
    _unknown: dict[str, float] = field(default_factory=dict)
    _next_full: float = -1e18

    def lookup(self, db: Session, topic_key: str) -> int | None:
        gid = self._known.get(topic_key)
        if gid is not None:
            return gid
        now = time.monotonic()
        if self._unknown.get(topic_key, -1e18) > now:
            return None
        if now >= self._next_full:
            self._next_full = now + self.negative_ttl_s
            self._known.update({k: g for k, g in db.execute(select(Gateway.topic_key, Gateway.id))})
            gid = self._known.get(topic_key)
        else:
            gid = db.scalar(select(Gateway.id).where(Gateway.topic_key == topic_key))
        if gid is None:
            if len(self._unknown) > 10_000:  # junk topics must not grow memory
                self._unknown.clear()
            self._unknown[topic_key] = now + self.negative_ttl_s
            return None
        self._known[topic_key] = gid
        return gid


@dataclass
class BatchResult:
    applied: int = 0
    alarms: int = 0  # alarm or status messages applied: worth an evaluation now
    #: the gateways of those messages (what the evaluator re-evaluates)
    touched: set[int] = field(default_factory=set)


def apply_batch(
    db: Session,
    messages: Iterable[tuple[str, Message]],
    *,
    now_ns: int,
    directory: GatewayDirectory,
    stats: IngestStats,
) -> BatchResult:
    """Apply ``(topic, message)`` pairs in the caller's transaction."""
    result = BatchResult()
    latest: dict[tuple[int, str, str], dict[str, Any]] = {}
    alarms: dict[tuple[int, str], dict[str, Any]] = {}
    checks: dict[tuple[int, str], dict[str, Any]] = {}
    seen: dict[int, int | None] = {}  # gateway -> highest seq in this batch
    statuses: dict[int, dict[str, Any]] = {}
    clears: set[tuple[int, str]] = set()
    known: list[tuple[str, Message, int]] = []
    for topic, msg in messages:
        gid = directory.lookup(db, msg.topic_key)
        if gid is None:
            stats.drop("unknown_gateway", topic)
            continue
        known.append((topic, msg, gid))
    # dedupe in one statement: the first of each (gateway, seq) that is new
    first: dict[tuple[int, int], int] = {}
    for i, (_, msg, gid) in enumerate(known):
        if _deduped(msg):
            assert msg.seq is not None
            first.setdefault((gid, msg.seq), i)
    new = insert_new_many(
        db,
        _SEQ,
        [{"gateway_id": g, "seq": s, "received_ns": now_ns} for g, s in sorted(first)],
        ("gateway_id", "seq"),
    )
    for i, (topic, msg, gid) in enumerate(known):
        if msg.kind == "status":
            row = {
                "gateway_id": gid,
                "state": msg.state,
                "reason": msg.reason,
                "state_ts_ns": msg.ts_ns,
            }
            statuses[gid] = row  # the last to arrive wins (see module doc)
            stats.applied["status"] += 1
            result.applied += 1
            result.alarms += 1
            result.touched.add(gid)
            continue
        if msg.kind == "alarm_clear":  # supersedes the batch's earlier transitions
            clears.add((gid, msg.alarm))
            alarms.pop((gid, msg.alarm), None)
            stats.applied["alarm_clear"] += 1
            result.applied += 1
            result.alarms += 1
            result.touched.add(gid)
            continue
        if msg.seq is not None and _deduped(msg):
            if (gid, msg.seq) not in new or first[(gid, msg.seq)] != i:
                stats.drop("duplicate_seq", topic)
                continue
            prev = seen.get(gid)
            seen[gid] = msg.seq if prev is None else max(prev, msg.seq)
        elif not msg.retained:  # a retained copy is the broker's, not a sign of life
            seen.setdefault(gid, None)
        stats.applied[msg.kind] += 1
        result.applied += 1
        assert msg.ts_ns is not None
        if msg.kind in ("sample", "snapshot"):
            for pv in msg.values:
                key = (gid, msg.device, pv.point)
                old = latest.get(key)
                if old is None or old["ts_ns"] <= msg.ts_ns:
                    # when the point last had data: comm_loss keeps the older
                    data_ts = msg.ts_ns if pv.quality != "comm_loss" else None
                    if data_ts is None and old is not None:
                        data_ts = old["data_ts_ns"]
                    latest[key] = {
                        "gateway_id": gid,
                        "device": msg.device,
                        "point": pv.point,
                        "value": pv.value,
                        "number": pv.number,
                        "unit": pv.unit,
                        "quality": pv.quality,
                        "ts_ns": msg.ts_ns,
                        "data_ts_ns": data_ts,
                    }
                elif pv.quality != "comm_loss" and (old["data_ts_ns"] or 0) < msg.ts_ns:
                    old["data_ts_ns"] = msg.ts_ns  # an older message with data, later in the batch
        elif msg.kind == "alarm":
            akey = (gid, msg.alarm)
            clears.discard(akey)  # a transition after the clear
            old = alarms.get(akey)
            if old is None or old["ts_ns"] <= msg.ts_ns:
                value = next((pv.value for pv in msg.values if pv.point == msg.alarm_point), None)
                alarms[akey] = {
                    "gateway_id": gid,
                    "alarm": msg.alarm,
                    "device": msg.device,
                    "point": msg.alarm_point,
                    "state": msg.alarm_state,
                    "severity": msg.severity,
                    "event": msg.event,
                    "actor": msg.user,
                    "message": msg.text,
                    "value": value,
                    "seq": msg.seq,
                    "ts_ns": msg.ts_ns,
                }
            result.alarms += 1
            result.touched.add(gid)
        elif msg.kind == "survey_check":
            ckey = (gid, msg.licence)
            old_check = checks.get(ckey)
            if old_check is None or old_check["ts_ns"] <= msg.ts_ns:
                checks[ckey] = {
                    "gateway_id": gid,
                    "licence": msg.licence,
                    "check_id": msg.device,
                    "violation": msg.violation,
                    "message": msg.text,
                    "values": {pv.point: pv.value for pv in msg.values},
                    "seq": msg.seq,
                    "ts_ns": msg.ts_ns,
                }
            result.alarms += 1
            result.touched.add(gid)
    # sorted: two instances writing the same rows lock them in one order
    upsert(db, _LATEST, [latest[k] for k in sorted(latest)], keys=("gateway_id", "device", "point"), newer="ts_ns", keep=("data_ts_ns",))  # fmt: skip
    upsert(db, _ALARM, [alarms[k] for k in sorted(alarms)], keys=("gateway_id", "alarm"), newer="ts_ns")  # fmt: skip
    for gid, alarm in sorted(clears):
        db.execute(
            update(GatewayAlarm)
            .where(GatewayAlarm.gateway_id == gid, GatewayAlarm.alarm == alarm)
            .values(state="normal", event="clear")
        )
    upsert(db, _CHECK, [checks[k] for k in sorted(checks)], keys=("gateway_id", "licence"), newer="ts_ns")  # fmt: skip
    # last seen now; the highest seq applied so far (one statement)
    live = [{"gateway_id": g, "last_seen_ns": now_ns, "last_seq": seen[g]} for g in sorted(seen)]
    upsert_forward(db, _LIVE, live, keys=("gateway_id",))
    if statuses:
        upsert(db, _LIVE, [statuses[g] for g in sorted(statuses)], keys=("gateway_id",))
    return result


def _deduped(msg: Message) -> bool:
    """Whether ``msg`` is applied once per seq (see the module doc)."""
    return bool(msg.seq) and not msg.retained


def prune_seqs(db: Session, *, older_than_ns: int) -> int:
    """Forget applied seqs received before ``older_than_ns``; a replay older
    than that window is then applied again (harmless: values move forward
    only), while the table stays bounded."""
    res = db.execute(delete(ReceivedSeq).where(ReceivedSeq.received_ns < older_than_ns))
    return int(res.rowcount)  # type: ignore[attr-defined]

"""Records to MQTT topics and JSON payloads (documented in docs/schema.md).

Topic tree under ``<prefix>/<site>/<gateway>/``::

    status                    retained  online/offline (last will: offline)
    telemetry/<device>                  SAMPLE records
    snapshot/<device>         retained  SNAPSHOT records (latest every 20 s)
    stats/<device>                      STAT records (5-minute statistics)
    alarms/<device>                     ALARM records
    events                              EVENT records
    metrics                             METRIC records (gateway self-metrics)
    survey/<check>                      FINDING records
    alerts/survey                       a FINDING record with ``alert`` true

Every payload is one JSON object with ``seq``, ``kind``, ``ts`` (ISO 8601
UTC, milliseconds), ``ts_ns`` (integer ns) and ``device``; point values go
in ``values`` as ``{"<point>": {"v": value, "u": unit, "q": quality}}``
(``v`` is ``null`` when there is no usable value); STAT records carry
``stats``; other kinds carry their extra data in ``fields``.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime

from gateway.model import Quality, Record, RecordKind

#: topic leaf per kind; ``{device}`` is filled from the record
TOPICS: dict[RecordKind, str] = {
    RecordKind.SAMPLE: "telemetry/{device}",
    RecordKind.SNAPSHOT: "snapshot/{device}",
    RecordKind.STAT: "stats/{device}",
    RecordKind.ALARM: "alarms/{device}",
    RecordKind.EVENT: "events",
    RecordKind.METRIC: "metrics",
    RecordKind.FINDING: "survey/{device}",
}
RETAINED = frozenset({RecordKind.SNAPSHOT})
ALERT_TOPIC = "alerts/survey"

_TOPIC_BAD = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


def topic_segment(name: str) -> str:
    """A name usable as one topic level (no ``/``, ``+``, ``#``, NUL)."""
    return name.translate(_TOPIC_BAD) or "_"


def iso_ms(ts_ns: int) -> str:
    """``2026-11-25T15:30:00.123Z`` (UTC, milliseconds, truncated)."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    base = datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{ns // 1_000_000:03d}Z"


def _json_value(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _finite(obj: object) -> object:
    """``obj`` with every NaN/infinity (not JSON) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: object) -> bytes:
    """Strict JSON (no NaN), UTF-8; odd types as their str()."""
    try:
        text = json.dumps(obj, ensure_ascii=False, default=str, allow_nan=False)
    except ValueError:
        text = json.dumps(_finite(obj), ensure_ascii=False, default=str, allow_nan=False)
    return text.encode()


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


class MqttEncoder:
    """Builds the messages for records of one gateway."""

    def __init__(self, prefix: str, site: str, gateway: str) -> None:
        self.root = f"{prefix.rstrip('/')}/{topic_segment(site)}/{topic_segment(gateway)}"
        self.site = site
        self.gateway = gateway

    @property
    def status_topic(self) -> str:
        return f"{self.root}/status"

    def status_payload(self, state: str, reason: str, ts_ns: int) -> bytes:
        return dumps(
            {
                "state": state,
                "reason": reason,
                "site": self.site,
                "gateway": self.gateway,
                "ts": iso_ms(ts_ns),
                "ts_ns": ts_ns,
            }
        )

    def payload(self, record: Record) -> dict[str, object]:
        """The JSON object for one record (before serialisation)."""
        out: dict[str, object] = {
            "seq": record.seq,
            "kind": record.kind.value,
            "ts": iso_ms(record.ts_ns),
            "ts_ns": record.ts_ns,
            "device": record.device,
        }
        if record.kind is RecordKind.STAT:
            stats: dict[str, object] = {}
            for p, u in zip(record.points, record.units, strict=True):
                st = record.fields.get(p)
                if isinstance(st, dict):
                    stats[p] = {**{k: _json_value(v) for k, v in st.items()}, "u": u}
            out["stats"] = stats
            return out
        values: dict[str, object] = {}
        for p, v, u, q in zip(
            record.points, record.values, record.units, record.qualities, strict=True
        ):
            jv = _json_value(v)
            qv = Quality(q).value
            if jv is None and v is not None and q is Quality.GOOD:
                qv = Quality.BAD.value
            values[p] = {"v": jv, "u": u, "q": qv}
        if values or record.kind in (RecordKind.SAMPLE, RecordKind.SNAPSHOT):
            out["values"] = values
        if record.fields:
            out["fields"] = record.fields
        return out

    def encode(self, record: Record) -> list[Message]:
        leaf = TOPICS[record.kind].format(device=topic_segment(record.device))
        obj = self.payload(record)
        body = dumps(obj)
        msgs = [Message(f"{self.root}/{leaf}", body, record.kind in RETAINED)]
        if record.kind is RecordKind.FINDING and record.fields.get("alert") is True:
            alert = {
                "seq": record.seq,
                "ts": obj["ts"],
                "ts_ns": record.ts_ns,
                "check": record.device,
                "site": self.site,
                "gateway": self.gateway,
                "message": record.fields.get("message", ""),
                "topic": f"{self.root}/{leaf}",
            }
            msgs.append(Message(f"{self.root}/{ALERT_TOPIC}", dumps(alert)))
        return msgs

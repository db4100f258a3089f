"""Records to MQTT topics and JSON payloads (documented in docs/schema.md).

Topic tree under ``<prefix>/<site>/<gateway>/``::

    status                    retained  online/offline (last will: offline)
    telemetry/<device>                  SAMPLE records
    snapshot/<device>         retained  SNAPSHOT records (latest every 20 s)
    stats/<device>                      STAT records (5-minute statistics)
    alarms/<device>                     ALARM records (the transition stream)
    alarms/active/<alarm>     retained  the alarm's last transition while it
                                        is not normal; emptied when it is
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

import functools
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
ACTIVE_ALARMS = "alarms/active"
_GOOD = Quality.GOOD
_BAD = Quality.BAD
_PLAIN_NUMBERS = frozenset((int, float))

_TOPIC_BAD = str.maketrans({"/": "_", "+": "_", "#": "_", "\x00": "_"})


def topic_segment(name: str) -> str:
    """A name usable as one topic level (no ``/``, ``+``, ``#``, NUL)."""
    return name.translate(_TOPIC_BAD) or "_"


@functools.lru_cache(maxsize=256)
def _iso_second(secs: int) -> str:
    return datetime.fromtimestamp(secs, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ms(ts_ns: int) -> str:
    """``2026-11-25T15:30:00.123Z`` (UTC, milliseconds, truncated)."""
    secs, ns = divmod(ts_ns, 1_000_000_000)
    return f"{_iso_second(secs)}.{ns // 1_000_000:03d}Z"


def _json_value(v: object) -> object:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


_Template = tuple[list[str], list[str], list[str], list[str], str]


def _good_finite_numbers(record: Record) -> bool:
    """Every value a finite int or float (not a bool), every quality GOOD,
    and the parallel lists of equal length."""
    values = record.values
    n = len(values)
    if not (len(record.points) == len(record.units) == len(record.qualities) == n):
        return False
    kinds = set(map(type, values))
    if not kinds <= _PLAIN_NUMBERS or record.qualities.count(_GOOD) != n:
        return False
    if float not in kinds:
        return True
    try:
        # NaN or inf makes the sum non-finite (so may an overflow: then the
        # record takes the slower path, with the same result)
        return math.isfinite(sum(values))  # type: ignore[arg-type]
    except OverflowError:  # an int beyond float range among floats
        return False


def _finite(obj: object) -> object:
    """``obj`` with every NaN/infinity (not JSON) replaced by ``None``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str, allow_nan=False)


def dumps(obj: object) -> bytes:
    """Strict JSON (no NaN), UTF-8; odd types as their str()."""
    try:
        text = _ENCODER.encode(obj)
    except ValueError:
        text = _ENCODER.encode(_finite(obj))
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
        self._topics: dict[tuple[RecordKind, str], str] = {}
        # device -> (points, units, heads, mids, "%s" template of the values
        # if all are good numbers) of its last layout
        self._layouts: dict[str, _Template] = {}
        self._heads: dict[str, str] = {}
        self._mids: dict[str, str] = {}
        self._devices: dict[str, str] = {}

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
        # hot path: Quality is a str enum, JSON writes it as its value
        values: dict[str, object] = {}
        finite = math.isfinite
        for p, v, u, q in zip(
            record.points, record.values, record.units, record.qualities, strict=True
        ):
            if type(v) is float and not finite(v):
                values[p] = {"v": None, "u": u, "q": _BAD if q is _GOOD else q}
            else:
                values[p] = {"v": v, "u": u, "q": q}
        if values or record.kind in (RecordKind.SAMPLE, RecordKind.SNAPSHOT):
            out["values"] = values
        if record.fields:
            out["fields"] = record.fields
        return out

    def topic(self, record: Record) -> str:
        key = (record.kind, record.device)
        t = self._topics.get(key)
        if t is None:
            leaf = TOPICS[record.kind].format(device=topic_segment(record.device))
            t = self._topics[key] = f"{self.root}/{leaf}"
        return t

    def fast_body(self, record: Record) -> bytes:
        """The payload of a SAMPLE/SNAPSHOT record without ``fields``, built
        as text from cached fragments: the telemetry hot path. Equal (as
        JSON) to ``dumps(self.payload(record))``, which the tests check."""
        # one device sends the same points in the same order every time:
        # keep the JSON fragments of its last layout
        tmpl = self._layouts.get(record.device)
        if tmpl is None or tmpl[0] != record.points or tmpl[1] != record.units:
            # report by exception sends changing subsets: cache per name too
            hc, mc = self._heads, self._mids
            heads = [
                hc.get(p) or hc.setdefault(p, f'{_ENCODER.encode(p)}:{{"v":') for p in record.points
            ]
            mids = [
                mc.get(u) or mc.setdefault(u, f',"u":{_ENCODER.encode(u)},"q":"')
                for u in record.units
            ]
            tmpl = self._layouts[record.device] = (
                list(record.points),
                list(record.units),
                heads,
                mids,
                ",".join(
                    f'{h.replace("%", "%%")}%s{m.replace("%", "%%")}{_GOOD}"}}'
                    for h, m in zip(heads, mids, strict=True)
                ),
            )
        if _good_finite_numbers(record):
            # "%s" of a float is its repr: the same text as _parts, in one
            # C-level pass over a template of the whole layout
            body = tmpl[4] % tuple(record.values)
        else:
            body = ",".join(self._parts(tmpl, record))
        dev = self._devices.get(record.device)
        if dev is None:
            dev = self._devices[record.device] = _ENCODER.encode(record.device)
        return (
            f'{{"seq":{record.seq},"kind":"{record.kind.value}","ts":"{iso_ms(record.ts_ns)}",'
            f'"ts_ns":{record.ts_ns},"device":{dev},"values":{{{body}}}}}'
        ).encode()

    @staticmethod
    def _parts(tmpl: _Template, record: Record) -> list[str]:
        finite = math.isfinite
        parts: list[str] = []
        append = parts.append
        for head, mid, v, q in zip(tmpl[2], tmpl[3], record.values, record.qualities, strict=True):
            t = type(v)
            if t is float:
                if finite(v):  # type: ignore[arg-type]
                    append(f'{head}{v!r}{mid}{q}"}}')
                    continue
                vs = "null"
                if q is _GOOD:
                    q = _BAD
            elif t is int:
                vs = str(v)
            elif t is bool:
                vs = "true" if v else "false"
            elif v is None:
                vs = "null"
            else:
                vs = _ENCODER.encode(_finite(v))
            append(f'{head}{vs}{mid}{q}"}}')
        return parts

    def encode(self, record: Record) -> list[Message]:
        topic = self.topic(record)
        kind = record.kind
        if (kind is RecordKind.SAMPLE or kind is RecordKind.SNAPSHOT) and not record.fields:
            return [Message(topic, self.fast_body(record), kind in RETAINED)]
        obj = self.payload(record)
        body = dumps(obj)
        msgs = [Message(topic, body, kind in RETAINED)]
        if kind is RecordKind.FINDING and record.fields.get("alert") is True:
            alert = {
                "seq": record.seq,
                "ts": obj["ts"],
                "ts_ns": record.ts_ns,
                "check": record.device,
                "site": self.site,
                "gateway": self.gateway,
                "message": record.fields.get("message", ""),
                "topic": topic,
            }
            msgs.append(Message(f"{self.root}/{ALERT_TOPIC}", dumps(alert)))
        elif kind is RecordKind.ALARM and isinstance(alarm := record.fields.get("alarm"), str):
            # one retained message per alarm not in normal; an empty retained
            # message removes it from the broker when the alarm is normal.
            # First of the record's messages: the sink starts the records of
            # a batch in order, so the retained state of an alarm is
            # published in seq order and its last transition wins.
            active = record.fields.get("state") != "normal"
            topic = f"{self.root}/{ACTIVE_ALARMS}/{topic_segment(alarm)}"
            msgs.insert(0, Message(topic, body if active else b"", True))
        return msgs

"""Records to InfluxDB line protocol (the schema is in docs/schema.md).

One record becomes one line (``stats_5m``: one line per point). Tags are
written in sorted key order, timestamps in nanoseconds. The encoder caches the
escaped line prefix per (measurement, device) and the escaped field keys per
point, so the hot path for telemetry is one join per record.

Quality: a value whose quality is not ``good`` adds a string field
``<point>_q`` with the quality name; a missing value (``None``, comm loss) or
a non-finite float writes *only* that quality field, never a fake number.
A point out of service (its alarms taken out for calibration or maintenance,
``Record.fields["out_of_service"]``) adds the boolean field ``<point>_oos``.

Types: device values (SAMPLE, SNAPSHOT, ALARM points) and the free-form
``Record.fields`` numbers are written as floats, integers included, so that a
point read as ``55`` and later ``55.3`` never hits InfluxDB's field type
conflict; records the gateway builds with fixed types (metrics, survey
findings, the counts of statistics) keep their integers.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
from collections.abc import Collection, Iterable, Sequence

from gateway.model import OUT_OF_SERVICE, Quality, Record, RecordKind

MEASUREMENTS: dict[RecordKind, str] = {
    RecordKind.SAMPLE: "telemetry",
    RecordKind.SNAPSHOT: "snapshot",
    RecordKind.STAT: "stats_5m",
    RecordKind.ALARM: "alarm",
    RecordKind.EVENT: "event",
    RecordKind.METRIC: "gateway_metrics",
    RecordKind.FINDING: "survey_finding",
}

#: keys of ``Record.fields`` that become tags (low-cardinality identifiers)
TAG_KEYS: dict[RecordKind, tuple[str, ...]] = {
    RecordKind.ALARM: ("alarm", "point", "severity", "state"),
    RecordKind.EVENT: (),
    RecordKind.FINDING: (),
    RecordKind.METRIC: (),
}

#: keys of ``Record.fields`` with a meaning for the encoder, never written as fields
RESERVED_KEYS = frozenset({"measurement", "tags"})

QUALITY_SUFFIX = "_q"
OUT_OF_SERVICE_SUFFIX = "_oos"

#: kinds whose point values come from devices: every number written as a float
FLOAT_KINDS = frozenset({RecordKind.SAMPLE, RecordKind.SNAPSHOT, RecordKind.ALARM})

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
# fields per line of a generic record (metrics, events): see _generic_lines
MAX_LINE_FIELDS = 500

#: the one field of a record whose data are all tags (a line needs a field)
EMPTY_FIELD = "recorded"

_GOOD = Quality.GOOD

_TAG_ESC = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ ", "\n": "\\ ", "\r": "\\ "})
_MEAS_ESC = str.maketrans({",": "\\,", " ": "\\ ", "\n": "\\ ", "\r": "\\ "})
_STR_ESC = str.maketrans({"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r"})


def escape_tag(s: str) -> str:
    """Escape a tag key, tag value or field key (commas, equals, spaces)."""
    return s.translate(_TAG_ESC)


def escape_measurement(s: str) -> str:
    return s.translate(_MEAS_ESC)


def quote_string(s: str) -> str:
    """A string field value: double-quoted, with ``"`` and ``\\`` escaped."""
    return '"' + s.translate(_STR_ESC) + '"'


def format_value(v: object, *, int_as_float: bool = False) -> str | None:
    """One field value in line protocol, or ``None`` when it cannot be written
    (``None``, NaN, infinity, a number beyond float64).

    ``int_as_float`` writes integers as floats (``12`` -> ``12.0``): device
    values are always written so, because InfluxDB fixes a field's type at
    its first write and the same point can arrive as ``55`` and ``55.3`` (an
    ASCII sensor, a scaled register): a field type conflict otherwise. Floats
    hold integers exactly up to 2**53. Containers become JSON strings.
    """
    t = type(v)
    if t is float:
        return repr(v) if math.isfinite(v) else None  # type: ignore[arg-type]
    if t is bool:
        return "true" if v else "false"
    if t is int:
        if not int_as_float and _INT64_MIN <= v <= _INT64_MAX:  # type: ignore[operator]
            return f"{v}i"
        try:
            return repr(float(v))  # type: ignore[arg-type]
        except OverflowError:
            return None
    if t is str:
        return quote_string(v)  # type: ignore[arg-type]
    if v is None:
        return None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return format_value(int(v), int_as_float=int_as_float)
    if isinstance(v, float):
        return format_value(float(v))
    if isinstance(v, str):
        return quote_string(str(v))
    return quote_string(json.dumps(v, default=str, ensure_ascii=False, sort_keys=True))


def format_free_value(v: object) -> str | None:
    """A value from ``Record.fields``: numbers always as floats (producers mix
    1 and 1.5 freely), containers as JSON strings."""
    return format_value(v, int_as_float=True)


_NUMBER_TYPES = frozenset((int, float))


def _good_finite_floats(record: Record) -> list[float] | None:
    """The values as floats if every value is an int or float (not a bool)
    with a finite float, every quality is GOOD, and the parallel lists have
    one length; else None."""
    values = record.values
    n = len(values)
    if len(record.points) != n or len(record.qualities) != n:
        return None
    if not set(map(type, values)) <= _NUMBER_TYPES:
        return None
    if any(map(operator.is_not, record.qualities, itertools.repeat(_GOOD))):
        return None
    try:
        floats = list(map(float, values))  # type: ignore[arg-type]
    except OverflowError:  # an int beyond float64: not written (see format_value)
        return None
    # NaN or inf makes the sum non-finite (so may an overflow: then the
    # record takes the slower path, with the same result)
    return floats if math.isfinite(sum(floats)) else None


class LineEncoder:
    """Encodes records of one gateway. Not thread-safe (caches)."""

    def __init__(self, site: str, gateway: str) -> None:
        self.site = site
        self.gateway = gateway
        self._prefix: dict[tuple[str, str], str] = {}
        self._keys: dict[str, str] = {}
        self._qkeys: dict[str, str] = {}
        # device -> (points, "%r" template of their fields) of its last layout
        self._layouts: dict[str, tuple[list[str], str]] = {}

    # -- public ------------------------------------------------------------

    def encode(self, record: Record) -> list[str]:
        """The lines for one record (possibly none: a record without any
        writable field)."""
        kind = record.kind
        if kind is RecordKind.SAMPLE or kind is RecordKind.SNAPSHOT:
            line = self._values_line(MEASUREMENTS[kind], record)
            return [line] if line else []
        if kind is RecordKind.STAT:
            return self._stat_lines(record)
        return self._generic_lines(record)

    def encode_batch(self, records: Iterable[Record]) -> tuple[list[str], list[int]]:
        """All lines of a batch, and for each line the index of its record."""
        lines: list[str] = []
        owners: list[int] = []
        for i, rec in enumerate(records):
            for line in self.encode(rec):
                lines.append(line)
                owners.append(i)
        return lines, owners

    # -- internals ---------------------------------------------------------

    def _prefix_for(self, measurement: str, device: str) -> str:
        key = (measurement, device)
        p = self._prefix.get(key)
        if p is None:
            p = self._tagged(measurement, {"device": device})
            self._prefix[key] = p
        return p

    def _tagged(self, measurement: str, extra: dict[str, str]) -> str:
        tags = {"site": self.site, "gateway": self.gateway}
        tags.update(extra)
        parts = [escape_measurement(measurement)]
        for k in sorted(tags):
            v = tags[k]
            if v != "":
                parts.append(f"{escape_tag(k)}={escape_tag(v)}")
        return ",".join(parts) + " "

    def _key(self, point: str) -> str:
        k = self._keys.get(point)
        if k is None:
            k = self._keys[point] = escape_tag(point)
        return k

    def _qkey(self, point: str) -> str:
        k = self._qkeys.get(point)
        if k is None:
            k = self._qkeys[point] = escape_tag(point + QUALITY_SUFFIX)
        return k

    def _point_fields(self, record: Record, skip: Collection[str] = ()) -> list[str]:
        out: list[str] = []
        key = self._key
        as_float = record.kind in FLOAT_KINDS
        for p, v, q in zip(record.points, record.values, record.qualities, strict=True):
            if skip and p in skip:
                continue
            t = type(v)
            if t is float and q is _GOOD and v == v and v not in (math.inf, -math.inf):
                out.append(f"{key(p)}={v!r}")
                continue
            s = format_value(v, int_as_float=as_float)
            if s is not None:
                out.append(f"{key(p)}={s}")
                if q is not _GOOD:
                    out.append(f'{self._qkey(p)}="{Quality(q).value}"')
            else:
                # no fake value: only the reason it is missing
                qv = Quality.BAD.value if q is _GOOD else Quality(q).value
                out.append(f'{self._qkey(p)}="{qv}"')
        return out

    def _values_line(self, measurement: str, record: Record) -> str:
        floats = _good_finite_floats(record)
        if floats:
            # the hot path: one C-level pass over a template of the layout
            # ("%r" of a float is what _point_fields writes for it)
            layout = self._layouts.get(record.device)
            if layout is None or layout[0] != record.points:
                key = self._key
                template = ",".join(f"{key(p).replace('%', '%%')}=%r" for p in record.points)
                layout = self._layouts[record.device] = (list(record.points), template)
            body = layout[1] % tuple(floats)
        else:
            fields = self._point_fields(record)
            if not fields:
                return ""
            body = ",".join(fields)
        oos = record.fields.get(OUT_OF_SERVICE) if record.fields else None
        if isinstance(oos, list):
            key = self._key
            body += "".join(f",{key(p + OUT_OF_SERVICE_SUFFIX)}=true" for p in oos)
        return f"{self._prefix_for(measurement, record.device)}{body} {record.ts_ns}"

    def _stat_lines(self, record: Record) -> list[str]:
        lines: list[str] = []
        ts = record.ts_ns
        for p, unit in zip(record.points, record.units, strict=True):
            st = record.fields.get(p)
            if not isinstance(st, dict):
                continue
            prefix = self._tagged(
                MEASUREMENTS[RecordKind.STAT], {"device": record.device, "point": p, "unit": unit}
            )
            parts: list[str] = []
            for name in sorted(st):
                v = st[name]
                s = format_value(int(v)) if name in ("count", "window_s") else format_free_value(v)
                if s is not None:
                    parts.append(f"{escape_tag(name)}={s}")
            if parts:
                lines.append(f"{prefix}{','.join(parts)} {ts}")
        return lines

    def _generic_lines(self, record: Record) -> list[str]:
        fields = record.fields
        measurement = MEASUREMENTS[record.kind]
        m = fields.get("measurement")
        if isinstance(m, str) and m:
            measurement = m
        tags: dict[str, str] = {"device": record.device}
        extra_tags = fields.get("tags")
        if isinstance(extra_tags, dict):
            tags.update({str(k): str(v) for k, v in extra_tags.items()})
        for k in TAG_KEYS.get(record.kind, ()):
            v = fields.get(k)
            if v is not None and v != "":
                tags[k] = str(v)
        # a key is a tag or a field on a line, never both
        tag_names = {"site", "gateway", *tags}
        parts = self._point_fields(record, tag_names)
        taken = tag_names.union(record.points)
        for k in sorted(fields):
            if k in RESERVED_KEYS or k in taken:
                continue
            s = format_free_value(fields[k])
            if s is not None:
                parts.append(f"{escape_tag(k)}={s}")
        if not parts:
            # everything was a tag: the line must still exist (one field)
            parts.append(f"{EMPTY_FIELD}=true")
        prefix = self._tagged(measurement, tags)
        # A record with thousands of fields (the gateway's metrics of a site
        # with 2,000 devices) is cut into lines of at most MAX_LINE_FIELDS
        # fields, same series and timestamp (the server merges them):
        # VictoriaMetrics refuses a line over 256 KiB, and a refused batch
        # would hold its sink back for good.
        return [
            f"{prefix}{','.join(parts[i : i + MAX_LINE_FIELDS])} {record.ts_ns}"
            for i in range(0, len(parts), MAX_LINE_FIELDS)
        ]


def encode_records(records: Sequence[Record], site: str, gateway: str) -> str:
    """Convenience: the whole payload for a batch, newline-separated."""
    return "\n".join(LineEncoder(site, gateway).encode_batch(records)[0])

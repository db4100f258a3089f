"""Property test: whatever the names and strings, a line parses back (with a
slow reference parser written from the line protocol spec) to the record's
tags and fields."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.model import Quality, Record, RecordKind
from gateway.sinks.lineproto import LineEncoder


def _split(s: str, sep: str) -> list[str]:
    """Split on ``sep`` not preceded by a backslash escape."""
    out, cur, i = [], "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s):
            cur += s[i : i + 2]
            i += 2
            continue
        if s[i] == sep:
            out.append(cur)
            cur = ""
        else:
            cur += s[i]
        i += 1
    out.append(cur)
    return out


def _fields(s: str) -> tuple[list[tuple[str, str]], str]:
    """The field set (key, raw value) and the rest after the separating space;
    quotes only matter inside a value."""
    pairs, i = [], 0
    while True:
        k = ""
        while s[i] != "=":
            k += s[i : i + 2] if s[i] == "\\" else s[i]
            i += 2 if s[i] == "\\" else 1
        i += 1
        v = ""
        if s[i] == '"':
            v, i = '"', i + 1
            while s[i] != '"':
                v += s[i : i + 2] if s[i] == "\\" else s[i]
                i += 2 if s[i] == "\\" else 1
            v, i = v + '"', i + 1
        else:
            while s[i] not in ", ":
                v += s[i]
                i += 1
        pairs.append((k, v))
        if s[i] == " ":
            return pairs, s[i + 1 :]
        i += 1


def _unescape(s: str) -> str:
    out, i = "", 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in ", =":
            out += s[i + 1]
            i += 2
        else:
            out += s[i]
            i += 1
    return out


def _value(s: str) -> object:
    if s.startswith('"'):
        body, out, i = s[1:-1], "", 0
        while i < len(body):
            if body[i] == "\\" and i + 1 < len(body):
                nxt = body[i + 1]
                out += {"n": "\n", "r": "\r"}.get(nxt, nxt)
                i += 2
            else:
                out += body[i]
                i += 1
        return out
    if s in ("true", "false"):
        return s == "true"
    if s.endswith("i"):
        return int(s[:-1])
    return float(s)


def parse(line: str) -> tuple[str, dict[str, str], dict[str, object], int]:
    head, rest = _split(line, " ")[0], line[len(_split(line, " ")[0]) + 1 :]
    meas, *tags = _split(head, ",")
    tag_d = {_unescape(k): _unescape(v) for k, v in (_split(t, "=") for t in tags)}
    pairs, ts = _fields(rest)
    field_d: dict[str, object] = {_unescape(k): _value(v) for k, v in pairs}
    return _unescape(meas), tag_d, field_d, int(ts)


# names as a site file could hold them; a trailing backslash cannot be a tag value
name = st.text(st.characters(codec="utf-8", exclude_characters="\\\n\r"), min_size=1, max_size=12)
text = st.text(st.characters(codec="utf-8"), max_size=20)
value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True), st.integers(-(2**70), 2**70), st.booleans(),
    text, st.none(),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(
    device=name,
    site=name,
    points=st.lists(name, min_size=1, max_size=6, unique=True).filter(
        lambda ps: not any(p.endswith("_q") for p in ps)
    ),
    data=st.data(),
)
def test_telemetry_round_trip(
    device: str, site: str, points: list[str], data: st.DataObject
) -> None:
    vals = [data.draw(value) for _ in points]
    quals = [data.draw(st.sampled_from(list(Quality))) for _ in points]
    rec = Record(RecordKind.SAMPLE, device, 1_700_000_000_123_456_789, points, vals,
                 [""] * len(points), quals)  # fmt: skip
    (line,) = LineEncoder(site, "gw 1").encode(rec)
    meas, tags, fields, ts = parse(line)
    assert meas == "telemetry" and ts == rec.ts_ns
    assert tags == {"site": site, "gateway": "gw 1", "device": device}
    for p, v, q in zip(points, vals, quals, strict=True):
        writable = v is not None and not (isinstance(v, float) and not math.isfinite(v))
        if isinstance(v, int) and not isinstance(v, bool):
            writable = abs(v) < 2**1000
        if writable:
            got = fields[p]
            if isinstance(v, bool) or isinstance(v, str):
                assert got == v
            else:
                assert got == float(v)  # type: ignore[arg-type]
        else:
            assert p not in fields
        if q is not Quality.GOOD or not writable:
            assert fields[p + "_q"] == (q.value if q is not Quality.GOOD else "bad")
        else:
            assert p + "_q" not in fields


@settings(max_examples=300, deadline=None)
@given(
    device=name,
    points=st.lists(name, min_size=0, max_size=6, unique=True),
    kind=st.sampled_from([RecordKind.SAMPLE, RecordKind.SNAPSHOT]),
    data=st.data(),
)
def test_fast_mqtt_payload_equals_the_reference(
    device: str, points: list[str], kind: RecordKind, data: st.DataObject
) -> None:
    import json

    from gateway.sinks.mqtt_schema import MqttEncoder, dumps

    vals = [data.draw(st.one_of(value, st.integers(-(2**63), 2**63))) for _ in points]
    quals = [data.draw(st.sampled_from(list(Quality))) for _ in points]
    units = [data.draw(text) for _ in points]
    rec = Record(kind, device, data.draw(st.integers(0, 2**63 - 1)), points, vals, units, quals,
                 seq=data.draw(st.integers(1, 2**62)))  # fmt: skip
    enc = MqttEncoder("minegate", "s", "g")
    fast = json.loads(enc.fast_body(rec))
    reference = json.loads(dumps(enc.payload(rec)))
    assert fast == reference
    (msg,) = enc.encode(rec)
    assert json.loads(msg.payload) == reference

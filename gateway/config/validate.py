"""Validate a parsed site file against ``gateway.config.schema`` and turn
pydantic's errors into located messages for a person.

A file with errors is still checked as far as it can be: every ``[[buses]]``,
``[[devices]]``, ``[[sinks]]`` and ``[[alarms]]`` table is validated on its
own, the keys that are wrong are set aside, and what remains goes on to the
checks across tables (``gateway.config.load``), so an unknown key in one
place never hides a range error or a missing bus in another. ``Parts`` says
what was set aside so those checks stay quiet about it.

No message repeats the value of a secret key (password, token...) or the
user and password of a URL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic_core import ErrorDetails

from gateway.config.schema import (
    AlarmTable,
    AnyBus,
    AnySink,
    BusConfig,
    DeviceConfig,
    SiteFile,
    SiteSection,
    model_at,
)
from gateway.config.site import ConfigIssue
from gateway.config.tomlpos import TomlPositions, format_loc
from gateway.sinks.config import SinkConfig

Loc = tuple[str | int, ...]

_TAGGED = ("buses", "sinks")
_ITEM_ADAPTERS: dict[str, TypeAdapter[Any]] = {
    "buses": TypeAdapter(BusConfig),
    "devices": TypeAdapter(DeviceConfig),
    "sinks": TypeAdapter(SinkConfig),
    "alarms": TypeAdapter(AlarmTable),
}

#: Keys whose value is never shown in a message (matched as substrings).
SECRET_WORDS = ("password", "passwd", "token", "secret", "api_key", "apikey", "credential")
_URL_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@")


def is_secret_key(key: str | int) -> bool:
    return isinstance(key, str) and any(w in key.lower() for w in SECRET_WORDS)


def redact_userinfo(text: str) -> str:
    """``text`` with the ``user:password@`` of every URL in it replaced."""
    return _URL_USERINFO.sub(r"\1***@", text)


@dataclass
class Parts:
    """What validated, by table and original index, for the checks across
    tables. ``spec`` is the whole file when it had no error at all."""

    site: SiteSection
    buses: list[tuple[int, AnyBus]]
    devices: list[tuple[int, DeviceConfig]]
    sinks: list[tuple[int, AnySink]]
    alarms: list[tuple[int, AlarmTable]]
    #: name of every list item as written (unique-name checks see them all)
    names: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    #: buses with an error of their own: devices on them are not checked further
    unusable_buses: set[str] = field(default_factory=set)
    #: keys set aside because of an error (checks on them would only repeat it)
    set_aside: set[Loc] = field(default_factory=set)
    spec: SiteFile | None = None

    def is_set_aside(self, loc: Loc) -> bool:
        return any(loc[: len(p)] == p for p in self.set_aside)


def validate(
    raw: dict[str, Any], fname: str, pos: TomlPositions, set_aside: set[Loc]
) -> tuple[Parts, list[ConfigIssue]]:
    """Validate ``raw``; errors at a loc in ``set_aside`` (already reported,
    e.g. an unset environment variable) are not reported again."""
    names = {t: _names(raw.get(t)) for t in _ITEM_ADAPTERS}
    try:
        spec = SiteFile.model_validate(raw)
    except ValidationError as exc:
        issues = [
            i
            for loc, i in _pydantic_issues(fname, exc, pos)
            if not any(loc[: len(p)] == p for p in set_aside)
        ]
        parts = _partial(raw, exc)
        parts.names = names
        parts.set_aside |= set_aside
        return parts, issues
    parts = Parts(
        site=spec.site,
        buses=list(enumerate(spec.buses)),
        devices=list(enumerate(spec.devices)),
        sinks=list(enumerate(spec.sinks)),
        alarms=list(enumerate(spec.alarms)),
        names=names,
        set_aside=set(set_aside),
        spec=spec,
    )
    return parts, []


def _names(items: Any) -> list[tuple[int, str]]:
    if not isinstance(items, list):
        return []
    return [
        (i, item["name"])
        for i, item in enumerate(items)
        if isinstance(item, dict) and isinstance(item.get("name"), str)
    ]


def _user_loc(loc: Loc) -> Loc:
    # Tagged unions put the tag in the loc: ('buses', 0, 'tcp', 'host').
    # Users never wrote 'tcp' as a key; drop it for display and lookup.
    if len(loc) >= 3 and loc[0] in _TAGGED and isinstance(loc[1], int):
        return (*loc[:2], *loc[3:])
    return loc


def _partial(raw: dict[str, Any], exc: ValidationError) -> Parts:
    """The usable part of a file that failed validation."""
    bad: dict[Loc, set[str | int]] = {}  # table or item -> keys with errors
    whole: set[Loc] = set()  # tables or items unusable as a whole
    misspelt: set[Loc] = set()  # tables or items with an unknown key
    for err in exc.errors(include_url=False):
        loc = _user_loc(tuple(err["loc"]))
        if not loc or loc[0] not in ("site", *_ITEM_ADAPTERS):
            continue
        depth = 1 if loc[0] == "site" else 2
        owner, rest = loc[:depth], loc[depth:]
        node = _at(raw, owner)
        if err["type"] == "extra_forbidden" and len(rest) == 1:
            misspelt.add(owner)
        if not rest or not isinstance(node, dict) or rest[0] not in node:
            whole.add(owner)  # a missing key, the table itself, a check on the whole table
        else:
            bad.setdefault(owner, set()).add(rest[0])
    parts = Parts(_site(raw.get("site"), bad.get(("site",), set())), [], [], [], [])
    parts.set_aside |= {(*owner, k) for owner, keys in bad.items() for k in keys}
    # An unknown key is often a misspelt one (`unt = 2`): say nothing more
    # about the keys that table lacks, the spelling error is the news.
    for owner in misspelt:
        node = _at(raw, owner)
        model = model_at(owner if owner[0] not in _TAGGED else (*owner, node.get("type")))
        if model is not None:
            parts.set_aside |= {(*owner, k) for k in model.model_fields if k not in node}
    for table, adapter in _ITEM_ADAPTERS.items():
        items = raw.get(table)
        if not isinstance(items, list):
            continue
        for i, item in enumerate(items):
            value = None
            if (table, i) not in whole and isinstance(item, dict):
                kept = {k: v for k, v in item.items() if k not in bad.get((table, i), set())}
                try:
                    value = adapter.validate_python(kept)
                except ValidationError:
                    value = None
            if value is None:
                parts.set_aside.add((table, i))
                if table == "buses" and isinstance(item, dict) and "name" in item:
                    parts.unusable_buses.add(str(item["name"]))
                continue
            getattr(parts, table).append((i, value))
    return parts


def _site(raw: Any, bad_keys: set[str | int]) -> SiteSection:
    if not isinstance(raw, dict):
        return SiteSection(name="_")
    kept = {k: v for k, v in raw.items() if k not in bad_keys}
    kept.setdefault("name", "_")
    try:
        return SiteSection.model_validate(kept)
    except ValidationError:
        return SiteSection(name="_")


def _at(raw: Any, loc: Loc) -> Any:
    node = raw
    for key in loc:
        try:
            node = node[key]
        except (KeyError, IndexError, TypeError):
            return None
    return node


# --- pydantic errors -> user messages --------------------------------------------


def _pydantic_issues(
    fname: str, exc: ValidationError, pos: TomlPositions
) -> list[tuple[Loc, ConfigIssue]]:
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        user_loc = _user_loc(loc)
        model_loc = loc[:3] if user_loc != loc else loc[:-1]
        line = pos.line_of(user_loc)
        issue = ConfigIssue(fname, line, format_loc(user_loc), _message(err, user_loc, model_loc))
        issues.append((user_loc, issue))
    return issues


def _allowed(model_loc: Loc) -> str:
    model: type[BaseModel] | None = model_at(model_loc)
    if model is None:
        return ""
    return ", ".join(model.model_fields)


def _message(err: ErrorDetails, user_loc: Loc, model_loc: Loc) -> str:
    etype = err["type"]
    key = user_loc[-1] if user_loc else ""
    table = format_loc(user_loc[:-1]) or "the top level"
    if etype == "missing" and len(user_loc) == 1 and model_at(user_loc) is not None:
        return f"required table missing: add a [{key}] table"
    if etype == "missing":
        what = ""
        if len(model_loc) == 3 and model_loc[0] in _TAGGED:
            singular = "bus" if model_loc[0] == "buses" else "sink"
            what = f" for a {singular} of type '{model_loc[2]}'"
        return f"required key missing{what}: add `{key} = ...` to {table}"
    if etype == "extra_forbidden":
        allowed = _allowed(model_loc)
        hint = f"; allowed keys here: {allowed}" if allowed else ""
        return f"unknown key `{key}`: remove it or fix the spelling{hint}"
    if etype == "union_tag_invalid":
        ctx = err.get("ctx", {})
        return f"unknown type {ctx.get('tag')!r}: use one of {ctx.get('expected_tags')}"
    if etype == "union_tag_not_found":
        kinds = (
            "tcp, rtu, rtu_over_tcp, ascii"
            if user_loc[0] == "buses"
            else "influxdb_v2, influxdb_v1, mqtt"
        )
        return f"required key missing: add `type = ...` (one of {kinds})"
    msg = redact_userinfo(str(err["msg"]))
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, ") :]
    got = err.get("input")
    if is_secret_key(key):
        msg += " (the value of a secret is not shown)"
    elif not isinstance(got, dict | list):
        msg += f" (got {redact_userinfo(repr(got))})"
    return f"{msg}: fix the value"

"""Local annunciation: the active alarms as a table, highest priority
first, for ``minegate status`` (at the top) and ``minegate alarms list``.
Reads the state file the running gateway keeps (gateway.alarms.persist)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.table import Table

from gateway.alarms import persist

_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "cyan"}
_RANK = {"critical": 4, "high": 3, "medium": 2, "low": 1}


def ordered(data: dict[str, Any], *, everything: bool = False) -> list[dict[str, Any]]:
    """The saved alarms not in normal (all with ``everything``), highest
    priority first, then oldest first."""
    alarms = [a for a in data.get("alarms", []) if everything or a.get("state") != "normal"]
    alarms.sort(key=lambda a: (-_RANK.get(a.get("priority", ""), 0), a.get("since_ns", 0)))
    return alarms


def active_table(data: dict[str, Any], now_ns: int, *, everything: bool = False) -> Table | None:
    alarms = ordered(data, everything=everything)
    if not alarms:
        return None
    saved = data.get("saved_ns") or now_ns
    age = max(0.0, (now_ns - saved) / 1e9)
    title = f"ACTIVE ALARMS ({len(alarms)})" if not everything else f"alarms ({len(alarms)})"
    if age > 5:
        title += f", as of {age:.0f} s ago (is the gateway running?)"
    table = Table(title=title, title_style="bold red")
    for col in ("priority", "alarm", "state", "point", "value", "limit", "since"):
        table.add_column(col)
    for a in alarms:
        since = a.get("since_ns") or 0
        ago = f"{max(0.0, (now_ns - since) / 1e9):.0f} s ago" if since else "-"
        prio = str(a.get("priority", ""))
        state = str(a.get("state", ""))
        if a.get("latched"):
            state += " (latched)"
        table.add_row(
            f"[{_STYLE.get(prio, '')}]{prio}[/]",
            str(a.get("alarm", "")),
            state,
            f"{a.get('device', '')}.{a.get('point', '')}",
            _fmt(a.get("value")),
            _fmt(a.get("limit")),
            ago,
        )
    return table


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def status_part(data_dir: Path, now_ns: int) -> Table | None:
    """The table for the top of ``minegate status``, or None."""
    data = persist.read(persist.state_path(data_dir))
    return None if data is None else active_table(data, now_ns)


def active_alarms(data_dir: Path) -> list[dict[str, Any]]:
    """The alarms not in normal for ``minegate status --json``."""
    data = persist.read(persist.state_path(data_dir))
    return [] if data is None else ordered(data)

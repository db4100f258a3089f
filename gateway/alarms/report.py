"""``minegate alarms report``: the ISA-18.2 / EEMUA 191 performance figures
of a period, from the ALARM records in the store.

Counted: an **annunciation** is a transition into ``active_unacked`` (a new
occurrence, or an alarm annunciated again when it leaves shelving,
suppression or out of service). Figures:

* annunciations per 10 minutes and per hour (mean, maximum); ISA-18.2
  calls about 1 per 10 minutes per operator "very likely acceptable";
* flood periods: runs of 10-minute windows with more than 10 annunciations;
* the top 10 alarms by annunciations and their share of all;
* chattering alarms: annunciated 3 times or more within 60 s;
* stale alarms: active (condition or latch) for more than 24 h at the end
  of the period;
* time to acknowledge: from an annunciation to the acknowledgement of that
  alarm (median, 90th percentile, maximum), and how many alarms still wait
  for an acknowledgement at the end (an alarm annunciated again before it
  was acknowledged counts once: one acknowledgement answers it).

The gateway has one operator position: "per operator" figures are the
gateway's figures. Sites with several consoles divide by their count.
"""

from __future__ import annotations

import html
import json
import math
import sqlite3
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NS = 1_000_000_000
WINDOW_NS = 600 * NS
FLOOD_PER_WINDOW = 10
CHATTER_COUNT, CHATTER_WINDOW_NS = 3, 60 * NS
STALE_NS = 24 * 3600 * NS
_ACTIVE = ("active_unacked", "active_acked")


@dataclass
class Transition:
    ts_ns: int
    alarm: str
    state: str
    before: str
    event: str
    severity: str


@dataclass
class Report:
    since_ns: int
    until_ns: int
    annunciations: int
    per_window: list[int]  # annunciations per 10-minute window, in order
    floods: list[tuple[int, int, int]]  # (start_ns, end_ns, annunciations)
    top: list[tuple[str, int]]
    chattering: list[tuple[str, int]]  # alarm, most annunciations within 60 s
    stale: list[tuple[str, float]]  # alarm, hours active at the end
    ack_s: list[float]  # time to acknowledge of each acknowledged annunciation
    unacked: int
    by_priority: dict[str, int] = field(default_factory=dict)

    @property
    def hours(self) -> float:
        return (self.until_ns - self.since_ns) / NS / 3600

    @property
    def per_10min(self) -> float:
        return self.annunciations / max(len(self.per_window), 1)

    @property
    def per_hour(self) -> float:
        return self.annunciations / self.hours if self.hours > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "since_ns": self.since_ns,
            "until_ns": self.until_ns,
            "annunciations": self.annunciations,
            "per_10min_mean": round(self.per_10min, 3),
            "per_10min_max": max(self.per_window, default=0),
            "per_hour_mean": round(self.per_hour, 3),
            "flood_windows_percent": round(self.flood_share * 100, 2),
            "floods": [{"start_ns": a, "end_ns": b, "annunciations": n} for a, b, n in self.floods],
            "top10": [{"alarm": a, "annunciations": n} for a, n in self.top],
            "chattering": [{"alarm": a, "within_60s": n} for a, n in self.chattering],
            "stale": [{"alarm": a, "active_h": round(h, 2)} for a, h in self.stale],
            "ack_median_s": _quantile(self.ack_s, 0.5),
            "ack_p90_s": _quantile(self.ack_s, 0.9),
            "ack_max_s": max(self.ack_s, default=None),
            "unacknowledged": self.unacked,
            "by_priority": self.by_priority,
        }

    @property
    def flood_share(self) -> float:
        if not self.per_window:
            return 0.0
        return sum(n > FLOOD_PER_WINDOW for n in self.per_window) / len(self.per_window)


def _quantile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, math.ceil(q * len(s)) - 1)], 3)


def read_transitions(store_file: Path, until_ns: int) -> list[Transition]:
    """Every alarm transition up to ``until_ns``, oldest first (the whole
    history, so the state at the start of the period is known), read-only."""
    conn = sqlite3.connect(f"file:{store_file}?mode=ro", uri=True, timeout=5.0)
    try:
        rows = conn.execute(
            "SELECT ts_ns, fields FROM records WHERE kind = 'alarm' AND ts_ns <= ? ORDER BY seq",
            (until_ns,),
        ).fetchall()
    finally:
        conn.close()
    out = []
    for ts, text in rows:
        try:
            f = json.loads(text) if text else {}
        except ValueError:
            continue
        if not isinstance(f, dict) or "alarm" not in f:
            continue
        out.append(
            Transition(
                int(ts),
                str(f["alarm"]),
                str(f.get("state", "")),
                str(f.get("from", "")),
                str(f.get("event", "")),
                str(f.get("severity", "")),
            )
        )
    out.sort(key=lambda t: t.ts_ns)
    return out


def build(transitions: list[Transition], since_ns: int, until_ns: int) -> Report:
    if until_ns <= since_ns:
        raise ValueError("--until must be after --since")
    n_windows = max(1, math.ceil((until_ns - since_ns) / WINDOW_NS))
    per_window = [0] * n_windows
    counts: Counter[str] = Counter()
    by_priority: Counter[str] = Counter()
    times: dict[str, list[int]] = defaultdict(list)
    waiting: dict[str, int] = {}  # alarm -> annunciation time not yet acknowledged
    active_since: dict[str, int] = {}
    ack_s: list[float] = []
    for t in transitions:
        in_period = since_ns <= t.ts_ns <= until_ns
        if t.state in _ACTIVE:
            active_since.setdefault(t.alarm, t.ts_ns)
        else:
            active_since.pop(t.alarm, None)
        annunciated = t.state == "active_unacked" and t.before != "active_unacked"
        if annunciated:
            if in_period:
                per_window[min((t.ts_ns - since_ns) // WINDOW_NS, n_windows - 1)] += 1
                counts[t.alarm] += 1
                by_priority[t.severity] += 1
                times[t.alarm].append(t.ts_ns)
                waiting.setdefault(t.alarm, t.ts_ns)
        elif t.event == "ack" and t.alarm in waiting:
            ack_s.append((t.ts_ns - waiting.pop(t.alarm)) / NS)
    floods: list[tuple[int, int, int]] = []
    run_start: int | None = None
    for i, n in enumerate([*per_window, 0]):
        if n > FLOOD_PER_WINDOW and run_start is None:
            run_start = i
        elif n <= FLOOD_PER_WINDOW and run_start is not None:
            total = sum(per_window[run_start:i])
            floods.append((since_ns + run_start * WINDOW_NS, since_ns + i * WINDOW_NS, total))
            run_start = None
    chattering = []
    for alarm, ts in times.items():
        best, j = 0, 0
        for i in range(len(ts)):
            while ts[i] - ts[j] > CHATTER_WINDOW_NS:
                j += 1
            best = max(best, i - j + 1)
        if best >= CHATTER_COUNT:
            chattering.append((alarm, best))
    stale = [
        (alarm, (until_ns - since) / NS / 3600)
        for alarm, since in active_since.items()
        if until_ns - since > STALE_NS
    ]
    return Report(
        since_ns,
        until_ns,
        sum(counts.values()),
        per_window,
        floods,
        counts.most_common(10),
        sorted(chattering, key=lambda x: -x[1]),
        sorted(stale, key=lambda x: -x[1]),
        ack_s,
        len(waiting),
        dict(by_priority),
    )


def text(r: Report) -> str:
    d = r.as_dict()
    lines = [
        f"alarm performance {_iso(r.since_ns)} .. {_iso(r.until_ns)} ({r.hours:.1f} h, one operator position)",
        f"  annunciated alarms: {r.annunciations} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(r.by_priority.items())) or 'none'})",
        f"  per 10 minutes: mean {r.per_10min:.2f}, max {d['per_10min_max']} "
        "(ISA-18.2: about 1 is very likely acceptable)",
        f"  per hour: mean {r.per_hour:.2f}",
        f"  10-minute windows in flood (> {FLOOD_PER_WINDOW}): {d['flood_windows_percent']} %",
    ]
    for a, b, n in r.floods:
        lines.append(f"    flood {_iso(a)} .. {_iso(b)}: {n} alarms")
    lines.append("  top 10 alarms:")
    for alarm, n in r.top:
        share = n / r.annunciations * 100 if r.annunciations else 0
        lines.append(f"    {n:6d}  {share:5.1f} %  {alarm}")
    lines.append(f"  chattering (>= {CHATTER_COUNT} within 60 s): {len(r.chattering)}")
    lines += [f"    {a}: {n} within 60 s" for a, n in r.chattering]
    lines.append(f"  stale (active > 24 h at the end): {len(r.stale)}")
    lines += [f"    {a}: {h:.1f} h" for a, h in r.stale]
    ack = (
        f"median {d['ack_median_s']} s, p90 {d['ack_p90_s']} s, max {d['ack_max_s']} s"
        if r.ack_s
        else "none acknowledged"
    )
    lines.append(f"  time to acknowledge: {ack}; alarms still unacknowledged: {r.unacked}")
    return "\n".join(lines)


def _iso(ts_ns: int) -> str:
    from gateway.sinks.mqtt_schema import iso_ms

    return iso_ms(ts_ns)[:19] + "Z"


def _bars(values: list[tuple[str, int]], title: str, limit: int | None = None) -> str:
    """An inline SVG bar chart (no plotting library needed)."""
    w, h, pad = 720, 220, 30
    top = max([v for _, v in values] + [limit or 0, 1])
    bw = (w - 2 * pad) / max(len(values), 1)
    parts = [f'<svg width="{w}" height="{h + 40}" role="img" aria-label="{html.escape(title)}">']
    parts.append(f'<text x="{pad}" y="16" font-size="14">{html.escape(title)}</text>')
    for i, (label, v) in enumerate(values):
        bh = (h - pad) * v / top
        x = pad + i * bw
        color = "#c0392b" if limit is not None and v > limit else "#2c7fb8"
        parts.append(
            f'<rect x="{x:.1f}" y="{h - bh:.1f}" width="{max(bw - 1, 1):.1f}" height="{bh:.1f}" '
            f'fill="{color}"><title>{html.escape(label)}: {v}</title></rect>'
        )
    if limit is not None:
        y = h - (h - pad) * limit / top
        parts.append(
            f'<line x1="{pad}" x2="{w - pad}" y1="{y:.1f}" y2="{y:.1f}" stroke="#333" stroke-dasharray="4"/>'
        )
    parts.append(f'<line x1="{pad}" x2="{w - pad}" y1="{h}" y2="{h}" stroke="#333"/>')
    parts.append(f'<text x="{pad}" y="{h + 16}" font-size="11">max {top}</text></svg>')
    return "".join(parts)


def html_page(r: Report) -> str:
    windows = [(_iso(r.since_ns + i * WINDOW_NS), n) for i, n in enumerate(r.per_window)]
    body = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>Alarm performance {_iso(r.since_ns)} - {_iso(r.until_ns)}</title>",
        "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 8px;text-align:left}</style>",
        "</head><body>",
        f"<h1>Alarm performance</h1><pre>{html.escape(text(r))}</pre>",
        _bars(
            windows, "annunciated alarms per 10 minutes (dashed: flood threshold)", FLOOD_PER_WINDOW
        ),
        _bars(r.top, "top 10 alarms"),
        "</body></html>",
    ]
    return "\n".join(body)

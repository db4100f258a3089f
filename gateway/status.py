"""``minegate status``: what the gateway knows, read from its store.

Opens the SQLite file **read-only** (``mode=ro``), so it is safe against a
running gateway (WAL lets readers run beside the writer) and never changes a
stopped one. Shows every point's latest value with quality and age, the
communication state of each device, the last self-metrics, the persistent
counters, the store size and each sink's backlog.
"""

from __future__ import annotations

import json
import math
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gateway.metrics import METRICS_SOURCE
from gateway.outage import health_line, read_health
from gateway.store.codec import decode_fields, decode_payload

NS = 1_000_000_000
QUALITY_STYLE = {"good": "green", "bad": "red", "stale": "yellow", "comm_loss": "bold red"}


class StatusError(Exception):
    """The store cannot be read; the message says what to do."""


@dataclass
class LatestValue:
    device: str
    point: str
    value: Any
    unit: str
    quality: str
    ts_ns: int


@dataclass
class StatusReport:
    store: Path
    size_bytes: int
    records: int
    latest: list[LatestValue]
    counters: dict[str, int]
    sinks: list[dict[str, Any]]
    metrics: dict[str, Any] = field(default_factory=dict)
    metrics_ts_ns: int = 0
    events: dict[str, dict[str, Any]] = field(default_factory=dict)  # device -> last event
    store_health: dict[str, Any] | None = None  # the writer's minegate.health
    #: the gateway's last start/stop event: ("running" | "stopped", its ts_ns)
    gateway: tuple[str, int] | None = None

    @property
    def stopped(self) -> bool:
        return self.gateway is not None and self.gateway[0] == "stopped"

    def device_states(self) -> dict[str, str]:
        """Per device: ``stopped`` when the gateway is not running, else
        online / comm_loss / degraded (some bad or stale)."""
        states = self.last_device_states()
        if self.stopped:
            return dict.fromkeys(states, "stopped")
        return states

    def last_device_states(self) -> dict[str, str]:
        """online / comm_loss / degraded per device, as last recorded."""
        states: dict[str, str] = {}
        for v in self.latest:
            cur = states.get(v.device, "online")
            if v.quality == "comm_loss":
                cur = "comm_loss"
            elif v.quality in ("bad", "stale") and cur == "online":
                cur = "degraded"
            states[v.device] = cur
        newest: dict[str, int] = {}
        for v in self.latest:
            newest[v.device] = max(newest.get(v.device, 0), v.ts_ns)
        # The pollers' own state (last METRIC record): a device that never
        # answered has no values at all, only this; and a poller in comm
        # loss says so before its values do (they may still be the good ones
        # of before the silence, up to a max_interval_s old).
        for key, value in self.metrics.items():
            if not key.endswith(".state") or key.startswith(("sink.", "bus.")):
                continue
            device = key.removesuffix(".state")
            if value == "comm_loss" and self.metrics_ts_ns > newest.get(device, 0):
                states[device] = "comm_loss"  # newer than every value of the device
            elif value == "unknown":
                states.setdefault(device, "never answered")
        return states

    def as_dict(self, now_ns: int) -> dict[str, Any]:
        from gateway.alarms.annunciation import active_alarms

        return {
            "alarms": active_alarms(self.store.parent),  # not in normal, highest priority first
            "store": str(self.store),
            "size_bytes": self.size_bytes,
            "records": self.records,
            "gateway": _gateway_doc(self.gateway),
            "devices": self.device_states(),
            "last_device_states": self.last_device_states(),
            "latest": [
                {**vars(v), "age_s": round((now_ns - v.ts_ns) / NS, 1)} for v in self.latest
            ],
            "counters": self.counters,
            "sinks": self.sinks,
            "metrics": self.metrics,
            "events": self.events,
            "store_health": self.store_health,
        }


def _gateway_doc(gateway: tuple[str, int] | None) -> dict[str, Any] | None:
    if gateway is None:
        return None
    state, ts_ns = gateway
    return {"state": state, "since": format_time(ts_ns), "since_ns": ts_ns}


def format_time(ts_ns: int) -> str:
    """UTC, to the second: ``2026-12-03 16:40:12 UTC``."""
    return datetime.fromtimestamp(ts_ns / NS, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


#: how far back (records) `status` looks for the newest metrics record
METRIC_LOOKBACK_RECORDS = 500_000
#: the gateway's events that say whether it runs
_RUN_EVENTS = {"gateway_start": "running", "gateway_stop": "stopped"}


def _connect(path: Path) -> sqlite3.Connection:
    if not path.is_file():
        raise StatusError(
            f"{path}: no store here; give the gateway's data directory "
            "(site.data_dir in the config) with --data-dir"
        )
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
        conn.execute("SELECT count(*) FROM meta").fetchone()
    except sqlite3.Error as exc:
        raise StatusError(
            f"{path}: cannot read the store ({exc}); is it a minegate store?"
        ) from exc
    return conn


def read_status(store_file: Path) -> StatusReport:
    conn = _connect(store_file)
    try:
        names = {i: (p, u) for i, p, u in conn.execute("SELECT id, point, unit FROM names")}
        latest = [
            LatestValue(d, p, bool(v) if is_bool else v, u, q, ts)
            for d, p, v, is_bool, u, q, ts in conn.execute(
                "SELECT device, point, value, is_bool, unit, quality, ts_ns FROM latest "
                "ORDER BY device, point"
            )
        ]
        latest = _with_unflushed(conn, latest, names)
        counters = dict(conn.execute("SELECT name, value FROM counters ORDER BY name").fetchall())
        sinks = [
            {"name": n, "cursor": c, "backlog_records": r, "backlog_values": v}
            for n, c, r, v in conn.execute(
                "SELECT name, cursor, pending_records, pending_values FROM sinks ORDER BY name"
            )
        ]
        row = conn.execute("SELECT value FROM meta WHERE key = 'record_count'").fetchone()
        # kept by the store since schema 2; a version-1 file not yet opened
        # by this gateway is counted (slow on millions of records)
        records = (
            int(row[0])
            if row is not None
            else int(conn.execute("SELECT count(*) FROM records").fetchone()[0])
        )
        report = StatusReport(store_file, _size(conn, store_file), records, latest, counters, sinks)
        report.store_health = read_health(store_file)
        # the gateway's own metrics come every few seconds: look among the
        # newest records only, not through millions when metrics are off
        newest = conn.execute("SELECT max(seq) FROM records").fetchone()[0] or 0
        metric = conn.execute(
            "SELECT ts_ns, payload FROM records WHERE seq > ? AND kind = 'metric' "
            "ORDER BY seq DESC LIMIT 1",
            (newest - METRIC_LOOKBACK_RECORDS,),
        ).fetchone()
        if metric is not None:
            ids, values, _ = decode_payload(metric[1])
            report.metrics = {names[i][0]: v for i, v in zip(ids, values, strict=True)}
            report.metrics_ts_ns = int(metric[0])
        has_last = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'last_events'"
        ).fetchone()
        events_sql = (
            "SELECT device, fields FROM last_events"
            if has_last
            else "SELECT device, fields FROM records WHERE seq IN "
            "(SELECT max(seq) FROM records WHERE kind = 'event' GROUP BY device)"
        )
        for device, fields in conn.execute(events_sql):
            report.events[device] = decode_fields(fields)
        report.gateway = _run_state(conn, bool(has_last))
        return report
    except sqlite3.Error as exc:
        raise StatusError(f"{store_file}: cannot read the store ({exc})") from exc
    finally:
        conn.close()


def _with_unflushed(
    conn: sqlite3.Connection, latest: list[LatestValue], names: dict[int, tuple[str, str]]
) -> list[LatestValue]:
    """The ``latest`` table plus the SAMPLE records appended after its last
    flush (``meta.latest_seq``): the store writes that table lazily, and a
    value or a comm loss stored since must show now, not at the next flush."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'latest_seq'").fetchone()
    rows = conn.execute(
        "SELECT device, ts_ns, payload FROM records WHERE seq > ? AND kind = 'sample' ORDER BY seq",
        (int(row[0]) if row else 0,),
    ).fetchall()
    if not rows:
        return latest
    by_key = {(v.device, v.point): v for v in latest}
    for device, ts_ns, payload in rows:
        ids, values, qualities = decode_payload(payload)
        for i, value, quality in zip(ids, values, qualities, strict=True):
            point, unit = names[i]
            cur = by_key.get((device, point))
            if cur is None or ts_ns >= cur.ts_ns:
                by_key[(device, point)] = LatestValue(
                    device, point, value, unit, quality.value, int(ts_ns)
                )
    return [by_key[k] for k in sorted(by_key)]


def _run_state(conn: sqlite3.Connection, has_last: bool) -> tuple[str, int] | None:
    """Whether the gateway runs, from its last start or stop event."""
    if has_last:
        row = conn.execute(
            "SELECT fields, ts_ns FROM last_events WHERE device = ?", (METRICS_SOURCE,)
        ).fetchone()
    else:
        row = conn.execute(
            "SELECT fields, ts_ns FROM records WHERE kind = 'event' AND device = ? "
            "ORDER BY seq DESC LIMIT 1",
            (METRICS_SOURCE,),
        ).fetchone()
    if row is None:
        return None
    state = _RUN_EVENTS.get(str(decode_fields(row[0]).get("event")))
    return None if state is None else (state, int(row[1]))


def _size(conn: sqlite3.Connection, path: Path) -> int:
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    wal = Path(f"{path}-wal")
    return int(pages * page_size + (wal.stat().st_size if wal.exists() else 0))


def format_value(value: Any) -> str:
    """A value in full, never in exponent notation (``183500.0``, not
    ``1.835e+05``): at most 4 decimals, or 4 significant digits below 0.001
    (``0.0000001235``)."""
    if value is None:
        return "-"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and abs(value) < 1e-3:
            return format(Decimal(f"{value:.4g}"), "f")
        text = f"{value:.4f}".rstrip("0")
        return text + "0" if text.endswith(".") else text
    return str(value)


def format_age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def render(report: StatusReport, console: Console, now_ns: int) -> None:
    console.print(view(report, now_ns))


def view(report: StatusReport, now_ns: int) -> Group:
    """Everything ``minegate status`` shows, as one renderable."""
    from gateway.alarms.annunciation import status_part

    alarms = status_part(report.store.parent, now_ns)  # active alarms first
    parts: list[RenderableType] = [
        *([alarms] if alarms is not None else []),
        f"store {report.store}: {report.size_bytes / 2**20:.1f} MiB, {report.records} records",
        _gateway_line(report, now_ns),
        _devices_table(report),
        _latest_table(report, now_ns),
    ]
    if failing := health_line(report.store_health, now_ns):
        parts.insert(1, Text(failing, style="bold red"))
    if report.counters:
        parts.append(_counters_table(report.counters))
    if report.metrics:
        parts.append(_metrics_line(report, now_ns))
    if report.sinks:
        parts.append(_sinks_table(report))
        parts.extend(_sink_errors(report))
    return Group(*parts)


def _gateway_line(report: StatusReport, now_ns: int) -> str:
    if report.gateway is None:
        return "gateway: no start recorded"
    state, ts_ns = report.gateway
    age = format_age(max(0.0, (now_ns - ts_ns) / NS))
    verb = "stopped at" if state == "stopped" else "running since"
    return f"gateway {verb} {format_time(ts_ns)} ({age} ago)"


def _devices_table(report: StatusReport) -> Table:
    devices = Table(title="devices")
    for col in ("device", "state", "polls", "errors", "p99 ms", "last event"):
        devices.add_column(col)
    m = report.metrics
    for device, state in sorted(report.last_device_states().items()):
        style = {"online": "green", "degraded": "yellow", "never answered": "red"}.get(
            state, "bold red"
        )
        shown = f"[{style}]{state}[/]"
        if report.stopped:
            shown = f"stopped (was {shown})"
        event = report.events.get(device, {})
        devices.add_row(
            device,
            shown,
            format_value(m.get(f"{device}.polls")),
            format_value(m.get(f"{device}.errors")),
            format_value(m.get(f"{device}.latency_p99_ms")),
            str(event.get("event", "")),
        )
    return devices


def _latest_table(report: StatusReport, now_ns: int) -> Table:
    values = Table(title="latest values")
    for col in ("device", "point", "value", "unit", "quality", "age"):
        values.add_column(col, justify="right" if col in ("value", "age") else "left")
    for v in report.latest:
        style = QUALITY_STYLE.get(v.quality, "")
        values.add_row(
            v.device,
            v.point,
            format_value(v.value),
            v.unit,
            f"[{style}]{v.quality}[/]",
            format_age(max(0.0, (now_ns - v.ts_ns) / NS)),
        )
    return values


def _counters_table(counters: dict[str, int]) -> Table:
    table = Table(title="counters")
    table.add_column("counter")
    table.add_column("value", justify="right")
    for k, n in counters.items():
        table.add_row(k, str(n))
    return table


def _metrics_line(report: StatusReport, now_ns: int) -> str:
    m = report.metrics
    age = format_age(max(0.0, (now_ns - report.metrics_ts_ns) / NS))
    return (
        f"self-metrics ({age} ago): "
        f"{format_value(m.get('store.values_per_s'))} values/s stored, "
        f"queue depth {format_value(m.get('queue.depth'))}, "
        f"request latency mean {format_value(m.get('total.latency_mean_ms'))} ms / "
        f"p99 {format_value(m.get('total.latency_p99_ms'))} ms, "
        f"overruns {format_value(m.get('total.overruns'))}"
    )


def _sinks_table(report: StatusReport) -> Table:
    m = report.metrics
    sinks = Table(title="sinks (backlog = stored, not yet acknowledged by the server)")
    for col in ("sink", "state", "acked seq", "backlog", "values", "drain/s", "done in", "aside"):
        sinks.add_column(col)
    for s in report.sinks:
        name = s["name"]
        rate = m.get(f"sink.{name}.drain_values_per_s")
        sinks.add_row(
            name,
            format_value(m.get(f"sink.{name}.state")),
            str(s["cursor"]),
            str(s["backlog_records"]),
            str(s["backlog_values"]),
            format_value(rate),
            _backlog_eta(s["backlog_values"], rate),
            format_value(m.get(f"sink.{name}.set_aside")),
        )
    return sinks


def _sink_errors(report: StatusReport) -> list[Text]:
    """Errors are long (they carry the server's words): one line each, below
    the sinks table, instead of a squeezed column."""
    errors = []
    for s in report.sinks:
        error = report.metrics.get(f"sink.{s['name']}.last_error")
        if error:
            errors.append(Text(f"sink {s['name']}: last error: {error}", style="yellow"))
    return errors


def _backlog_eta(backlog_values: int, rate: object) -> str:
    """How long the backlog takes at the recent drain rate: the progress
    figure an operator watches after an outage."""
    if not backlog_values:
        return "-"
    if not isinstance(rate, int | float) or rate <= 0:
        return "stalled"
    return format_age(backlog_values / rate)


def watch_status(store_file: Path, every_s: float, console: Console | None = None) -> None:
    """Re-read and redraw every ``every_s`` seconds until Ctrl-C."""
    console = console or Console()
    with Live(console=console, auto_refresh=False, vertical_overflow="crop") as live:
        while True:
            live.update(view(read_status(store_file), time.time_ns()), refresh=True)
            time.sleep(every_s)


def show_status(
    store_file: Path,
    *,
    as_json: bool = False,
    console: Console | None = None,
    wall_ns: Callable[[], int] = time.time_ns,
) -> None:
    report = read_status(store_file)
    now = wall_ns()
    console = console or Console()
    if as_json:
        console.print_json(json.dumps(report.as_dict(now), default=str))
    else:
        render(report, console, now)

"""``minegate alarms list|ack|shelve|reset|oos`` against a running gateway.

``list`` reads ``<data_dir>/alarms.json`` (works whether or not the gateway
runs; it says how old the file is). The other commands go to the running
gateway's command socket ``<data_dir>/alarms.sock`` as one JSON line and
print its answer; they need ``--user`` (one of ``[[alarm_control.users]]``
with the right). Exit 0 when done, 1 when the gateway refused or cannot be
reached, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from gateway.alarms import persist
from gateway.alarms.annunciation import active_table, ordered

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


def _data_dir(args: argparse.Namespace) -> Path | None:
    if args.config is not None:
        from gateway.config import ConfigError, load_config

        try:
            return load_config(args.config).data_dir
        except ConfigError as exc:
            for e in exc.errors:
                print(f"minegate: {e}", file=sys.stderr)
            return None
    if args.data_dir is None:
        print(
            "minegate: give --data-dir DIR (the site's data_dir) or --config FILE", file=sys.stderr
        )
        return None
    return Path(args.data_dir)


def send(data_dir: Path, request: dict[str, Any], timeout_s: float = 10.0) -> dict[str, Any]:
    """One request to the running gateway's socket; raises OSError."""
    path = data_dir / persist.SOCKET_FILENAME
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout_s)
        s.connect(str(path))
        s.sendall(json.dumps(request).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply = json.loads(buf)
    if not isinstance(reply, dict):
        raise ValueError("the gateway answered something that is not a JSON object")
    return reply


def cmd_alarms(args: argparse.Namespace) -> int:
    data_dir = _data_dir(args)
    if data_dir is None:
        return EXIT_USAGE
    if args.action == "list":
        return _list(data_dir, args)
    if args.action == "rules":
        return _rules(args)
    if args.action == "report":
        return _report(data_dir, args)
    if not args.user:
        print("minegate: give --user NAME (one of [[alarm_control.users]])", file=sys.stderr)
        return EXIT_USAGE
    request: dict[str, Any] = {"user": args.user, "cmd": args.action, "alarm": args.alarm}
    if args.note:
        request["note"] = args.note
    if getattr(args, "off", False):
        request["off"] = True
    if args.action == "shelve" and not request.get("off"):
        if args.hours is None:
            print("minegate: shelve needs --hours H (or --off to unshelve)", file=sys.stderr)
            return EXIT_USAGE
        request["hours"] = args.hours
    try:
        reply = send(data_dir, request)
    except (OSError, ValueError) as exc:
        print(
            f"minegate: cannot reach the gateway at {data_dir / persist.SOCKET_FILENAME} ({exc}); "
            "is `minegate run` running with alarms configured?",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    if not reply.get("ok"):
        print(f"minegate: refused: {reply.get('error')}", file=sys.stderr)
        return EXIT_FAILURE
    for done in reply.get("done", []):
        print(f"{done['alarm']}: {done['state']}")
    return EXIT_OK


def _when(text: str) -> int:
    """An ISO 8601 time (UTC unless it names a zone) in ns."""
    from datetime import UTC, datetime

    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1e9)


def _report(data_dir: Path, args: argparse.Namespace) -> int:
    from gateway.alarms import report
    from gateway.runtime import store_path

    try:
        until = _when(args.until) if args.until else time.time_ns()
        since = _when(args.since) if args.since else until - 24 * 3600 * 10**9
    except ValueError as exc:
        print(f"minegate: --since/--until: {exc} (write e.g. 2026-12-01T08:00)", file=sys.stderr)
        return EXIT_USAGE
    if until <= since:
        print("minegate: --until must be after --since", file=sys.stderr)
        return EXIT_USAGE
    store_file = store_path(data_dir)
    if not store_file.exists():
        print(f"minegate: {store_file}: no store here", file=sys.stderr)
        return EXIT_FAILURE
    rep = report.build(report.read_transitions(store_file, until), since, until)
    if args.json:
        print(json.dumps(rep.as_dict()))
    else:
        print(report.text(rep))
    if args.html is not None:
        args.html.write_text(report.html_page(rep), encoding="utf-8")
        print(f"written {args.html}")
    return EXIT_OK


def _rules(args: argparse.Namespace) -> int:
    from gateway.alarms.rules import describe
    from gateway.config import load_config

    if args.config is None:
        print("minegate: `alarms rules` needs --config FILE", file=sys.stderr)
        return EXIT_USAGE
    config = load_config(args.config)  # already checked by _data_dir
    # one line per rule, grep-friendly: alarm, kind, priority, condition, origin
    print(f"{len(config.alarm_rules)} alarm rules of {args.config}")
    for rule in config.alarm_rules:
        kind, point, cond = describe(rule)
        where = f"{point} " if point and not rule.name.startswith(point) else ""
        print(f"{rule.name}  {kind} {rule.priority.label}: {where}{cond}  [{rule.source}]")
    return EXIT_OK


def _list(data_dir: Path, args: argparse.Namespace) -> int:
    data = persist.read(persist.state_path(data_dir))
    if data is None:
        print(
            f"minegate: no alarm state in {data_dir} (no gateway with alarms ran here)",
            file=sys.stderr,
        )
        return EXIT_FAILURE
    alarms = ordered(data, everything=args.all)
    if args.json:
        print(json.dumps({"saved_ns": data.get("saved_ns"), "alarms": alarms}, default=str))
        return EXIT_OK
    console = Console()
    table = active_table(data, time.time_ns(), everything=args.all)
    if table is None:
        console.print("no active alarms")
    else:
        console.print(table)
    return EXIT_OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "alarms",
        help="list, acknowledge, shelve, reset alarms; out of service",
        description="Alarm commands against a running gateway (docs/alarms.md).",
    )
    p.add_argument("--data-dir", type=Path, help="the site's data_dir")
    p.add_argument("--config", type=Path, help="take data_dir from this site file")
    acts = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    acts.add_parser("rules", help="every alarm rule of the site (--config), defaults included")
    rep = acts.add_parser("report", help="ISA-18.2 performance figures of a period")
    rep.add_argument(
        "--since", help="ISO 8601 start (UTC unless a zone is given); default: 24 h before --until"
    )
    rep.add_argument("--until", help="ISO 8601 end; default: now")
    rep.add_argument("--html", type=Path, help="also write an HTML page with the plots")
    rep.add_argument("--json", action="store_true", help="print the figures as JSON")
    ls = acts.add_parser("list", help="alarms not in normal (from alarms.json)")
    ls.add_argument("--all", action="store_true", help="every alarm, normal ones too")
    ls.add_argument("--json", action="store_true", help="print the alarms as JSON")
    for name, text in (
        ("ack", "acknowledge an alarm"),
        ("shelve", "shelve an alarm for --hours (or --off)"),
        ("reset", "reset a latched alarm whose condition has cleared"),
        ("oos", "take an alarm, a device.point or a device out of service (or --off)"),
    ):
        a = acts.add_parser(name, help=text)
        a.add_argument("alarm", help="alarm id (oos: also device.point or device)")
        a.add_argument("--user", "-u", help="operator name (from [[alarm_control.users]])")
        a.add_argument("--note", default="", help="free text kept in the audit record")
        if name == "shelve":
            a.add_argument(
                "--hours", type=float, help="hours to shelve for (at most the site's max_shelve_h)"
            )
        if name in ("shelve", "oos"):
            a.add_argument("--off", action="store_true", help="undo: unshelve / back in service")
    p.set_defaults(func=cmd_alarms)

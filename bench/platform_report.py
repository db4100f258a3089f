"""The platform benchmark's targets (issue 12) and its Markdown report."""

from __future__ import annotations

from typing import Any

TARGET_CORES_1000 = 0.5
TARGET_P99_MS = 1000.0
#: "a second instance takes half the load": each of two gets 40..60 %
HALF_BAND = (0.4, 0.6)


def _check(measured: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {"measured": measured, "pass": ok}
    if note:
        out["note"] = note
    return out


def targets(doc: dict[str, Any]) -> dict[str, Any]:
    res = doc["results"]
    out: dict[str, Any] = {}
    for name in ("sqlite-1x1000", "pg-1x1000"):
        r = res.get(name)
        if r is not None:
            ok = r["cpu_cores_platform"] < TARGET_CORES_1000 and not r["behind"]
            out[f"1,000 gateways on one instance under half a core ({name})"] = _check(
                r["cpu_cores_platform"], ok, "cores; and not behind"
            )
    r = res.get("pg-2x10000")
    if r is not None:
        ok = not r["behind"] and not r["generator_limited"] and r["missing_after_drain"] == 0
        out["10,000 gateways on two instances with PostgreSQL"] = _check(
            {"published_per_s": r["published_per_s"], "handled_per_s": r["handled_per_s"],
             "backlog_at_end": r["backlog_at_end"]},
            ok,
        )  # fmt: skip
    for name, r in res.items():
        p99 = r["alert_latency"]["p99_ms"]
        out[f"p99 alert latency under 1 s ({name})"] = _check(
            p99, None if p99 is None else p99 < TARGET_P99_MS, "ms, MQTT publish to webhook"
        )
    for name in ("sqlite-2x1000", "pg-2x1000", "pg-2x10000"):
        r = res.get(name)
        if r is not None:
            shares = r["handled_share_per_instance"]
            ok = all(s is not None and HALF_BAND[0] <= s <= HALF_BAND[1] for s in shares)
            out[f"a second instance takes half the load ({name})"] = _check(shares, ok)
    return out


def _f(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float | int):
        return f"{v:,.{digits}f}"
    if isinstance(v, list):
        return " + ".join(_f(x, digits) for x in v)
    return str(v)


def markdown(doc: dict[str, Any]) -> str:
    m, w = doc["machine"], doc["workload"]
    lines = [
        "# Platform benchmark",
        "",
        "`python -m bench.platform_bench` (`make bench-platform`); method in docs/benchmarks.md.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average before {m['loadavg_before']}, after {m['loadavg_after']} "
        "(the machine is shared: the load generator, the broker, the database and other "
        f"work share the cores with the platform). Whole run {doc['elapsed_s']} s.",
        "",
        f"Workload per gateway: {w['points_per_gateway']} points on {w['devices_per_gateway']} "
        f"devices, a snapshot per device every {w['snapshot_interval_s']:g} s, 5-minute "
        f"statistics per device every {w['stat_interval_s']} s, "
        f"{w['alarms_per_gateway_hour']:g} alarms an hour (raised, cleared), a retained "
        "status. Not time-compressed: the rates are a real fleet's, spread evenly over "
        "the interval (a real fleet sends each 20 s's snapshots together, as a burst).",
        "",
        "## Cases",
        "",
        "| case | gateways | published /s | handled /s | platform cores | handled /CPU-s "
        "| share per instance | RSS MiB | DB cores | broker cores | load generator cores "
        "| alert p50 / p99 ms "
        "| offline detection s | backlog | missing after drain |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for name, r in doc["results"].items():
        lat = r["alert_latency"]
        lines.append(
            f"| {name} | {r['gateways']:,} | {_f(r['published_per_s'])} | {_f(r['handled_per_s'])} "
            f"| {_f(r['cpu_cores_per_instance'], 2)} | {_f(r['handled_per_cpu_s'])} "
            f"| {_f(r['handled_share_per_instance'], 2)} | {_f(r['rss_mib_per_instance'])} "
            f"| {_f(r['db_cpu_cores'], 2)} | {_f(r['broker_cpu_cores'], 2)} "
            f"| {_f(r.get('load_cpu_cores'), 2)} "
            f"| {_f(lat['p50_ms'])} / {_f(lat['p99_ms'])} (n={lat['n']}) "
            f"| {_f(r['offline_detection_s'], 2)} | {r['backlog_at_end']:,} "
            f"| {r['missing_after_drain']:,} |"
        )
    for ramp in doc.get("ramps", []):
        lines += [
            "",
            f"## Ceiling: one instance on {ramp['db']}, gateways ramped "
            f"({ramp['step_s']:g} s measured per step)",
            "",
            "| gateways | published /s | handled /s | cores | handled /CPU-s | DB cores "
            "| broker cores | load generator cores | backlog | behind |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for s in ramp["steps"]:
            behind = "yes" if s["behind"] else "no"
            if s["generator_limited"]:
                behind += " (load generator could not keep its rate)"
            lines.append(
                f"| {s['gateways']:,} | {_f(s['published_per_s'])} | {_f(s['handled_per_s'])} "
                f"| {_f(s['cpu_cores_platform'], 2)} | {_f(s['handled_per_cpu_s'])} "
                f"| {_f(s['db_cpu_cores'], 2)} | {_f(s['broker_cpu_cores'], 2)} "
                f"| {_f(s.get('load_cpu_cores'), 2)} | {s['backlog_at_end']:,} | {behind} |"
            )
        lines += ["", f"Carried without falling behind: {_f(ramp['carried_gateways'])} gateways"
                  + (f"; stopped by: {ramp['stopped_by']}." if ramp["stopped_by"] else ".")]  # fmt: skip
    lines += ["", "## Targets (issue 12)", "", "| target | measured | met |", "|---|---|---|"]
    for name, t in doc["targets"].items():
        met = "-" if t["pass"] is None else ("yes" if t["pass"] else "**no**")
        lines.append(f"| {name} | {_f(t['measured'], 2)} {t.get('note', '')} | {met} |")
    if doc.get("errors"):
        lines += ["", "## Errors", ""]
        lines += [f"* {k}: {v}" for k, v in doc["errors"].items()]
    return "\n".join(lines) + "\n"

"""Targets and the Markdown report of ``bench.gateway_scale``."""

from __future__ import annotations

from typing import Any

RSS_LIMIT_MB = 150.0  # 500 devices: peak RSS of the gateway, MB (10^6 bytes)
MIB = 2**20 / 1e6  # MB per MiB


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def behind_checks(r: dict[str, Any]) -> list[tuple[str, Any, Any, bool]]:
    """Does the gateway keep up? (check, measured, limit, ok) for one scale run."""
    c = r["gateway_counters"]
    out: list[tuple[str, Any, Any, bool]] = []
    expected = c.get("polls_expected") or 0
    out.append(("polls >= 99 % of devices x window / period", c["polls"],
                round(0.99 * expected), c["polls"] >= 0.99 * expected and expected > 0))  # fmt: skip
    limit = max(1, round(0.01 * max(c["polls"], 1)))
    out.append(("overruns <= 1 % of polls", c["overruns"], limit, c["overruns"] <= limit))
    offered = r["offered_values_per_s"]
    for name, s in r["sinks"].items():
        slope = s["backlog_slope_values_per_s"]
        out.append((f"{name}: backlog growth <= 1 % of offered /s", slope,
                    round(0.01 * offered, 1), slope <= 0.01 * offered))  # fmt: skip
        p99 = s["ack_p99_ms"]
        if p99[0] is None or p99[1] is None:
            out.append((f"{name}: poll-to-ack p99 stable", "no acks", "-", False))
            continue
        bound = max(2 * p99[0], p99[0] + 250.0)
        out.append((f"{name}: poll-to-ack p99, 2nd half <= max(2x, +250 ms) of 1st, < 2 s",
                    p99[1], round(min(bound, 2000.0), 1), p99[1] <= bound and p99[1] < 2000.0))  # fmt: skip
    return out


def targets(doc: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for n, r in doc.get("scale", {}).items():
        if int(n) <= 500:
            mb = r["peak_rss_mib"] * MIB
            out.append({"case": f"{n} devices", "check": "peak RSS < 150 MB",
                        "measured": round(mb, 1), "target": RSS_LIMIT_MB,
                        "pass": mb < RSS_LIMIT_MB})  # fmt: skip
        for check, measured, limit, ok in behind_checks(r):
            out.append({"case": f"{n} devices", "check": check, "measured": measured,
                        "target": limit, "pass": ok})  # fmt: skip
    for tool, s in doc.get("saturation", {}).items():
        steps = [x for x in s["steps"] if "values_per_s" in x]
        top_offer = max((x["offered_values_per_s"] for x in steps), default=0)
        out.append({"case": f"saturation {tool}", "check": "ceiling measured (delivered stopped rising, offered > 125,000)",
                    "measured": s["saturation_values_per_s"], "target": top_offer,
                    "pass": bool(s["saturated"]) and top_offer > 125_000})  # fmt: skip
    return out


def markdown(doc: dict[str, Any]) -> str:
    m, w = doc["machine"], doc["workload"]
    lines = [
        "# Gateway at scale: 500 and 2,000 devices, saturation throughput",
        "",
        f"Run {doc['started_utc']} ({'quick' if doc['quick'] else 'full'} run, "
        f"{doc['elapsed_s']:.0f} s), `python -m bench.gateway_scale`. Method: `docs/benchmarks.md`.",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Linux {m['kernel']}; "
        f"load average before {m['loadavg_before']}, after {m['loadavg_after']} (the machine "
        "was shared with other engineers' work during the run: figures scatter).",
        "",
    ]
    if doc.get("runs"):
        lines += [
            f"Two invocations one after the other under one `flock /tmp/bench.lock`: "
            f"{' and '.join(doc['runs'])} (load average between them "
            f"{m.get('loadavg_between')}); `{doc.get('command', 'python -m bench.gateway_scale')}`.",
            "",
        ]
    sc = w["scale"]
    if doc.get("scale"):
        lines += [
            "## Many devices",
            "",
            f"minegate with its store and two sinks on at once (MQTT QoS 1 and InfluxDB v2), "
            f"{sc['points_per_device']} holding registers per device read in one request every "
            f"{sc['poll_period_s']:g} s, every value changing; {sc['server_processes']} Modbus "
            f"server processes; one bus per {sc['minegate_buses']}; window {sc['window_s']:g} s "
            f"after {sc['warmup_s']:g} s of warm-up.",
            "",
            "| devices | endpoints | offered values/s | MQTT values/s | InfluxDB values/s | CPU cores | peak RSS MiB (MB) | polls / expected | overruns | backlog slope MQTT / Influx values/s | ack p99 ms MQTT 1st→2nd half | ack p99 ms Influx 1st→2nd half |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for n, r in doc["scale"].items():
            c, sk = r["gateway_counters"], r["sinks"]
            mq, fx = sk["mqtt"], sk["influx"]
            lines.append(
                f"| {int(n):,} | {r['endpoints']} | {_fmt(r['offered_values_per_s'])} "
                f"| {_fmt(r['values_per_s'])} | {_fmt(fx['acked_values_per_s'])} "
                f"| {r['cpu_cores']} | {r['peak_rss_mib']} ({r['peak_rss_mib'] * MIB:.1f}) "
                f"| {_fmt(c['polls'])} / {_fmt(c['polls_expected'])} | {_fmt(c['overruns'])} "
                f"| {_fmt(mq['backlog_slope_values_per_s'])} / {_fmt(fx['backlog_slope_values_per_s'])} "
                f"| {_fmt(mq['ack_p99_ms'][0])} → {_fmt(mq['ack_p99_ms'][1])} "
                f"| {_fmt(fx['ack_p99_ms'][0])} → {_fmt(fx['ack_p99_ms'][1])} |"
            )
        lines += [""]
        for n, r in doc["scale"].items():
            c = r["gateway_counters"]
            lines.append(
                f"- **{int(n):,} devices**: peak RSS {r['peak_rss_startup_mib']} MiB over start-up and "
                f"warm-up, {r['peak_rss_window_mib']} MiB in the window, {r['rss_end_mib']} MiB at "
                f"its end; the gateway's counters over {c['span_s']} s between two of its metric "
                f"records: {c['polls']:,} polls, {c['overruns']:,} overruns, {c['failed_polls']:,} "
                f"failed; request latency (its window of the last requests of all devices) mean {_fmt(c['request_latency_mean_ms'])} ms, "
                f"p99 {_fmt(c['request_latency_p99_ms'])} ms; the shared peers used "
                f"{r['peers_cpu_cores']} cores; exit code {r['exit_code']}."
            )
        lines.append("")
    if doc.get("saturation"):
        st = w["saturation"]
        lines += [
            "## Saturation throughput",
            "",
            f"{st['devices']} devices × {st['registers_per_read']} holding registers (one read) on "
            f"{st['server_processes']} server processes, every value changing; each tool run at "
            f"poll periods {', '.join(f'{x:g}' for x in st['ladder_poll_ms'])} ms until the values "
            f"it delivers rise by less than {st['flat']:.0%} over its best (window "
            f"{st['window_s']:g} s after {st['warmup_s']:g} s). The servers, the broker and "
            "VictoriaMetrics share the same 2 cores: the ceiling is the whole machine's.",
            "",
            "| tool | saturation values/s | at poll ms | ramp: offered → delivered values/s (CPU cores) |",
            "|---|---:|---:|---|",
        ]
        for tool, s in doc["saturation"].items():
            ramp = "; ".join(
                f"{_fmt(x['offered_values_per_s'])} → {_fmt(x['values_per_s'])} ({x['cpu_cores']})"
                if "values_per_s" in x else f"{x['poll_ms']:g} ms: failed"
                for x in s["steps"]
            )  # fmt: skip
            lines.append(f"| {tool} | {_fmt(s['saturation_values_per_s'])} | {_fmt(s['at_poll_ms'])} | {ramp} |")  # fmt: skip
        lines.append("")
    if doc.get("targets"):
        lines += ["## Targets", "", "| case | check | measured | target | result |", "|---|---|---:|---:|---|"]  # fmt: skip
        for t in doc["targets"]:
            lines.append(f"| {t['case']} | {t['check']} | {_fmt(t['measured'])} | {_fmt(t['target'])} | {'PASS' if t['pass'] else 'FAIL'} |")  # fmt: skip
        lines.append("")
    if doc.get("errors"):
        lines += ["## Errors", ""] + [f"- {k}: {v}" for k, v in doc["errors"].items()] + [""]
    v = doc["versions"]
    lines.append("Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    return "\n".join(lines) + "\n"


def summary(doc: dict[str, Any]) -> str:
    """A few lines for the README and docs/benchmarks.md."""
    m = doc["machine"]
    lines = [
        f"Run {doc['started_utc']}; AMD EPYC, 2 cores, load average {m['loadavg_before'][0]} "
        f"before and {m['loadavg_after'][0]} after (shared with other engineers' work).",
        "",
    ]
    if doc.get("scale"):
        lines += [
            "| devices (10 points, 1 s) | values/s offered | MQTT / InfluxDB values/s | CPU cores | peak RSS | polls / expected | overruns | kept up |",
            "|---:|---:|---:|---:|---:|---:|---:|---|",
        ]  # fmt: skip
        for n, r in doc["scale"].items():
            c = r["gateway_counters"]
            ok = all(x[3] for x in behind_checks(r))
            lines.append(
                f"| {int(n):,} | {_fmt(r['offered_values_per_s'])} | {_fmt(r['values_per_s'])} / "
                f"{_fmt(r['sinks']['influx']['acked_values_per_s'])} | {r['cpu_cores']} "
                f"| {r['peak_rss_mib'] * MIB:.0f} MB | {_fmt(c['polls'])} / {_fmt(c['polls_expected'])} "
                f"| {_fmt(c['overruns'])} | {'yes' if ok else 'no'} |"
            )
        lines.append("")
    if doc.get("saturation"):
        lines += ["| tool | saturation throughput, values/s | at poll period |", "|---|---:|---:|"]
        for tool, s in doc["saturation"].items():
            at = f"{s['at_poll_ms']:g} ms" if s.get("at_poll_ms") else "-"
            flag = "" if s.get("saturated") else " (still rising at the last step)"
            lines.append(f"| {tool} | {_fmt(s['saturation_values_per_s'])}{flag} | {at} |")
        lines.append("")
    return "\n".join(lines)

"""Targets and the Markdown page of ``bench.uploads_bench``."""

from __future__ import annotations

from typing import Any

TARGET_RSS_MB = 300.0  # the service's peak, whatever the file sizes
TARGET_SCALING = 1.8  # checks per minute, 2 workers over 1
MIB = 1.048576  # MB per MiB


def targets(doc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    up = doc.get("uploads")
    if up:
        service = [c for c in up["cases"] if c["how"] != "nginx-put"]
        peak = max((c["service_peak_rss_mib"] * MIB for c in service), default=None)
        by_size: dict[float, float] = {}
        for c in service:
            by_size[c["size_mb"]] = max(by_size.get(c["size_mb"], 0.0), c["service_peak_rss_mib"])
        sizes = sorted(by_size)
        growth = by_size[sizes[-1]] / by_size[sizes[0]] if len(sizes) > 1 else None
        out["service_peak_rss_mb"] = {
            "measured": peak,
            "target": f"< {TARGET_RSS_MB:g} MB, flat with the file size",
            "growth_largest_over_smallest": growth,
            "ok": peak is not None and peak < TARGET_RSS_MB and (growth is None or growth < 1.2),
        }
        r = up.get("resume")
        if r:
            out["resume"] = {
                "measured": f"{r['resent_bytes']:,} bytes sent again, SHA-256 "
                + ("equal" if r["sha256_equal"] else "DIFFERENT"),
                # resumed, not restarted: the second session sent only what was missing
                "ok": r["sha256_equal"]
                and r["second_session_wire_bytes"]
                <= r["size_bytes"] - r["kept_by_service_bytes"] + r["size_bytes"] // 100,
            }
    ch = doc.get("checks")
    if ch:
        by_w = {r["workers"]: r for r in ch["rounds"]}
        if 1 in by_w and 2 in by_w:
            ratio = by_w[2]["checks_per_min"] / by_w[1]["checks_per_min"]
            out["scaling_1_to_2"] = {
                "measured": ratio,
                "target": f">= {TARGET_SCALING:g}x",
                "ok": ratio >= TARGET_SCALING,
            }
        out["checks_failed"] = {
            "measured": sum(r["failed"] for r in ch["rounds"]),
            "ok": all(r["failed"] == 0 for r in ch["rounds"]),
        }
    return out


def _f(v: Any, digits: int = 0) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) else str(v)


def markdown(doc: dict[str, Any]) -> str:
    m = doc.get("machine", {})
    lines = [
        "# Uploads and checks benchmark",
        "",
        f"Run {doc['created_utc']}: `{doc['command']}`. {m.get('cpu', '?')}, "
        f"{m.get('cores', '?')} cores, {m.get('memory_gib', '?')} GiB; load average "
        f"{m.get('loadavg_before')} before and {m.get('loadavg_after')} after the run "
        "(1, 5, 15 min). The machine is shared with other engineers' work this session: "
        "the load average says how busy it was.",
        "",
    ]
    if doc.get("error"):
        lines += [f"**The run failed**: {doc['error']}", ""]
    for part, when in (doc.get("kept_from") or {}).items():
        lines += [f"Part `{part}` not run this time: kept from the run of {when}.", ""]
    up = doc.get("uploads")
    if up:
        lines += [
            "## Concurrent uploads over loopback",
            "",
            "| how | clients x size | MB/s (upload) | MB/s (until stored) | service CPU s "
            "| service CPU s per GB | service RSS before MiB | service peak RSS MiB |",
            "|---|---|---:|---:|---:|---:|---:|---:|",
        ]
        for c in up["cases"]:
            lines.append(
                f"| {c['how']} | {c['clients']} x {c['size_mb']:g} MB | {_f(c['upload_mb_s'])} "
                f"| {_f(c['mb_s'])} | {_f(c['service_cpu_s'], 1)} "
                f"| {_f(c['service_cpu_s'] / (c['clients'] * c['size_mb'] / 1000), 1)} "
                f"| {_f(c['service_rss_before_mib'])} | {_f(c['service_peak_rss_mib'])} |"
            )
        lines += [
            "",
            "tus: the product's client (tuspy, 8 MiB chunks, one process per surveyor), each "
            "upload then made a survey (`POST /surveys/tus`: the service hashes the file and "
            "stores it by content); 'upload' is until the last byte was acknowledged, 'until "
            "stored' until the last survey was made. tus-curl: the same tus path, the upload "
            "created by curl and sent in one streamed PATCH (no Python client; no survey "
            "made). multipart: `curl -F` to `POST "
            "/api/v1/mines/{code}/surveys` (survey made in the same request). nginx-put: "
            "`curl -T` to nginx 1.22 (`dav_methods PUT`, 2 worker processes), the raw "
            "ceiling of an HTTP upload on this machine; the service idles meanwhile. Peak "
            "RSS: VmHWM of `minegate platform serve` and its children, reset before each case.",
            "",
        ]
        r = up.get("resume")
        if r:
            lines += [
                f"**Cut and resumed**: a {r['size_bytes'] / 1e6:,.0f} MB tus upload (1 MiB "
                f"chunks), its client SIGKILLed when the service held {r['cut_at_bytes']:,} "
                f"bytes ({r['cut_at_bytes'] / r['size_bytes']:.0%}); the service kept "
                f"{r['kept_by_service_bytes']:,} (what arrived of the chunk in flight included). "
                f"The same command again (8 MiB chunks) resumed from there and made the survey in "
                f"{r['second_session_s']:.1f} s. On the wire (a counting relay between client "
                f"and service, HTTP headers included): {r['first_session_wire_bytes']:,} + "
                f"{r['second_session_wire_bytes']:,} bytes for a {r['size_bytes']:,}-byte file: "
                f"{r['resent_bytes']:,} bytes more than the file. "
                f"SHA-256 of the file and of the service's copy "
                f"{'equal' if r['sha256_equal'] else 'DIFFERENT'} ({r['sha256_file'][:16]}...).",
                "",
            ]
    ch = doc.get("checks")
    if ch:
        lines += [
            "## Queued checks on the distributed engine",
            "",
            f"The {ch['points']:,}-point scan ({ch['file_mb']:,.0f} MB LAS, "
            f"{ch['verdict']}, {ch['incidents']} incidents) uploaded once by tus and checked; "
            f"then {ch['checks']} re-checks of it (`POST /api/v1/surveys/{{id}}/recheck`) "
            f"queued at once per round, run by `minegate platform worker` processes (one check "
            f"at a time each) on Dramatiq and Redis; database {ch['db']}. Time from the first "
            "re-check request to the last check finished.",
            "",
            "| workers | checks | failed | time s | checks/min | worker CPU s per check "
            "| waiting for a CPU s per check | cores used by workers | service + db CPU s "
            "| worker peak RSS MiB | load after |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for r in ch["rounds"]:
            lines.append(
                f"| {r['workers']} | {r['checks']} | {r['failed']} | {_f(r['elapsed_s'], 1)} "
                f"| {_f(r['checks_per_min'], 1)} | {_f(r['worker_cpu_s_per_check'], 2)} "
                f"| {_f(r.get('worker_runqueue_wait_s_per_check'), 2)} "
                f"| {_f(r['worker_cores_used'], 2)} | {_f(r['service_and_db_cpu_s'], 1)} "
                f"| {_f(r['worker_peak_rss_mib'])} "
                f"| {', '.join(f'{x:.1f}' for x in r['loadavg_after'])} |"
            )
        lines += [
            "",
            "Worker CPU: utime + stime of the worker processes over the round, divided by the "
            "checks (idle polling of Redis included). Waiting for a CPU: the time their threads "
            "were runnable but got no core (`/proc/<pid>/task/*/schedstat`): when it is large, "
            "the machine (other work on the 2 cores), not the engine, set the pace.",
            "",
        ]
    t = targets(doc)
    if t:
        lines += ["## Targets", ""]
        for k, v in t.items():
            meas = v["measured"]
            shown = f"{meas:.2f}" if isinstance(meas, float) else str(meas)
            extra = ""
            if v.get("growth_largest_over_smallest") is not None:
                extra = f" (largest size / smallest: {v['growth_largest_over_smallest']:.2f}x)"
            target = f" (target {v['target']})" if v.get("target") else ""
            lines.append(f"- {k}: {shown}{extra}{target}: {'PASS' if v['ok'] else 'FAIL'}")
        lines.append("")
    return "\n".join(lines)

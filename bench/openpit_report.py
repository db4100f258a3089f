"""The open-pit benchmark's results as Markdown (bench/results/openpit.md)."""

from __future__ import annotations

from typing import Any


def _mb(x: float) -> str:
    return f"{x:,.0f} MB"


def markdown(res: dict[str, Any]) -> str:
    m = res["machine"]
    la0 = ", ".join(f"{x:.1f}" for x in m["loadavg_before"])
    la1 = ", ".join(f"{x:.1f}" for x in m.get("loadavg_after", m["loadavg_before"]))
    lines = [
        "# Open-pit benchmark",
        "",
        f"{res['created_utc']} on {m['cpus']} CPU(s), {m['python']}, {m['platform']}. "
        f"Command: `{res['command']}`.",
        "",
        f"Load average before the run {la0}, after {la1}: the machine was shared with other "
        "engineers' work, so wall times are those of a process pinned to a core it did not "
        "have to itself; the CPU time (user + system) is what the check itself cost.",
        "",
        "Every row is `minegate survey check-pit` in a fresh process pinned to one core "
        "(`taskset -c 0`), start to exit, the HTML report included; peak memory is the "
        "maximum resident set from `/usr/bin/time`.",
        "",
        "| input | size | wall (s) | CPU (s) | peak RSS | target | result |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    a = res.get("dsm")
    if a:
        n = int(a["cells"] ** 0.5)
        met = "**met**" if a["met"] else "**not met**"
        lines.append(
            f"| DSM GeoTIFF ({a['cell_m']:g} m, float32, {a['file_mb']:.0f} MB on disk) "
            f"| {n:,} × {n:,} cells | {a['seconds']:.1f} | {a['cpu_s']:.1f} "
            f"| {_mb(a['maxrss_mb'])} | < {a['target_s']:g} s, < {_mb(a['target_maxrss_mb'])} "
            f"| {met} |"
        )
    b = res.get("laz")
    if b:
        lines.append(
            f"| LAZ cloud rasterised at {b['cell_m']:g} m ({b['file_mb']:.0f} MB) "
            f"| {b['points']:,} points | {b['seconds']:.1f} | {b['cpu_s']:.1f} "
            f"| {_mb(b['maxrss_mb'])} | (none set) | {b['mpts_s']:.1f} M points/s |"
        )
    lines.append("")
    for key, what in (("dsm", "DSM"), ("laz", "LAZ")):
        r = res.get(key)
        if not r:
            continue
        lines.append(
            f"{what}: stages (wall s) {r['timings_s']}; verdict {r['verdict']}; "
            f"{len(r['incidents'])} incident(s) "
            + ", ".join(
                f"{i['type']} {i['volume_m3']:,.0f} m³ ({i['max_exceedance_m']:.2f} m)"
                for i in r["incidents"]
            )
            + f"; {r['benches']} benches, {len(r['violations'])} slope-design violation(s)."
        )
        lines.append("")
    c = res.get("cloudcompare")
    if c:
        lines += ["## CloudCompare", ""]
        if c.get("error"):
            lines.append(f"CloudCompare could not be run: {c['error']}")
        else:
            lines += [
                f"CloudCompare {c.get('version', '')} (Debian `cloudcompare`), command-line mode "
                "with `QT_QPA_PLATFORM=offscreen`, on the same cloud: its build reads no "
                "LAS/LAZ (no PDAL/libLAS plugin), so the cloud was converted to binary PLY "
                f"first ({c['convert_s']:.0f} s, not counted). 2.5-D volume of the cloud above "
                f"the plane at +{c['plane_h']:g} m (the pit's rim) on a {c['step']:g} m grid, "
                "against ours: the same cloud rasterised by `check-pit`'s reader (chunked, "
                "tiles) and integrated below the same plane.",
                "",
                "| tool | wall (s) | CPU (s) | peak RSS | volume below the plane (m³) |",
                "|---|---:|---:|---:|---:|",
                f"| CloudCompare `-O cloud.ply -VOLUME -GRID_STEP {c['step']:g} -CONST_HEIGHT "
                f"{c['plane_h']:g}` | {c['cc_s']:.1f} | {c['cc_cpu_s']:.1f} "
                f"| {_mb(c['cc_maxrss_mb'])} | {c['cc_removed_m3']:,.0f} |",
                f"| ours (rasterise + volume) | {c['ours_s']:.1f} | {c['ours_cpu_s']:.1f} "
                f"| {_mb(c['ours_maxrss_mb'])} | {c['ours_removed_m3']:,.0f} |",
                "",
                f"Difference {c['diff_pct']:+.2f} %; our time is {c['ratio']:.2f} × CloudCompare's.",
                "",
            ]
    return "\n".join(lines) + "\n"

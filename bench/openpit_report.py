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
        *(
            f"* part {k} ({'DSM LAZ CloudCompare'.split()[ord(k) - 97]}): {v}"
            for k, v in sorted(res.get("notes", {}).items())
        ),
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
                "CloudCompare 2.11.3 (Debian `cloudcompare`), command-line mode with "
                "`QT_QPA_PLATFORM=offscreen`, one core, on the same cloud. Its build reads no "
                "LAS/LAZ (no PDAL/libLAS plugin), so it was given the cloud as binary PLY, "
                f"converted beforehand ({c['convert_s']:.0f} s, not counted): it reads "
                "uncompressed doubles where `check-pit` decompresses the LAZ (lazrs on the one "
                "core it is pinned to). The task: rasterise on a "
                f"{c['step']:g} m grid (mean height per cell) and integrate the volume of the "
                f"pit below the plane at +{c['plane_h']:g} m (the ground around it); ours is "
                "`check-pit`'s reader (chunks of 2 M points into 256 × 256-cell tiles, holes "
                "filled) and the same integral, in a fresh process. CloudCompare's cells: "
                f"{c['cc_matching_pct']:.1f} % with points.",
                "",
                "| tool | wall (s) | CPU (s) | peak RSS | volume below the plane (m³) |",
                "|---|---:|---:|---:|---:|",
                f"| CloudCompare `-O cloud.ply -VOLUME -GRID_STEP {c['step']:g} -CONST_HEIGHT "
                f"{c['plane_h']:g}` | {c['cc_s']:.1f} | {c['cc_cpu_s']:.1f} "
                f"| {_mb(c['cc_maxrss_mb'])} | {c['cc_removed_m3']:,.0f} |",
                f"| ours (rasterise + volume) | {c['ours_s']:.1f} | {c['ours_cpu_s']:.1f} "
                f"| {_mb(c['ours_maxrss_mb'])} | {c['ours_removed_m3']:,.0f} |",
                "",
                f"Volumes differ by {c['diff_pct']:+.2f} %. Ours against CloudCompare's: "
                f"{c['ratio']:.2f} × the wall time, {c['ours_cpu_s'] / c['cc_cpu_s']:.2f} × "
                f"the CPU time, {c['ours_maxrss_mb'] / c['cc_maxrss_mb']:.2f} × the memory.",
                "",
            ]
    return "\n".join(lines) + "\n"

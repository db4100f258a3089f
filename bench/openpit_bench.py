"""Open-pit benchmark (``make bench-openpit``, part of ``make bench``).

Times ``minegate survey check-pit`` as a user runs it -- a fresh process
pinned to one core (``taskset -c 0``), start to exit, the report included,
peak resident memory from ``/usr/bin/time`` -- on:

a. a 10,000 x 10,000 DSM (0.1 m over 1 km: the sample pit of ``minegate
   survey sample --open-pit`` scaled, :mod:`bench.openpit_data`), a tiled
   float32 GeoTIFF; target under 10 s and 2 GB;
b. a 100 M-point LAZ photogrammetry cloud of the same pit, rasterised
   chunk by chunk into tiles at ``--laz-cell`` metres;
c. CloudCompare (Debian ``cloudcompare``, command-line mode, headless) on
   the same cloud: rasterise and 2.5-D volume against a flat plane, the
   same volume computed by our rasteriser (:mod:`bench.openpit_cc`).

Results go to ``bench/results/openpit.json`` and ``openpit.md``. Generated
files are cached under ``bench/_work/openpit/`` (gitignored).

    python -m bench.openpit_bench                 # 10,000² DSM, 100 M-point LAZ
    python -m bench.openpit_bench --quick         # 2,000² DSM (0.5 m), 2 M-point LAZ
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.openpit_data import big_pit, cloud_chunks, write_big_dsm
from bench.survey_bench import minegate_command, write_las_file

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work" / "openpit"
RESULTS = ROOT / "bench" / "results"
TARGET_DSM_S = 10.0
TARGET_DSM_MB = 2048.0


def timed_command(
    cmd: list[str],
    *,
    one_core: bool = True,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> dict[str, Any]:
    """Run ``cmd`` under ``/usr/bin/time`` (and ``taskset -c 0``): wall
    seconds, peak RSS (MB), exit code, the tail of its output."""
    tf = WORK / "time.txt"
    pre = ["taskset", "-c", "0"] if one_core and shutil.which("taskset") else []
    full = ["/usr/bin/time", "-o", str(tf), "-f", "%e %M %U %S", *pre, *cmd]
    t0 = time.perf_counter()
    proc = subprocess.run(
        full,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        check=False,
        env=env or dict(os.environ),
    )
    wall = time.perf_counter() - t0
    last = tf.read_text().strip().splitlines()[-1].split()
    return {
        "seconds": float(last[0]),
        "wall_s": wall,
        "maxrss_mb": int(last[1]) / 1024.0,
        "cpu_s": float(last[2]) + float(last[3]),
        "exit": proc.returncode,
        "one_core": bool(pre),
        "stdout_tail": proc.stdout[-1500:],
        "stderr_tail": proc.stderr[-1500:],
    }


def check_pit_run(
    dsm: Path, licence: Path, out: Path, *, cell: float | None = None
) -> dict[str, Any]:
    """``minegate survey check-pit`` in a fresh process on one core, the
    findings it wrote."""
    cmd = [*minegate_command(), "survey", "check-pit", "--licence", str(licence)]
    cmd += ["--dsm", str(dsm), "--out", str(out)]
    if cell is not None:
        cmd += ["--cell", str(cell)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = timed_command(cmd, env=env)
    if res["exit"] not in (0, 3):
        raise RuntimeError(f"check-pit failed ({res['exit']}):\n{res['stderr_tail']}")
    findings = json.loads((out / "findings.json").read_text())
    res["verdict"] = findings.get("verdict")
    res["incidents"] = [
        {
            "type": i["type"],
            "volume_m3": i["volume_m3"],
            "max_exceedance_m": i["max_exceedance_m"],
        }
        for i in findings.get("incidents", [])
    ]
    pit = findings.get("open_pit", {})
    res["violations"] = [
        {"kind": v.get("kind"), "worst": v.get("worst")} for v in pit.get("violations", [])
    ]
    res["benches"] = len(pit.get("benches", []))
    res["timings_s"] = {k: round(v, 2) for k, v in findings.get("timings_s", {}).items()}
    return res


def _cached(path: Path, make: Any) -> float:
    if path.exists():
        return 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    make()
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.openpit_bench", description=__doc__)
    ap.add_argument("--size", type=int, default=10_000, help="DSM cells a side (a)")
    ap.add_argument("--laz-points", type=float, default=100e6, help="cloud size (b); 0 skips")
    ap.add_argument(
        "--laz-cell", type=float, default=None, help="rasterising cell (b), m (0.25; quick 1.0)"
    )
    ap.add_argument("--quick", action="store_true", help="2,000² DSM (0.5 m), 2 M-point LAZ")
    ap.add_argument("--no-cloudcompare", action="store_true", help="skip part c")
    ap.add_argument(
        "--parts", default="abc", help="parts to run (a DSM, b LAZ, c CloudCompare); others kept"
    )
    ap.add_argument("--note", default="", help="how the parts run were measured (in the results)")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--work", type=Path, default=None, help="cache (default bench/_work/openpit)")
    args = ap.parse_args(argv)
    global WORK
    WORK = args.work or WORK
    WORK.mkdir(parents=True, exist_ok=True)
    size = 2000 if args.quick else args.size
    n_laz = int(2e6 if args.quick else args.laz_points)
    laz_cell = args.laz_cell or (1.0 if args.quick else 0.25)  # several points a cell
    cell = 1000.0 / size  # a 1 km pit whatever the size
    g = big_pit()
    res: dict[str, Any] = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.openpit_bench " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "loadavg_before": os.getloadavg(),
        },
    }
    parts = set(args.parts) - ({"c"} if args.no_cloudcompare else set())
    previous = args.results / "openpit.json"
    if parts != set("abc") and previous.exists():  # keep the parts not run
        old = json.loads(previous.read_text())
        res.update({k: old[k] for k in ("dsm", "laz", "cloudcompare", "notes") if k in old})
        res["machine"]["earlier_parts"] = {
            "created_utc": old["created_utc"],
            "loadavg_before": old["machine"]["loadavg_before"],
        }
    notes = res.setdefault("notes", {})
    for part in sorted(parts):
        notes[part] = (
            f"measured {res['created_utc']}, load average {os.getloadavg()[0]:.1f} at the start"
            + (f"; {args.note}" if args.note else "")
        )
    from survey.writers import write_licence_toml

    licence = WORK / "licence.toml"
    write_licence_toml(licence, g.licence())
    dsm = WORK / f"dsm_{size}.tif"
    if "a" in parts:
        run_dsm(res, g, dsm, licence, size, cell)
    if n_laz > 0 and parts & set("bc"):
        laz = WORK / f"cloud_{n_laz}.laz"
        print(f"(b) {n_laz:,}-point LAZ (generated once, cached) ...", flush=True)
        gen = _cached(
            laz, lambda: write_las_file(laz, g.licence(), cloud_chunks(g, n_laz), compress=True)
        )
        if gen:
            print(f"    generated in {gen:.0f} s", flush=True)
        if "b" in parts:
            b = check_pit_run(laz, licence, WORK / f"out_laz_{n_laz}", cell=laz_cell)
            b.update(points=n_laz, cell_m=laz_cell, file_mb=laz.stat().st_size / 1e6)
            b["mpts_s"] = n_laz / b["seconds"] / 1e6
            res["laz"] = b
            print(
                f"    {b['seconds']:.1f} s, {b['maxrss_mb']:.0f} MB, {b['timings_s']}", flush=True
            )
        if "c" in parts:
            from bench.openpit_cc import bench_cloudcompare

            print("(c) CloudCompare on the same cloud ...", flush=True)
            res["cloudcompare"] = bench_cloudcompare(laz, laz_cell, WORK, timed_command)
            print(f"    {res['cloudcompare']}", flush=True)
    res["machine"]["loadavg_after"] = os.getloadavg()
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "openpit.json").write_text(json.dumps(res, indent=2) + "\n")
    from bench.openpit_report import markdown

    md = markdown(res)
    (args.results / "openpit.md").write_text(md)
    print(md)
    return 0


def run_dsm(res: dict[str, Any], g: Any, dsm: Path, licence: Path, size: int, cell: float) -> None:
    print(f"(a) {size:,} x {size:,} DSM at {cell:g} m (generated once, cached) ...", flush=True)
    gen = _cached(dsm, lambda: write_big_dsm(dsm, g, cell))
    if gen:
        print(f"    generated in {gen:.0f} s", flush=True)
    a = check_pit_run(dsm, licence, WORK / f"out_dsm_{size}")
    a.update(
        cells=size * size,
        cell_m=cell,
        file_mb=dsm.stat().st_size / 1e6,
        target_s=TARGET_DSM_S,
        target_maxrss_mb=TARGET_DSM_MB,
        met=a["seconds"] < TARGET_DSM_S and a["maxrss_mb"] < TARGET_DSM_MB,
    )
    res["dsm"] = a
    print(f"    {a['seconds']:.1f} s, {a['maxrss_mb']:.0f} MB, {a['timings_s']}", flush=True)


if __name__ == "__main__":
    sys.exit(main())

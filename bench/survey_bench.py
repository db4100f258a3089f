"""Survey benchmark (``make bench-survey``).

Times, in one run:

a. in-memory plan-and-elevation classification (``survey.classify``) vs
   ``shapely.contains_xy`` on a prepared 32-corner polygon plus the elevation
   test, on a generated scan; the two must agree point for point;
b. the whole check of an uncompressed LAS (read, classify, incidents,
   report) and the raw laspy read rate of the same file;
c. a big LAZ checked by streaming chunks in a child process, whose peak
   resident memory (VmHWM) is reported; lazrs decompresses on both cores
   (``LazBackend.LazrsParallel``).

Results go to ``bench/results/survey.json`` and ``bench/results/survey.md``.
Generated files are cached under ``bench/_work/`` (gitignored).

    python -m bench.survey_bench                      # 20 M points, 100 M LAZ
    python -m bench.survey_bench --quick              # small sizes, a minute or so
    python -m bench.survey_bench --points 5e6 --laz-points 0   # skip the LAZ part
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import laspy
import numpy as np
import shapely
from shapely import Polygon

from survey.cli import CHUNK_POINTS
from survey.model import F64, Corner, Licence

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / "_work"
RESULTS = ROOT / "bench" / "results"

TARGET_CLASSIFY_MPTS = 100.0
TARGET_CHECK_MPTS = 10.0
TARGET_LAZ_RSS_MB = 1536.0
GEN_CHUNK = 5_000_000


def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def scan_chunks(n_points: int, seed: int) -> Iterator[tuple[Licence, F64]]:
    """The benchmark scene's licence and its scan, chunk by chunk."""
    from simulators.tunnels import generate_scan

    for i, start in enumerate(range(0, n_points, GEN_CHUNK)):
        n = min(GEN_CHUNK, n_points - start)
        scene = generate_scan(n, seed + i)
        yield scene.licence, scene.points


def with_corners(licence: Licence, n_corners: int = 32) -> Licence:
    """The licence with its first block's boundary given by ``n_corners``
    corners: extra corners are inserted along the longest edges, pushed out
    by 1-3 m so that none is collinear (a real 32-corner licence, same area
    within a fraction of a per cent, same workings inside)."""
    block = licence.blocks[0]
    ring = [(c.y_east, c.x_north) for c in block.corners]
    rng = np.random.default_rng(32)
    while len(ring) < n_corners:
        m = len(ring)
        lengths = [math.dist(ring[i], ring[(i + 1) % m]) for i in range(m)]
        i = int(np.argmax(lengths))
        (e0, n0), (e1, n1) = ring[i], ring[(i + 1) % m]
        # outward normal of a counter-clockwise ring is (dn, -de) / length
        out = rng.uniform(1.0, 3.0) / lengths[i]
        ring.insert(i + 1, ((e0 + e1) / 2 + (n1 - n0) * out, (n0 + n1) / 2 - (e1 - e0) * out))
    if Polygon(ring).exterior.is_ccw is False:
        raise RuntimeError("with_corners expects a counter-clockwise licence ring")
    corners = tuple(Corner(str(k + 1), n, e) for k, (e, n) in enumerate(ring))
    return replace(licence, blocks=(replace(block, corners=corners), *licence.blocks[1:]))


def reference_inside(licence: Licence, xyz: F64) -> np.ndarray:
    """Inside the plan polygon and the elevation range, by shapely."""
    block = licence.blocks[0]
    poly = Polygon(block.polygon_en())
    shapely.prepare(poly)
    inside = shapely.contains_xy(poly, xyz[:, 0], xyz[:, 1])
    return inside & (xyz[:, 2] <= block.z_top) & (xyz[:, 2] >= block.z_bottom)


def bench_classify(licence: Licence, xyz: F64, repeat: int) -> dict[str, Any]:
    from survey.classify import classify, empty_classification, prepare

    n = len(xyz)
    t_ref, ref = _best_of(lambda: reference_inside(licence, xyz), repeat)
    t_prep, prepared = _best_of(lambda: prepare(licence), 1)
    classify(prepared, xyz[:1000])  # compile (numba) outside the timing
    # reused output buffers, as survey.check does chunk after chunk: the
    # classification is timed, not the first touch of 0.9 GB of fresh pages
    buffers = empty_classification(n)
    classify(prepared, xyz, out=buffers)
    t_cls, cls = _best_of(lambda: classify(prepared, xyz, out=buffers), repeat)
    ours = (cls.block >= 0) & (cls.above <= 0) & (cls.below <= 0)
    mismatches = int(np.count_nonzero(ours != ref))
    return {
        "points": n,
        "corners": len(licence.blocks[0].corners),
        "shapely_s": t_ref,
        "shapely_mpts_s": n / t_ref / 1e6,
        "prepare_s": t_prep,
        "classify_s": t_cls,
        "classify_mpts_s": n / t_cls / 1e6,
        "speedup": t_ref / t_cls,
        "mismatches": mismatches,
        "identical": mismatches == 0,
        "target_mpts_s": TARGET_CLASSIFY_MPTS,
    }


def write_las_file(path: Path, licence: Licence, chunks: Iterable[F64], *, compress: bool) -> None:
    """Stream chunks into a LAS/LAZ with offsets near the data (CGCS2000
    coordinates overflow int32 at mm scale with a zero offset)."""
    poly = licence.blocks[0].polygon_en()
    header = laspy.LasHeader(point_format=0, version="1.2")
    header.offsets = np.array([np.floor(poly[:, 0].min()), np.floor(poly[:, 1].min()), 0.0])
    header.scales = np.array([0.001, 0.001, 0.001])
    tmp = path.with_suffix(path.suffix + ".part")
    kwargs: dict[str, Any] = {}
    if compress:
        kwargs = {"do_compress": True, "laz_backend": laspy.LazBackend.LazrsParallel}
    with laspy.open(str(tmp), mode="w", header=header, **kwargs) as w:
        for c in chunks:
            rec = laspy.ScaleAwarePointRecord.zeros(len(c), header=header)
            rec.x, rec.y, rec.z = c[:, 0], c[:, 1], c[:, 2]
            w.write_points(rec)
    tmp.rename(path)


def bench_laspy_read(path: Path, n: int, repeat: int) -> dict[str, Any]:
    def read() -> int:
        las = laspy.read(str(path))
        x = np.asarray(las.x)
        return len(x)

    t, got = _best_of(read, repeat)
    assert got == n
    return {"points": n, "seconds": t, "mpts_s": n / t / 1e6}


def _one_core() -> None:
    """preexec_fn: pin the child to the first CPU this process may use."""
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def minegate_command() -> list[str]:
    """The installed ``minegate`` script next to this interpreter, as a user
    runs it; ``python -m gateway.cli`` where it is not installed."""
    script = Path(sys.executable).with_name("minegate")
    return [str(script)] if script.exists() else [sys.executable, "-m", "gateway.cli"]


def bench_whole_check(path: Path, licence_path: Path, n: int, repeat: int = 3) -> dict[str, Any]:
    """``minegate survey check`` as a user runs it: a fresh process (start-up,
    imports and the numba cache load included), pinned to one core, wall
    time from start to exit; best of ``repeat`` with the file in the page
    cache (the laspy read before warmed it)."""
    one_core = hasattr(os, "sched_setaffinity")
    best: dict[str, Any] | None = None
    for _ in range(repeat):
        with tempfile.TemporaryDirectory(prefix="minegate-bench-") as tmp:
            run = _one_whole_check(path, licence_path, n, Path(tmp), one_core)
        if best is None or run["seconds"] < best["seconds"]:
            best = run
    assert best is not None
    best["repeat"] = repeat
    # before the timer of findings.json starts: interpreter, imports, parsing
    best["startup_s"] = max(0.0, best["seconds"] - best["timings_s"].get("total", 0.0))
    return best


def _one_whole_check(
    path: Path, licence_path: Path, n: int, out: Path, one_core: bool
) -> dict[str, Any]:
    """One timed ``minegate survey check`` writing its report into ``out``."""
    cmd = [*minegate_command(), "survey", "check", "--licence", str(licence_path)]
    cmd += ["--scan", str(path), "--out", str(out), "--quiet"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(
        cmd,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_one_core if one_core else None,
    )
    t = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 3):
        raise RuntimeError(f"minegate survey check failed ({proc.returncode}):\n{proc.stderr}")
    doc = json.loads((out / "findings.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    run = {
        "points": n,
        "seconds": t,
        "cpu_seconds": cpu,
        "mpts_s": n / t / 1e6,
        "one_core": one_core,
        "exit_code": proc.returncode,
        "verdict": doc["verdict"],
        "incidents": len(doc["incidents"]),
        "volumes_m3": [round(i["volume_m3"], 1) for i in doc["incidents"]],
        "timings_s": doc["timings_s"],
        "target_mpts_s": TARGET_CHECK_MPTS,
    }
    return run


def peak_rss_kb() -> int:
    """Peak resident memory of this process image, kB. Linux carries
    ``ru_maxrss`` over an exec from the forking parent (a child of a big
    benchmark process would report the parent's size), so read VmHWM, which
    starts afresh with the new program; ru_maxrss elsewhere."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _child_laz(path: str, licence_path: str, chunk_points: int) -> None:
    """Runs in a fresh process: stream-check a LAZ, print JSON with maxrss."""
    from survey.check import check_files
    from survey.readers.licence_files import load_licence

    licence = load_licence(licence_path)
    t0 = time.perf_counter()
    result = check_files(licence, [path], chunk_points=chunk_points)
    t = time.perf_counter() - t0
    rss_kb = peak_rss_kb()
    print(
        json.dumps(
            {
                "seconds": t,
                "points": result.n_points,
                "maxrss_mb": rss_kb / 1024.0,
                "verdict": result.verdict,
                "incidents": len(result.incidents),
                "timings_s": {k: round(v, 2) for k, v in result.timings_s.items()},
                "lazrs_parallel": laspy.LazBackend.LazrsParallel.is_available(),
            }
        )
    )


def bench_laz_stream(path: Path, licence_path: Path, n: int, chunk_points: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.survey_bench", "--child-laz", str(path)]
    cmd += ["--child-licence", str(licence_path), "--chunk-points", str(chunk_points)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"LAZ child failed ({proc.returncode}):\n{proc.stderr}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res.update(
        {
            "file_mb": path.stat().st_size / 1e6,
            "mpts_s": n / res["seconds"] / 1e6,
            "chunk_points": chunk_points,
            "target_maxrss_mb": TARGET_LAZ_RSS_MB,
        }
    )
    return res


def _cached(path: Path, make: Callable[[], None]) -> float:
    """Make ``path`` unless cached; return the seconds spent (0 if cached)."""
    if path.exists():
        return 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    make()
    return time.perf_counter() - t0


def _licence_file(licence: Licence, path: Path) -> None:
    from survey.sample import write_scene_licence

    write_scene_licence(path, licence)


def markdown(res: dict[str, Any]) -> str:
    lines = [
        "# Survey benchmark",
        "",
        f"{res['created_utc']} on {res['machine']['cpus']} CPU(s), "
        f"{res['machine']['python']}, {res['machine']['platform']}. "
        f"Command: `{res['command']}`.",
        "",
        "| what | points | time (s) | rate (M pts/s) | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    c = res.get("classify")
    if c:
        lines.append(
            f"| shapely.contains_xy, prepared {c['corners']}-corner polygon + elevation "
            f"| {c['points']:,} | {c['shapely_s']:.2f} | {c['shapely_mpts_s']:.1f} | baseline "
            f"| one core |"
        )
        ok = c["classify_mpts_s"] >= TARGET_CLASSIFY_MPTS and c["identical"]
        lines.append(
            f"| survey.classify (plan + elevation; licence prepared once in "
            f"{c['prepare_s']:.2f} s) | {c['points']:,} | {c['classify_s']:.2f} "
            f"| {c['classify_mpts_s']:.1f} | ≥ {TARGET_CLASSIFY_MPTS:g}, identical "
            f"| {'pass' if ok else 'FAIL'} ({c['speedup']:.1f}× shapely, "
            f"{c['mismatches']} mismatches) |"
        )
    r = res.get("laspy_read")
    if r:
        lines.append(
            f"| laspy.read, uncompressed LAS | {r['points']:,} | {r['seconds']:.2f} "
            f"| {r['mpts_s']:.1f} | | |"
        )
    w = res.get("whole_check")
    if w:
        ok = w["mpts_s"] >= TARGET_CHECK_MPTS
        core = ", pinned to one core" if w.get("one_core") else ""
        lines.append(
            f"| whole check of an uncompressed LAS, licence without seam (`minegate survey "
            f"check` in a fresh process{core}, start to exit: start-up, read, classify, "
            f"incidents, volumes, report) "
            f"| {w['points']:,} | {w['seconds']:.2f} | {w['mpts_s']:.1f} "
            f"| ≥ {TARGET_CHECK_MPTS:g} | {'pass' if ok else 'FAIL'} ({w['verdict']}, "
            f"{w['incidents']} incidents) |"
        )
        check_s = w["timings_s"].get("check")
        if check_s:
            lines.append(
                f"| of which the check itself (licence raster, read, classify, incidents, "
                f"volumes; no start-up, no report) | {w['points']:,} | {check_s:.2f} "
                f"| {w['points'] / check_s / 1e6:.1f} "
                f"| | |"
            )
    w2 = res.get("whole_check_seam")
    if w2:
        lines.append(
            f"| the same with a licensed coal seam (roof/floor ESRI grids) | {w2['points']:,} "
            f"| {w2['seconds']:.2f} | {w2['mpts_s']:.1f} | | {w2['verdict']}, "
            f"{w2['incidents']} incidents |"
        )
    z = res.get("laz_stream")
    if z:
        ok = z["maxrss_mb"] < TARGET_LAZ_RSS_MB
        lines.append(
            f"| streamed check of a LAZ ({z['file_mb']:.0f} MB), chunks of "
            f"{z['chunk_points']:,} | {z['points']:,} | {z['seconds']:.2f} | {z['mpts_s']:.1f} "
            f"| peak RSS < {TARGET_LAZ_RSS_MB:g} MB | {'pass' if ok else 'FAIL'} "
            f"({z['maxrss_mb']:.0f} MB) |"
        )
    if "whole_check" in res:
        w = res["whole_check"]
        t = ", ".join(f"{k} {v:.2f} s" for k, v in w["timings_s"].items())
        lines += [
            "",
            f"Whole-check stages (best of {w.get('repeat', 1)} runs): outside the timed "
            f"stages (interpreter start-up, imports, writing findings.json) "
            f"{w.get('startup_s', 0.0):.2f} s; {t}; CPU time "
            f"{w.get('cpu_seconds', 0.0):.2f} s.",
        ]
    if "laz_stream" in res and "timings_s" in res["laz_stream"]:
        t = ", ".join(f"{k} {v:.2f} s" for k, v in res["laz_stream"]["timings_s"].items())
        lines += ["", f"Streamed LAZ stages: {t}."]
    kept = {k: t for k, t in res.get("measured_utc", {}).items() if k in res}
    if kept:
        when = ", ".join(f"{k} at {t}" for k, t in sorted(kept.items()))
        lines += ["", f"Parts not run this time, kept from earlier runs: {when}."]
    lines += [
        "",
        "Generated files are cached in bench/_work/; generation time is not counted.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.survey_bench", description=__doc__)
    ap.add_argument("--points", type=float, default=20e6, help="scan size for (a) and (b)")
    ap.add_argument("--laz-points", type=float, default=100e6, help="LAZ size for (c); 0 skips")
    ap.add_argument("--quick", action="store_true", help="2 M points, 5 M LAZ")
    ap.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="best of N for the classification and each whole check (a fresh process each)",
    )
    ap.add_argument("--chunk-points", type=int, default=CHUNK_POINTS, help="for part c")
    ap.add_argument("--results", type=Path, default=RESULTS)
    ap.add_argument("--work", type=Path, default=WORK, help="cache of generated files")
    ap.add_argument(
        "--parts", default="abc", help="which parts to run: a classify, b whole check, c LAZ"
    )
    ap.add_argument("--child-laz", help=argparse.SUPPRESS)
    ap.add_argument("--child-licence", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child_laz:
        _child_laz(args.child_laz, args.child_licence, args.chunk_points)
        return 0
    n = int(2e6 if args.quick else args.points)
    n_laz = int(5e6 if args.quick else args.laz_points)
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    res: dict[str, Any] = {
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.survey_bench " + " ".join(argv or sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    parts = set(args.parts)
    previous = args.results / "survey.json"
    if parts != set("abc") and previous.exists():  # keep the results of the parts not run
        old = json.loads(previous.read_text())
        keys = ("classify", "laspy_read", "whole_check", "whole_check_seam", "laz_stream")
        res.update({k: old[k] for k in keys if k in old})
        # when each kept part was measured: the earlier run's (or its own) time
        earlier = old.get("measured_utc", {})
        res["measured_utc"] = {k: earlier.get(k, old["created_utc"]) for k in keys if k in old}
    if parts & set("ab"):
        print(f"generating a {n:,}-point scan ...", flush=True)
    scene_chunks = list(scan_chunks(n if parts & set("ab") else 1000, seed=1))
    licence, chunks = with_corners(scene_chunks[0][0]), [c[1] for c in scene_chunks]
    del scene_chunks
    # a metal mine's licence (boundary and levels) and a coal licence with a
    # seam given by roof/floor grids, as `minegate survey check` reads them
    licence_path = work / "bench_licence.toml"
    _licence_file(replace(licence, seams=()), licence_path)
    seam_licence_path = work / "bench_licence_seam.toml"
    _licence_file(licence, seam_licence_path)
    if "a" in parts:
        xyz = np.concatenate(chunks)
        print("(a) classification vs shapely ...", flush=True)
        # boundary and elevation only, as the shapely reference: no seam
        res["classify"] = bench_classify(replace(licence, seams=()), xyz, args.repeat)
        print(f"    {res['classify']}", flush=True)
        del xyz
    las = work / f"scan_{n}.las"
    if "b" in parts:
        write_las = write_las_file  # bound now: the chunks go after this call
        _cached(las, lambda: write_las(las, licence, chunks, compress=False))
        chunks.clear()
        print("(b) laspy read and whole check of the LAS ...", flush=True)
        res["laspy_read"] = bench_laspy_read(las, n, repeat=2)
        res["whole_check"] = bench_whole_check(las, licence_path, n, args.repeat)
        print(f"    {res['whole_check']}", flush=True)
        res["whole_check_seam"] = bench_whole_check(las, seam_licence_path, n, args.repeat)
        print(f"    with the seam: {res['whole_check_seam']}", flush=True)
    chunks.clear()
    if "c" in parts and n_laz > 0:
        laz = work / f"scan_{n_laz}.laz"

        def make_laz() -> None:
            laz_chunks = (c for _, c in scan_chunks(n_laz, seed=1))
            write_las_file(laz, licence, laz_chunks, compress=True)

        print(f"(c) {n_laz:,}-point LAZ (generated once, cached) ...", flush=True)
        gen = _cached(laz, make_laz)
        if gen:
            print(f"    generated in {gen:.0f} s", flush=True)
        res["laz_stream"] = bench_laz_stream(laz, licence_path, n_laz, args.chunk_points)
        print(f"    {res['laz_stream']}", flush=True)
    ran = {"a": ("classify",), "b": ("laspy_read", "whole_check", "whole_check_seam")}
    ran["c"] = ("laz_stream",) if n_laz > 0 else ()
    for part in parts:
        for key in ran.get(part, ()):
            res.get("measured_utc", {}).pop(key, None)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "survey.json").write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    (args.results / "survey.md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())

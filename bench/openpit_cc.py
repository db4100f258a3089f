"""CloudCompare's 2.5-D volume (``CloudCompare -SILENT ... -VOLUME``) run
headless, for the known-answer test (tests/survey/test_openpit_cloudcompare.py)
and the open-pit benchmark.

Debian's ``cloudcompare`` (2.11.3) runs its command-line mode without a
display with ``QT_QPA_PLATFORM=offscreen``. Its build has no LAS/LAZ or
GeoTIFF reader (no PDAL, libLAS or GDAL plugin: ``-O cloud.laz`` answers
"Can't guess file format: unhandled file extension 'laz'"), so clouds and
DSMs are handed to it as binary PLY (cell centres of a DSM, or the
cloud's points), coordinates less a
round offset (its float32 coordinates would lose the millimetres of
CGCS2000 eastings; volumes do not depend on the offset).

Its volume: the cloud's points averaged per cell of ``-GRID_STEP`` on a grid
starting at the cloud's bounding box, against a constant height
(``-CONST_HEIGHT``) or against a second cloud rasterised on the same grid;
written to ``VolumeCalculationReport_<date>.txt`` beside the first cloud
(``Volume``, ``Added volume``, ``Removed volume``, ``Surface``, ``Matching
cells``), which :func:`cc_volume` reads.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from survey.model import F64

ENV = {"QT_QPA_PLATFORM": "offscreen"}
PLY_CHUNK = 5_000_000


def cloudcompare_binary() -> str | None:
    return shutil.which("CloudCompare") or shutil.which("cloudcompare")


def write_ply(path: Path, chunks: Iterable[F64], n: int, offset: tuple[float, float]) -> Path:
    """Binary little-endian PLY of ``n`` points (x, y, z as float64, less
    ``offset`` in plan) from (k, 3) chunks."""
    header = (
        "ply\nformat binary_little_endian 1.0\n"
        f"element vertex {n}\nproperty double x\nproperty double y\nproperty double z\n"
        "end_header\n"
    )
    written = 0
    with path.open("wb") as f:
        f.write(header.encode("ascii"))
        for c in chunks:
            a = np.array(c, dtype="<f8", copy=True)
            a[:, 0] -= offset[0]
            a[:, 1] -= offset[1]
            f.write(a.tobytes())
            written += len(a)
    if written != n:
        raise ValueError(f"{path}: {written} points written, {n} announced")
    return path


def dsm_points(east: F64, north: F64, z: np.ndarray) -> F64:
    """A DSM's cells with a height as (k, 3) points at their centres."""
    e, n = np.meshgrid(east, north)
    ok = np.isfinite(z)
    return np.column_stack([e[ok], n[ok], np.asarray(z, dtype=np.float64)[ok]])


@dataclass
class CCVolume:
    volume_m3: float  # ceil - ground, signed
    added_m3: float
    removed_m3: float
    surface_m2: float
    matching_pct: float
    seconds: float
    command: list[str]
    cpu_s: float = float("nan")  # when timed by ``run``
    maxrss_mb: float = float("nan")


def _num(pattern: str, text: str) -> float:
    m = re.search(pattern, text)
    if m is None:
        raise RuntimeError(f"CloudCompare's report has no {pattern!r}:\n{text}")
    return float(m.group(1).replace(",", ""))


def cc_volume(
    ceil: Path,
    step: float,
    workdir: Path,
    *,
    ground: Path | None = None,
    const_height: float | None = None,
    run: Callable[..., dict[str, Any]] | None = None,
) -> CCVolume:
    """CloudCompare's 2.5-D volume of ``ceil`` over ``ground`` (a second
    cloud) or over the plane at ``const_height``. ``run`` times the
    command (the benchmark's ``/usr/bin/time`` wrapper); default a plain
    subprocess run."""
    exe = cloudcompare_binary()
    if exe is None:
        raise RuntimeError("CloudCompare is not installed (Debian package cloudcompare)")
    workdir.mkdir(parents=True, exist_ok=True)
    # the report goes beside the first cloud
    for old in ceil.parent.glob("VolumeCalculationReport_*.txt"):
        old.unlink()
    cmd = [exe, "-SILENT", "-AUTO_SAVE", "OFF", "-O", str(ceil)]
    if ground is not None:
        cmd += ["-O", str(ground)]
    cmd += ["-VOLUME", "-GRID_STEP", f"{step:g}"]
    if const_height is not None:
        cmd += ["-CONST_HEIGHT", f"{const_height:g}"]
    env = {**os.environ, **ENV}
    t0 = time.perf_counter()
    res: dict[str, Any] = {}
    if run is not None:
        res = run(cmd, one_core=True, env=env, cwd=workdir)
        seconds, rc, out = res["seconds"], res["exit"], res["stdout_tail"] + res["stderr_tail"]
    else:
        proc = subprocess.run(
            cmd, cwd=workdir, env=env, capture_output=True, text=True, check=False
        )
        seconds, rc, out = time.perf_counter() - t0, proc.returncode, proc.stdout + proc.stderr
    reports = sorted(ceil.parent.glob("VolumeCalculationReport_*.txt"))
    if rc != 0 or not reports:
        raise RuntimeError(f"CloudCompare failed (exit {rc}), no volume report:\n{out[-2000:]}")
    text = reports[-1].read_text()
    return CCVolume(
        _num(r"(?m)^Volume:\s*([-+\d.,]+)", text),
        _num(r"Added volume:\s*\(\+\)([\d.,]+)", text),
        _num(r"Removed volume:\s*\(-\)([\d.,]+)", text),
        _num(r"Surface:\s*([\d.,]+)", text),
        _num(r"Matching cells:\s*([\d.]+)%", text),
        seconds,
        cmd,
        res.get("cpu_s", float("nan")),
        res.get("maxrss_mb", float("nan")),
    )


def laz_to_ply(laz: Path, ply: Path, offset: tuple[float, float]) -> float:
    """The cloud as binary PLY for CloudCompare (which reads no LAZ here);
    the seconds it took."""
    import laspy

    t0 = time.perf_counter()
    with laspy.open(str(laz)) as r:
        n = int(r.header.point_count)

        def chunks() -> Iterable[F64]:
            for pts in r.chunk_iterator(PLY_CHUNK):
                yield np.column_stack([np.asarray(pts.x), np.asarray(pts.y), np.asarray(pts.z)])

        tmp = ply.with_suffix(".part")
        write_ply(tmp, chunks(), n, offset)
        tmp.rename(ply)
    return time.perf_counter() - t0


def ours_volume_main(laz: str, cell: float, plane_h: float) -> None:
    """Child process: our rasteriser (``check-pit``'s reader: chunks into
    tiles) and the volume below ``plane_h``, printed as JSON."""
    import json

    from survey.openpit.dsm import read_dsm

    d = read_dsm(laz, cell=cell)
    below = np.maximum(plane_h - np.asarray(d.z, dtype=np.float64), 0.0)
    vol = float(np.nansum(below) * d.cell_area())
    print(json.dumps({"removed_m3": vol, "cells": int(np.isfinite(d.z).sum())}))


def bench_cloudcompare(
    laz: Path, step: float, work: Path, timed: Callable[..., dict[str, Any]], plane_h: float = 200.0
) -> dict[str, Any]:
    """CloudCompare's rasterise + 2.5-D volume of ``laz`` below the plane
    at ``plane_h`` vs ours on the same cloud, each timed by ``timed`` (one
    core, /usr/bin/time)."""
    import json
    import sys

    exe = cloudcompare_binary()
    if exe is None:
        return {"error": "CloudCompare is not installed (apt-get install cloudcompare)"}
    import laspy

    with laspy.open(str(laz)) as r:
        offset = (float(np.floor(r.header.mins[0])), float(np.floor(r.header.mins[1])))
    ply = work / (laz.stem + ".ply")
    convert_s = 0.0 if ply.exists() else laz_to_ply(laz, ply, offset)
    ccdir = work / "cc"
    ccdir.mkdir(exist_ok=True)
    link = ccdir / ply.name
    if not link.exists():
        link.symlink_to(ply.resolve())
    out: dict[str, Any] = {"step": step, "plane_h": plane_h, "convert_s": convert_s}
    try:
        v = cc_volume(link, step, ccdir, const_height=plane_h, run=timed)
    except RuntimeError as exc:
        return {**out, "error": str(exc)[-1500:]}
    root = Path(__file__).resolve().parent.parent
    ours = timed(
        [sys.executable, "-m", "bench.openpit_cc", str(laz), str(step), str(plane_h)],
        one_core=True,
        env={**os.environ, "PYTHONPATH": str(root)},
        cwd=root,
    )
    if ours["exit"] != 0:
        return {**out, "error": "our volume run failed: " + ours["stderr_tail"]}
    ov = json.loads(ours["stdout_tail"].strip().splitlines()[-1])
    cc_removed = max(v.removed_m3, v.added_m3)
    out.update(
        cc_s=v.seconds,
        cc_cpu_s=v.cpu_s,
        cc_maxrss_mb=v.maxrss_mb,
        cc_removed_m3=cc_removed,
        cc_added_m3=min(v.removed_m3, v.added_m3),
        cc_matching_pct=v.matching_pct,
        ours_s=ours["seconds"],
        ours_cpu_s=ours["cpu_s"],
        ours_maxrss_mb=ours["maxrss_mb"],
        ours_removed_m3=ov["removed_m3"],
        diff_pct=100.0 * (ov["removed_m3"] - cc_removed) / cc_removed,
        ratio=ours["seconds"] / v.seconds,
        command=v.command,
    )
    return out


if __name__ == "__main__":
    import sys

    ours_volume_main(sys.argv[1], float(sys.argv[2]), float(sys.argv[3]))

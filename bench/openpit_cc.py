"""CloudCompare's 2.5-D volume (``CloudCompare -SILENT ... -VOLUME``) run
headless, for the known-answer test (tests/survey/test_openpit_cloudcompare.py)
and the open-pit benchmark.

Debian's ``cloudcompare`` (2.11.3) runs its command-line mode without a
display with ``QT_QPA_PLATFORM=offscreen``. Its build has no LAS/LAZ or
GeoTIFF reader (no PDAL, libLAS or GDAL plugin: ``-O cloud.laz`` says the
format is not supported), so clouds and DSMs are handed to it as binary
PLY (cell centres of a DSM, or the cloud's points), coordinates less a
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
    )

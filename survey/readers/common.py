"""What every reader shares: options, checks and the move into the licence
frame.

Order of operations on raw file coordinates (float64 (n, 3) E, N, H):

1. refuse float32 storage of absolute coordinates (:func:`refuse_float32`);
2. refuse NaN/inf (:func:`check_finite`), naming how many and the first one,
   and coordinates beyond ``COORD_MAX_M`` (:func:`check_magnitude`);
3. the optional 4-parameter plan transform (mine grid -> licence system) and
   the constant height offset;
4. the Gauss-Krüger zone prefix is stripped from eastings that carry the
   licence's zone (8 integer digits); a different prefix is an error;
5. with a licence, columns that look swapped (northing in column 0) are an
   error.

Speed: :func:`to_licence_frame` works in place when asked (``copy=False``)
and decides the zone prefix and the swapped-columns / far-from-licence
checks from the plan extent (min/max of E and N) whenever the extent settles
them; only otherwise does it take the medians (a partition of every chunk).
:func:`scale_int_xyz` turns LAS int32 coordinates into the (n, 3) float64
array in one pass and returns the extent with it (numba when installed,
numpy passes otherwise; the same arithmetic as laspy's ``x = X * scale +
offset``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from survey.crs import NORTHING_RANGE, gk_zone, looks_like_easting, looks_like_northing
from survey.jit import numba
from survey.model import F64, Licence, PlanTransform, SurveyInputError
from survey.progress import ProgressCallback

# float32 has a 24-bit mantissa: its spacing is 0.0078 m at 1e5 m, 0.25 m at
# 2.8e6 m (a northing) and 4 m at 3.6e7 m (a prefixed easting). Beyond this
# magnitude float32 coordinates cannot hold a survey to the centimetre.
FLOAT32_ABS_LIMIT_M = 1.0e5

# No easting, northing or height in metres is this large (a zone-prefixed
# CGCS2000 easting is 4e7 m): beyond it a file is damaged or not in metres.
COORD_MAX_M = 1.0e9

# A survey whose typical point lies this far from every licensed block is
# not "a violation": it is in another system or zone, lacks its plan
# transform, or is the wrong file.
FAR_FROM_LICENCE_M = 50_000.0

ColumnMap = Mapping[str, int | str]

#: (min E, max E, min N, max N) of a chunk's points.
Extent = tuple[float, float, float, float]


@dataclass
class ReadOptions:
    """Options every reader receives from :func:`survey.readers.read_survey`."""

    path: Path
    fmt: str
    transform: PlanTransform | None = None
    height_offset: float = 0.0
    column_map: ColumnMap | None = None
    licence: Licence | None = None
    progress: ProgressCallback | None = None
    notes: list[str] = field(default_factory=list)

    def report(self, done: int, total: int | None) -> None:
        if self.progress is not None:
            self.progress(f"read {self.path.name}", done, total)


def refuse_float32(max_abs: float, *, path: Path, what: str, has_transform: bool = False) -> None:
    """Refuse absolute coordinates stored as float32 (``max_abs`` = largest
    absolute coordinate in the file, before any transform)."""
    if max_abs > FLOAT32_ABS_LIMIT_M:
        step = float(np.spacing(np.float32(max_abs)))
        raise SurveyInputError(
            f"{what} stores coordinates as float32 but they reach {max_abs:,.0f} m: at that "
            f"magnitude float32 can only hold steps of {step:.3g} m (4 m at 3.6e7, a prefixed "
            "CGCS2000 easting), so the survey has already lost its precision. Re-export in "
            "float64 (double), or subtract a local origin and give it as a plan transform / "
            "offset.",
            path=path,
        )


def check_finite(
    xyz: F64, *, path: Path, lines: Sequence[int] | np.ndarray | None = None, what: str = "point"
) -> None:
    """SurveyInputError if any coordinate is NaN or infinite, naming how many
    and the first (by file line when ``lines`` maps rows to line numbers,
    else by 0-based point index)."""
    bad = ~np.isfinite(xyz).all(axis=1)
    if not bad.any():
        return
    idx = np.flatnonzero(bad)
    first = int(idx[0])
    if lines is not None:
        raise SurveyInputError(
            f"{idx.size} {what}(s) with NaN or infinite coordinates, the first here; "
            "remove or fix them",
            path=path,
            line=int(lines[first]),
        )
    raise SurveyInputError(
        f"{idx.size} {what}(s) with NaN or infinite coordinates, the first at index {first}; "
        "remove or fix them",
        path=path,
    )


def strip_zone_prefix(east: F64, *, zone: int, path: Path, first_index: int = 0) -> F64:
    """Remove ``zone * 1e6`` from eastings that carry the zone prefix (8
    integer digits); refuse a different prefix."""
    prefixed = np.abs(east) >= 1.0e7
    if not prefixed.any():
        return east
    prefixes = np.floor(east[prefixed] / 1.0e6).astype(np.int64)
    wrong = prefixes != zone
    if wrong.any():
        i = int(np.flatnonzero(prefixed)[np.flatnonzero(wrong)[0]])
        raise SurveyInputError(
            f"easting {east[i]:.3f} (point index {first_index + i}) carries zone prefix "
            f"{prefixes[np.flatnonzero(wrong)[0]]}, but the licence is in zone {zone}; the data "
            "is in another zone: re-project it or check the licence EPSG code",
            path=path,
        )
    out = east.copy()
    out[prefixed] -= zone * 1.0e6
    return out


def scale_int_xyz(
    x: npt.NDArray[Any],
    y: npt.NDArray[Any],
    z: npt.NDArray[Any],
    scales: Sequence[float] | F64,
    offsets: Sequence[float] | F64,
) -> tuple[F64, Extent]:
    """(n, 3) float64 ``X * scale + offset`` per axis of the integer
    coordinates ``x``, ``y``, ``z`` (n,) (LAS int32 fields, any strides), and
    its plan :data:`Extent`. Bit for bit laspy's ``chunk.x`` etc."""
    n = int(x.shape[0])
    out = np.empty((n, 3), dtype=np.float64)
    s = [float(v) for v in scales]
    o = [float(v) for v in offsets]
    if n == 0:
        return out, (math.inf, -math.inf, math.inf, -math.inf)
    if numba is not None:
        ext = _scale_numba(x, y, z, s[0], s[1], s[2], o[0], o[1], o[2], out)
        return out, (float(ext[0]), float(ext[1]), float(ext[2]), float(ext[3]))
    for k, raw in enumerate((x, y, z)):
        col = out[:, k]
        np.multiply(raw, np.float64(s[k]), out=col)
        np.add(col, np.float64(o[k]), out=col)
    return out, plan_extent(out)


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _scale_numba(x, y, z, sx, sy, sz, ox, oy, oz, out):
        emin = np.inf
        emax = -np.inf
        nmin = np.inf
        nmax = -np.inf
        for i in range(x.shape[0]):
            e = x[i] * sx + ox
            nn = y[i] * sy + oy
            out[i, 0] = e
            out[i, 1] = nn
            out[i, 2] = z[i] * sz + oz
            emin = min(emin, e)
            emax = max(emax, e)
            nmin = min(nmin, nn)
            nmax = max(nmax, nn)
        return np.array([emin, emax, nmin, nmax])


def plan_extent(xyz: F64) -> Extent:
    """:data:`Extent` of (n, 3) float64 finite points (n > 0)."""
    e, n = xyz[:, 0], xyz[:, 1]
    return float(e.min()), float(e.max()), float(n.min()), float(n.max())


def scaled_coordinates_bounded(
    scales: Sequence[float] | F64, offsets: Sequence[float] | F64
) -> bool:
    """True when every int32 ``X * scale + offset`` is within
    ``COORD_MAX_M`` (so finite), and the magnitude check of scaled LAS
    coordinates can be skipped."""
    worst = [2.0**31 * abs(float(s)) + abs(float(o)) for s, o in zip(scales, offsets, strict=True)]
    return all(w <= COORD_MAX_M for w in worst)


def within_magnitude(xyz: F64) -> bool:
    """Every coordinate finite and within ``COORD_MAX_M`` (two passes, no
    temporary array)."""
    if xyz.size == 0:
        return True
    return bool(-COORD_MAX_M <= xyz.min() and xyz.max() <= COORD_MAX_M)


def check_magnitude(
    xyz: F64, *, path: Path, lines: Sequence[int] | np.ndarray | None = None, first_index: int = 0
) -> None:
    """SurveyInputError if any finite coordinate is beyond ``COORD_MAX_M``
    (no easting, northing or height on Earth is), naming the first by file
    line or point index."""
    if within_magnitude(xyz):
        return
    big = (np.abs(xyz) > COORD_MAX_M).any(axis=1)
    if not big.any():
        return
    i = int(np.flatnonzero(big)[0])
    value = float(xyz[i][np.argmax(np.abs(xyz[i]))])
    what = (
        f"{int(big.sum())} point(s) have a coordinate beyond {COORD_MAX_M:.0e} m, the first "
        f"{value:.6g}"
    )
    tail = ": no place on Earth is that far; the file is damaged or not in metres"
    if lines is not None:
        raise SurveyInputError(what + " here" + tail, path=path, line=int(lines[i]))
    raise SurveyInputError(f"{what} (point index {first_index + i}){tail}", path=path)


def _abs_range(lo: float, hi: float) -> tuple[float, float]:
    """Range of |v| for v in [lo, hi]."""
    if lo >= 0.0:
        return lo, hi
    if hi <= 0.0:
        return -hi, -lo
    return 0.0, max(-lo, hi)


def _never_northing(lo: float, hi: float) -> bool:
    """No v in [lo, hi] passes ``looks_like_northing``."""
    a, b = _abs_range(lo, hi)
    return b < NORTHING_RANGE[0] or a >= NORTHING_RANGE[1]


def _licence_box(licence: Licence) -> tuple[F64, F64]:
    en = np.concatenate([b.polygon_en() for b in licence.blocks])
    return en.min(axis=0), en.max(axis=0)


def _box_dist(e: float, n: float, lo: F64, hi: F64) -> float:
    de = max(lo[0] - e, 0.0, e - hi[0])
    dn = max(lo[1] - n, 0.0, n - hi[1])
    return float(np.hypot(de, dn))


def _near_for_sure(ext: Extent, licence: Licence) -> bool:
    """Every point of the extent (so the median point too) lies within
    ``FAR_FROM_LICENCE_M`` of the licence box: the distance is convex in
    each coordinate, so its maximum over the extent is at a corner."""
    lo, hi = _licence_box(licence)
    worst = max(_box_dist(e, n, lo, hi) for e in ext[:2] for n in ext[2:])
    return worst <= FAR_FROM_LICENCE_M


def to_licence_frame(
    xyz: F64,
    opts: ReadOptions,
    *,
    first_index: int = 0,
    copy: bool = True,
    extent: Extent | None = None,
) -> F64:
    """Apply transform, height offset and zone-prefix stripping to (n, 3)
    float64 (E, N, H) raw coordinates; check for swapped columns.

    ``copy=False``: ``xyz`` (C-contiguous float64, owned by the caller) is
    changed in place and returned. ``extent``: the plan :data:`Extent` of
    ``xyz`` when the caller already knows it (saves a pass)."""
    if copy or xyz.dtype != np.float64 or not xyz.flags.c_contiguous:
        out = np.array(xyz, dtype=np.float64, copy=True)
    else:
        out = xyz
    if out.size == 0:
        return out.reshape(0, 3)
    if opts.transform is not None:
        out[:, :2] = opts.transform.apply(out[:, :2])
        extent = None
    if opts.height_offset:
        out[:, 2] += opts.height_offset
    ext = extent if extent is not None else plan_extent(out)
    emax_abs = max(abs(ext[0]), abs(ext[1]))
    if opts.licence is None:
        note = f"{opts.path.name}: eastings carry a zone prefix; pass the licence to strip it"
        if note not in opts.notes and emax_abs >= 1.0e7:
            opts.notes.append(note)
        return out
    zone = gk_zone(opts.licence.epsg)
    if emax_abs >= 1.0e7:  # some eastings carry a prefix
        if ext[0] >= 1.0e7 and math.floor(ext[0] / 1.0e6) == zone == math.floor(ext[1] / 1.0e6):
            # all of them, all the licence's zone (floor is monotone): as
            # strip_zone_prefix does, minus its copies
            out[:, 0] -= zone * 1.0e6
            ext = (ext[0] - zone * 1.0e6, ext[1] - zone * 1.0e6, ext[2], ext[3])
        else:
            out[:, 0] = strip_zone_prefix(
                out[:, 0], zone=zone, path=opts.path, first_index=first_index
            )
            ext = plan_extent(out)
    if _never_northing(ext[0], ext[1]) and _near_for_sure(ext, opts.licence):
        return out  # the median checks below cannot fail
    e0, n0 = float(np.median(out[:, 0])), float(np.median(out[:, 1]))
    if looks_like_northing(e0) and looks_like_easting(n0) and not looks_like_easting(e0):
        raise SurveyInputError(
            f"the first coordinate column holds values like {e0:,.1f} (a northing) and the "
            f"second like {n0:,.1f} (an easting): X and Y look swapped. Arrays are "
            "(easting, northing, height); on Chinese documents X is the northing. Re-export "
            "with easting first, or give an explicit column map.",
            path=opts.path,
        )
    _check_near_licence(e0, n0, opts.licence, opts.path)
    return out


def _check_near_licence(e: float, n: float, licence: Licence, path: Path) -> None:
    """Refuse a survey whose median point is far from every licensed block."""
    lo, hi = _licence_box(licence)
    dist = _box_dist(e, n, lo, hi)
    if dist > FAR_FROM_LICENCE_M:
        raise SurveyInputError(
            f"the survey lies about {dist / 1000:,.0f} km from the licensed area (typical point "
            f"E {e:,.1f}, N {n:,.1f}; licence E {lo[0]:,.0f}-{hi[0]:,.0f}, N "
            f"{lo[1]:,.0f}-{hi[1]:,.0f}): it is in another coordinate system or zone, lacks its "
            "plan transform from the mine grid (--transform), or is the wrong file",
            path=path,
        )


def finish_points(
    xyz: F64, opts: ReadOptions, *, lines: Sequence[int] | None = None, plan_only: bool = False
) -> F64:
    """The common tail of a reader: non-empty, finite, into the licence
    frame. ``plan_only``: a NaN height is allowed (a point surveyed without
    its height, checked in plan only); eastings, northings and the other
    heights must still be finite."""
    if xyz.ndim != 2 or xyz.shape[1] != 3:
        raise SurveyInputError(
            f"the coordinates read have shape {xyz.shape}, not (n, 3) x y z: the file is "
            "damaged or its vertices lack a coordinate; export it again",
            path=opts.path,
        )
    if xyz.shape[0] == 0:
        raise SurveyInputError(
            "the file holds no points (empty scan); check the export", path=opts.path
        )
    probe = xyz
    if plan_only and np.isnan(xyz[:, 2]).any():
        probe = xyz.copy()
        probe[np.isnan(probe[:, 2]), 2] = 0.0
    check_finite(probe, path=opts.path, lines=lines)
    check_magnitude(probe, path=opts.path, lines=lines)
    return to_licence_frame(xyz, opts)

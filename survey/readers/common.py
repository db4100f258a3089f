"""What every reader shares: options, checks and the move into the licence
frame.

Order of operations on raw file coordinates (float64 (n, 3) E, N, H):

1. refuse float32 storage of absolute coordinates (:func:`refuse_float32`);
2. refuse NaN/inf (:func:`check_finite`), naming how many and the first one;
3. the optional 4-parameter plan transform (mine grid -> licence system) and
   the constant height offset;
4. the Gauss-Krüger zone prefix is stripped from eastings that carry the
   licence's zone (8 integer digits); a different prefix is an error;
5. with a licence, columns that look swapped (northing in column 0) are an
   error.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from survey.crs import gk_zone, looks_like_easting, looks_like_northing
from survey.model import F64, Licence, PlanTransform, SurveyInputError
from survey.progress import ProgressCallback

# float32 has a 24-bit mantissa: its spacing is 0.0078 m at 1e5 m, 0.25 m at
# 2.8e6 m (a northing) and 4 m at 3.6e7 m (a prefixed easting). Beyond this
# magnitude float32 coordinates cannot hold a survey to the centimetre.
FLOAT32_ABS_LIMIT_M = 1.0e5

# A survey whose typical point lies this far from every licensed block is
# not "a violation": it is in another system or zone, lacks its plan
# transform, or is the wrong file.
FAR_FROM_LICENCE_M = 50_000.0

ColumnMap = Mapping[str, int | str]


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


def to_licence_frame(xyz: F64, opts: ReadOptions, *, first_index: int = 0) -> F64:
    """Apply transform, height offset and zone-prefix stripping to (n, 3)
    float64 (E, N, H) raw coordinates; check for swapped columns."""
    out = np.array(xyz, dtype=np.float64, copy=True)
    if out.size == 0:
        return out.reshape(0, 3)
    if opts.transform is not None:
        out[:, :2] = opts.transform.apply(out[:, :2])
    if opts.height_offset:
        out[:, 2] += opts.height_offset
    if opts.licence is None:
        note = f"{opts.path.name}: eastings carry a zone prefix; pass the licence to strip it"
        if note not in opts.notes and (np.abs(out[:, 0]) >= 1.0e7).any():
            opts.notes.append(note)
    else:
        zone = gk_zone(opts.licence.epsg)
        out[:, 0] = strip_zone_prefix(out[:, 0], zone=zone, path=opts.path, first_index=first_index)
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
    en = np.concatenate([b.polygon_en() for b in licence.blocks])
    lo, hi = en.min(axis=0), en.max(axis=0)
    de = max(lo[0] - e, 0.0, e - hi[0])
    dn = max(lo[1] - n, 0.0, n - hi[1])
    dist = float(np.hypot(de, dn))
    if dist > FAR_FROM_LICENCE_M:
        raise SurveyInputError(
            f"the survey lies about {dist / 1000:,.0f} km from the licensed area (typical point "
            f"E {e:,.1f}, N {n:,.1f}; licence E {lo[0]:,.0f}-{hi[0]:,.0f}, N "
            f"{lo[1]:,.0f}-{hi[1]:,.0f}): it is in another coordinate system or zone, lacks its "
            "plan transform from the mine grid (--transform), or is the wrong file",
            path=path,
        )


def finish_points(xyz: F64, opts: ReadOptions, *, lines: Sequence[int] | None = None) -> F64:
    """The common tail of a reader: non-empty, finite, into the licence
    frame."""
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
    check_finite(xyz, path=opts.path, lines=lines)
    return to_licence_frame(xyz, opts)

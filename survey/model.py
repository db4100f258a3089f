"""Data shared by the survey readers, the licence, the check and the report.

Coordinate convention (read this before touching any array):

* Chinese survey documents write **X = northing, Y = easting**. The licence
  corners, CASS files and the findings JSON keep that naming (``x_north``,
  ``y_east``) so a surveyor can compare them with the paper licence.
* Every numpy array inside the survey module is **(easting, northing,
  height)**, i.e. column 0 = E = Chinese Y, column 1 = N = Chinese X,
  column 2 = H (1985 national height datum). This is the mathematical x/y
  order that shapely, matplotlib and trimesh expect.
* All coordinates are float64 metres in the licence's coordinate system,
  with the zone prefix removed from easting if the licence's EPSG code
  carries one (see ``survey.licence``). Never float32: at 3.6e7 m a float32
  step is 4 m.

Sign convention: every exceedance is **positive beyond the licensed limit**
and negative inside it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Protocol

import numpy as np
import numpy.typing as npt

F64 = npt.NDArray[np.float64]


class SurveyInputError(ValueError):
    """Bad input a user must fix. The message names the file, the line or
    field, and what to do; the CLI prints it without a traceback."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = str(path)
            if line is not None:
                where += f", line {line}"
            where += ": "
        super().__init__(where + message)
        self.path = str(path) if path is not None else None
        self.line = line


class Surface(Protocol):
    """A seam roof or floor: height as a function of plan position."""

    def height(self, en: F64) -> F64:
        """en: (n, 2) float64 (easting, northing) -> (n,) float64 height,
        NaN where the surface does not cover the position."""
        ...


@dataclass(frozen=True)
class Corner:
    """A licence corner as printed (拐点): number, X = northing, Y = easting
    (zone prefix already removed)."""

    number: str
    x_north: float
    y_east: float


@dataclass(frozen=True)
class Block:
    """One licensed block: a plan polygon and an elevation range."""

    name: str
    corners: tuple[Corner, ...]  # in order, not repeated at the end
    z_top: float  # highest licensed elevation (e.g. +120)
    z_bottom: float  # lowest licensed elevation (e.g. -80); z_bottom < z_top

    def polygon_en(self) -> F64:
        """(k, 2) float64 (easting, northing) vertices, open ring."""
        return np.array([[c.y_east, c.x_north] for c in self.corners], dtype=np.float64)


@dataclass(frozen=True)
class Seam:
    """A licensed seam between a roof and a floor surface."""

    name: str
    roof: Surface
    floor: Surface


@dataclass(frozen=True)
class PlanTransform:
    """4-parameter plan transform from a mine grid to the licence system:
    E = dE + m (cos a * e - sin a * n); N = dN + m (sin a * e + cos a * n)."""

    d_east: float
    d_north: float
    rotation_rad: float
    scale: float = 1.0

    def apply(self, en: F64) -> F64:
        c, s = np.cos(self.rotation_rad), np.sin(self.rotation_rad)
        e = self.d_east + self.scale * (c * en[:, 0] - s * en[:, 1])
        n = self.d_north + self.scale * (s * en[:, 0] + c * en[:, 1])
        return np.column_stack([e, n])


@dataclass(frozen=True)
class Licence:
    mine_name: str
    licence_no: str
    epsg: int
    zone_prefix: int | None  # e.g. 36 when the EPSG code's eastings carry it
    blocks: tuple[Block, ...]
    seams: tuple[Seam, ...] = ()
    valid_from: date | None = None
    valid_to: date | None = None
    tolerance_m: float = 1.5  # survey uncertainty in plan (boundary)
    tolerance_z_m: float = 0.5  # survey uncertainty in height (levels, seams)
    source: str = ""


class ViolationType(StrEnum):
    BOUNDARY = "boundary"  # 越界: outside the plan boundary
    ABOVE_RANGE = "above_range"  # 超层: above the licensed elevation range
    BELOW_RANGE = "below_range"  # 超层: below the licensed elevation range
    OUTSIDE_SEAM = "outside_seam"  # 超层: outside the licensed seam's roof/floor


@dataclass
class SurveyData:
    """What a reader returns: points (and triangles for meshes) in licence
    coordinates. ``xyz`` is (n, 3) float64 (easting, northing, height)."""

    source: str
    fmt: str  # "las", "laz", "e57", "ply", "xyz", "csv", "cass", "gsi", "obj", "stl", ...
    xyz: F64
    faces: npt.NDArray[np.int64] | None = None  # (m, 3) for meshes
    point_ids: list[str] | None = None  # for total-station points
    surveyed_on: date | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def is_mesh(self) -> bool:
        return self.faces is not None


@dataclass
class Incident:
    """A connected group of violating points (or of points within survey
    uncertainty, when ``within_uncertainty`` is set)."""

    id: str  # "I1", "I2", ... ("U1", ... for within-uncertainty groups)
    type: ViolationType
    block: str
    point_count: int
    bbox_min: tuple[float, float, float]  # (E, N, H)
    bbox_max: tuple[float, float, float]
    centroid: tuple[float, float, float]  # (E, N, H)
    max_exceedance_m: float  # positive, beyond the limit
    volume_m3: float  # excavated beyond the limit
    nearest_edge: tuple[str, str] | None = None  # corner numbers of the nearest boundary edge
    nearest_corner: str | None = None
    within_uncertainty: bool = False
    new_since: str | None = None  # for comparisons: date/file of the older scan
    # points without a height (checked in plan only): H of box and centroid
    # from the others, NaN when all lack one; not in the volume
    plan_only_points: int = 0


@dataclass
class InputSummary:
    """One input of a check as read: the points (a mesh's vertices) the
    reader returned, a mesh's faces and the surface samples checked besides
    its vertices, and what the reader noted about the file (a declared EPSG
    code taken as it is, entities not read, every height 0, ...)."""

    source: str
    fmt: str
    points: int
    faces: int | None = None
    samples: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    licence: Licence
    sources: list[str]
    n_points: int
    incidents: list[Incident]  # violations (beyond tolerance)
    uncertain: list[Incident]  # exceedances within the tolerance
    verdict: str  # "compliant" | "violations found" | "within survey uncertainty"
    timings_s: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    # (m, 4) float64 rows (E, N, H, status 0/1/2) for plan plots: a subsample
    # of compliant points then of non-compliant ones; see survey.check
    preview: F64 | None = None
    # one per source, in order: counts as read and the readers' notes
    inputs: list[InputSummary] = field(default_factory=list)
    # of n_points, those without a height (NaN): checked in plan only
    n_plan_only: int = 0

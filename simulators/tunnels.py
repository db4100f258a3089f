"""Known-answer underground workings: drifts, ramps, stopes, their scans and
meshes, a matching licence, and the answers a check must find.

Everything is built in a *scene frame* (u, v, h): u and v horizontal metres
from the licence centre, h the elevation (1985 height datum). The scene is
then rotated by ``rotation_deg`` about the centre and placed at Guangxi
CGCS2000 3-degree zone 36 coordinates without the zone prefix (EPSG 4545):
easting about 512 300, northing about 2 523 400. Rotation preserves
distances, so the expected answers computed in the scene frame hold.

Scans: points on every face of every working at ``density`` points per m2
(uniform on the surface), each coordinate disturbed by Gaussian noise of
1 cm clipped at +/-2 cm (laser scanner ranging noise). Meshes: closed
triangle meshes of the same workings (arch sections as 32-segment polygons).

Scenes (all return :class:`Scene`):

* :func:`compliant_scene` -- everything inside the licence;
* :func:`violation_scene` -- a drift crossing the boundary by ``beyond_m``
  (12 m), a stope ``below_m`` (6 m) below the floor of the elevation range,
  and a drift ``seam_offset_m`` (3 m) above the licensed seam's roof;
* :func:`drift_crossing_scene` -- one drift beyond the boundary by a given
  distance (e.g. just under the tolerance);
* :func:`generate_scan` -- a big mine for benchmarks (20 M points in a few
  seconds), with the same three violations.

:func:`with_zone_prefix` turns any scene's licence into EPSG 4524 (zone
prefix 36 on eastings, as printed on paper licences); the arrays stay
prefix-free as everywhere in ``survey``.

Expected answers (:class:`Expected`): type, maximum exceedance (m, positive
beyond the limit, computed analytically from the geometry; noise adds up to
2 cm) and volume beyond the limit (m3, section area x length beyond, or the
box part below the floor).

The shapes of the workings (:class:`Section`, :class:`Drift`, :class:`Stope`)
are in :mod:`simulators.tunnel_shapes`; they are re-exported here.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import trimesh

from simulators.tunnel_shapes import (
    DRIFT_SECTION,
    SEAM_DRIFT_SECTION,
    Drift,
    Section,
    Stope,
    Working,
)
from survey.model import F64, Block, Corner, Licence, Seam, SurveyData, ViolationType

#: scene centre: CGCS2000 zone 36 without prefix (EPSG 4545), Qinzhou area
CENTRE_E = 512_300.0
CENTRE_N = 2_523_400.0
EPSG = 4545

NOISE_SIGMA_M = 0.01
NOISE_CLIP_M = 0.02

#: licence polygon in the scene frame (u, v), counter-clockwise; the edge
#: from corner 4 to 5 is the straight east boundary at u = 300
LICENCE_UV: tuple[tuple[float, float], ...] = (
    (-300.0, -200.0),
    (-100.0, -230.0),
    (100.0, -210.0),
    (300.0, -200.0),
    (300.0, 200.0),
    (150.0, 240.0),
    (0.0, 220.0),
    (-150.0, 250.0),
    (-300.0, 200.0),
    (-320.0, 50.0),
    (-310.0, -80.0),
)
EAST_EDGE_U = 300.0
Z_TOP = 120.0
Z_BOTTOM = -80.0

#: licensed seam (coal) in the scene frame: covers u in [-280, -20],
#: v in [-180, 180]; floor h = SEAM_FLOOR0 + SEAM_DIP * v, roof 4 m above
SEAM_U = (-280.0, -20.0)
SEAM_V = (-180.0, 180.0)
SEAM_FLOOR0 = -20.0
SEAM_DIP = 0.05
SEAM_THICKNESS = 4.0


@dataclass(frozen=True)
class Expected:
    """An incident a correct check must report."""

    working: str
    type: ViolationType
    max_exceedance_m: float
    volume_m3: float
    centroid_uv: tuple[float, float] | None = None  # scene frame, informative


_numba: Any
try:  # numba is optional; benchmarks on big scans evaluate seams per point
    _numba = importlib.import_module("numba")
except ImportError:  # pragma: no cover - depends on the environment
    _numba = None

_plane_numba: Any = None
if _numba is not None:

    @_numba.njit(cache=True, nogil=True)
    def _plane_kernel(en, e0, n0, c, s, h0, dip, u0, u1, v0, v1, out):
        for i in range(en.shape[0]):
            de = en[i, 0] - e0
            dn = en[i, 1] - n0
            u = c * de + s * dn
            v = c * dn - s * de
            if u >= u0 and u <= u1 and v >= v0 and v <= v1:
                out[i] = h0 + dip * v
            else:
                out[i] = np.nan

    _plane_numba = _plane_kernel


class SceneSurface:
    """A planar seam roof or floor of the scene (a :class:`survey.model
    .Surface`): h = h0 + dip * v in the scene frame over the seam rectangle,
    NaN outside it."""

    def __init__(self, scene_to_abs: _Placement, h0: float, dip: float) -> None:
        self._place = scene_to_abs
        self.h0 = h0
        self.dip = dip

    def height(self, en: F64) -> F64:
        en = np.asarray(en, dtype=np.float64)
        a = math.radians(self._place.rotation_deg)
        c, s = math.cos(a), math.sin(a)
        e0, n0 = self._place.centre
        if _plane_numba is not None:
            out = np.empty(len(en))
            _plane_numba(en, e0, n0, c, s, self.h0, self.dip, *SEAM_U, *SEAM_V, out)
            return out
        de = en[:, 0] - e0
        dn = en[:, 1] - n0
        u = c * de
        u += s * dn
        v = c * dn
        v -= s * de
        cover = (u >= SEAM_U[0]) & (u <= SEAM_U[1]) & (v >= SEAM_V[0]) & (v <= SEAM_V[1])
        v *= self.dip
        v += self.h0
        v[~cover] = np.nan
        return v

    def grid(self, step: float = 5.0) -> tuple[F64, F64, F64]:
        """Regular grid over the seam's bounding box: (easting (nx,),
        northing (ny,), height (ny, nx) with NaN outside the seam)."""
        corners = np.array([[u, v] for u in SEAM_U for v in SEAM_V])
        en = self._place.to_abs(corners)
        e = np.arange(en[:, 0].min(), en[:, 0].max() + step, step)
        n = np.arange(en[:, 1].min(), en[:, 1].max() + step, step)
        ge, gn = np.meshgrid(e, n)
        h = self.height(np.column_stack([ge.ravel(), gn.ravel()])).reshape(ge.shape)
        return e, n, h


@dataclass(frozen=True)
class _Placement:
    rotation_deg: float
    centre: tuple[float, float] = (CENTRE_E, CENTRE_N)

    def to_abs(self, uv: F64) -> F64:
        a = math.radians(self.rotation_deg)
        c, s = math.cos(a), math.sin(a)
        e = self.centre[0] + c * uv[:, 0] - s * uv[:, 1]
        n = self.centre[1] + s * uv[:, 0] + c * uv[:, 1]
        return np.column_stack([e, n])

    def to_scene(self, en: F64) -> F64:
        a = math.radians(self.rotation_deg)
        c, s = math.cos(a), math.sin(a)
        de = en[:, 0] - self.centre[0]
        dn = en[:, 1] - self.centre[1]
        return np.column_stack([c * de + s * dn, -s * de + c * dn])

    def xyz(self, uvh: F64) -> F64:
        """Scene (u, v, h) (n, 3) -> (E, N, H) (n, 3) float64."""
        a = math.radians(self.rotation_deg)
        c, s = math.cos(a), math.sin(a)
        out = np.empty_like(uvh)
        e = uvh[:, 0] * c
        e -= uvh[:, 1] * s
        e += self.centre[0]
        out[:, 0] = e
        n = uvh[:, 0] * s
        n += uvh[:, 1] * c
        n += self.centre[1]
        out[:, 1] = n
        out[:, 2] = uvh[:, 2]
        return out


@dataclass
class Scene:
    """Points (n, 3) float64 (E, N, H), the licence, a closed mesh of the
    same workings, and the expected incidents."""

    name: str
    licence: Licence
    points: F64
    mesh: SurveyData
    expected: list[Expected]
    workings: list[Working] = field(default_factory=list)
    rotation_deg: float = 0.0

    @property
    def xyz(self) -> F64:
        """Alias of ``points``: (n, 3) float64 (E, N, H)."""
        return self.points

    def survey(self) -> SurveyData:
        """The scan as reader output (``fmt`` "xyz")."""
        return SurveyData(source=f"{self.name}.scan", fmt="xyz", xyz=self.points)


def make_licence(
    rotation_deg: float = 23.0, *, with_seam: bool = True, tolerance_m: float = 1.5
) -> Licence:
    """The scenes' licence, turned by ``rotation_deg`` like the scene: an
    11-corner block from +120 m to -80 m and, optionally, the licensed seam
    (planar roof and floor 4 m apart over the western part)."""
    place = _Placement(rotation_deg)
    en = place.to_abs(np.array(LICENCE_UV))
    corners = tuple(Corner(str(i + 1), float(n), float(e)) for i, (e, n) in enumerate(en))
    seams: tuple[Seam, ...] = ()
    if with_seam:
        floor = SceneSurface(place, SEAM_FLOOR0, SEAM_DIP)
        roof = SceneSurface(place, SEAM_FLOOR0 + SEAM_THICKNESS, SEAM_DIP)
        seams = (Seam("No. 2 seam", roof=roof, floor=floor),)
    return Licence(
        mine_name="Qinzhou test mine (simulated)",
        licence_no="C4507002026000000001",
        epsg=EPSG,
        zone_prefix=None,
        blocks=(Block("main", corners, Z_TOP, Z_BOTTOM),),
        seams=seams,
        tolerance_m=tolerance_m,
        tolerance_z_m=0.5,
        source="simulators.tunnels",
    )


#: CGCS2000 3-degree zone 36 with the zone prefix on eastings
EPSG_WITH_PREFIX = 4524
ZONE = 36


def with_zone_prefix(scene: Scene) -> Scene:
    """The same scene with a licence in EPSG 4524 (zone prefix 36: paper
    licences print Y = 36 512 300.000). Arrays never carry the prefix (see
    ``survey.model``), so the points are unchanged; writers print it."""
    from dataclasses import replace

    lic = replace(scene.licence, epsg=EPSG_WITH_PREFIX, zone_prefix=ZONE)
    return replace(scene, licence=lic)


def _add_noise(xyz: F64, rng: np.random.Generator) -> None:
    """Add clipped Gaussian noise to ``xyz`` (n, 3) in place (column by
    column: no (n, 3) temporaries for 20 M points)."""
    for j in range(3):
        z = rng.standard_normal(len(xyz))
        z *= NOISE_SIGMA_M
        np.clip(z, -NOISE_CLIP_M, NOISE_CLIP_M, out=z)
        xyz[:, j] += z


def _build(
    name: str,
    workings: list[Working],
    expected: list[Expected],
    *,
    density: float,
    seed: int,
    rotation_deg: float,
    with_seam: bool = True,
    counts: list[int] | None = None,
) -> Scene:
    rng = np.random.default_rng(seed)
    place = _Placement(rotation_deg)
    if counts is None:
        counts = [max(1, round(w.surface_area * density)) for w in workings]
    parts = [w.sample(k, rng) for w, k in zip(workings, counts, strict=True)]
    uvh = np.concatenate(parts)
    del parts
    _add_noise(uvh, rng)
    points = place.xyz(uvh)
    del uvh
    mesh = trimesh.util.concatenate([w.mesh() for w in workings])
    assert isinstance(mesh, trimesh.Trimesh)
    verts = place.xyz(np.asarray(mesh.vertices))
    mesh_data = SurveyData(
        source=f"{name}.mesh", fmt="ply", xyz=verts, faces=np.asarray(mesh.faces, np.int64)
    )
    return Scene(
        name=name,
        licence=make_licence(rotation_deg, with_seam=with_seam),
        points=points,
        mesh=mesh_data,
        expected=expected,
        workings=workings,
        rotation_deg=rotation_deg,
    )


def _seam_roof(u: float, v: float) -> float:
    return SEAM_FLOOR0 + SEAM_THICKNESS + SEAM_DIP * v


def _compliant_workings() -> list[Working]:
    return [
        Drift("haulage drift -40", (0.0, 0.0, -40.0), (180.0, 0.0, -40.0)),
        Drift("ramp -40 to -10", (0.0, 60.0, -40.0), (150.0, 60.0, -10.0)),
        Stope("stope 2", (100.0, 100.0, -75.0), (130.0, 115.0, -50.0)),
        # in the seam: floor 0.2 m above the seam floor, 2.8 m high in a 4 m seam
        Drift(
            "seam drift N",
            (-250.0, 100.0, SEAM_FLOOR0 + SEAM_DIP * 100.0 + 0.4),
            (-60.0, 100.0, SEAM_FLOOR0 + SEAM_DIP * 100.0 + 0.4),
            section=SEAM_DRIFT_SECTION,
        ),
    ]


def compliant_scene(*, density: float = 150.0, seed: int = 1, rotation_deg: float = 23.0) -> Scene:
    """Workings all inside the licence, the elevation range and the seam."""
    works = _compliant_workings()
    works.append(Drift("east drift -40", (200.0, -20.0, -40.0), (280.0, -20.0, -40.0)))
    works.append(Stope("stope 1", (40.0, -60.0, -74.0), (70.0, -45.0, -55.0)))
    return _build("compliant", works, [], density=density, seed=seed, rotation_deg=rotation_deg)


def violation_scene(
    *,
    beyond_m: float = 12.0,
    below_m: float = 6.0,
    seam_offset_m: float = 3.0,
    density: float = 150.0,
    seed: int = 2,
    rotation_deg: float = 23.0,
) -> Scene:
    """The compliant workings plus three violations with known answers:

    * "east drift -40" (arched 4 m x 3.5 m) runs east through the straight
      boundary edge 4-5 and ends ``beyond_m`` past it: boundary, max
      exceedance ``beyond_m`` (its end face), volume area x ``beyond_m``;
    * "stope 1" (30 m x 15 m) has its floor ``below_m`` under the licensed
      floor of -80 m: below_range, max ``below_m``, volume 30 x 15 x below_m;
    * "seam drift S" (3.0 m x 2.8 m rectangular, 40 m) has its floor
      ``seam_offset_m`` above the seam roof: outside_seam, max = offset +
      height + the roof's dip over half the width, volume the whole drift.
    """
    works = _compliant_workings()
    east = Drift("east drift -40", (200.0, -20.0, -40.0), (EAST_EDGE_U + beyond_m, -20.0, -40.0))
    stope = Stope("stope 1", (40.0, -60.0, Z_BOTTOM - below_m), (70.0, -45.0, -55.0))
    sec = SEAM_DRIFT_SECTION
    v_s = -100.0
    floor_h = _seam_roof(0.0, v_s) + seam_offset_m
    seam_drift = Drift("seam drift S", (-240.0, v_s, floor_h), (-200.0, v_s, floor_h), section=sec)
    # the roof is lowest on the south side of the drift (dip > 0 rises north)
    seam_max = floor_h + sec.height - _seam_roof(0.0, v_s - sec.width / 2)
    works += [east, stope, seam_drift]
    expected = [
        Expected(
            "east drift -40",
            ViolationType.BOUNDARY,
            beyond_m,
            DRIFT_SECTION.area * beyond_m,
            (EAST_EDGE_U + beyond_m / 2, -20.0),
        ),
        Expected(
            "stope 1",
            ViolationType.BELOW_RANGE,
            below_m,
            30.0 * 15.0 * below_m,
            (55.0, -52.5),
        ),
        Expected(
            "seam drift S",
            ViolationType.OUTSIDE_SEAM,
            seam_max,
            seam_drift.volume,
            (-220.0, v_s),
        ),
    ]
    return _build(
        "violation", works, expected, density=density, seed=seed, rotation_deg=rotation_deg
    )


def drift_crossing_scene(
    beyond_m: float,
    *,
    density: float = 150.0,
    seed: int = 3,
    rotation_deg: float = 23.0,
    tolerance_m: float = 1.5,
) -> Scene:
    """One arched drift ending ``beyond_m`` past the east boundary (no seam).
    Expected: one boundary group with max exceedance ``beyond_m`` -- an
    incident when beyond_m > tolerance_m, a within-uncertainty group
    otherwise."""
    drift = Drift("east drift -40", (220.0, -20.0, -40.0), (EAST_EDGE_U + beyond_m, -20.0, -40.0))
    expected = [
        Expected(
            drift.name,
            ViolationType.BOUNDARY,
            beyond_m,
            DRIFT_SECTION.area * beyond_m,
            (EAST_EDGE_U + beyond_m / 2, -20.0),
        )
    ]
    scene = _build(
        f"drift_{beyond_m:g}m",
        [drift],
        expected,
        density=density,
        seed=seed,
        rotation_deg=rotation_deg,
        with_seam=False,
    )
    if tolerance_m != scene.licence.tolerance_m:
        from dataclasses import replace

        scene.licence = replace(scene.licence, tolerance_m=tolerance_m)
    return scene


def generate_scan(n_points: int, seed: int = 0, *, rotation_deg: float = 23.0) -> Scene:
    """A big scan of ``n_points`` points for benchmarks: a grid of 24 level
    drifts on three levels inside the licence plus the three violations of
    :func:`violation_scene` (same expected answers, volumes and maxima; the
    point density follows from ``n_points``). No mesh-level detail beyond
    that of :func:`violation_scene`. About 1-2 s per 10 M points."""
    base = violation_scene(density=1.0, seed=seed, rotation_deg=rotation_deg)
    works: list[Working] = list(base.workings)
    for level in (-70.0, -30.0, 10.0):
        for k, v in enumerate(np.linspace(-150.0, 150.0, 8)):
            if abs(v) < 25 or abs(v - 60.0) < 8 or abs(v - 100) < 8:
                continue
            works.append(
                Drift(f"drift {level:+.0f} #{k}", (0.0, float(v), level), (250.0, float(v), level))
            )
    areas = np.array([w.surface_area for w in works])
    counts = np.floor(areas / areas.sum() * n_points).astype(np.int64)
    counts[0] += n_points - int(counts.sum())
    return _build(
        f"scan_{n_points}",
        works,
        base.expected,
        density=0.0,
        seed=seed,
        rotation_deg=rotation_deg,
        counts=[int(c) for c in counts],
    )


__all__ = [
    "DRIFT_SECTION",
    "Drift",
    "Expected",
    "Scene",
    "SceneSurface",
    "Section",
    "Stope",
    "compliant_scene",
    "drift_crossing_scene",
    "generate_scan",
    "make_licence",
    "violation_scene",
    "with_zone_prefix",
]

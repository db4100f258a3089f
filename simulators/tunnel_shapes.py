"""The shapes of underground workings in the scene frame (u, v, h) of
:mod:`simulators.tunnels`: drift cross-sections (:class:`Section`), straight
drifts and ramps (:class:`Drift`) and box stopes (:class:`Stope`), with their
volumes, uniform point sampling on their faces and closed meshes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import shapely
import trimesh

from survey.model import F64

__all__ = [
    "DRIFT_SECTION",
    "SEAM_DRIFT_SECTION",
    "Drift",
    "Section",
    "Stope",
    "Working",
]


@dataclass(frozen=True)
class Section:
    """Drift cross-section: ``width`` x ``height`` m, floor at v = 0, centred
    on u = 0; ``arched``: vertical walls then a semicircular arch of radius
    width / 2 (wall height = height - width / 2)."""

    width: float
    height: float
    arched: bool = True

    @property
    def radius(self) -> float:
        return self.width / 2

    @property
    def wall(self) -> float:
        return self.height - self.radius if self.arched else self.height

    @property
    def area(self) -> float:
        if self.arched:
            return self.width * self.wall + math.pi * self.radius**2 / 2
        return self.width * self.height

    @property
    def perimeter(self) -> float:
        if self.arched:
            return self.width + 2 * self.wall + math.pi * self.radius
        return 2 * (self.width + self.height)

    def outline(self, arc_segments: int = 32) -> F64:
        """(k, 2) float64 (u, v) polygon of the section, counter-clockwise."""
        w2 = self.width / 2
        if not self.arched:
            return np.array([[-w2, 0], [w2, 0], [w2, self.height], [-w2, self.height]], float)
        a = np.linspace(0.0, math.pi, arc_segments + 1)
        arc = np.column_stack([self.radius * np.cos(a), self.wall + self.radius * np.sin(a)])
        return np.vstack([[[-w2, 0.0], [w2, 0.0]], arc])

    def boundary_points(self, t: F64) -> tuple[F64, F64]:
        """(u, v) at arc length ``t`` (k,) in [0, perimeter) along the outline."""
        w, hw, r = self.width, self.wall, self.radius
        u = np.empty_like(t)
        v = np.empty_like(t)
        floor = t < w
        u[floor], v[floor] = t[floor] - w / 2, 0.0
        t1 = t - w
        right = ~floor & (t1 < hw)
        u[right], v[right] = w / 2, t1[right]
        t2 = t1 - hw
        if self.arched:
            top_len = math.pi * r
            top = ~floor & ~right & (t2 < top_len)
            ang = t2[top] / r
            u[top], v[top] = r * np.cos(ang), hw + r * np.sin(ang)
        else:
            top_len = w
            top = ~floor & ~right & (t2 < top_len)
            u[top], v[top] = w / 2 - t2[top], hw
        left = ~floor & ~right & ~top
        u[left], v[left] = -w / 2, hw - (t2[left] - top_len)
        return u, v

    def inside_points(self, n: int, rng: np.random.Generator) -> tuple[F64, F64]:
        """n uniform points (u, v) inside the section (for end faces)."""
        us: list[F64] = []
        vs: list[F64] = []
        got = 0
        while got < n:
            m = int((n - got) * 1.3) + 8
            u = rng.uniform(-self.width / 2, self.width / 2, m)
            v = rng.uniform(0.0, self.height, m)
            ok = v <= self.wall
            if self.arched:
                ok |= u**2 + (v - self.wall) ** 2 <= self.radius**2
            us.append(u[ok])
            vs.append(v[ok])
            got += int(ok.sum())
        return np.concatenate(us)[:n], np.concatenate(vs)[:n]


DRIFT_SECTION = Section(4.0, 3.5, arched=True)
SEAM_DRIFT_SECTION = Section(3.0, 2.8, arched=False)


@dataclass(frozen=True)
class Drift:
    """A straight tunnel (drift when level, ramp when inclined) in the scene
    frame: floor centre line from ``start`` to ``end`` (u, v, h), section
    perpendicular to the axis, optional end faces."""

    name: str
    start: tuple[float, float, float]
    end: tuple[float, float, float]
    section: Section = DRIFT_SECTION
    caps: tuple[bool, bool] = (True, True)

    def frame(self) -> tuple[F64, F64, F64, float]:
        """(axis, side, up) unit vectors and length."""
        p0, p1 = np.array(self.start, float), np.array(self.end, float)
        d = p1 - p0
        length = float(np.linalg.norm(d))
        axis = d / length
        side = np.cross(axis, [0.0, 0.0, 1.0])
        side /= np.linalg.norm(side)
        up = np.cross(side, axis)
        return axis, side, up, length

    @property
    def volume(self) -> float:
        return self.section.area * self.frame()[3]

    @property
    def surface_area(self) -> float:
        caps = sum(self.caps) * self.section.area
        return self.section.perimeter * self.frame()[3] + caps

    def sample(self, n: int, rng: np.random.Generator) -> F64:
        """n points (scene frame) uniform on the tube and its end faces."""
        axis, side, up, length = self.frame()
        sec = self.section
        ncap = [round(n * sec.area / self.surface_area) if c else 0 for c in self.caps]
        ntube = n - sum(ncap)
        s = rng.uniform(0.0, length, ntube)
        u, v = sec.boundary_points(rng.uniform(0.0, sec.perimeter, ntube))
        parts = [(s, u, v)]
        for cnt, at in zip(ncap, (0.0, length), strict=True):
            if cnt:
                cu, cv = sec.inside_points(cnt, rng)
                parts.append((np.full(cnt, at), cu, cv))
        s = np.concatenate([p[0] for p in parts])
        u = np.concatenate([p[1] for p in parts])
        v = np.concatenate([p[2] for p in parts])
        p0 = np.array(self.start, float)
        out = np.empty((len(s), 3))
        for j in range(3):
            col = s * axis[j]
            col += p0[j]
            if side[j] != 0.0:
                col += u * side[j]
            if up[j] != 0.0:
                col += v * up[j]
            out[:, j] = col
        return out

    def mesh(self) -> trimesh.Trimesh:
        """Closed mesh in the scene frame."""
        axis, side, up, length = self.frame()
        prism = trimesh.creation.extrude_polygon(
            shapely.Polygon(self.section.outline()), height=length
        )
        m = np.eye(4)
        m[:3, 0], m[:3, 1], m[:3, 2], m[:3, 3] = side, up, axis, self.start
        prism.apply_transform(m)
        if prism.volume < 0:
            prism.invert()
        return prism


@dataclass(frozen=True)
class Stope:
    """A box chamber in the scene frame: corners ``lo`` and ``hi`` (u, v, h)."""

    name: str
    lo: tuple[float, float, float]
    hi: tuple[float, float, float]

    @property
    def dims(self) -> F64:
        return np.array(self.hi, float) - np.array(self.lo, float)

    @property
    def volume(self) -> float:
        return float(np.prod(self.dims))

    @property
    def surface_area(self) -> float:
        a, b, c = self.dims
        return float(2 * (a * b + b * c + a * c))

    def sample(self, n: int, rng: np.random.Generator) -> F64:
        """n points uniform on the six faces."""
        a, b, c = self.dims
        areas = np.array([b * c, b * c, a * c, a * c, a * b, a * b])
        face = rng.choice(6, size=n, p=areas / areas.sum())
        pts = rng.uniform(0.0, 1.0, (n, 3))
        axis_of_face = face // 2  # 0: u faces, 1: v faces, 2: h faces
        pts[np.arange(n), axis_of_face] = (face % 2).astype(float)
        return np.array(self.lo, float) + pts * self.dims

    def mesh(self) -> trimesh.Trimesh:
        return trimesh.creation.box(bounds=np.array([self.lo, self.hi], float))


Working = Drift | Stope

"""The synthetic pit of ``minegate survey sample --open-pit``: a circular
pit with benches whose every face, berm and volume is known from the
numbers that build it (:class:`PitGeometry`), so the check can be tested
against answers that do not come from the check.

The wall is a profile of knots (radius, height) from the floor outwards:
face k rises ``bench_height_m`` over ``bench_height_m / tan(angle_k)``,
then a flat berm. Sectors of the wall change the profile (a steeper face,
no berms: "one wall"; in the second survey two pushbacks), blended into
the normal wall over ``ramp_deg`` so the surface stays continuous. A sump
below the licensed floor is cut into the pit floor. Angles of sectors are
degrees anticlockwise from east.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from survey.model import F64, Block, Corner, Licence


@dataclass(frozen=True)
class Sector:
    centre_deg: float
    half_width_deg: float  # the sector's core: full effect inside

    def weight(self, theta_deg: F64, ramp_deg: float) -> F64:
        d = np.abs((theta_deg - self.centre_deg + 180.0) % 360.0 - 180.0)
        return np.clip(1.0 - (d - self.half_width_deg) / ramp_deg, 0.0, 1.0)


@dataclass(frozen=True)
class PitGeometry:
    centre_en: tuple[float, float] = (561_200.0, 2_431_800.0)  # EPSG 4545, near Qinzhou
    ground_m: float = 200.0
    floor_m: float = 160.0
    floor_radius_m: float = 40.0
    bench_height_m: float = 10.0
    n_benches: int = 4
    face_deg: float = 65.0
    berm_m: float = 8.0
    ramp_deg: float = 6.0
    steep: Sector = Sector(100.0, 18.0)
    steep_face: int = 1  # 0 = the lowest face
    steep_deg: float = 80.0
    wall: Sector = Sector(200.0, 22.0)
    wall_deg: float = 70.0
    # second survey: a top-down pushback of the upper benches in the east ...
    pushback_in_order: Sector = Sector(0.0, 15.0)
    pushback_in_order_faces: tuple[int, ...] = (2, 3)
    # ... and a lower bench pushed back under an unmined one in the south
    pushback_out_of_order: Sector = Sector(280.0, 15.0)
    pushback_out_of_order_faces: tuple[int, ...] = (1,)
    pushback_m: float = 5.0
    sump_offset_en: tuple[float, float] = (-10.0, -15.0)
    sump_radius_m: float = 6.0  # at its bottom
    sump_bottom_m: float = 148.0
    sump_deg: float = 60.0
    licence_east_m: float = 70.0  # the licence's east edge, from the centre: the pit crosses it
    licence_half_m: float = 120.0
    z_top: float = 210.0
    z_bottom: float = 155.0
    half_extent_m: float = 150.0  # the DSM covers the centre +- this
    dates: tuple[str, str] = ("2026-03-01", "2026-09-01")
    extra: dict[str, float] = field(default_factory=dict)

    # --- the wall ---------------------------------------------------------

    def knot_heights(self) -> F64:
        hs = [self.floor_m]
        for k in range(self.n_benches):
            top = self.floor_m + (k + 1) * self.bench_height_m
            hs.append(top)
            if k < self.n_benches - 1:
                hs.append(top)
        return np.array(hs)

    def _knots(self, angles: list[float], berms: list[float], shifts: list[float]) -> F64:
        r = [self.floor_radius_m]
        for k in range(self.n_benches):
            r.append(r[-1] + self.bench_height_m / np.tan(np.radians(angles[k])))
            if k < self.n_benches - 1:
                r.append(r[-1] + berms[k])
        out = np.array(r)
        for k, s in enumerate(shifts):
            out[2 * k : 2 * k + 2] += s
        return out

    def face_angles(self) -> list[float]:
        return [self.face_deg] * self.n_benches

    def knots(self, theta_deg: F64, survey: int = 1) -> F64:
        """(n, K) knot radii for directions ``theta_deg`` (n,)."""
        nb = self.n_benches
        base_a, base_b, zero = self.face_angles(), [self.berm_m] * (nb - 1), [0.0] * nb
        normal = self._knots(base_a, base_b, zero)
        steep_a = list(base_a)
        steep_a[self.steep_face] = self.steep_deg
        variants = [
            (self.steep, self._knots(steep_a, base_b, zero)),
            (self.wall, self._knots([self.wall_deg] * nb, [0.0] * (nb - 1), zero)),
        ]
        if survey == 2:
            for sector, faces in (
                (self.pushback_in_order, self.pushback_in_order_faces),
                (self.pushback_out_of_order, self.pushback_out_of_order_faces),
            ):
                shifts = [self.pushback_m if k in faces else 0.0 for k in range(nb)]
                variants.append((sector, self._knots(base_a, base_b, shifts)))
        t = np.asarray(theta_deg, dtype=np.float64)
        out = np.broadcast_to(normal, (t.size, normal.size)).copy()
        for sector, knots in variants:
            out += sector.weight(t, self.ramp_deg)[:, None] * (knots - normal)[None, :]
        return out

    def height(self, e: F64, n: F64, survey: int = 1) -> F64:
        """Surface height at plan positions (any shape) for survey 1 or 2."""
        e, n = np.asarray(e, dtype=np.float64), np.asarray(n, dtype=np.float64)
        de, dn = e.ravel() - self.centre_en[0], n.ravel() - self.centre_en[1]
        r = np.hypot(de, dn)
        theta = np.degrees(np.arctan2(dn, de)) % 360.0
        knots = self.knots(theta, survey)
        hk = self.knot_heights()
        h = np.full(r.shape, self.floor_m)
        for i in range(hk.size - 1):
            dh = hk[i + 1] - hk[i]
            if dh == 0:
                continue
            dr = knots[:, i + 1] - knots[:, i]
            with np.errstate(invalid="ignore", divide="ignore"):
                frac = np.where(dr > 0, np.clip((r - knots[:, i]) / dr, 0.0, 1.0), r >= knots[:, i])
            h += frac * dh
        sd = np.hypot(de - self.sump_offset_en[0], dn - self.sump_offset_en[1])
        sump = self.sump_bottom_m + np.maximum(sd - self.sump_radius_m, 0.0) * np.tan(
            np.radians(self.sump_deg)
        )
        return np.minimum(h, sump).reshape(e.shape)

    # --- the licence --------------------------------------------------------

    def licence(self) -> Licence:
        ce, cn = self.centre_en
        w, east = ce - self.licence_half_m, ce + self.licence_east_m
        s, nn = cn - self.licence_half_m, cn + self.licence_half_m
        corners = (
            Corner("1", nn, w),
            Corner("2", nn, east),
            Corner("3", s, east),
            Corner("4", s, w),
        )
        return Licence(
            mine_name="Sample quarry (synthetic)",
            licence_no="C4507002026030000001",
            epsg=4545,
            zone_prefix=None,
            blocks=(Block("pit", corners, self.z_top, self.z_bottom),),
            tolerance_m=1.5,
            tolerance_z_m=0.5,
        )

    def axes(self, cell: float) -> tuple[F64, F64]:
        ce, cn = self.centre_en
        n = round(2 * self.half_extent_m / cell)
        offs = -self.half_extent_m + cell * (np.arange(n) + 0.5)
        return np.asarray(ce + offs, dtype=np.float64), np.asarray(cn + offs, dtype=np.float64)

    # --- answers from the geometry -------------------------------------------

    def sump_volume_below(self, level: float) -> float:
        """Volume of the sump (a cone frustum) below ``level``."""
        h = level - self.sump_bottom_m
        r1 = self.sump_radius_m
        r2 = r1 + h / np.tan(np.radians(self.sump_deg))
        return float(np.pi * h / 3.0 * (r1 * r1 + r1 * r2 + r2 * r2))

    def integrate(
        self, fn_en: object, window: tuple[float, float, float, float], step: float = 0.2
    ) -> float:
        """Integral of fn(e, n) (vectorised) over an E/N window by the midpoint rule."""
        e0, e1, n0, n1 = window
        es = np.arange(e0 + step / 2, e1, step)
        total = 0.0
        for nrow in np.array_split(np.arange(n0 + step / 2, n1, step), 20):
            e, n = np.meshgrid(es, nrow)
            total += float(fn_en(e, n).sum())  # type: ignore[operator]
        return total * step * step

    def volume_beyond_east_edge(self) -> float:
        ce, cn = self.centre_en
        edge = ce + self.licence_east_m
        r = 100.0
        return self.integrate(
            lambda e, n: self.ground_m - self.height(e, n, 1), (edge, ce + r, cn - r, cn + r)
        )

    def cut_volumes(self) -> tuple[float, float]:
        """(inside, outside) the licence: volume mined between the surveys."""
        ce, cn = self.centre_en
        edge = ce + self.licence_east_m
        r = 100.0

        def cut(e: F64, n: F64) -> F64:
            return np.maximum(self.height(e, n, 1) - self.height(e, n, 2), 0.0)

        outside = self.integrate(cut, (edge, ce + r, cn - r, cn + r))
        total = self.integrate(cut, (ce - r, ce + r, cn - r, cn + r))
        return total - outside, outside

    def radius_at(self, theta_deg: float, height: float, survey: int = 1) -> float:
        knots = self.knots(np.array([theta_deg]), survey)[0]
        hk = self.knot_heights()
        # the first knot at or above the height, on a rising segment
        for i in range(hk.size - 1):
            if hk[i] <= height <= hk[i + 1] and hk[i + 1] > hk[i]:
                f = (height - hk[i]) / (hk[i + 1] - hk[i])
                return float(knots[i] + f * (knots[i + 1] - knots[i]))
        raise ValueError(f"height {height} is not on the wall")

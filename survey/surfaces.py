"""Seam roof and floor surfaces: heights as a function of plan position.

Both classes implement :class:`survey.model.Surface`: ``height(en)`` takes
(n, 2) float64 (easting, northing) and returns (n,) float64 heights, NaN
where the surface does not cover the position (the check then treats the
seam as unknown there, never as compliant).

* :class:`GridSurface`: a regular (E, N) grid, bilinear interpolation with
  ``scipy.interpolate.RegularGridInterpolator``; NaN outside the grid and in
  cells touching a no-data node. With numba the same arithmetic runs as a
  compiled loop (:func:`grid_height_numba`; the cell is found in O(1) on an
  evenly spaced axis), bit for bit the interpolator's values.
* :class:`TinSurface`: a triangulated surface. From bare points a Delaunay
  triangulation (``scipy.spatial.Delaunay``; ``find_simplex`` + barycentric
  weights, NaN outside the convex hull); from a mesh (OBJ/PLY/STL) its own
  triangles (matplotlib's trapezoid-map finder, NaN outside the mesh
  footprint, which may be concave).

Coordinates are shifted to a local origin before triangulating: qhull and
barycentric arithmetic lose digits on 7-digit northings.

Loaders: :func:`load_surface` dispatches on the extension: ``.asc`` (ESRI
ASCII grid), ``.csv``/``.txt``/``.xyz`` points (a complete regular lattice
becomes a grid, anything else a TIN; column naming as for total-station CSV:
X = northing), ``.obj``/``.ply``/``.stl`` meshes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from survey.jit import numba
from survey.model import F64, SurveyInputError
from survey.readers import read_survey
from survey.readers.common import check_finite, strip_zone_prefix
from survey.readers.text import read_text
from survey.readers.totalstation import read_point_table

if TYPE_CHECKING:  # scipy's interpolate and spatial cost ~0.5 s to import: on use only
    from scipy.interpolate import RegularGridInterpolator
    from scipy.spatial import Delaunay


def _en(en: npt.ArrayLike) -> F64:
    a = np.asarray(en, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] < 2:
        raise ValueError(f"expected (n, 2) (easting, northing), got shape {a.shape}")
    return a[:, :2]


class GridSurface:
    """Heights on a regular grid.

    east: (nx,) strictly increasing eastings; north: (ny,) strictly
    increasing northings; heights: (ny, nx) float64, row j = north[j], NaN =
    no data.
    """

    def __init__(
        self, east: npt.ArrayLike, north: npt.ArrayLike, heights: npt.ArrayLike, *, source: str = ""
    ) -> None:
        self.east = np.asarray(east, dtype=np.float64)
        self.north = np.asarray(north, dtype=np.float64)
        self.heights = np.asarray(heights, dtype=np.float64)
        if self.heights.shape != (self.north.size, self.east.size):
            raise ValueError(
                f"heights shape {self.heights.shape} != (len(north), len(east)) "
                f"{(self.north.size, self.east.size)}"
            )
        if self.east.size < 2 or self.north.size < 2:
            raise ValueError("a grid needs at least 2 x 2 nodes")
        if (np.diff(self.east) <= 0).any() or (np.diff(self.north) <= 0).any():
            raise ValueError("grid axes must be strictly increasing")
        self.source = source
        self._origin = np.array([self.east[0], self.north[0]])
        self._interp: RegularGridInterpolator | None = None  # the numpy path, made on use

        # the interpolator's axes, for the compiled path
        self.local_north = np.ascontiguousarray(self.north - self._origin[1])
        self.local_east = np.ascontiguousarray(self.east - self._origin[0])
        self.values = np.ascontiguousarray(self.heights)

    @property
    def origin(self) -> F64:
        """(2,) float64 (E, N) subtracted from positions before interpolating."""
        return self._origin

    def plan_extent(self) -> tuple[float, float, float, float]:
        """(min E, max E, min N, max N) of the grid; NaN beyond it."""
        return (
            float(self.east[0]),
            float(self.east[-1]),
            float(self.north[0]),
            float(self.north[-1]),
        )

    def height(self, en: F64) -> F64:
        a = _en(en) - self._origin
        if numba is not None and a.shape[0]:
            out = np.empty(a.shape[0], dtype=np.float64)
            _grid_heights_numba(
                np.ascontiguousarray(a), self.local_north, self.local_east, self.values, out
            )
            return out
        return np.asarray(self.interpolator()(a[:, ::-1]), dtype=np.float64)

    def interpolator(self) -> RegularGridInterpolator:
        """scipy's linear interpolator of the grid, (N, E) relative to
        ``origin``: the numpy path, and the reference of the compiled one."""
        if self._interp is None:
            from scipy.interpolate import RegularGridInterpolator

            # NaN nodes propagate through linear interpolation: cells touching
            # no-data come out NaN, which is what we want.
            self._interp = RegularGridInterpolator(
                (self.local_north, self.local_east),
                self.heights,
                method="linear",
                bounds_error=False,
                fill_value=np.nan,
            )
        return self._interp


if numba is not None:

    @numba.njit(cache=True, nogil=True, inline="always")
    def _interval(g, x):
        # i with g[i] <= x < g[i + 1], g[-1] itself in the last cell (as
        # scipy's find_interval_ascending); x within [g[0], g[-1]]. Start
        # from the evenly spaced guess, then step to the exact cell.
        n = g.shape[0]
        i = int((x - g[0]) * ((n - 1) / (g[n - 1] - g[0])))
        i = min(max(i, 0), n - 2)
        while i > 0 and g[i] > x:
            i -= 1
        while i < n - 2 and g[i + 1] <= x:
            i += 1
        return i

    @numba.njit(cache=True, nogil=True)
    def grid_height_numba(gn, ge, values, xn, xe):
        """Bilinear height at local (xn northing, xe easting), NaN off the
        grid: RegularGridInterpolator's 2-D linear arithmetic."""
        if not (xn >= gn[0] and xn <= gn[gn.shape[0] - 1]):
            return np.nan
        if not (xe >= ge[0] and xe <= ge[ge.shape[0] - 1]):
            return np.nan
        i0 = _interval(gn, xn)
        i1 = _interval(ge, xe)
        y0 = (xn - gn[i0]) / (gn[i0 + 1] - gn[i0])
        y1 = (xe - ge[i1]) / (ge[i1 + 1] - ge[i1])
        return (
            values[i0, i1] * (1 - y0) * (1 - y1)
            + values[i0, i1 + 1] * (1 - y0) * y1
            + values[i0 + 1, i1] * y0 * (1 - y1)
            + values[i0 + 1, i1 + 1] * y0 * y1
        )

    @numba.njit(cache=True, nogil=True)
    def _grid_heights_numba(a, gn, ge, values, out):
        for i in range(a.shape[0]):
            out[i] = grid_height_numba(gn, ge, values, a[i, 1], a[i, 0])


class TinSurface:
    """A triangulated surface.

    vertices: (k, 3) float64 (E, N, H); faces: (m, 3) vertex indices, or
    None to triangulate the vertices by Delaunay in plan.
    """

    def __init__(
        self, vertices: npt.ArrayLike, faces: npt.ArrayLike | None = None, *, source: str = ""
    ) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
            raise ValueError("a TIN needs at least 3 vertices of (E, N, H)")
        self.vertices = v
        self.source = source
        self._origin = v[:, :2].min(axis=0)
        local = v[:, :2] - self._origin
        self._z = v[:, 2]
        self._tri: Delaunay | None = None
        self._mpl: Any = None
        if faces is None:
            from scipy.spatial import Delaunay, QhullError

            try:
                self._tri = Delaunay(local)
            except QhullError as exc:
                raise ValueError(f"cannot triangulate the points (all on a line?): {exc}") from None
            self.faces = np.asarray(self._tri.simplices, dtype=np.int64)
        else:
            import matplotlib.tri as mtri

            self.faces = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
            tri = mtri.Triangulation(local[:, 0], local[:, 1], self.faces)
            try:
                finder = mtri.TrapezoidMapTriFinder(tri)
            except (RuntimeError, ValueError) as exc:
                raise ValueError(
                    "the mesh is not a 2.5D surface (triangles overlap in plan or stand "
                    f"vertical): {exc}; give roof and floor as separate surfaces"
                ) from None
            self._mpl = mtri.LinearTriInterpolator(tri, self._z, trifinder=finder)

    def height(self, en: F64) -> F64:
        a = _en(en) - self._origin
        if self._tri is not None:
            simplex = self._tri.find_simplex(a)
            out = np.full(a.shape[0], np.nan)
            inside = simplex >= 0
            s = simplex[inside]
            t = self._tri.transform[s]  # (k, 3, 2): affine map to barycentric
            b2 = np.einsum("kij,kj->ki", t[:, :2, :], a[inside] - t[:, 2, :])
            bary = np.column_stack([b2, 1.0 - b2.sum(axis=1)])
            out[inside] = (bary * self._z[self._tri.simplices[s]]).sum(axis=1)
            return out
        res = self._mpl(a[:, 0], a[:, 1])
        return np.ma.filled(np.ma.asarray(res, dtype=np.float64), np.nan)


# --------------------------------------------------------------------------
# loaders


def _strip(east: F64, zone: int | None, path: Path) -> F64:
    if zone is None:
        return east
    return strip_zone_prefix(east, zone=zone, path=path)


def load_esri_ascii_grid(path: str | Path, *, zone: int | None = None) -> GridSurface:
    """ESRI ASCII grid (``.asc``): header ncols, nrows, xllcorner|xllcenter,
    yllcorner|yllcenter, cellsize, [NODATA_value]; then nrows rows, the
    first one northernmost. x = easting."""
    p = Path(path)
    tokens_by_line = [ln.split() for ln in read_text(p)[0].splitlines()]
    header: dict[str, float] = {}
    i = 0
    while i < len(tokens_by_line):
        toks = tokens_by_line[i]
        if not toks:
            i += 1
            continue
        try:
            float(toks[0])
            break  # first data row
        except ValueError:
            if len(toks) != 2:
                raise SurveyInputError(
                    f"ESRI grid header line should be 'key value', got {' '.join(toks)!r}",
                    path=p,
                    line=i + 1,
                ) from None
            try:
                header[toks[0].lower()] = float(toks[1])
            except ValueError:
                raise SurveyInputError(
                    f"ESRI grid header {toks[0]}: {toks[1]!r} is not a number", path=p, line=i + 1
                ) from None
            i += 1
    for key in ("ncols", "nrows", "cellsize"):
        if key not in header:
            raise SurveyInputError(f"ESRI grid header lacks {key!r}", path=p)
    ncols, nrows, cs = int(header["ncols"]), int(header["nrows"]), header["cellsize"]
    if "xllcorner" in header and "yllcorner" in header:
        x0, y0 = header["xllcorner"] + cs / 2, header["yllcorner"] + cs / 2
    elif "xllcenter" in header and "yllcenter" in header:
        x0, y0 = header["xllcenter"], header["yllcenter"]
    else:
        raise SurveyInputError("ESRI grid header lacks xllcorner/yllcorner (or *center)", path=p)
    values: list[float] = []
    for ln in range(i, len(tokens_by_line)):
        for tok in tokens_by_line[ln]:
            try:
                values.append(float(tok))
            except ValueError:
                raise SurveyInputError(
                    f"grid value {tok!r} is not a number", path=p, line=ln + 1
                ) from None
    if len(values) != ncols * nrows:
        raise SurveyInputError(
            f"the grid header says {nrows} x {ncols} = {nrows * ncols} values but the file "
            f"holds {len(values)}; the file is truncated or the header is wrong",
            path=p,
        )
    z = np.array(values, dtype=np.float64).reshape(nrows, ncols)[::-1]  # south row first
    if "nodata_value" in header:
        z[z == header["nodata_value"]] = np.nan
    east = _strip(x0 + cs * np.arange(ncols, dtype=np.float64), zone, p)
    north = y0 + cs * np.arange(nrows)
    return GridSurface(east, north, z, source=str(p))


def _regular_axis(values: F64) -> F64 | None:
    u = np.unique(np.round(values, 4))
    if u.size < 2:
        return None
    d = np.diff(u)
    return u if np.allclose(d, d[0], rtol=0, atol=1e-3) else None


def surface_from_points(xyz: npt.ArrayLike, *, source: str = "") -> GridSurface | TinSurface:
    """A grid when the (E, N) positions form a complete regular lattice,
    otherwise a Delaunay TIN. xyz: (n, 3) float64 (E, N, H)."""
    a = np.asarray(xyz, dtype=np.float64)
    ue, un = _regular_axis(a[:, 0]), _regular_axis(a[:, 1])
    if ue is not None and un is not None and ue.size * un.size == a.shape[0]:
        ie = np.searchsorted(ue, np.round(a[:, 0], 4))
        jn = np.searchsorted(un, np.round(a[:, 1], 4))
        z = np.full((un.size, ue.size), np.nan)
        z[jn, ie] = a[:, 2]
        if not np.isnan(z).any():
            return GridSurface(ue, un, z, source=source)
    return TinSurface(a, source=source)


def load_surface(path: str | Path, *, zone: int | None = None) -> GridSurface | TinSurface:
    """Load a seam roof or floor; ``zone`` strips a matching zone prefix
    from eastings (a different prefix is an error)."""
    p = Path(path)
    if not p.is_file():
        raise SurveyInputError(
            "seam surface file not found (paths are relative to the licence file)", path=p
        )
    ext = p.suffix.lower()
    try:
        if ext == ".asc":
            return load_esri_ascii_grid(p, zone=zone)
        if ext in (".csv", ".txt", ".xyz"):
            table = read_point_table(p)
            xyz = table.xyz.copy()
            check_finite(xyz, path=p, lines=table.lines)
            xyz[:, 0] = _strip(xyz[:, 0], zone, p)
            return surface_from_points(xyz, source=str(p))
        if ext in (".obj", ".ply", ".stl"):
            data = read_survey(p)
            xyz = data.xyz.copy()
            xyz[:, 0] = _strip(xyz[:, 0], zone, p)
            if data.faces is None:
                return surface_from_points(xyz, source=str(p))
            return TinSurface(xyz, data.faces, source=str(p))
    except ValueError as exc:
        if isinstance(exc, SurveyInputError):
            raise
        raise SurveyInputError(f"not a usable seam surface: {exc}", path=p) from None
    raise SurveyInputError(
        f"unknown seam surface type {ext!r}; use .asc (ESRI grid), .csv (points: a regular "
        "lattice becomes a grid, else a Delaunay TIN) or .obj/.ply/.stl (TIN mesh)",
        path=p,
    )


__all__ = [
    "GridSurface",
    "TinSurface",
    "load_esri_ascii_grid",
    "load_surface",
    "surface_from_points",
]

"""Digital surface models (DSM): read from GeoTIFF (rasterio) or ESRI ASCII
grids, or made from a point cloud (LAS/LAZ, ...) or a 2.5-D mesh (OBJ).

A :class:`Dsm` holds heights at cell centres: ``east`` (nx,) and ``north``
(ny,) increasing, ``z`` (ny, nx) float64 with row j at ``north[j]`` (south
row first, as :class:`survey.surfaces.GridSurface`), NaN where there is no
data. Coordinates are in the licence's system (zone prefix removed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from survey.crs import CRS_TABLE
from survey.model import F64, Licence, SurveyInputError
from survey.progress import ProgressCallback, null_progress

DSM_EXTENSIONS = (".tif", ".tiff", ".asc")
GDAL_CACHE_MB = 64
READ_ROWS = 512  # GeoTIFF rows read at a time (a multiple of the usual 256/512 tiles)
# heights: float32 for DSMs read from rasters (a 1e8-cell DSM in 400 MB;
# 0.1 mm steps at 1,000 m), float64 where they were computed
Heights = npt.NDArray[np.floating[Any]]
FILL_PASSES = 3
# read chunk by chunk (memory bounded by the area, not the points)
STREAMED_FORMATS = ("las", "laz", "xyz", "pts", "e57")
CLOUD_CHUNK_POINTS = (
    2_000_000  # empty cells of a rasterised cloud filled from neighbours up to 3 cells in
)


@dataclass
class Dsm:
    east: F64
    north: F64
    z: Heights  # float32 from a raster file, float64 when computed
    source: str = ""
    fmt: str = ""
    points: int | None = None  # points rasterised, for clouds

    @property
    def cell(self) -> float:
        return float(self.east[1] - self.east[0])

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.z.shape[0]), int(self.z.shape[1]))

    def cell_area(self) -> float:
        return self.cell * float(self.north[1] - self.north[0])

    def centres(self) -> tuple[F64, F64]:
        """(ny, nx) easting and northing of every cell centre."""
        e, n = np.meshgrid(self.east, self.north)
        return e, n

    def sample(self, e: F64, n: F64) -> F64:
        """Bilinear heights at plan positions (NaN outside or next to no data)."""
        ci = (np.asarray(e) - self.east[0]) / self.cell
        rj = (np.asarray(n) - self.north[0]) / float(self.north[1] - self.north[0])
        out = ndimage.map_coordinates(
            self.z, [rj, ci], output=np.float64, order=1, mode="constant", cval=np.nan
        )
        return np.asarray(out, dtype=np.float64)

    def rows(self, r0: int, r1: int) -> Dsm:
        """Rows r0 to r1 - 1 (a strip; ``z`` is a view, not a copy)."""
        return Dsm(self.east, self.north[r0:r1], self.z[r0:r1], self.source, self.fmt, self.points)

    def strips(self, rows: int) -> list[tuple[int, int]]:
        """(r0, r1) of consecutive strips of at most ``rows`` rows, south first."""
        ny = self.shape[0]
        return [(r0, min(ny, r0 + rows)) for r0 in range(0, ny, max(1, rows))]

    def gradient_at(self, e: F64, n: F64) -> tuple[F64, F64]:
        """(dz/dE, dz/dN) at plan positions: the central differences of
        :meth:`slope` interpolated bilinearly there, computed from the
        heights one cell either side (the same numbers, without two
        whole-grid gradient arrays: 1.6 GB on a 1e8-cell DSM). NaN next to
        no data and within a cell of the DSM's edge."""
        c, dnorth = self.cell, float(self.north[1] - self.north[0])
        de = (self.sample(e + c, n) - self.sample(e - c, n)) / (2 * c)
        dn = (self.sample(e, n + dnorth) - self.sample(e, n - dnorth)) / (2 * dnorth)
        return de, dn

    def slope(self) -> tuple[F64, F64, F64]:
        """(slope in degrees, dz/dE, dz/dN), each (ny, nx), float64."""
        z = np.asarray(self.z, dtype=np.float64)
        dn, de = np.gradient(z, float(self.north[1] - self.north[0]), self.cell)
        slope = np.asarray(np.degrees(np.arctan(np.hypot(de, dn))), dtype=np.float64)
        return slope, np.asarray(de, dtype=np.float64), np.asarray(dn, dtype=np.float64)

    def polygon_mask(self, polygon_en: F64) -> npt.NDArray[np.bool_]:
        """(ny, nx) cells whose centre lies inside the polygon ((k, 2)
        easting, northing, open ring; even-odd rule), by scanlines: each
        row's crossings with the edges, then the parity along the row (no
        point-in-polygon test per cell: a 10,000 x 10,000 DSM has 1e8)."""
        x0, y0 = polygon_en[:, 0], polygon_en[:, 1]
        x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
        y = self.north[:, None]
        crosses = (y0[None, :] <= y) != (y1[None, :] <= y)  # (ny, k), half-open
        with np.errstate(invalid="ignore", divide="ignore"):
            xs = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
        rows, edges = np.nonzero(crosses)
        cols = np.searchsorted(self.east, xs[rows, edges])  # first centre east of the crossing
        ny, nx = self.shape
        flips = np.zeros((ny, nx + 1), dtype=np.uint8)
        np.add.at(flips, (rows, cols), 1)
        # uint8 sums wrap at 256, which keeps their parity
        return np.asarray((np.cumsum(flips, axis=1, dtype=np.uint8)[:, :nx] & 1).astype(bool))

    def same_grid(self, other: Dsm) -> bool:
        return (
            self.z.shape == other.z.shape
            and np.allclose(self.east, other.east)
            and np.allclose(self.north, other.north)
        )


def _strip_prefix(east: F64, licence: Licence | None, path: Path) -> F64:
    if licence is None or np.abs(east).max() < 1.0e7:
        return east
    from survey.crs import gk_zone
    from survey.readers.common import strip_zone_prefix

    return strip_zone_prefix(east, zone=gk_zone(licence.epsg), path=path)


def _check_epsg(
    declared: int | None,
    licence: Licence | None,
    path: Path,
    notes: list[str],
    what: str = "raster",
) -> None:
    """As for LAS scans: another CGCS2000 zone is refused, the same
    projection under another code accepted, anything else noted."""
    if declared is None or licence is None or declared == licence.epsg:
        return
    info, mine = CRS_TABLE.get(declared), CRS_TABLE.get(licence.epsg)
    if info is not None and mine is not None:
        if info.central_meridian == mine.central_meridian:
            return
        raise SurveyInputError(
            f"the {what} declares EPSG {declared} ({info.name}) but the licence is EPSG "
            f"{mine.epsg} ({mine.name}); re-project it into the licence's zone",
            path=path,
        )
    notes.append(
        f"{path.name}: {what} declares EPSG {declared}, the licence EPSG {licence.epsg}; "
        "coordinates were taken as they are"
    )


def read_geotiff(
    path: Path,
    *,
    licence: Licence | None = None,
    notes: list[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Dsm:
    """A single-band GeoTIFF DSM, north-up (no rotation terms)."""
    import rasterio
    from rasterio.errors import RasterioIOError

    notes = notes if notes is not None else []
    try:
        # GDAL's block cache (5 % of RAM by default) would keep a second,
        # decoded copy of a DSM read once, window after window
        with rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB), rasterio.open(path) as src:
            t = src.transform
            if t.b != 0 or t.d != 0:
                raise SurveyInputError(
                    "the raster is rotated (its geotransform has rotation terms); export it "
                    "north-up",
                    path=path,
                )
            if src.count < 1:
                raise SurveyInputError("the raster has no band", path=path)
            z = _read_band(src, progress or null_progress, f"read {path.name} (rows)")
            epsg = src.crs.to_epsg() if src.crs is not None else None
            if src.crs is None:
                notes.append(f"{path.name}: no CRS in the GeoTIFF; taken to be the licence's")
    except RasterioIOError as exc:
        raise SurveyInputError(
            f"not a readable GeoTIFF ({exc}); export the DSM again as GeoTIFF", path=path
        ) from None
    _check_epsg(epsg, licence, path, notes)
    ny, nx = z.shape
    if nx < 3 or ny < 3:
        raise SurveyInputError(f"the DSM is only {ny} x {nx} cells; give a real DSM", path=path)
    if abs(abs(t.a) - abs(t.e)) > 1e-9 * abs(t.a):
        raise SurveyInputError(
            f"cells are not square ({t.a} x {abs(t.e)} m); resample the DSM to square cells",
            path=path,
        )
    east = t.c + t.a * (np.arange(nx) + 0.5)
    north = t.f + t.e * (np.arange(ny) + 0.5)
    if t.a < 0:
        east, z = east[::-1], np.ascontiguousarray(z[:, ::-1])
    if t.e < 0:  # north-up: first row northernmost (_read_band flipped the rows)
        north = north[::-1]
    else:
        z = np.ascontiguousarray(z[::-1])
    east = _strip_prefix(np.asarray(east, dtype=np.float64), licence, path)
    return Dsm(east, np.asarray(north, dtype=np.float64), z, str(path), "geotiff")


def _read_band(src: Any, progress: ProgressCallback, stage: str) -> Heights:
    """Band 1 as float32 with NaN for no-data, read READ_ROWS rows at a
    time into one array, rows reversed (south first for a north-up
    raster): a 10,000 x 10,000 DSM is 400 MB, never a float64 copy."""
    from rasterio.windows import Window

    h, w = src.height, src.width
    z = np.empty((h, w), dtype=np.float32)
    nodata = src.nodata
    # a mask band of its own (not the no-data value) is read beside the heights
    own_mask = nodata is None and any(
        f.name in ("per_dataset", "alpha") for f in src.mask_flag_enums[0]
    )
    for r0 in range(0, h, READ_ROWS):
        r1 = min(h, r0 + READ_ROWS)
        win = Window(0, r0, w, r1 - r0)
        part = src.read(1, window=win, out_dtype=np.float32)
        if own_mask:
            part[src.read_masks(1, window=win) == 0] = np.nan
        if nodata is not None and not math.isnan(nodata):
            part[part == np.float32(nodata)] = np.nan
        z[h - r1 : h - r0] = part[::-1]
        progress(stage, r1, h)
    return z


def read_esri_ascii(path: Path, *, licence: Licence | None = None) -> Dsm:
    from survey.crs import gk_zone
    from survey.surfaces import load_esri_ascii_grid

    zone = gk_zone(licence.epsg) if licence is not None else None
    g = load_esri_ascii_grid(path, zone=zone)
    return Dsm(g.east, g.north, np.ascontiguousarray(g.heights), str(path), "esri-ascii")


def write_geotiff(
    path: Path, dsm: Dsm, *, epsg: int | None = None, nodata: float = -9999.0
) -> Path:
    """float32 single-band GeoTIFF, north-up, deflate-compressed."""
    import rasterio
    from affine import Affine

    cs = dsm.cell
    transform = Affine(cs, 0.0, dsm.east[0] - cs / 2, 0.0, -cs, dsm.north[-1] + cs / 2)
    z = np.where(np.isnan(dsm.z), nodata, dsm.z)[::-1].astype(np.float32)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=z.shape[1],
        height=z.shape[0],
        count=1,
        dtype="float32",
        crs=f"EPSG:{epsg}" if epsg else None,
        transform=transform,
        nodata=nodata,
        compress="deflate",
    ) as dst:
        dst.write(z, 1)
    return path


def grid_for(xyz: F64, cell: float) -> tuple[F64, F64]:
    """Cell-centre axes covering the plan extent of ``xyz`` on whole multiples of ``cell``."""
    lo = np.floor(xyz[:, :2].min(axis=0) / cell) * cell
    hi = np.ceil(xyz[:, :2].max(axis=0) / cell) * cell
    east = lo[0] + cell * (np.arange(round((hi[0] - lo[0]) / cell)) + 0.5)
    north = lo[1] + cell * (np.arange(round((hi[1] - lo[1]) / cell)) + 0.5)
    return east, north


def fill_small_holes(z: F64, passes: int = FILL_PASSES) -> F64:
    """Empty cells with filled neighbours take their mean, ``passes`` times
    (holes up to 2 x passes cells across close; larger gaps stay empty)."""
    z = z.copy()
    kernel = np.ones((3, 3))
    for _ in range(passes):
        empty = np.isnan(z)
        if not empty.any():
            break
        have = (~empty).astype(np.float64)
        total = ndimage.convolve(np.where(empty, 0.0, z), kernel, mode="constant")
        count = ndimage.convolve(have, kernel, mode="constant")
        fill = empty & (count > 0)
        z[fill] = total[fill] / count[fill]
    return z


class CellSums:
    """Per-cell sums of a cloud streamed chunk by chunk: the count, the
    heights and the points' offsets from their cell's centre, kept in tiles
    of TILE x TILE cells made where points fall, so memory follows the area
    covered and not the number of points. Cells are whole multiples of
    ``cell`` (centres at (i + 0.5) cell)."""

    TILE = 256

    def __init__(self, cell: float) -> None:
        self.cell = cell
        self.tiles: dict[tuple[int, int], F64] = {}
        self.points = 0

    def add(self, xyz: F64) -> None:
        """xyz: (n, 3) float64 (E, N, H) in licence coordinates."""
        if xyz.shape[0] == 0:
            return
        cell, tile = self.cell, self.TILE
        gi = np.floor(xyz[:, 0] / cell).astype(np.int64)
        gj = np.floor(xyz[:, 1] / cell).astype(np.int64)
        ti, tj = gi // tile, gj // tile
        key = (ti - ti.min()) * (int(tj.max() - tj.min()) + 1) + (tj - tj.min())
        order = np.argsort(key, kind="stable")
        starts = np.flatnonzero(np.diff(key[order], prepend=-1))
        for a, b in zip(starts, [*starts[1:], order.size], strict=True):
            sel = order[a:b]
            t = (int(ti[sel[0]]), int(tj[sel[0]]))
            local = (gj[sel] - t[1] * tile) * tile + (gi[sel] - t[0] * tile)
            sums = self.tiles.setdefault(t, np.zeros((4, tile * tile)))
            sums[0] += np.bincount(local, minlength=tile * tile)
            sums[1] += np.bincount(local, weights=xyz[sel, 2], minlength=tile * tile)
            off_e = xyz[sel, 0] - (gi[sel] + 0.5) * cell
            off_n = xyz[sel, 1] - (gj[sel] + 0.5) * cell
            sums[2] += np.bincount(local, weights=off_e, minlength=tile * tile)
            sums[3] += np.bincount(local, weights=off_n, minlength=tile * tile)
        self.points += int(xyz.shape[0])

    def dsm(self, *, source: str = "", fmt: str = "") -> Dsm:
        """Mean height per cell, moved from the points' mean position to the
        cell centre along the surface's slope, small holes filled."""
        if not self.tiles:
            raise SurveyInputError("no points to make a DSM of", path=source or None)
        tile, cell = self.TILE, self.cell
        tis = [k[0] for k in self.tiles]
        tjs = [k[1] for k in self.tiles]
        ti0, tj0 = min(tis), min(tjs)
        ny, nx = (max(tjs) - tj0 + 1) * tile, (max(tis) - ti0 + 1) * tile
        # tile by tile into the three grids, each tile freed once copied
        # (never a whole 4-layer float64 copy: 2 GB for a 1 km pit at 0.1 m)
        z = np.full((ny, nx), np.nan)
        off_e, off_n = np.full((ny, nx), np.nan), np.full((ny, nx), np.nan)
        has_row, has_col = np.zeros(ny, dtype=bool), np.zeros(nx, dtype=bool)
        for ti, tj in list(self.tiles):
            sums = self.tiles.pop((ti, tj)).reshape(4, tile, tile)
            r, c = (tj - tj0) * tile, (ti - ti0) * tile
            have = sums[0] > 0
            has_row[r : r + tile] |= have.any(axis=1)
            has_col[c : c + tile] |= have.any(axis=0)
            with np.errstate(invalid="ignore", divide="ignore"):
                z[r : r + tile, c : c + tile] = sums[1] / sums[0]
                off_e[r : r + tile, c : c + tile] = sums[2] / sums[0]
                off_n[r : r + tile, c : c + tile] = sums[3] / sums[0]
        rows, cols = np.flatnonzero(has_row), np.flatnonzero(has_col)
        box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
        z, off_e, off_n = z[box], off_e[box], off_n[box]
        east = (ti0 * tile + cols[0] + np.arange(z.shape[1]) + 0.5) * cell
        north = (tj0 * tile + rows[0] + np.arange(z.shape[0]) + 0.5) * cell
        # the mean height belongs to the mean position of the points, not
        # to the cell centre: move it there along the first pass's slope
        # (on a 65° face a point 0.1 m off the centre is 0.2 m off in height)
        dn, de = np.gradient(fill_small_holes(z), cell, cell)  # Dsm.slope's, no more
        de *= off_e
        dn *= off_n
        de += dn
        del dn, off_e, off_n
        z -= np.nan_to_num(de, copy=False)
        del de
        return Dsm(east, north, fill_small_holes(z), source, fmt, self.points)


def rasterise_points(xyz: F64, cell: float, *, source: str = "", fmt: str = "") -> Dsm:
    """Mean height of the points in each cell (see :class:`CellSums`).

    xyz: (n, 3) float64 (E, N, H). A photogrammetric cloud is a surface
    (one height per plan position), so the mean is the surface at the cell
    for a cloud dense enough to put several points in every cell."""
    sums = CellSums(cell)
    sums.add(xyz)
    return sums.dsm(source=source, fmt=fmt)


def rasterise_mesh(
    vertices: F64, faces: npt.NDArray[np.int64], cell: float, *, source: str = ""
) -> Dsm:
    """A 2.5-D triangle mesh (a surface seen from above, as a photogrammetry
    OBJ) interpolated linearly on its own triangles at cell centres."""
    from matplotlib.tri import LinearTriInterpolator, Triangulation

    east, north = grid_for(vertices, cell)
    e, n = np.meshgrid(east, north)
    try:
        tri = Triangulation(vertices[:, 0], vertices[:, 1], faces)
        interp = LinearTriInterpolator(tri, vertices[:, 2])
        z = np.ma.filled(interp(e, n).astype(np.float64), np.nan)
    except (ValueError, RuntimeError) as exc:
        # matplotlib: "Triangulation is invalid" when triangles overlap in plan
        raise SurveyInputError(
            f"the mesh is not a surface seen from above ({exc}: its triangles overlap in plan, "
            "as in a closed or undercut model); give the DSM or the point cloud, or export "
            "a 2.5-D mesh",
            path=source or None,
        ) from None
    return Dsm(east, north, np.ascontiguousarray(z), source, "obj")


def read_dsm(
    path: str | Path,
    *,
    licence: Licence | None = None,
    cell: float = 0.5,
    notes: list[str] | None = None,
    progress: ProgressCallback | None = None,
) -> Dsm:
    """A DSM from a GeoTIFF or ESRI ASCII grid, or rasterised at ``cell``
    metres from any survey the readers know (clouds, meshes)."""
    p = Path(path)
    if p.is_dir():
        raise SurveyInputError("is a directory; give the DSM or cloud file inside it", path=p)
    if not p.is_file():
        raise SurveyInputError("file not found; check the path", path=p)
    notes = notes if notes is not None else []
    dsm = _read_any(p, licence, cell, notes, progress or null_progress)
    if not np.isfinite(dsm.z).any():
        raise SurveyInputError(
            "the DSM holds no height (every cell is no-data); export it again", path=p
        )
    return dsm


def _read_any(
    p: Path, licence: Licence | None, cell: float, notes: list[str], progress: ProgressCallback
) -> Dsm:
    ext = p.suffix.lower()
    if ext in (".tif", ".tiff"):
        return read_geotiff(p, licence=licence, notes=notes, progress=progress)
    if ext == ".asc":
        return read_esri_ascii(p, licence=licence)
    from survey.readers import format_name, iter_chunks, read_survey

    fmt = format_name(None, p)
    if fmt in STREAMED_FORMATS:  # clouds of any size: chunk by chunk
        if fmt in ("las", "laz"):
            _check_las_epsg(p, licence, notes)
        sums = CellSums(cell)
        for chunk in iter_chunks(p, CLOUD_CHUNK_POINTS, licence=licence):
            sums.add(chunk)
            progress(f"read {p.name}", sums.points, None)
        if sums.points < 3:
            raise SurveyInputError("fewer than 3 points: nothing to make a DSM of", path=p)
        return sums.dsm(source=str(p), fmt=fmt)
    data = read_survey(p, licence=licence)
    notes.extend(data.notes)
    if len(data.xyz) < 3:
        raise SurveyInputError("fewer than 3 points: nothing to make a DSM of", path=p)
    if data.faces is not None:
        return rasterise_mesh(data.xyz, data.faces, cell, source=str(p))
    return rasterise_points(data.xyz, cell, source=str(p), fmt=data.fmt)


def _check_las_epsg(path: Path, licence: Licence | None, notes: list[str]) -> None:
    """The note the LAS reader makes on a declared EPSG code it does not
    refuse (the streamed reader keeps its notes to itself)."""
    import laspy

    from survey.readers.las import las_epsg

    try:
        with laspy.open(str(path)) as reader:
            declared = las_epsg(reader.header)
    except (laspy.errors.LaspyException, OSError, ValueError):
        return  # the reader says what is wrong with the file
    if declared is None:
        return
    code, geographic = declared
    if geographic and licence is not None:
        raise SurveyInputError(
            f"the LAS header declares {f'EPSG {code}, ' if code else ''}a geographic system: "
            f"longitude and latitude in degrees, which cannot be the licence's EPSG "
            f"{licence.epsg}; re-project the cloud into the licence's system and check it again",
            path=path,
        )
    _check_epsg(code or None, licence, path, notes, what="LAS header")


def on_grid(dsm: Dsm, like: Dsm) -> Dsm:
    """``dsm`` resampled (bilinear) onto the cells of ``like``."""
    if dsm.same_grid(like):
        return dsm
    e, n = like.centres()
    z = dsm.sample(e.ravel(), n.ravel()).reshape(like.shape)
    return Dsm(like.east, like.north, z, dsm.source, dsm.fmt, dsm.points)

"""The orthophoto of an open-pit survey: read thinned for the report's
backdrop (:func:`read_ortho`), written by the sample (:func:`write_ortho`)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from survey.model import Licence, SurveyInputError
from survey.openpit.dsm import Dsm, _check_epsg, _strip_prefix


@dataclass
class Ortho:
    """An orthophoto thinned for the report: ``rgb`` (h, w, 3) uint8, row 0
    northernmost; ``extent`` (west, east, south, north) in licence
    coordinates."""

    rgb: npt.NDArray[np.uint8]
    extent: tuple[float, float, float, float]
    source: str


def read_ortho(
    path: str | Path,
    *,
    licence: Licence | None = None,
    notes: list[str] | None = None,
    max_px: int = 1600,
) -> Ortho:
    """An orthophoto GeoTIFF (RGB, RGBA or grey, 8-bit or wider), read
    decimated to at most ``max_px`` pixels a side: only the report's backdrop."""
    import rasterio
    from rasterio.enums import Resampling
    from rasterio.errors import RasterioIOError

    p = Path(path)
    if not p.is_file():
        raise SurveyInputError("orthophoto file not found; check the path", path=p)
    notes = notes if notes is not None else []
    try:
        with rasterio.open(p) as src:
            t = src.transform
            if t.b != 0 or t.d != 0:
                raise SurveyInputError("the orthophoto is rotated; export it north-up", path=p)
            step = max(1, math.ceil(max(src.width, src.height) / max_px))
            h, w = max(1, src.height // step), max(1, src.width // step)
            bands = [1, 2, 3] if src.count >= 3 else [1]
            data = src.read(bands, out_shape=(len(bands), h, w), resampling=Resampling.average)
            epsg = src.crs.to_epsg() if src.crs is not None else None
            bounds = src.bounds
    except RasterioIOError as exc:
        raise SurveyInputError(
            f"not a readable GeoTIFF orthophoto ({exc}); export it again as GeoTIFF", path=p
        ) from None
    _check_epsg(epsg, licence, p, notes)
    a = data.astype(np.float64)
    if data.dtype != np.uint8:  # 16-bit or float imagery: stretch to 2-98 %
        lo, hi = np.nanpercentile(a, [2, 98])
        a = np.clip((a - lo) / max(hi - lo, 1e-9) * 255.0, 0, 255)
    rgb = np.repeat(a, 3, axis=0) if a.shape[0] == 1 else a
    west, east = _strip_prefix(np.array([bounds.left, bounds.right]), licence, p)
    south, north = bounds.bottom, bounds.top
    img = np.ascontiguousarray(np.moveaxis(rgb, 0, -1).astype(np.uint8))
    if t.e > 0:  # rows from the south: flip to north-first
        img = img[::-1]
    return Ortho(img, (float(west), float(east), float(south), float(north)), str(p))


def write_ortho(path: Path, rgb: npt.NDArray[np.uint8], dsm: Dsm, *, epsg: int | None) -> Path:
    """An RGB GeoTIFF over ``dsm``'s cells, ``rgb`` (ny, nx, 3) with row 0 at the south."""
    import rasterio
    from affine import Affine

    cs = dsm.cell
    transform = Affine(cs, 0.0, dsm.east[0] - cs / 2, 0.0, -cs, dsm.north[-1] + cs / 2)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=rgb.shape[1],
        height=rgb.shape[0],
        count=3,
        dtype="uint8",
        crs=f"EPSG:{epsg}" if epsg else None,
        transform=transform,
        compress="deflate",
        photometric="RGB",
    ) as dst:
        dst.write(np.moveaxis(rgb[::-1], -1, 0))
    return path

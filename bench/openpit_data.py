"""Big inputs of the open-pit benchmark (:mod:`bench.openpit_bench`): the
sample pit of ``minegate survey sample --open-pit`` scaled to a 1 km DSM,
written strip by strip (never whole in memory) as a tiled float32 GeoTIFF,
and a photogrammetric LAZ cloud of the same pit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np

from survey.model import F64
from survey.openpit.geometry import PitGeometry, Sector

GEN_ROWS = 100  # rows of the DSM computed and written at a time
GEN_POINTS = 4_000_000  # cloud points generated at a time


def big_pit(half_extent_m: float = 500.0) -> PitGeometry:
    """The sample pit (benches, one wall, a steep face, across the east
    boundary, a sump below the floor) scaled to ``2 x half_extent_m``: eight
    10 m benches, a wider floor, the licence's east edge across the wall."""
    k = half_extent_m / 500.0
    return replace(
        PitGeometry(),
        ground_m=200.0,
        floor_m=120.0,
        floor_radius_m=150.0 * k,
        n_benches=8,
        licence_east_m=230.0 * k,
        licence_half_m=400.0 * k,
        z_top=210.0,
        z_bottom=115.0,
        sump_bottom_m=108.0,
        sump_radius_m=10.0 * k,
        half_extent_m=half_extent_m,
        steep=Sector(100.0, 18.0),
        wall=Sector(200.0, 22.0),
    )


def write_big_dsm(path: Path, g: PitGeometry, cell: float, *, epsg: int = 4545) -> tuple[int, int]:
    """The first survey of ``g`` at ``cell`` metres: a float32 GeoTIFF
    (deflate, 512 x 512 tiles, north-up) written GEN_ROWS rows at a time."""
    import rasterio
    from affine import Affine

    east, north = g.axes(cell)
    nx, ny = east.size, north.size
    transform = Affine(cell, 0.0, east[0] - cell / 2, 0.0, -cell, north[-1] + cell / 2)
    tmp = path.with_suffix(".part.tif")
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=nx,
        height=ny,
        count=1,
        dtype="float32",
        crs=f"EPSG:{epsg}",
        transform=transform,
        nodata=-9999.0,
        compress="deflate",
        predictor=3,
        tiled=True,
        blockxsize=512,
        blockysize=512,
        BIGTIFF="IF_SAFER",
    ) as dst:
        for r0 in range(0, ny, GEN_ROWS):
            r1 = min(ny, r0 + GEN_ROWS)
            rows = north[::-1][r0:r1]  # row 0 northernmost
            e, n = np.meshgrid(east, rows)
            z = g.height(e, n, 1).astype(np.float32)
            dst.write(z, 1, window=rasterio.windows.Window(0, r0, nx, r1 - r0))
    tmp.rename(path)
    return ny, nx


def cloud_chunks(g: PitGeometry, n_points: int, seed: int = 14) -> Iterator[F64]:
    """``n_points`` uniformly over the DSM's extent on the surface of
    survey 1, with 3 cm of photogrammetric height noise."""
    rng = np.random.default_rng(seed)
    ce, cn = g.centre_en
    h = g.half_extent_m
    left = n_points
    while left > 0:
        m = min(GEN_POINTS, left)
        e = ce + rng.uniform(-h, h, m)
        n = cn + rng.uniform(-h, h, m)
        z = g.height(e, n, 1) + rng.normal(0.0, 0.03, m)
        yield np.column_stack([e, n, z])
        left -= m

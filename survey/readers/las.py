"""LAS / LAZ 1.2-1.4 through laspy (lazrs backend for LAZ).

LAS stores int32 coordinates with a per-axis scale and offset; laspy's
``chunk.x`` applies them in float64, so a file with large offsets (CGCS2000
with zone prefix: 3.6e7 m) reads exactly. Big files are streamed with
``laspy.open(path).chunk_iterator(n)`` so memory stays bounded; a file with
fewer points than its header promises (truncated upload) is refused. Each
chunk's int32 X, Y, Z go straight into one (n, 3) float64 array
(:func:`survey.readers.common.scale_int_xyz`, the same arithmetic as laspy),
which is then moved into the licence frame in place.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import laspy
import lazrs
import numpy as np
from laspy.vlrs.known import GeoKeyDirectoryVlr, LasZipVlr, WktCoordinateSystemVlr

from survey.crs import CRS_TABLE
from survey.model import F64, SurveyInputError
from survey.readers.common import (
    ReadOptions,
    check_magnitude,
    scale_int_xyz,
    scaled_coordinates_bounded,
    to_licence_frame,
)
from survey.readers.las_header import check_las_header

# LASzip VLR compressor field: 1 pointwise (old, no chunk table), 2 pointwise
# chunked, 3 layered chunked (LAS 1.4 point formats 6-10)
_LASZIP_POINTWISE = 1
_LASZIP_CHUNKED = (2, 3)
_PROJECTED_CS_GEOKEY = 3072  # GeoTIFF ProjectedCSTypeGeoKey
# the CRS's own identifier is the last AUTHORITY / ID of a WKT string
_WKT_EPSG = re.compile(r'(?:AUTHORITY\["EPSG",\s*"?(\d+)"?\]|ID\["EPSG",\s*(\d+)\])\s*\]\s*$')

# a geographic system (degrees): GeoTIFF GTModelTypeGeoKey 2, or a
# GeographicTypeGeoKey alone; WKT 1 and 2 keywords of one (or geocentric)
_MODEL_TYPE_GEOKEY = 1024
_MODEL_GEOGRAPHIC = 2
_GEOGRAPHIC_TYPE_GEOKEY = 2048
_WKT_GEOGRAPHIC = ("GEOGCS", "GEOGCRS", "GEOGRAPHICCRS", "GEODCRS", "GEOCCS")

# laspy and lazrs raise these for damaged or truncated files.
_LAS_ERRORS: tuple[type[BaseException], ...] = (
    laspy.errors.LaspyException,
    lazrs.LazrsError,
    ValueError,
    EOFError,
    OSError,
    struct.error,
)


def _open(opts: ReadOptions) -> laspy.LasReader:
    check_las_header(opts.path)
    try:
        return laspy.open(str(opts.path))
    except MemoryError:
        raise SurveyInputError(
            "the LAS header claims more data than fits in memory: the header is damaged; export "
            "or upload the file again",
            path=opts.path,
        ) from None
    except _LAS_ERRORS as exc:
        raise SurveyInputError(
            f"not a readable LAS/LAZ file ({exc}); check that the upload is complete and the "
            "file really is LAS 1.2-1.4 or LAZ",
            path=opts.path,
        ) from None


def las_epsg(header: laspy.LasHeader) -> tuple[int, bool] | None:
    """The EPSG code a LAS header declares (GeoTIFF keys or WKT) and whether
    it is a geographic system (degrees of longitude and latitude; code 0 when
    none is named), or None. Read without pyproj."""
    for vlr in header.vlrs:
        if isinstance(vlr, GeoKeyDirectoryVlr):
            keys = {k.id: int(k.value_offset) for k in vlr.geo_keys if k.tiff_tag_location == 0}
            projected = keys.get(_PROJECTED_CS_GEOKEY, 0)
            if 1024 <= projected < 32767:
                return projected, False
            # a projected system names its geographic base too: only a
            # geographic model (or a lone geographic key) is in degrees
            geographic = keys.get(_GEOGRAPHIC_TYPE_GEOKEY, 0)
            model = keys.get(_MODEL_TYPE_GEOKEY)
            named = 1024 <= geographic < 32767
            if model == _MODEL_GEOGRAPHIC or (model is None and not projected and named):
                return (geographic if named else 0), True
        if isinstance(vlr, WktCoordinateSystemVlr) and vlr.string:
            wkt = vlr.string.strip()
            m = _WKT_EPSG.search(wkt)
            geographic = wkt.upper().startswith(_WKT_GEOGRAPHIC)
            if m:
                return int(m.group(1) or m.group(2)), geographic
            if geographic:
                return 0, True
    return None


def _check_crs(header: laspy.LasHeader, opts: ReadOptions) -> None:
    """A LAS that declares a geographic system (degrees) or a CGCS2000 zone
    other than the licence's is refused: a licence is in metres of a
    Gauss-Krüger zone, and without prefix another zone's eastings look
    plausible but are wrong. Other declared codes become a note (it reaches
    the findings and the report), since exporters often write junk."""
    declared = las_epsg(header)
    if declared is None or opts.licence is None:
        return
    code, geographic = declared
    mine = CRS_TABLE.get(opts.licence.epsg)
    licence_crs = f"EPSG {opts.licence.epsg}" + (f" ({mine.name}, metres)" if mine else "")
    if geographic:
        named = f"EPSG {code}, a geographic system" if code else "a geographic system"
        raise SurveyInputError(
            f"the LAS header declares {named}: longitude and latitude in degrees, which cannot "
            f"be the licence's {licence_crs}; re-project the scan into the licence's system "
            "(e.g. pdal translate in.las out.las reprojection "
            f'--filters.reprojection.out_srs="EPSG:{opts.licence.epsg}") and check it again',
            path=opts.path,
        )
    if code == opts.licence.epsg:
        return
    info = CRS_TABLE.get(code)
    if info is not None and mine is not None:
        if info.central_meridian == mine.central_meridian:
            # the same projection (3- or 6-degree numbering, with or without
            # prefix, e.g. 4507 = 4544 = CM 105E): the values tell the rest
            return
        raise SurveyInputError(
            f"the LAS header declares EPSG {code} ({info.name}) but the licence is EPSG "
            f"{mine.epsg} ({mine.name}); re-project the scan into the licence's zone",
            path=opts.path,
        )
    opts.notes.append(
        f"{opts.path.name}: LAS header declares EPSG {code}, the licence EPSG "
        f"{opts.licence.epsg}; coordinates were taken as they are"
    )


def _check_laz_chunk_table(header: laspy.LasHeader, opts: ReadOptions) -> None:
    """Refuse a LAZ whose chunk table is out of place or oversized before
    lazrs sees it: lazrs allocates whatever the table claims and a damaged
    upload would abort the whole process (not an exception) for lack of
    memory."""
    laszip = next((v for v in header.vlrs if isinstance(v, LasZipVlr)), None)
    if laszip is None:
        return
    compressor = int.from_bytes(laszip.record_data_bytes()[:2], "little")
    if compressor == _LASZIP_POINTWISE:
        raise SurveyInputError(
            "this LAZ is the old pointwise variant (LASzip compressor 1, written by LASzip 1.x "
            "without chunks), which the LAZ library here cannot read; re-compress it with a "
            "current LASzip (laszip -i old.laz -o new.laz), PDAL (pdal translate old.laz "
            "new.laz) or CloudCompare, or upload the uncompressed LAS",
            path=opts.path,
        )
    if compressor not in _LASZIP_CHUNKED:
        raise SurveyInputError(
            f"the LAZ header names LASzip compressor {compressor}, which LASzip does not define "
            "(1 pointwise, 2 and 3 chunked): the file is damaged; upload it again",
            path=opts.path,
        )
    size = opts.path.stat().st_size
    start = int(header.offset_to_point_data)
    damaged = SurveyInputError(
        "the LAZ file is damaged (its chunk table is out of place); upload the complete file again",
        path=opts.path,
    )
    with opts.path.open("rb") as fh:
        fh.seek(start)
        offset = int.from_bytes(fh.read(8), "little", signed=True)
        if offset == -1:  # written by a streaming compressor: the offset is at the end
            fh.seek(max(size - 8, 0))
            offset = int.from_bytes(fh.read(8), "little", signed=True)
        if not start + 8 <= offset <= size - 8:
            raise damaged
        fh.seek(offset)
        _version = int.from_bytes(fh.read(4), "little")
        n_chunks = int.from_bytes(fh.read(4), "little")
    chunk_size = lazrs.LazVlr(laszip.record_data_bytes()).chunk_size()
    points = int(header.point_count)
    if chunk_size == 0xFFFFFFFF:  # variable-size chunks: at most one per point
        limit = points + 1
    else:
        limit = points // max(chunk_size, 1) + 2
    if n_chunks > limit or n_chunks * 8 > size:
        raise damaged


def iter_las_chunks(opts: ReadOptions, chunk_points: int) -> Iterator[F64]:
    """Yield (k, 3) float64 (E, N, H) chunks in the licence frame."""
    with _open(opts) as reader:
        _check_crs(reader.header, opts)
        _check_laz_chunk_table(reader.header, opts)
        total = int(reader.header.point_count)
        if total == 0:
            raise SurveyInputError("the LAS header counts 0 points (empty scan)", path=opts.path)
        scales = np.asarray(reader.header.scales, dtype=np.float64)
        offsets = np.asarray(reader.header.offsets, dtype=np.float64)
        # the header's scales and offsets are checked (las_header): every
        # int32 X * scale + offset is finite; usually it is also within
        # COORD_MAX_M, else each chunk's magnitudes are checked
        bounded = scaled_coordinates_bounded(scales, offsets)
        done = 0
        try:
            for chunk in reader.chunk_iterator(chunk_points):
                n = len(chunk)
                if n == 0:
                    break
                raw = chunk.array
                xyz, extent = scale_int_xyz(raw["X"], raw["Y"], raw["Z"], scales, offsets)
                if not bounded:
                    check_magnitude(xyz, path=opts.path, first_index=done)
                yield to_licence_frame(xyz, opts, first_index=done, copy=False, extent=extent)
                done += n
                opts.report(done, total)
        except SurveyInputError:
            raise  # a refusal of the points themselves (far away, swapped columns): as it is
        except _LAS_ERRORS as exc:
            raise SurveyInputError(
                f"the LAS/LAZ file is damaged or truncated after {done:,} of {total:,} points "
                f"({exc}); upload the complete file again",
                path=opts.path,
            ) from None
        if done < total:
            raise SurveyInputError(
                f"the LAS/LAZ file is truncated: the header promises {total:,} points but only "
                f"{done:,} are in the file; upload the complete file again",
                path=opts.path,
            )


def read_las(opts: ReadOptions, chunk_points: int = 5_000_000) -> F64:
    """All points of a LAS/LAZ file, (n, 3) float64 (E, N, H)."""
    parts = list(iter_las_chunks(opts, chunk_points))
    return np.concatenate(parts, axis=0) if parts else np.empty((0, 3))


def las_point_count(opts: ReadOptions) -> int:
    with _open(opts) as reader:
        return int(reader.header.point_count)

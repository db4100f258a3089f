"""The coordinate systems survey data may use: CGCS2000 Gauss-Krüger zones
(3-degree and 6-degree, with or without the zone prefix on eastings), by
EPSG code, and how to recognise a northing, an easting and a zone prefix in
printed coordinates (Chinese X = northing, Y = easting).

Used by :mod:`survey.licence` and the readers; :mod:`survey.licence`
re-exports the public names.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from survey.model import SurveyInputError

__all__ = [
    "CRS_TABLE",
    "EASTING_RANGE",
    "GUANGXI_EPSG",
    "NORTHING_RANGE",
    "PREFIXED_EASTING_RANGE",
    "CrsInfo",
    "crs_info",
    "gk_zone",
    "looks_like_easting",
    "looks_like_northing",
    "split_zone_prefix",
]

# Magnitudes used to recognise a northing and an easting (Chinese X and Y).
# A Gauss-Krüger northing in China has 7 integer digits (Hainan ~2.0e6 to
# Heilongjiang ~5.9e6; Guangxi ~2.3e6-2.9e6). An easting is 500 000 m +/- a
# few hundred km: 6 digits, or 8 with the zone prefix in front.
NORTHING_RANGE = (1.0e6, 1.0e7)
EASTING_RANGE = (1.0e5, 1.0e6)
PREFIXED_EASTING_RANGE = (1.3e7, 4.6e7)  # zones 13 (6-degree) .. 45 (3-degree)


@dataclass(frozen=True)
class CrsInfo:
    """One supported projected system: CGCS2000 Gauss-Krüger zones."""

    epsg: int
    name: str
    zone: int  # zone number (3-degree: 25..45, 6-degree: 13..23)
    central_meridian: int  # degrees east
    prefixed: bool  # eastings carry the zone number in front (8 digits)


def _build_crs_table() -> dict[int, CrsInfo]:
    """CGCS2000 Gauss-Krüger systems of the EPSG registry.

    3-degree zones: EPSG 4513-4533 = zones 25..45 with the zone prefix in Y,
    EPSG 4534-4554 = the same zones (CM 75E..135E) without it. Guangxi is in
    zones 35/36/37 (CM 105E/108E/111E): 4523/4524/4525 prefixed,
    4544/4545/4546 not. 6-degree zones: EPSG 4491-4501 = zones 13..23
    prefixed, 4502-4512 = CM 75E..135E without prefix.
    """
    table: dict[int, CrsInfo] = {}
    for i, zone in enumerate(range(25, 46)):
        cm = 3 * zone
        table[4513 + i] = CrsInfo(
            4513 + i, f"CGCS2000 / 3-degree Gauss-Kruger zone {zone}", zone, cm, True
        )
        table[4534 + i] = CrsInfo(
            4534 + i, f"CGCS2000 / 3-degree Gauss-Kruger CM {cm}E", zone, cm, False
        )
    for i, zone in enumerate(range(13, 24)):
        cm = 6 * zone - 3
        table[4491 + i] = CrsInfo(4491 + i, f"CGCS2000 / Gauss-Kruger zone {zone}", zone, cm, True)
        table[4502 + i] = CrsInfo(4502 + i, f"CGCS2000 / Gauss-Kruger CM {cm}E", zone, cm, False)
    return table


CRS_TABLE: dict[int, CrsInfo] = _build_crs_table()
GUANGXI_EPSG = (4523, 4524, 4525, 4544, 4545, 4546)


def crs_info(epsg: int, *, path: str | Path | None = None, line: int | None = None) -> CrsInfo:
    """The table entry for ``epsg``; SurveyInputError listing the supported
    codes if unknown."""
    info = CRS_TABLE.get(epsg)
    if info is None:
        raise SurveyInputError(
            f"field 'epsg': unknown or unsupported EPSG code {epsg}. Supported: CGCS2000 "
            "3-degree Gauss-Kruger 4513-4533 (zone prefix in Y, zones 25-45) and 4534-4554 "
            "(no prefix, CM 75E-135E); 6-degree 4491-4501 / 4502-4512. Guangxi: 4523/4524/4525 "
            "(zones 35/36/37 with prefix) or 4544/4545/4546 (without). Licences in Xi'an 1980 or "
            "Beijing 1954 must be converted to CGCS2000 first.",
            path=path,
            line=line,
        )
    return info


def gk_zone(epsg: int) -> int:
    """The Gauss-Krüger zone number of a supported EPSG code (e.g. 36 for
    4524 and for 4545)."""
    return crs_info(epsg).zone


def looks_like_northing(v: float) -> bool:
    return NORTHING_RANGE[0] <= abs(v) < NORTHING_RANGE[1]


def looks_like_easting(v: float) -> bool:
    a = abs(v)
    return EASTING_RANGE[0] <= a < EASTING_RANGE[1] or (
        PREFIXED_EASTING_RANGE[0] <= a < PREFIXED_EASTING_RANGE[1]
    )


def split_zone_prefix(y_east: float) -> tuple[int | None, float]:
    """(zone prefix or None, easting without prefix) of a printed Y.

    The difference is rounded to the micrometre so that a printed
    ``36408261.305`` gives exactly the double nearest ``408261.305`` (the
    subtraction alone leaves ~1e-8 m of binary noise)."""
    if abs(y_east) >= 1.0e7:
        zone = int(y_east // 1.0e6)
        return zone, round(y_east - zone * 1.0e6, 6)
    return None, y_east

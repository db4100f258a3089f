"""The slope design a pit is checked against: maximum bench height, maximum
bench face angle, minimum berm width and maximum overall slope angle, per
zone of the pit, plus the analysis settings of the check.

None of these numbers is law. The defaults are the typical figures for small
quarries and non-metal pits (the mine type the notice has in mind):

* bench height at most 15 m: the common ceiling in provincial rules for
  small open pits (local rules often 10-15 m); GB 16423-2020 (金属非金属矿
  山安全规程) leaves the figure to the design;
* bench face angle at most 75°: the top of the 70-75° range usually
  designed for competent rock;
* safety berm at least 4 m (3-4 m typical; a wider cleaning berm every 2-3
  benches is not checked);
* overall slope at most 55°.

A site gives its own numbers (from its approved design, 开采设计) in a TOML
file (:func:`load_design`); docs/survey-openpit.md shows the format.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from survey.model import SurveyInputError


@dataclass(frozen=True)
class SlopeDesign:
    """Design limits for one zone of a pit (angles in degrees, lengths in
    metres)."""

    name: str = "default"
    max_bench_height_m: float = 15.0
    max_face_angle_deg: float = 75.0
    min_berm_width_m: float = 4.0
    max_overall_slope_deg: float = 55.0


@dataclass(frozen=True)
class Zone:
    """A zone of the pit: a plan polygon ((k, 2) easting, northing) with its
    own design. Profiles whose crest lies inside use it."""

    design: SlopeDesign
    polygon_en: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class Analysis:
    """How the DSM is read for benches and changes (not design limits).

    * ``face_min_deg``: steeper ground is face, flatter is berm or floor;
    * ``profile_step_deg``: angle between two profiles radiating from the
      pit floor;
    * ``min_face_height_m``: faces lower than this are rubble or ramps'
      edges, not benches;
    * ``min_cut_m``: height change between two surveys taken as mining
      (DSM noise of photogrammetry is some centimetres; 0.5 m is safe);
    * ``order_reach_m``: how far up the wall the bench above a cut is
      looked for.
    """

    face_min_deg: float = 45.0
    profile_step_deg: float = 1.0
    min_face_height_m: float = 2.0
    min_cut_m: float = 0.5
    order_reach_m: float = 30.0
    min_profiles: int = 2  # a violation seen on fewer adjacent profiles is not reported


@dataclass(frozen=True)
class PitDesign:
    default: SlopeDesign = SlopeDesign()
    zones: tuple[Zone, ...] = ()
    analysis: Analysis = Analysis()
    source: str = "built-in defaults"

    def design_at(self, e: float, n: float) -> SlopeDesign:
        """The design of the first zone containing (e, n), else the default."""
        if self.zones:
            import shapely

            pt = shapely.Point(e, n)
            for z in self.zones:
                if shapely.Polygon(z.polygon_en).covers(pt):
                    return z.design
        return self.default


_DESIGN_KEYS = {f.name for f in fields(SlopeDesign)} - {"name"}
_ANALYSIS_KEYS = {f.name for f in fields(Analysis)}


def _numbers(table: dict[str, Any], allowed: set[str], where: str, path: Path) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in table.items():
        if key not in allowed:
            raise SurveyInputError(
                f"[{where}] unknown key {key!r}; known keys: {', '.join(sorted(allowed))}",
                path=path,
            )
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise SurveyInputError(
                f"[{where}] {key} = {value!r}: give a positive number", path=path
            )
        out[key] = int(value) if key == "min_profiles" else float(value)
    return out


def _zone_corners(corners: Any, where: str, path: Path) -> tuple[tuple[float, float], ...]:
    """``[{ x = northing, y = easting }, ...]`` as on the licence (a zone
    prefix on y removed) -> ((easting, northing), ...)."""
    from survey.crs import looks_like_easting, looks_like_northing

    shape = "give at least 3 corners as { x = northing, y = easting } (X, Y as on the licence)"
    if not isinstance(corners, list) or len(corners) < 3:
        raise SurveyInputError(f"[[{where}]] corners: {shape}", path=path)
    out = []
    for i, c in enumerate(corners):
        if not isinstance(c, dict) or set(c) != {"x", "y"}:
            raise SurveyInputError(f"[[{where}]] corner {i + 1}: {shape}", path=path)
        x, y = c["x"], c["y"]
        if any(isinstance(v, bool) or not isinstance(v, int | float) for v in (x, y)):
            raise SurveyInputError(
                f"[[{where}]] corner {i + 1}: x and y must be numbers", path=path
            )
        if looks_like_easting(x) and looks_like_northing(y):
            raise SurveyInputError(
                f"[[{where}]] corner {i + 1}: x = {x} looks like an easting and y = {y} like a "
                "northing; x is the northing (X) and y the easting (Y), as on the licence",
                path=path,
            )
        east = float(y) - (float(y) // 1.0e6) * 1.0e6 if abs(y) >= 1.0e7 else float(y)
        out.append((east, float(x)))
    return tuple(out)


def load_design(path: str | Path) -> PitDesign:
    """Read a slope design TOML: ``[design]`` (defaults), ``[[zones]]``
    (``name``, ``corners = [{ x = N, y = E }, ...]`` as on the licence, plus
    any design key) and
    ``[analysis]``. Unknown keys are refused with where they are."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SurveyInputError("slope design file not found", path=p) from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SurveyInputError(f"not valid TOML ({exc}); fix the file", path=p) from None
    unknown = set(data) - {"design", "zones", "analysis"}
    if unknown:
        raise SurveyInputError(
            f"unknown section(s) {', '.join(sorted(unknown))}; use [design], [[zones]], [analysis]",
            path=p,
        )
    for key, kind, text in (
        ("design", dict, "a [design] table"),
        ("analysis", dict, "an [analysis] table"),
        ("zones", list, "a list of [[zones]] tables (double brackets)"),
    ):
        if key in data and not isinstance(data[key], kind):
            raise SurveyInputError(f"{key!r} must be {text}", path=p)
    if not all(isinstance(z, dict) for z in data.get("zones", [])):
        raise SurveyInputError("every [[zones]] entry must be a table", path=p)
    default = replace(SlopeDesign(), **_numbers(data.get("design", {}), _DESIGN_KEYS, "design", p))
    zones = []
    for k, z in enumerate(data.get("zones", [])):
        where = f"zones {k + 1}"
        z = dict(z)
        name = str(z.pop("name", f"zone {k + 1}"))
        poly = _zone_corners(z.pop("corners", None), where, p)
        design = replace(default, name=name, **_numbers(z, _DESIGN_KEYS, where, p))
        zones.append(Zone(design, poly))
    analysis = replace(
        Analysis(), **_numbers(data.get("analysis", {}), _ANALYSIS_KEYS, "analysis", p)
    )
    return PitDesign(default, tuple(zones), analysis, str(p))

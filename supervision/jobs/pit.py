"""Open-pit surveys on the platform: a survey of kind ``open_pit`` (chosen
at upload, or holding a DSM raster: GeoTIFF or ESRI ASCII grid) is checked
by ``survey.openpit`` on the same code path as ``minegate survey check-pit``
(:func:`survey.openpit.cli.check_and_report`): beyond the boundary and
below the licensed floor, benches against the slope design, "one wall"
faces and, with a second date, the volume mined and the top-down order.

What each file of the survey is (the bytes were sniffed at upload):

* a GeoTIFF of three or more bands is the **orthophoto** (the report's
  backdrop); a GeoTIFF of one band, or an ESRI ASCII grid, is a **DSM**;
* a DSM whose name says ``pre-mining`` (``pre_mining``, ``premining``) is
  the ground before mining; of the other DSMs, ordered by the date in their
  names (``2026-09-01``, ``20260901``) or else as uploaded, the last is the
  survey checked and the one before it the **earlier** flight (cut/fill and
  top-down order); more are noted and not used;
* a ``.toml`` file is the **slope design** (else the built-in typical
  figures); point clouds and meshes sent with a DSM are kept, not checked;
* a survey without a DSM raster is checked on its **dense clouds**
  (LAS/LAZ, E57, PLY, PCD, XYZ/PTS) or **textured meshes** (OBJ, PLY,
  STL), rasterised at ``CELL`` metres as ``check-pit --dsm cloud.las``
  does: one surface per flight date (a cloud before a mesh of the same
  date, which is noted and not used), the last date checked, the one
  before it the earlier flight. Total-station points and CAD lines are too
  sparse for a surface: kept, not checked.

Every kind of violation (``boundary``, ``below_range``, ``one_wall``,
``steep_face``, ``narrow_berm``, ``overall_slope``, ``out_of_order``) counts
as an incident of the survey, so it raises the mine's ``survey_violation``
alert; the kinds are in the survey's values and the alert's evidence.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from supervision.jobs.run import _Held

#: the survey file kinds a pit check uses
PIT_KINDS = frozenset({"raster", "design", "scan"})
#: stored extensions of the scans that make a surface (clouds, then meshes)
CLOUDS = (".las", ".laz", ".e57", ".ply", ".pcd", ".xyz", ".pts")
MESHES = (".obj", ".stl")
#: cell (m) a cloud or mesh is rasterised at (``check-pit --cell``'s default)
CELL = 0.5
_DATE = re.compile(r"(20\d\d)-?([01]\d)-?([0-3]\d)")
_PRE = re.compile(r"pre[-_ ]?mining", re.IGNORECASE)


def _bands(path: Path) -> int:
    """Bands of a raster (an ASCII grid has one); 0: unreadable."""
    if path.suffix == ".asc":
        return 1
    import rasterio
    from rasterio.errors import RasterioError

    try:
        with rasterio.open(path) as src:
            return int(src.count)
    except RasterioError:
        return 0


def _date_key(item: tuple[int, str, str]) -> tuple[str, int]:
    idx, _, name = item
    m = _DATE.search(name)
    return ("".join(m.groups()) if m else "", idx)


def roles(root: Path, files: list[tuple[str, str, str]]) -> dict[str, Any] | str:
    """The pit check's inputs from the survey's files (stored, name, kind):
    ``dsm``, ``earlier``, ``pre``, ``ortho``, ``design`` (stored paths or
    None) and ``notes``; a string: why the survey cannot be checked."""
    dsms: list[tuple[int, str, str]] = []
    surfaces: list[tuple[int, str, str]] = []  # clouds and meshes, to rasterise
    out: dict[str, Any] = {"pre": None, "ortho": None, "design": None, "earlier": None}
    notes: list[str] = []
    for idx, (stored, name, kind) in enumerate(files):
        if kind == "scan" and Path(stored).suffix in CLOUDS + MESHES:
            surfaces.append((idx, stored, name))
            continue
        if kind == "design":
            if out["design"] is not None:
                return f"{name}: a second slope design; send one design file per survey"
            out["design"] = stored
        elif kind == "raster":
            bands = _bands(root / stored)
            if bands == 0:
                return f"{name}: not a readable GeoTIFF raster"
            if bands >= 3:
                if out["ortho"] is not None:
                    return f"{name}: a second orthophoto; send one per survey"
                out["ortho"] = stored
            elif _PRE.search(name):
                out["pre"] = stored
            else:
                dsms.append((idx, stored, name))
        else:
            notes.append(f"{name}: kept, not checked (the pit is checked on its DSM)")
    if dsms:
        for _, _, name in surfaces:
            notes.append(f"{name}: kept, not checked (the pit is checked on its DSM)")
    else:
        dsms = _one_per_date(surfaces, notes)
    if not dsms:
        return (
            "the survey has no DSM, dense cloud or textured mesh to check as an open pit: send "
            "its DSM (a one-band GeoTIFF or an ESRI ASCII grid), its cloud (LAS/LAZ) or its "
            "mesh (OBJ); the orthophoto or total-station points alone cannot be checked"
        )
    dsms.sort(key=_date_key)
    out["dsm"] = dsms[-1][1]
    if len(dsms) >= 2:
        out["earlier"] = dsms[-2][1]
    for _, _, name in dsms[:-2]:
        notes.append(f"{name}: a third DSM, not used (the last two dates are compared)")
    out["notes"] = notes
    return out


def _one_per_date(
    surfaces: list[tuple[int, str, str]], notes: list[str]
) -> list[tuple[int, str, str]]:
    """A surface per flight date (undated files count as one date): its
    cloud, else its mesh; the others of that date noted, not used."""
    by_date: dict[str, tuple[int, str, str]] = {}
    for item in surfaces:
        date = _date_key(item)[0]
        kept = by_date.get(date)
        if kept is None:
            by_date[date] = item
            continue
        cloud_first = Path(item[1]).suffix in CLOUDS and Path(kept[1]).suffix not in CLOUDS
        dropped = kept if cloud_first else item
        if cloud_first:
            by_date[date] = item
        notes.append(
            f"{dropped[2]}: kept, not checked (another surface of the same flight is: "
            f"{by_date[date][2]})"
        )
    return list(by_date.values())


def check_pit_survey(
    root: Path,
    files: list[tuple[str, str, str]],
    licence_file: str,
    out: Path,
    held: _Held,
    site: tuple[str, str] | None = None,
    previous: tuple[int, list[tuple[str, str, str]]] | None = None,
) -> dict[str, Any] | str:
    """Run the pit check and write its report; a string: bad input, the
    check's own message (stored paths replaced by the client's names).
    ``previous``: the mine's previous checked pit survey (id, files): its
    DSM is the earlier flight when this survey brings only one."""
    from survey.model import SurveyInputError
    from survey.openpit.cli import check_and_report
    from survey.openpit.design import PitDesign, load_design
    from survey.openpit.findings import pit_records
    from survey.readers.licence_files import load_licence

    names = {str(root / stored): name for stored, name, _ in files}

    def plain(text: str) -> str:
        for path, name in names.items():
            text = text.replace(path, name)
        return text

    def stage(what: str) -> None:
        held._set(stage="classify" if what == "check" else "report", progress=None)

    try:
        found = roles(root, files)
        if isinstance(found, str):
            return found
        since = None
        if found["earlier"] is None and previous is not None:
            before = roles(root, previous[1])
            if not isinstance(before, str):
                found["earlier"] = before["dsm"]
                since = previous[0]
                for stored, name, _ in previous[1]:
                    if stored == before["dsm"]:
                        names.setdefault(str(root / stored), f"{name} (survey {since})")
        licence = load_licence(licence_file)
        design = load_design(root / found["design"]) if found["design"] else PitDesign()

        def path(key: str) -> Path | None:
            return root / found[key] if found[key] else None

        dsm = path("dsm")
        assert dsm is not None
        pit, _, check_id = check_and_report(
            licence,
            design,
            lambda: out,
            dsm=dsm,
            pre_mining=path("pre"),
            earlier=path("earlier"),
            ortho=path("ortho"),
            shown=lambda p: names.get(p, plain(p)),
            stage=stage,
            cell=CELL,
        )
    except SurveyInputError as exc:
        return plain(str(exc))
    for written in (out / "findings.json", out / "report.html"):
        # the design's and the DSMs' own sources are stored paths: the client's names instead
        text = written.read_text(encoding="utf-8")
        if str(root) in text:
            written.write_text(plain(text), encoding="utf-8")
    r = pit.result
    kinds = sorted(
        {str(i.type) for i in r.incidents}
        | {v.kind for v in pit.benches.violations}
        | ({"out_of_order"} if pit.out_of_order else set())
    )
    n = len(r.incidents) + len(pit.benches.violations) + len(pit.out_of_order)
    worst = max((i.max_exceedance_m for i in r.incidents), default=0.0)
    volume = sum(i.volume_m3 for i in r.incidents)
    if n:
        message = f"{n} open-pit violation(s): {', '.join(kinds)}"
        if r.incidents:
            message += f"; largest {worst:.2f} m beyond the licence, {volume:,.0f} m³ beyond it"
    else:
        message = r.verdict
    order = pit.order
    values: dict[str, Any] = {
        "licence": licence.licence_no,
        "open_pit": True,
        "points": r.n_points,
        "incidents": n,
        "kinds": kinds,
        "beyond_licence": len(r.incidents),
        "bench_violations": len(pit.benches.violations),
        "out_of_order": len(pit.out_of_order),
        "within_uncertainty": len(r.uncertain),
        "max_exceedance_m": round(worst, 3),
        "volume_m3": round(volume, 1),
        "dsm": names[str(dsm)],
        **({"earlier": names[str(root / found["earlier"])]} if found["earlier"] else {}),
        **({"since_survey": since} if since is not None else {}),
        **({"notes": found["notes"]} if found["notes"] else {}),
    }
    if order is not None:
        values.update(
            cut_m3=round(order.cut_m3, 1),
            cut_outside_m3=round(order.cut_outside_m3, 1),
            fill_m3=round(order.fill_m3, 1),
        )
    outcome: dict[str, Any] = {
        "verdict": r.verdict,
        "incidents": n,
        "check_id": check_id,
        "message": message,
        "values": values,
    }
    if site is not None:
        outcome["records"] = pit_records(pit, site[0], check_id, gateway=site[1])
    return outcome

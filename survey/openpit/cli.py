"""``minegate survey check-pit`` and ``minegate survey sample --open-pit``
(registered by :func:`survey.cli.register`). Exit codes as ``survey
check``: 0 compliant (or only within survey uncertainty), 3 violations
(beyond the licence, benches outside the design, one wall, not top-down),
2 bad input."""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from survey.model import SurveyInputError

if TYPE_CHECKING:
    from survey.model import Licence
    from survey.openpit.check import PitCheckResult
    from survey.openpit.design import PitDesign
    from survey.openpit.dsm import Dsm
    from survey.progress import ProgressCallback
    from survey.report import ReportFiles

# the exit codes of survey.cli (which imports this module, not the other way)
EXIT_OK = 0
EXIT_VIOLATIONS = 3
EXIT_NOT_PUBLISHED = 4
MAX_PRINTED = 10
PrepareOut = Callable[[Path], Path]


def parse_centre(text: str | None) -> tuple[float, float] | None:
    """``X,Y`` (X = northing, Y = easting as on the licence, zone prefix
    allowed) -> (easting, northing)."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    try:
        x, y = (float(p) for p in parts) if len(parts) == 2 else (math.nan, math.nan)
    except ValueError:
        x = y = math.nan
    if not (math.isfinite(x) and math.isfinite(y)):
        raise SurveyInputError(
            f"--centre {text!r}: give X,Y (northing, easting as on the licence), "
            "e.g. 2431800,561200"
        )
    if abs(y) >= 1.0e7:
        y -= (y // 1.0e6) * 1.0e6
    return y, x


def check_and_report(
    licence: Licence,
    design: PitDesign,
    prepare_out: Callable[[], Path],
    *,
    dsm: str | Path,
    pre_mining: str | Path | None = None,
    earlier: str | Path | None = None,
    ortho: str | Path | None = None,
    cell: float = 0.5,
    centre: tuple[float, float] | None = None,
    t0: float | None = None,
    shown: Callable[[str], str] = str,
    stage: Callable[[str], None] | None = None,
    progress: ProgressCallback | None = None,
) -> tuple[PitCheckResult, ReportFiles, str]:
    """The check of ``check-pit`` and its report (findings.json, report.html
    in ``prepare_out()``): the one code path of the CLI and of the
    platform's jobs. ``shown`` turns a file's path into the name shown in
    the report (the platform's stored files are shown by the client's
    names); ``stage`` is told "check" and "report" as they begin;
    ``progress`` shows the long stages (reading, boundary, benches)."""
    import numpy as np

    from survey.findings import SourceInfo, new_check_id
    from survey.openpit.check import check_pit
    from survey.openpit.report import write_pit_report

    t0 = time.perf_counter() if t0 is None else t0
    if stage is not None:
        stage("check")
    pit = check_pit(
        licence,
        dsm,
        design=design,
        pre_path=pre_mining,
        earlier_path=earlier,
        ortho_path=ortho,
        cell=cell,
        centre=centre,
        progress=progress,
    )

    def count(d: Dsm) -> int:  # points rasterised, or the DSM's cells with a height
        return d.points if d.points is not None else int(np.isfinite(d.z).sum())

    sources = [SourceInfo(shown(pit.dsm.source), pit.dsm.fmt, count(pit.dsm))]
    if pre_mining:
        sources.append(SourceInfo(shown(str(pre_mining)), "pre-mining", None))
    if ortho:
        sources.append(SourceInfo(shown(str(ortho)), "orthophoto", None))
    if pit.earlier is not None:
        sources.append(SourceInfo(shown(pit.earlier.source), pit.earlier.fmt, count(pit.earlier)))
    check_id = new_check_id(licence)
    pit.result.timings_s["total"] = time.perf_counter() - t0
    if stage is not None:
        stage("report")
    files = write_pit_report(pit, prepare_out(), check_id=check_id, sources=sources)
    return pit, files, check_id


def cmd_check_pit(
    args: argparse.Namespace, check_out: PrepareOut, make_out: PrepareOut, publish: Any
) -> int:
    from survey.openpit.design import PitDesign, load_design
    from survey.progress import open_progress
    from survey.readers.licence_files import load_licence

    t0 = time.perf_counter()
    if args.publish and not args.config:
        raise SurveyInputError("--publish needs --config SITE.toml (where to publish to)")
    if args.config:
        from gateway.config import load_config

        load_config(args.config)  # fail now, not after the check
    if not (args.cell > 0):
        raise SurveyInputError(f"--cell {args.cell}: give a positive cell size in metres")
    licence = load_licence(args.licence)
    design = load_design(args.design) if args.design else PitDesign()
    out = check_out(Path(args.out))  # created once there is something to write
    with open_progress(enabled=not args.quiet) as progress:
        pit, files, check_id = check_and_report(
            licence,
            design,
            lambda: make_out(out),
            dsm=args.dsm,
            pre_mining=args.pre_mining,
            earlier=args.earlier,
            ortho=args.ortho,
            cell=args.cell,
            centre=parse_centre(args.centre),
            t0=t0,
            progress=progress,
        )
    r = pit.result
    print(f"{r.verdict.upper()}: licence {licence.licence_no}")
    for inc in r.incidents[:MAX_PRINTED]:
        e, n, h = inc.centroid
        print(
            f"  {inc.id} {inc.type}: {inc.max_exceedance_m:.2f} m beyond, {inc.volume_m3:,.0f} m³, "
            f"at X {n:,.1f} Y {e:,.1f} H {h:+.1f}"
        )
    for v in pit.benches.violations[:MAX_PRINTED]:
        e, n, h = v.location
        print(
            f"  {v.id} {v.kind}: {v.worst:.1f} {v.unit} (design {v.limit:g}), "
            f"{v.length_m:,.0f} m along the wall, at X {n:,.1f} Y {e:,.1f} H {h:+.1f}"
        )
    if pit.order is not None:
        o = pit.order
        print(
            f"  between the surveys: cut {o.cut_m3:,.0f} m³ ({o.cut_outside_m3:,.0f} outside the "
            f"licence), fill {o.fill_m3:,.0f} m³"
        )
        for a in o.areas:
            if a.out_of_order:
                e, n, h = a.centroid
                print(
                    f"  {a.id} not top-down: bench {a.h_bottom:+.0f} to {a.h_top:+.0f} m mined "
                    f"({a.volume_m3:,.0f} m³) while the bench above was not, at X {n:,.1f} Y {e:,.1f}"
                )
    print(f"report: {files.report_html}\nfindings: {files.findings_json}")
    if args.publish:
        import sqlite3

        from gateway.store.errors import StoreError
        from survey.openpit.findings import pit_records

        try:
            print(
                publish(
                    args.config,
                    r,
                    check_id,
                    lambda site, gw: pit_records(pit, site, check_id, gateway=gw),
                )
            )
        except (StoreError, sqlite3.Error, OSError) as exc:
            print(
                f"error: the check is done ({r.verdict}; {files.findings_json}) but its findings "
                f"could not be published to the store of {args.config}: {exc}. Fix the store "
                "(see `minegate status`) and run the check again with --publish.",
                file=sys.stderr,
            )
            return EXIT_NOT_PUBLISHED
    return EXIT_VIOLATIONS if pit.has_violations else EXIT_OK


def cmd_sample_pit(args: argparse.Namespace, make_out: PrepareOut) -> int:
    from survey.openpit.sample import write_pit_sample

    sample = write_pit_sample(make_out(Path(args.out)))
    print(f"open-pit sample written to {args.out}:")
    for f in sample.files:
        print(f"  {f}")
    print("\nnext, check the pit:")
    for cmd in sample.commands:
        print(f"  {cmd}")
    return EXIT_OK


def register_pit(
    sub: Any, run: Any, check_out: PrepareOut, make_out: PrepareOut, publish: Any
) -> None:
    """Add ``check-pit`` to the ``survey`` subcommands (``run``,
    ``check_out``, ``make_out`` and ``publish`` are survey.cli's)."""
    p = sub.add_parser(
        "check-pit",
        help="check an open pit's DSM (or cloud, mesh) against the licence and the slope design",
        description="Beyond the boundary and floor, benches, one-wall faces and, with --earlier, "
        "the volume mined and the top-down order. Exit 0 compliant (or within survey "
        "uncertainty), 3 violations, 2 bad input.",
    )
    p.add_argument(
        "--dsm",
        required=True,
        help="the survey checked: DSM (.tif GeoTIFF, .asc ESRI grid) or a cloud/mesh (LAS, OBJ, ...)",
    )
    p.add_argument("--licence", required=True, help="licence file (.toml or .geojson)")
    p.add_argument("--out", required=True, help="directory for findings.json and report.html")
    p.add_argument("--design", help="slope design TOML (default: built-in typical figures)")
    p.add_argument(
        "--pre-mining", help="the ground before mining (DSM); default: the terrain around"
    )
    p.add_argument("--earlier", help="an earlier survey of the pit, for cut/fill and the order")
    p.add_argument(
        "--ortho", help="orthophoto GeoTIFF: the plan's backdrop instead of the hillshade"
    )
    p.add_argument(
        "--centre",
        metavar="X,Y",
        help="where the profiles radiate from (X northing, Y easting); default the pit floor",
    )
    p.add_argument(
        "--cell", type=float, default=0.5, help="cell size (m) for rasterising clouds and meshes"
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--config", help="site config (SITE.toml) for --publish")
    p.add_argument(
        "--publish",
        action="store_true",
        help="append the findings to the gateway's store so its sinks send them",
    )
    p.set_defaults(
        func=lambda a: run(lambda args: cmd_check_pit(args, check_out, make_out, publish), a)
    )

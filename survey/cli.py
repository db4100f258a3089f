"""``minegate survey ...``: check scans against the licence, write sample
data, compare two scans.

Exit codes (documented in docs/survey.md):

* 0 - compliant, or only exceedances within survey uncertainty;
* 2 - bad input (the message names the file, line or field and what to do);
* 3 - violations found (mining beyond the licensed boundary or levels);
* 4 - the check ran and wrote its report, but ``--publish`` failed.

``register(subparsers)`` adds the ``survey`` command to the main
``minegate`` parser (gateway/cli.py); ``main(argv)`` runs it standalone
(``python -m survey.cli``). Handlers return the exit code.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from survey import tolerances as tol
from survey.findings import SourceInfo, findings_records, height_text, new_check_id
from survey.model import F64, CheckResult, Licence, PlanTransform, SurveyData, SurveyInputError
from survey.progress import open_progress

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_VIOLATIONS = 3
EXIT_NOT_PUBLISHED = 4  # the check ran and wrote its report, but --publish failed

PLOT_POINTS = 400_000  # points kept for the pictures
MAX_PRINTED = 10  # incidents listed on the terminal; all are in the report
# Points per streamed chunk: see survey.tolerances.CHUNK_POINTS.
CHUNK_POINTS = tol.CHUNK_POINTS


def parse_transform(text: str | None) -> PlanTransform | None:
    """``dE,dN,rot_deg,scale`` (scale optional) -> PlanTransform."""
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) not in (3, 4):
        raise SurveyInputError(
            f"--transform {text!r}: give dE,dN,rot_deg[,scale], e.g. 500000,2500000,0.5,1.0"
        )
    try:
        vals = [float(p) for p in parts]
    except ValueError:
        raise SurveyInputError(
            f"--transform {text!r}: every part must be a number (dE,dN,rot_deg[,scale])"
        ) from None
    if not all(np.isfinite(vals)) or (len(vals) == 4 and vals[3] <= 0):
        raise SurveyInputError(f"--transform {text!r}: values must be finite and scale > 0")
    scale = vals[3] if len(vals) == 4 else 1.0
    return PlanTransform(vals[0], vals[1], float(np.radians(vals[2])), scale)


def _check_paths(paths: Sequence[str], what: str) -> list[Path]:
    out = []
    for p in paths:
        path = Path(p)
        if path.is_dir():
            raise SurveyInputError(
                f"{what} is a directory, not a file; give the file(s) inside it", path=path
            )
        if not path.is_file():
            raise SurveyInputError(
                f"{what} file not found; check the path (relative paths start at {Path.cwd()})",
                path=path,
            )
        out.append(path)
    return out


def _check_out(out: Path) -> Path:
    """Check now, before a long check, that the output directory can be
    written (or created), without creating it: bad input must not leave an
    empty --out folder behind. :func:`_make_out` creates it once there is
    something to write."""
    existing = out
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise SurveyInputError(
            f"cannot write the report there ({existing} is a file, not a directory); choose "
            "another --out directory",
            path=out,
        )
    if not os.access(existing, os.W_OK | os.X_OK):
        raise SurveyInputError(
            f"cannot write the report there (no permission to write in {existing}); choose "
            "another --out directory",
            path=out,
        )
    return out


def _make_out(out: Path) -> Path:
    """Create the output directory: there is something to write into it."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SurveyInputError(
            f"cannot write the report there ({exc.strerror}); choose another --out directory",
            path=out,
        ) from None
    return out


def _sample_for_plots(
    licence: Licence, datas: Sequence[SurveyData], result: CheckResult
) -> tuple[F64, npt.NDArray[np.int8]]:
    """Points and their status for the pictures: the check's preview if it
    made one, else every non-compliant point (up to PLOT_POINTS / 2) and a
    random subset of the compliant ones, classified here chunk by chunk."""
    preview = getattr(result, "preview", None)
    if preview is not None and len(preview):
        return np.ascontiguousarray(preview[:, :3]), preview[:, 3].astype(np.int8)
    from survey.classify import classify, prepare

    prepared = prepare(licence)
    total = max(1, sum(len(d.xyz) for d in datas))
    keep_fraction = min(1.0, PLOT_POINTS / total)
    rng = np.random.default_rng(0)
    parts: list[F64] = []
    states: list[npt.NDArray[np.int8]] = []
    chunk = 5_000_000
    for d in datas:
        for start in range(0, len(d.xyz), chunk):
            xyz = d.xyz[start : start + chunk]
            st = classify(prepared, xyz).status.astype(np.int8)
            pick = (st != 0) | (rng.random(len(xyz)) < keep_fraction)
            parts.append(xyz[pick])
            states.append(st[pick])
    if not parts:
        return np.zeros((0, 3)), np.zeros(0, dtype=np.int8)
    xyz_all, st_all = np.concatenate(parts), np.concatenate(states)
    bad = np.flatnonzero(st_all != 0)
    if len(bad) > PLOT_POINTS // 2:  # a scan that is mostly outside: thin those too
        drop = rng.choice(bad, len(bad) - PLOT_POINTS // 2, replace=False)
        mask = np.ones(len(st_all), dtype=bool)
        mask[drop] = False
        xyz_all, st_all = xyz_all[mask], st_all[mask]
    return xyz_all, st_all


def _verdict_line(result: CheckResult) -> str:
    n, u = len(result.incidents), len(result.uncertain)
    if n:
        worst = max(result.incidents, key=lambda i: i.max_exceedance_m)
        vol = sum(i.volume_m3 for i in result.incidents)
        return (
            f"VIOLATIONS FOUND: {n} incident(s) beyond the licence "
            f"(largest {worst.max_exceedance_m:.2f} m, {worst.id} {worst.type}; "
            f"{vol:,.0f} m³ beyond the licence)"
            + (f"; {u} more within survey uncertainty" if u else "")
        )
    if u:
        return (
            f"WITHIN SURVEY UNCERTAINTY: {u} group(s) beyond a limit by less than the "
            f"tolerance ({result.licence.tolerance_m:g} m plan, "
            f"{result.licence.tolerance_z_m:g} m height); no violation"
        )
    return f"COMPLIANT: {result.n_points:,} points inside the licensed extent"


def _publish(config_path: str, result: CheckResult, check_id: str, records_for: Any = None) -> str:
    """Append the findings to the site's store; the gateway's sinks deliver
    them (InfluxDB measurements survey_check / survey_incident, MQTT alert).
    ``records_for(site, gateway)``, when given, makes the records instead
    (the open-pit check adds its own)."""
    from gateway.config import load_config
    from gateway.runtime import open_store, store_path

    cfg = load_config(config_path)
    records = (
        records_for(cfg.site.name, cfg.site.gateway)
        if records_for is not None
        else findings_records(result, cfg.site.name, check_id, gateway=cfg.site.gateway)
    )
    cfg.data_dir.mkdir(parents=True, exist_ok=True)
    store = open_store(cfg)
    try:
        # A sink the gateway has never run would start at the end of the
        # outbox and miss these records: give every configured sink its
        # cursor first (a sink that already has one keeps it).
        for sink in cfg.sinks:
            store.register_sink(sink.name)
        store.append(records)
    finally:
        store.close()
    msg = f"published {len(records)} finding record(s) to {store_path(cfg.data_dir)}"
    if not cfg.sinks:
        msg += (
            f"\nwarning: {config_path} has no [[sinks]]: the findings are stored but not sent; "
            "add an InfluxDB or MQTT sink (docs/sinks.md)"
        )
    return msg


def cmd_check(args: argparse.Namespace) -> int:
    from survey.readers.licence_files import load_licence

    t_start = time.perf_counter()
    if args.publish and not args.config:
        raise SurveyInputError("--publish needs --config SITE.toml (where to publish to)")
    if args.config:
        from gateway.config import load_config

        load_config(args.config)  # fail now, not after a long check
    licence = load_licence(args.licence)
    paths = _check_paths(args.scan, "scan")
    transform = parse_transform(args.transform)
    out = _check_out(Path(args.out))
    with open_progress(enabled=not args.quiet) as progress:
        # every file streamed chunk by chunk (bounded memory), a mine-grid
        # transform or a forced format applied to each chunk
        from survey.check import check_files

        result = check_files(
            licence,
            paths,
            chunk_points=CHUNK_POINTS,
            progress=progress,
            fmt=args.format,
            transform=transform,
        )
        sources = [SourceInfo.of(item) for item in result.inputs]
        xyz, status = _sample_for_plots(licence, [], result)
        return _finish(args, result, xyz, status, sources, t_start, out)


def _finish(
    args: argparse.Namespace,
    result: CheckResult,
    xyz: F64,
    status: npt.NDArray[np.int8],
    sources: Sequence[SourceInfo],
    t_start: float,
    out: Path,
) -> int:
    from survey.report import write_report

    check_id = new_check_id(result.licence)
    if "total" in result.timings_s:  # the check's own total: keep it as "check"
        result.timings_s["check"] = result.timings_s.pop("total")
    t0 = time.perf_counter()
    _make_out(out)
    files = write_report(result, out, xyz=xyz, status=status, check_id=check_id, sources=sources)
    result.timings_s["report"] = time.perf_counter() - t0
    result.timings_s["total"] = time.perf_counter() - t_start
    # rewrite findings.json with the final timings
    from survey.findings import findings_document, write_findings

    doc = findings_document(result, check_id=check_id, sources=sources)
    write_findings(doc, files.findings_json)
    print(_verdict_line(result))
    for note in dict.fromkeys(n for item in result.inputs for n in item.notes):
        print(f"  note: {note}")
    for inc in result.incidents[:MAX_PRINTED]:
        e, n, h = inc.centroid
        print(
            f"  {inc.id} {inc.type}: {inc.max_exceedance_m:.2f} m beyond, "
            f"{inc.volume_m3:,.1f} m³, at X {n:,.2f} Y {e:,.2f} {height_text(h)}"
            + (f", nearest edge {'-'.join(inc.nearest_edge)}" if inc.nearest_edge else "")
        )
    if len(result.incidents) > MAX_PRINTED:
        print(f"  ... and {len(result.incidents) - MAX_PRINTED} more (see the report)")
    print(f"report: {files.report_html}\nfindings: {files.findings_json}")
    if args.publish:
        import sqlite3

        from gateway.store.errors import StoreError

        try:
            print(_publish(args.config, result, check_id))
        except (StoreError, sqlite3.Error, OSError) as exc:
            print(
                f"error: the check is done ({result.verdict}; {files.findings_json}) but its "
                f"findings could not be published to the store of {args.config}: {exc}. "
                "Fix the store (see `minegate status`) and run the check again with --publish.",
                file=sys.stderr,
            )
            return EXIT_NOT_PUBLISHED
    return EXIT_VIOLATIONS if result.incidents else EXIT_OK


def cmd_sample(args: argparse.Namespace) -> int:
    from survey.sample import write_sample

    if getattr(args, "open_pit", False):
        from survey.openpit.cli import cmd_sample_pit

        return cmd_sample_pit(args, _make_out)

    sample = write_sample(_make_out(Path(args.out)))
    print(f"sample data written to {args.out}:")
    for f in sample.files:
        print(f"  {f}")
    print("\nnext, check the scans against the licence:")
    for cmd in sample.commands:
        print(f"  {cmd}")
    return EXIT_OK


def cmd_compare(args: argparse.Namespace) -> int:
    from survey.compare import compare_scans
    from survey.readers import read_survey
    from survey.readers.licence_files import load_licence

    licence = load_licence(args.licence)
    old_path, new_path = _check_paths([args.old, args.new], "scan")
    transform = parse_transform(args.transform)
    out = _check_out(Path(args.out))
    t_start = time.perf_counter()
    with open_progress(enabled=not args.quiet) as progress:
        old, new = (
            read_survey(p, fmt=args.format, transform=transform, licence=licence, progress=progress)
            for p in (old_path, new_path)
        )
        result = compare_scans(licence, old, new, progress=progress)
        xyz, status = _sample_for_plots(licence, [new], result)
        sources = [SourceInfo.of(item) for item in result.inputs]
        return _finish(args, result, xyz, status, sources, t_start, out)


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--licence", required=True, help="licence file (.toml or .geojson)")
    p.add_argument("--out", required=True, help="directory for findings.json and report.html")
    p.add_argument(
        "--transform",
        metavar="dE,dN,rot_deg,scale",
        help="4-parameter plan transform from the scan's mine grid to the licence system "
        "(degrees counter-clockwise; write --transform=-12.5,... when dE is negative)",
    )
    p.add_argument(
        "--format", help="force the input format (las, laz, e57, ply, xyz, csv, cass, gsi, ...)"
    )
    p.add_argument("--config", help="site config (SITE.toml) for --publish")
    p.add_argument(
        "--publish",
        action="store_true",
        help="append the findings to the gateway's store so its sinks send them",
    )
    p.add_argument("--quiet", action="store_true", help="no progress output")


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``survey`` with ``check``, ``sample`` and ``compare`` to a
    parser's subparsers. Each sub-subcommand sets ``func`` (a handler taking
    the namespace and returning the exit code) via :func:`run`."""
    survey = subparsers.add_parser(
        "survey",
        help="check surveys against the mining licence (超层越界)",
        description="Check contractor surveys against the licensed extent.",
    )
    sub = survey.add_subparsers(dest="survey_command", required=True, metavar="COMMAND")

    check = sub.add_parser(
        "check",
        help="check scans against the licence; write findings.json and report.html",
        description="Exit 0 compliant (or within survey uncertainty), 3 violations, 2 bad input.",
    )
    check.add_argument(
        "--scan", action="append", required=True, help="survey file (repeat for several)"
    )
    _add_common(check)
    check.set_defaults(func=lambda a: run(cmd_check, a))

    sample = sub.add_parser(
        "sample", help="write a sample licence and scans (compliant and with violations)"
    )
    sample.add_argument("--out", required=True, help="directory to write the sample into")
    sample.add_argument(
        "--open-pit", action="store_true", help="an open pit instead (DSMs, cloud, mesh)"
    )
    sample.set_defaults(func=lambda a: run(cmd_sample, a))

    compare = sub.add_parser(
        "compare", help="compare two scans of different dates: new excavation beyond the licence"
    )
    compare.add_argument("--old", required=True, help="the earlier scan")
    compare.add_argument("--new", required=True, help="the later scan")
    _add_common(compare)
    compare.set_defaults(func=lambda a: run(cmd_compare, a))

    from survey.openpit.cli import register_pit

    register_pit(sub, run, _check_out, _make_out, _publish)

    from supervision.uploads import client as upload_client

    upload = sub.add_parser(
        "upload",
        help="upload a survey to the platform (resumable), wait for its check",
        description="Exit 0 compliant (or within survey uncertainty), 3 violations, "
        "2 bad input or refused, 1 the server unreachable. Token from MINEGATE_TOKEN "
        "or the client config (docs/uploads.md).",
    )
    upload_client.add_arguments(upload)
    upload.set_defaults(func=upload_client.run)
    return survey


def run(handler: Any, args: argparse.Namespace) -> int:
    """Run a handler; bad input becomes a message on stderr and exit 2.

    The cyclic garbage collector is off while a survey command runs: it is
    a batch job whose data are numpy arrays and a few thousand Python
    objects in no reference cycles (reference counting frees them), while
    the collector would walk the hundreds of thousands of objects numba and
    matplotlib create at import hundreds of times (~0.1 s of a 20 M-point
    check). It is switched back on afterwards (tests and library callers
    run these handlers in long-lived processes)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        code: int = handler(args)
        return code
    except SurveyInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:
        # a site-config error can only come from a handler that loaded
        # gateway.config (--publish); a plain check never imports it (pydantic)
        config = sys.modules.get("gateway.config")
        if config is not None and isinstance(exc, config.ConfigError):
            print(f"error in the site config:\n{exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        raise
    finally:
        if was_enabled:
            gc.enable()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="minegate")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    sys.exit(main())

"""Survey readers: every upload format into :class:`survey.model.SurveyData`.

Public API::

    read_survey(path, *, fmt=None, transform=None, column_map=None, licence=None,
                progress=None, height_offset=0.0) -> SurveyData
    iter_chunks(path, chunk_points=5_000_000, *, fmt=None, transform=None,
                column_map=None, licence=None, progress=None, height_offset=0.0,
                notes=None)
        -> Iterator[F64 (k, 3)]
    SUPPORTED_FORMATS: dict[str, str]   # extension -> format name
    detect_format(path) -> str

All results are float64 (easting, northing, height) in the licence's system:
the optional 4-parameter ``transform`` (mine grid -> licence system) and
``height_offset`` are applied, and the zone prefix is stripped from eastings
when a ``licence`` is given. ``progress`` follows ``survey.progress``:
``progress(stage, done, total)``. What a reader notes about a file (a
declared EPSG code taken as it is, entities or blocks skipped, units
converted) is ``SurveyData.notes``, or appended to ``iter_chunks``'s
``notes`` list; the check carries them into its findings and report.

Pitfalls per format and how each is handled: ``docs/survey-inputs.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from survey.model import F64, Licence, PlanTransform, SurveyData, SurveyInputError
from survey.progress import ProgressCallback
from survey.readers.common import ColumnMap, ReadOptions, finish_points
from survey.readers.dxf import read_dxf
from survey.readers.e57 import iter_e57_scans, read_e57
from survey.readers.gsi import read_gsi
from survey.readers.las import iter_las_chunks, read_las
from survey.readers.mesh import MeshRead, read_ply, read_stl
from survey.readers.obj import read_obj
from survey.readers.pcd import read_pcd
from survey.readers.text import iter_xyz_text, read_xyz_text
from survey.readers.totalstation import PointTable, read_cass, read_point_table

# extension -> format name (SurveyData.fmt)
SUPPORTED_FORMATS: dict[str, str] = {
    ".las": "las",
    ".laz": "laz",
    ".xyz": "xyz",
    ".txt": "xyz",
    ".pts": "pts",
    ".csv": "csv",
    ".dat": "cass",
    ".gsi": "gsi",
    ".e57": "e57",
    ".ply": "ply",
    ".obj": "obj",
    ".stl": "stl",
    ".pcd": "pcd",
    ".dxf": "dxf",
}


def _read_las_data(opts: ReadOptions) -> SurveyData:
    return SurveyData(source=str(opts.path), fmt=opts.fmt, xyz=read_las(opts), notes=opts.notes)


def _read_xyz_data(opts: ReadOptions) -> SurveyData:
    xyz = finish_points(read_xyz_text(opts), opts)
    return SurveyData(source=str(opts.path), fmt=opts.fmt, xyz=xyz, notes=opts.notes)


#: formats whose points may lack a height (NaN): checked in plan only
PLAN_ONLY_FORMATS = frozenset({"gsi", "csv"})


def _table_data(opts: ReadOptions, table: PointTable) -> SurveyData:
    plan_only = opts.fmt in PLAN_ONLY_FORMATS
    xyz = finish_points(table.xyz, opts, lines=table.lines, plan_only=plan_only)
    opts.report(xyz.shape[0], xyz.shape[0])
    return SurveyData(
        source=str(opts.path), fmt=opts.fmt, xyz=xyz, point_ids=table.ids, notes=opts.notes
    )


def _read_csv_data(opts: ReadOptions) -> SurveyData:
    return _table_data(opts, read_point_table(opts.path, opts.column_map, opts.notes))


def _read_cass_data(opts: ReadOptions) -> SurveyData:
    return _table_data(opts, read_cass(opts))


def _read_gsi_data(opts: ReadOptions) -> SurveyData:
    return _table_data(opts, read_gsi(opts))


def _read_e57_data(opts: ReadOptions) -> SurveyData:
    xyz = finish_points(read_e57(opts), opts)
    return SurveyData(source=str(opts.path), fmt=opts.fmt, xyz=xyz, notes=opts.notes)


def _read_pcd_data(opts: ReadOptions) -> SurveyData:
    xyz = finish_points(read_pcd(opts), opts)
    return SurveyData(source=str(opts.path), fmt=opts.fmt, xyz=xyz, notes=opts.notes)


def _mesh_data(opts: ReadOptions, mesh: MeshRead) -> SurveyData:
    xyz = finish_points(mesh.xyz, opts)
    f = mesh.faces
    if f is not None and f.size and (f.ndim != 2 or f.min() < 0 or f.max() >= xyz.shape[0]):
        raise SurveyInputError(
            f"the mesh has faces that point at missing vertices ({xyz.shape[0]:,} vertices); "
            "the file is damaged: export it again",
            path=opts.path,
        )
    return SurveyData(
        source=str(opts.path), fmt=opts.fmt, xyz=xyz, faces=mesh.faces, notes=opts.notes
    )


_READERS: dict[str, Callable[[ReadOptions], SurveyData]] = {
    "las": _read_las_data,
    "laz": _read_las_data,
    "xyz": _read_xyz_data,
    "pts": _read_xyz_data,
    "csv": _read_csv_data,
    "cass": _read_cass_data,
    "gsi": _read_gsi_data,
    "e57": _read_e57_data,
    "ply": lambda o: _mesh_data(o, read_ply(o)),
    "obj": lambda o: _mesh_data(o, read_obj(o)),
    "stl": lambda o: _mesh_data(o, read_stl(o)),
    "pcd": _read_pcd_data,
    "dxf": lambda o: _mesh_data(o, read_dxf(o)),
}


# names a user may pass as fmt= for the same reader
_FMT_ALIASES = {
    "txt": "xyz",
    "dat": "cass",
    "gsi16": "gsi",
    "gsi8": "gsi",
    "totalstation": "csv",
}


def detect_format(path: str | Path) -> str:
    """Format name from the file extension; SurveyInputError listing the
    supported extensions otherwise."""
    p = Path(path)
    fmt = SUPPORTED_FORMATS.get(p.suffix.lower())
    if fmt is None:
        exts = ", ".join(sorted(SUPPORTED_FORMATS))
        raise SurveyInputError(
            f"unknown file type {p.suffix or '(no extension)'!r}; supported: {exts}. "
            "Rename the file or name its format: --format on the command line (e.g. "
            "--format xyz), fmt= in Python.",
            path=p,
        )
    return fmt


def format_name(fmt: str | None, path: str | Path) -> str:
    """The reader name for a ``--format`` value (case, a leading dot and
    aliases such as ``gsi16`` or ``txt`` allowed), or from ``path``'s
    extension when ``fmt`` is None."""
    if not fmt:
        return detect_format(path)
    name = fmt.lower().lstrip(".")
    return _FMT_ALIASES.get(name, name)


def _options(
    path: str | Path,
    fmt: str | None,
    transform: PlanTransform | None,
    column_map: ColumnMap | None,
    licence: Licence | None,
    progress: ProgressCallback | None,
    height_offset: float,
    notes: list[str] | None = None,
) -> ReadOptions:
    p = Path(path)
    if p.is_dir():
        raise SurveyInputError(
            "is a directory, not a survey file; give the scan file(s) inside it", path=p
        )
    name = format_name(fmt, p)
    if name not in _READERS:
        raise SurveyInputError(
            f"unknown format {name!r}; supported: {', '.join(sorted(_READERS))}", path=p
        )
    if not p.is_file():
        raise SurveyInputError("file not found", path=p)
    if p.stat().st_size == 0:
        raise SurveyInputError("the file is empty (0 bytes); upload it again", path=p)
    return ReadOptions(
        path=p,
        fmt=name,
        transform=transform,
        height_offset=height_offset,
        column_map=column_map,
        licence=licence,
        progress=progress,
        notes=[] if notes is None else notes,
    )


def read_survey(
    path: str | Path,
    *,
    fmt: str | None = None,
    transform: PlanTransform | None = None,
    column_map: ColumnMap | None = None,
    licence: Licence | None = None,
    progress: ProgressCallback | None = None,
    height_offset: float = 0.0,
) -> SurveyData:
    """Read one survey file into SurveyData ((n, 3) float64 E, N, H in the
    licence system; faces for meshes; point ids for total-station data)."""
    opts = _options(path, fmt, transform, column_map, licence, progress, height_offset)
    return _READERS[opts.fmt](opts)


def iter_chunks(
    path: str | Path,
    chunk_points: int = 5_000_000,
    *,
    fmt: str | None = None,
    transform: PlanTransform | None = None,
    column_map: ColumnMap | None = None,
    licence: Licence | None = None,
    progress: ProgressCallback | None = None,
    height_offset: float = 0.0,
    notes: list[str] | None = None,
) -> Iterator[F64]:
    """Stream a survey as (k, 3) float64 (E, N, H) chunks of at most
    ``chunk_points`` points. LAS/LAZ and XYZ/PTS are streamed from disk,
    E57 scan by scan; other formats are read whole and sliced (they are small in practice, or
    carry faces and poses that need the whole file). What the reader notes
    (a declared EPSG code taken as it is, skipped blocks, ...) is appended to
    ``notes`` as it is found."""
    if chunk_points < 1:
        raise ValueError("chunk_points must be >= 1")
    opts = _options(path, fmt, transform, column_map, licence, progress, height_offset, notes)
    if opts.fmt in ("las", "laz"):
        yield from iter_las_chunks(opts, chunk_points)
        return
    if opts.fmt in ("xyz", "pts"):
        for raw in iter_xyz_text(opts, batch_lines=chunk_points):
            yield finish_points(raw, opts)
        return
    if opts.fmt == "e57":  # scan by scan: one scan in memory at a time
        for scan in iter_e57_scans(opts):
            xyz = finish_points(scan, opts)
            for start in range(0, xyz.shape[0], chunk_points):
                yield np.ascontiguousarray(xyz[start : start + chunk_points])
        return
    xyz = _READERS[opts.fmt](opts).xyz  # its notes are opts.notes
    for start in range(0, xyz.shape[0], chunk_points):
        yield np.ascontiguousarray(xyz[start : start + chunk_points])


__all__ = [
    "PLAN_ONLY_FORMATS",
    "SUPPORTED_FORMATS",
    "ColumnMap",
    "detect_format",
    "format_name",
    "iter_chunks",
    "read_survey",
]

"""Writers for every survey input format and for licence files.

Used by the tests (round trips), the scan generator and ``minegate survey
sample``. Arrays are (n, 3) float64 (easting, northing, height) in metres,
eastings without zone prefix unless ``zone_prefix`` is given (then
``zone_prefix * 1e6`` is added in the file, as on printed licences).

Each writer produces what a real instrument or package would: CASS puts the
easting first, GSI words 81/82/83 are easting/northing/height, LAS offsets
are set to the data's minimum so CGCS2000 coordinates never overflow int32.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from survey.model import F64

# licence writers live next to the loaders they round-trip with
from survey.readers.licence_files import write_licence_geojson, write_licence_toml

Pose = tuple[Sequence[float], Sequence[float]]  # (quaternion w,x,y,z ; translation E,N,H)


def _xyz(xyz: npt.ArrayLike) -> F64:
    a = np.asarray(xyz, dtype=np.float64)
    if a.ndim != 2 or a.shape[1] != 3:
        raise ValueError(f"expected an (n, 3) array of (E, N, H), got shape {a.shape}")
    return a


def _ids(ids: Sequence[str] | None, n: int) -> list[str]:
    if ids is None:
        return [str(i + 1) for i in range(n)]
    if len(ids) != n:
        raise ValueError(f"{len(ids)} ids for {n} points")
    return [str(i) for i in ids]


def _east(xyz: F64, zone_prefix: int | None) -> F64:
    return xyz[:, 0] + (zone_prefix * 1.0e6 if zone_prefix else 0.0)


# --------------------------------------------------------------------------
# point clouds


def write_las(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    compress: bool = False,
    scale: float = 0.001,
    version: str = "1.4",
    point_format: int = 6,
    chunk_points: int = 2_000_000,
    epsg: int | None = None,
) -> Path:
    """LAS (or LAZ with ``compress``) with offsets at the data's minimum
    (floored to whole metres) so int32 coordinates never overflow.
    ``epsg`` tags the projected system with GeoTIFF keys."""
    import laspy
    from laspy.vlrs.known import GeoKeyDirectoryVlr, GeoKeyEntryStruct

    a = _xyz(xyz)
    if a.shape[0] == 0:
        raise ValueError("no points to write")
    header = laspy.LasHeader(point_format=point_format, version=version)
    offsets = np.floor(a.min(axis=0))
    header.offsets = offsets
    header.scales = np.array([scale, scale, scale])
    if epsg is not None:
        vlr = GeoKeyDirectoryVlr()
        keys = [(1024, 0, 1, 1), (3072, 0, 1, epsg)]  # model type projected; projected CS
        vlr.geo_keys_header.key_directory_version = 1
        vlr.geo_keys_header.key_revision = 1
        vlr.geo_keys_header.minor_revision = 0
        vlr.geo_keys_header.number_of_keys = len(keys)
        vlr.geo_keys = []
        for key_id, loc, count, value in keys:
            e = GeoKeyEntryStruct()
            e.id, e.tiff_tag_location, e.count, e.value_offset = key_id, loc, count, value
            vlr.geo_keys.append(e)
        header.vlrs.append(vlr)
    span = (a.max(axis=0) - offsets) / scale
    if (span > 2**31 - 1).any():
        raise ValueError(f"data span {span * scale} m too large for scale {scale}")
    p = Path(path)
    with laspy.open(str(p), mode="w", header=header, do_compress=compress) as writer:
        for start in range(0, a.shape[0], chunk_points):
            part = a[start : start + chunk_points]
            rec = laspy.ScaleAwarePointRecord.zeros(part.shape[0], header=header)
            rec.x = part[:, 0]
            rec.y = part[:, 1]
            rec.z = part[:, 2]
            writer.write_points(rec)
    return p


def write_xyz(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    delimiter: str = " ",
    decimals: int = 3,
    pts: bool = False,
    extra: npt.ArrayLike | None = None,
) -> Path:
    """XYZ text (or PTS with a count line when ``pts``); ``extra`` adds
    columns (intensity, RGB) after E N H."""
    a = _xyz(xyz)
    cols = a if extra is None else np.column_stack([a, np.asarray(extra, dtype=np.float64)])
    fmt = [f"%.{decimals}f"] * 3 + ["%g"] * (cols.shape[1] - 3)
    p = Path(path)
    with p.open("w", encoding="utf-8", newline="\n") as fh:
        if pts:
            fh.write(f"{a.shape[0]}\n")
        np.savetxt(fh, cols, fmt=fmt, delimiter=delimiter)
    return p


def write_csv_points(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    ids: Sequence[str] | None = None,
    header: Sequence[str] | None = ("点号", "X", "Y", "H"),
    northing_first: bool = True,
    zone_prefix: int | None = None,
    encoding: str = "utf-8",
) -> Path:
    """Total-station CSV: ``id, X (northing), Y (easting), H`` (or ``id, Y,
    X, H`` when not ``northing_first``); ``header=None`` writes no header."""
    a = _xyz(xyz)
    names = _ids(ids, a.shape[0])
    east = _east(a, zone_prefix)
    p = Path(path)
    with p.open("w", encoding=encoding, newline="\n") as fh:
        if header is not None:
            fh.write(",".join(header) + "\n")
        for i, name in enumerate(names):
            first, second = (a[i, 1], east[i]) if northing_first else (east[i], a[i, 1])
            fh.write(f"{name},{first:.3f},{second:.3f},{a[i, 2]:.3f}\n")
    return p


def write_cass(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    ids: Sequence[str] | None = None,
    codes: Sequence[str] | None = None,
    zone_prefix: int | None = None,
) -> Path:
    """South CASS ``.dat``: ``name,code,Y,X,H`` per line, **easting first**,
    code may be empty."""
    a = _xyz(xyz)
    names = _ids(ids, a.shape[0])
    cs = list(codes) if codes is not None else [""] * a.shape[0]
    east = _east(a, zone_prefix)
    p = Path(path)
    with p.open("w", encoding="utf-8", newline="\r\n") as fh:
        for i, name in enumerate(names):
            fh.write(f"{name},{cs[i]},{east[i]:.3f},{a[i, 1]:.3f},{a[i, 2]:.3f}\n")
    return p


_GSI_DECIMALS = {0: 3, 6: 4, 8: 5}


def _gsi_word(wi: str, info: str, value: str, width: int) -> str:
    sign = "-" if value.startswith("-") else "+"
    body = value.lstrip("+-")
    if len(body) > width:
        raise ValueError(f"GSI word {wi}: {body!r} does not fit in {width} characters")
    return f"{wi}{info}{sign}{body.rjust(width, '0')} "


def write_gsi(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    ids: Sequence[str] | None = None,
    units: int = 0,
    zone_prefix: int | None = None,
    gsi8: bool = False,
) -> Path:
    """Leica GSI coordinates: word 11 point id, 81 easting (Chinese Y), 82
    northing (Chinese X), 83 height. ``units`` is the 6th character of each
    word: 0 = mm, 6 = 1/10 mm, 8 = 1/100 mm. GSI-16 blocks start with
    ``*``; ``gsi8`` writes 8-character data and **truncates** values that do
    not fit (as instruments do), so a reader must refuse it."""
    if units not in _GSI_DECIMALS:
        raise ValueError(f"units must be one of {sorted(_GSI_DECIMALS)}")
    a = _xyz(xyz)
    names = _ids(ids, a.shape[0])
    east = _east(a, zone_prefix)
    width = 8 if gsi8 else 16
    factor = 10 ** _GSI_DECIMALS[units]
    p = Path(path)
    with p.open("w", encoding="ascii", newline="\r\n") as fh:
        for i, name in enumerate(names):
            parts = ["*" if not gsi8 else ""]
            parts.append(_gsi_word("11", f"{(i + 1) % 10000:04d}", name, width))
            for wi, v in (("81", east[i]), ("82", a[i, 1]), ("83", a[i, 2])):
                digits = str(round(abs(float(v)) * factor))
                if gsi8:
                    digits = digits[-8:]  # what a GSI-8 export does to a big number
                parts.append(_gsi_word(wi, f"..0{units}", ("-" if v < 0 else "") + digits, width))
            fh.write("".join(parts).rstrip(" ") + " \n")
    return p


def write_gsi16(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    ids: Sequence[str] | None = None,
    units: int = 0,
    zone_prefix: int | None = None,
) -> Path:
    """GSI-16 coordinates (see :func:`write_gsi`)."""
    return write_gsi(path, xyz, ids=ids, units=units, zone_prefix=zone_prefix, gsi8=False)


def _quat_matrix(q: Sequence[float]) -> F64:
    w, x, y, z = (float(v) for v in q)
    norm = np.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def write_e57(path: str | Path, scans: Sequence[tuple[npt.ArrayLike, Pose | None]]) -> Path:
    """E57 with one data3D entry per scan. With a pose ``(q_wxyz,
    translation)`` the points are scan-local and the pose maps them to the
    licence system (global = R(q) @ local + t). Without a pose the points are
    global: pye57 stores coordinates as float32, so the writer subtracts a
    whole-metre local origin and stores it as the scan's translation."""
    import pye57

    p = Path(path)
    if p.exists():
        p.unlink()  # libE57 refuses to overwrite
    e57 = pye57.E57(str(p), mode="w")
    try:
        for i, (pts, pose) in enumerate(scans):
            a = _xyz(pts)
            if pose is None:
                origin = np.floor(a.min(axis=0))
                local = a - origin
                rotation = np.array([1.0, 0.0, 0.0, 0.0])
                translation = origin
            else:
                local = a
                rotation = np.asarray(pose[0], dtype=np.float64)
                translation = np.asarray(pose[1], dtype=np.float64)
            data = {
                "cartesianX": np.ascontiguousarray(local[:, 0]),
                "cartesianY": np.ascontiguousarray(local[:, 1]),
                "cartesianZ": np.ascontiguousarray(local[:, 2]),
            }
            e57.write_scan_raw(
                data, name=f"scan {i + 1}", rotation=rotation, translation=translation
            )
    finally:
        e57.close()
    return p


def write_ply(
    path: str | Path,
    xyz: npt.ArrayLike,
    faces: npt.ArrayLike | None = None,
    *,
    float64: bool = True,
    binary: bool = True,
) -> Path:
    """PLY points (or a mesh with ``faces`` (m, 3)), vertices as ``double``
    (or ``float`` when ``float64`` is False: only for local coordinates)."""
    a = _xyz(xyz)
    f = None if faces is None else np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    ptype, vdtype = ("double", "<f8") if float64 else ("float", "<f4")
    fmt = "binary_little_endian" if binary else "ascii"
    lines = ["ply", f"format {fmt} 1.0", "comment written by minegate"]
    lines += [f"element vertex {a.shape[0]}"] + [f"property {ptype} {c}" for c in "xyz"]
    if f is not None:
        lines += [f"element face {f.shape[0]}", "property list uchar int vertex_indices"]
    lines.append("end_header")
    head = ("\n".join(lines) + "\n").encode("ascii")
    p = Path(path)
    with p.open("wb") as fh:
        fh.write(head)
        if binary:
            fh.write(a.astype(vdtype).tobytes())
            if f is not None:
                rec = np.zeros(f.shape[0], dtype=[("n", "u1"), ("v", "<i4", (3,))])
                rec["n"] = 3
                rec["v"] = f
                fh.write(rec.tobytes())
        else:
            vf = "%.6f" if float64 else "%.7g"
            np.savetxt(fh, a.astype(vdtype), fmt=vf)
            if f is not None:
                np.savetxt(fh, np.column_stack([np.full(f.shape[0], 3), f]), fmt="%d")
    return p


def write_pcd(
    path: str | Path,
    xyz: npt.ArrayLike,
    *,
    float64: bool = True,
    binary: bool = True,
    intensity: npt.ArrayLike | None = None,
) -> Path:
    """PCL ``.pcd`` with fields x y z [intensity]; ``float64`` writes
    ``SIZE 8`` doubles (``False``: float32, as most exporters do; only for
    local coordinates)."""
    a = _xyz(xyz)
    size, vt = (8, "<f8") if float64 else (4, "<f4")
    fields = [("x", vt), ("y", vt), ("z", vt)]
    if intensity is not None:
        fields.append(("intensity", "<f4"))
    rec = np.zeros(a.shape[0], dtype=fields)
    rec["x"], rec["y"], rec["z"] = a[:, 0], a[:, 1], a[:, 2]
    if intensity is not None:
        rec["intensity"] = np.asarray(intensity, dtype=np.float32)
    names = " ".join(f for f, _ in fields)
    sizes = " ".join(str(size) if f != "intensity" else "4" for f, _ in fields)
    head = (
        "# .PCD v0.7 - written by minegate\nVERSION 0.7\n"
        f"FIELDS {names}\nSIZE {sizes}\nTYPE {' '.join('F' for _ in fields)}\n"
        f"COUNT {' '.join('1' for _ in fields)}\nWIDTH {a.shape[0]}\nHEIGHT 1\n"
        f"VIEWPOINT 0 0 0 1 0 0 0\nPOINTS {a.shape[0]}\nDATA {'binary' if binary else 'ascii'}\n"
    )
    p = Path(path)
    with p.open("wb") as fh:
        fh.write(head.encode("ascii"))
        if binary:
            fh.write(rec.tobytes())
        else:
            fmt = ["%.6f" if float64 else "%.7g"] * 3 + (["%g"] if intensity is not None else [])
            np.savetxt(fh, np.column_stack([rec[f] for f, _ in fields]), fmt=fmt)
    return p


def write_mesh(
    path: str | Path,
    vertices: npt.ArrayLike,
    faces: npt.ArrayLike,
    *,
    allow_float32_absolute: bool = False,
) -> Path:
    """OBJ (text, 8 decimals) or STL (binary, always float32) by extension;
    PLY goes to :func:`write_ply`. STL refuses absolute coordinates
    (> 1e5 m) unless ``allow_float32_absolute`` (tests of the reader's
    refusal need such a file)."""
    import trimesh

    v = _xyz(vertices)
    f = np.asarray(faces, dtype=np.int64).reshape(-1, 3)
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".ply":
        return write_ply(p, v, f)
    if ext == ".stl" and np.abs(v).max() > 1.0e5 and not allow_float32_absolute:
        raise ValueError(
            "STL stores float32: absolute CGCS2000 coordinates would lose metres; write "
            "local coordinates and keep the origin as a plan transform, or use OBJ/PLY"
        )
    if ext == ".obj":
        # our own writer: trimesh's OBJ export rounds to its own digit policy
        with p.open("w", encoding="ascii", newline="\n") as fh:
            fh.write("# written by minegate\n")
            np.savetxt(fh, v, fmt="v %.4f %.4f %.4f")
            np.savetxt(fh, f + 1, fmt="f %d %d %d")
        return p
    if ext == ".stl":
        mesh = trimesh.Trimesh(vertices=v, faces=f, process=False)
        p.write_bytes(trimesh.exchange.stl.export_stl(mesh))
        return p
    raise ValueError(f"write_mesh: unsupported extension {ext!r} (use .obj, .stl or .ply)")


def write_esri_grid(
    path: str | Path,
    east: npt.ArrayLike,
    north: npt.ArrayLike,
    heights: npt.ArrayLike,
    *,
    nodata: float = -9999.0,
) -> Path:
    """ESRI ASCII grid of node heights (``xllcenter``/``yllcenter``).
    east (nx,), north (ny,) increasing and equally spaced with the same
    step; heights (ny, nx), row j = north[j], NaN written as ``nodata``."""
    e = np.asarray(east, dtype=np.float64)
    n = np.asarray(north, dtype=np.float64)
    z = np.asarray(heights, dtype=np.float64)
    cs = float(e[1] - e[0])
    if not (np.allclose(np.diff(e), cs) and np.allclose(np.diff(n), cs)):
        raise ValueError("an ESRI ASCII grid needs one cell size in both directions")
    z = np.where(np.isnan(z), nodata, z)[::-1]  # the file starts with the northern row
    head = (
        f"ncols {e.size}\nnrows {n.size}\nxllcenter {float(e[0])!r}\n"
        f"yllcenter {float(n[0])!r}\ncellsize {cs!r}\nNODATA_value {float(nodata)!r}\n"
    )
    p = Path(path)
    with p.open("w", encoding="ascii", newline="\n") as fh:
        fh.write(head)
        np.savetxt(fh, z, fmt="%.4f")
    return p


def write_dxf(
    path: str | Path,
    xyz: npt.ArrayLike,
    faces: npt.ArrayLike | None = None,
    *,
    layer: str = "SURVEY",
) -> Path:
    """ASCII DXF (R12 entities): POINTs for ``xyz`` without faces, 3DFACEs
    for a mesh. CAD x = easting (Chinese Y), y = northing, z = height;
    values written with 4 decimals."""
    a = _xyz(xyz)
    out = ["0", "SECTION", "2", "ENTITIES"]
    if faces is None:
        for e, n, h in a:
            out += ["0", "POINT", "8", layer, "10", f"{e:.4f}", "20", f"{n:.4f}", "30", f"{h:.4f}"]
    else:
        for tri in np.asarray(faces, dtype=np.int64).reshape(-1, 3):
            out += ["0", "3DFACE", "8", layer]
            for i, v in enumerate([*tri, tri[2]]):  # 4th corner = 3rd: a triangle
                e, n, h = a[v]
                out += [f"1{i}", f"{e:.4f}", f"2{i}", f"{n:.4f}", f"3{i}", f"{h:.4f}"]
    out += ["0", "ENDSEC", "0", "EOF"]
    p = Path(path)
    p.write_text("\n".join(out) + "\n", encoding="ascii")
    return p


def write_survey(
    path: str | Path,
    xyz: npt.ArrayLike,
    faces: npt.ArrayLike | None = None,
    **kwargs: Any,
) -> Path:
    """Write points (or a mesh) in the format the extension names: .las,
    .laz, .xyz/.txt, .pts, .csv, .dat (CASS), .gsi (GSI-16), .e57 (one
    scan, no pose), .ply, .pcd, .obj, .stl. ``kwargs`` go to that writer."""
    ext = Path(path).suffix.lower()
    if faces is not None:
        if ext == ".dxf":
            return write_dxf(path, xyz, faces, **kwargs)
        if ext == ".ply":
            return write_ply(path, xyz, faces, **kwargs)
        return write_mesh(path, xyz, faces, **kwargs)
    simple: dict[str, Callable[..., Path]] = {
        ".las": write_las,
        ".xyz": write_xyz,
        ".txt": write_xyz,
        ".csv": write_csv_points,
        ".dat": write_cass,
        ".gsi": write_gsi16,
        ".ply": write_ply,
        ".pcd": write_pcd,
        ".dxf": write_dxf,
    }
    if ext == ".laz":
        return write_las(path, xyz, compress=True, **kwargs)
    if ext == ".pts":
        return write_xyz(path, xyz, pts=True, **kwargs)
    if ext == ".e57":
        return write_e57(path, [(xyz, None)])
    writer = simple.get(ext)
    if writer is None:
        raise ValueError(f"write_survey: no point writer for {ext!r}")
    return writer(path, xyz, **kwargs)


__all__ = [
    "Pose",
    "write_cass",
    "write_csv_points",
    "write_dxf",
    "write_e57",
    "write_esri_grid",
    "write_gsi",
    "write_gsi16",
    "write_las",
    "write_licence_geojson",
    "write_licence_toml",
    "write_mesh",
    "write_pcd",
    "write_ply",
    "write_survey",
    "write_xyz",
]

"""PLY (points or meshes, ascii or binary), OBJ and STL.

* PLY: the header is parsed here to learn the vertex storage type; data is
  read by ``trimesh.load(..., process=False, fix_texture=False,
  skip_materials=True)`` (vertices kept as stored, nothing merged,
  reordered or split by per-face texture coordinates; no texture image
  looked up). ``float`` (32-bit) vertices holding
  absolute CGCS2000 coordinates are refused (``common.refuse_float32``).
* OBJ: ``survey.readers.obj`` (parsed there, every vertex kept).
* STL: binary STL is **always float32**, parsed here with numpy (so a
  truncated upload is detected by size); corners shared by several
  triangles are merged. An STL in absolute coordinates is refused; an STL
  in a local system plus a plan transform / offset is fine. ASCII STL is
  text and read by trimesh.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from survey.model import F64, SurveyInputError
from survey.readers.common import ReadOptions, refuse_float32

if TYPE_CHECKING:
    import trimesh

_PLY_FLOAT32 = {"float", "float32"}
_PLY_FLOAT64 = {"double", "float64"}


@dataclass
class MeshRead:
    """Raw vertices (n, 3) float64 (E, N, H) and faces (m, 3) or None."""

    xyz: F64
    faces: npt.NDArray[np.int64] | None


def _ply_header(path: Path) -> tuple[str, int, str]:
    """(format, vertex count, vertex x type) from a PLY header."""
    with path.open("rb") as fh:
        head = fh.read(65536)
    end = head.find(b"end_header")
    if not head.startswith(b"ply") or end < 0:
        raise SurveyInputError(
            "not a PLY file (no 'ply' magic or no end_header within 64 KiB); check the export",
            path=path,
        )
    fmt, count, xtype, in_vertex = "", -1, "", False
    for line in head[:end].decode("ascii", errors="replace").splitlines():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "format" and len(parts) > 1:
            fmt = parts[1]
        elif parts[0] == "element":
            in_vertex = len(parts) > 2 and parts[1] == "vertex"
            if in_vertex:
                try:
                    count = int(parts[2])
                    if count < 0:
                        raise ValueError(count)
                except ValueError:
                    raise SurveyInputError(
                        f"PLY header: bad vertex count in {line!r}; export the file again",
                        path=path,
                    ) from None
        elif parts[0] == "property" and in_vertex and len(parts) > 2 and parts[-1] == "x":
            xtype = parts[1]
    if count < 0 or not xtype:
        raise SurveyInputError(
            "the PLY header declares no vertex x property; export vertices with x, y, z",
            path=path,
        )
    return fmt, count, xtype


def _from_trimesh(loaded: object, path: Path) -> MeshRead:
    import trimesh  # here, not at import: it costs a LAS check 0.1-0.8 s

    if isinstance(loaded, trimesh.Scene):
        return _from_scene(loaded, path)
    if isinstance(loaded, trimesh.Trimesh):
        faces = np.asarray(loaded.faces, dtype=np.int64)
        return MeshRead(
            np.asarray(loaded.vertices, dtype=np.float64), faces if faces.size else None
        )
    if isinstance(loaded, trimesh.PointCloud):
        return MeshRead(np.asarray(loaded.vertices, dtype=np.float64), None)
    raise SurveyInputError(
        f"unsupported geometry {type(loaded).__name__}; expected a mesh or points", path=path
    )


def _from_scene(scene: trimesh.Scene, path: Path) -> MeshRead:
    """Every geometry instance of a scene (OBJ objects and groups), with its
    scene-graph transform applied, as one vertex array and one face array."""
    verts: list[F64] = []
    faces: list[npt.NDArray[np.int64]] = []
    offset = 0
    for node in scene.graph.nodes_geometry:
        matrix, name = scene.graph[node]
        part = _from_trimesh(scene.geometry[name], path)
        v = part.xyz
        m = np.asarray(matrix, dtype=np.float64)
        if not np.allclose(m, np.eye(4)):
            v = v @ m[:3, :3].T + m[:3, 3]
        verts.append(v)
        if part.faces is not None:
            faces.append(part.faces + offset)
        offset += v.shape[0]
    if not verts:
        raise SurveyInputError("the file holds no geometry (empty)", path=path)
    return MeshRead(np.concatenate(verts), np.concatenate(faces) if faces else None)


def read_ply(opts: ReadOptions) -> MeshRead:
    import trimesh

    path = opts.path
    fmt, count, xtype = _ply_header(path)
    if count == 0:
        raise SurveyInputError("the PLY file holds 0 vertices (empty scan)", path=path)
    try:
        # vertices as the header declares them: no texture image looked up
        # (a missing one printed trimesh's traceback on stderr) and no
        # vertex split where faces carry their own texture coordinates
        loaded = trimesh.load(
            str(path), file_type="ply", process=False, fix_texture=False, skip_materials=True
        )
    except (ValueError, IndexError, KeyError) as exc:
        raise SurveyInputError(
            f"the PLY file ({fmt}, {count:,} vertices declared) cannot be read: {exc}; the "
            "upload may be truncated: export and upload it again",
            path=path,
        ) from None
    out = _from_trimesh(loaded, path)
    if xtype in _PLY_FLOAT32 and out.xyz.size:
        refuse_float32(float(np.abs(out.xyz).max()), path=path, what="this PLY ('property float')")
    elif xtype not in _PLY_FLOAT64 | _PLY_FLOAT32:
        opts.notes.append(f"{path.name}: PLY vertex type {xtype!r} (integer?) read as is")
    if out.xyz.shape[0] != count:
        raise SurveyInputError(
            f"the PLY header declares {count:,} vertices but {out.xyz.shape[0]:,} were read; "
            "export and upload it again",
            path=path,
        )
    return out


_STL_RECORD = np.dtype([("normal", "<f4", (3,)), ("v", "<f4", (3, 3)), ("attr", "<u2")])


def read_stl(opts: ReadOptions) -> MeshRead:
    import trimesh

    path = opts.path
    blob = path.read_bytes()
    if len(blob) >= 84:
        n = int(np.frombuffer(blob, dtype="<u4", count=1, offset=80)[0])
        if len(blob) == 84 + 50 * n:
            if n == 0:
                raise SurveyInputError("the STL file holds 0 triangles (empty)", path=path)
            rec = np.frombuffer(blob, dtype=_STL_RECORD, count=n, offset=84)
            corners = rec["v"].reshape(-1, 3)
            refuse_float32(
                float(np.abs(corners).max()),
                path=path,
                what="STL (always float32)",
            )
            uniq, inverse = np.unique(corners, axis=0, return_inverse=True)
            return MeshRead(uniq.astype(np.float64), inverse.reshape(-1, 3).astype(np.int64))
    if blob.lstrip().startswith(b"solid") and b"facet" in blob[:4096]:
        try:
            loaded = trimesh.load(str(path), file_type="stl", process=False)
        except (ValueError, IndexError, KeyError) as exc:
            raise SurveyInputError(f"cannot read the ASCII STL: {exc}", path=path) from None
        out = _from_trimesh(loaded, path)
        if out.xyz.size:
            # ASCII STL is text, but every exporter writes float32 values into it
            refuse_float32(float(np.abs(out.xyz).max()), path=path, what="STL (float32 values)")
        return out
    raise SurveyInputError(
        "not a complete binary STL (its size does not match its triangle count: truncated "
        "upload?) and not an ASCII STL; export and upload it again",
        path=path,
    )

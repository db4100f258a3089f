"""Wavefront OBJ, parsed here (text, so full float64).

Every ``v`` line is a vertex, in file order, whether a face uses it or not
(a library loader drops unused vertices and splits shared ones by texture
coordinate: 502 vertices of a textured mesh became 664); ``f`` lines are
polygons of 1-based vertex numbers (``v``, ``v/vt``, ``v//vn``,
``v/vt/vn``; negative = counted back from the last vertex so far), split
into triangles as fans. Objects and groups (``o``, ``g``) share one
coordinate frame, so they are simply concatenated; texture coordinates,
normals, materials, lines and curves are not needed and are skipped.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from survey.model import SurveyInputError
from survey.readers.common import ReadOptions
from survey.readers.mesh import MeshRead
from survey.readers.text import read_text


def _vertex(parts: list[str], path: Path, no: int) -> tuple[float, float, float]:
    try:
        return float(parts[1]), float(parts[2]), float(parts[3])
    except (ValueError, IndexError):
        raise SurveyInputError(
            "OBJ vertex line needs three numbers x y z; the file is damaged: export it again",
            path=path,
            line=no,
        ) from None


def _face(parts: list[str], seen: int, path: Path, no: int) -> list[int]:
    """0-based vertex indices of one face line (relative ones resolved)."""
    out = []
    for token in parts[1:]:
        try:
            idx = int(token.split("/")[0])
        except ValueError:
            raise SurveyInputError(
                f"OBJ face vertex {token!r} is not a vertex number; the file is damaged: "
                "export it again",
                path=path,
                line=no,
            ) from None
        out.append(seen + idx if idx < 0 else idx - 1)
    if len(out) < 3:
        raise SurveyInputError(
            f"OBJ face with {len(out)} vertices (a face needs 3 or more); export it again",
            path=path,
            line=no,
        )
    return out


def read_obj(opts: ReadOptions) -> MeshRead:
    """Vertices (n, 3) float64 as written, faces (m, 3) or None."""
    path = opts.path
    text, _enc = read_text(path)  # UTF-8, then GBK
    verts: list[tuple[float, float, float]] = []
    faces: list[tuple[int, int, int]] = []
    face_lines: list[tuple[int, int]] = []  # (file line, first triangle) to name a bad one
    for no, line in enumerate(text.splitlines(), start=1):
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "v":
            verts.append(_vertex(parts, path, no))
        elif parts[0] == "f":
            poly = _face(parts, len(verts), path, no)
            face_lines.append((no, len(faces)))
            faces += [(poly[0], poly[i], poly[i + 1]) for i in range(1, len(poly) - 1)]
    if not verts:
        raise SurveyInputError("the OBJ file holds no vertices ('v' lines)", path=path)
    xyz = np.array(verts, dtype=np.float64)
    if not faces:
        return MeshRead(xyz, None)
    f = np.array(faces, dtype=np.int64)
    bad = (f < 0) | (f >= len(verts))
    if bad.any():
        tri = int(np.flatnonzero(bad.any(axis=1))[0])
        no = max(ln for ln, first in face_lines if first <= tri)
        raise SurveyInputError(
            f"OBJ face refers to a vertex beyond the file's {len(verts):,} vertices ('v' "
            "lines): it is damaged or cut short; export it again",
            path=path,
            line=no,
        )
    return MeshRead(xyz, f)

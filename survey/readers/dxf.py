"""ASCII DXF drawings: survey points and tunnel meshes from CAD and mine
planning software.

**CAD x is the easting (Chinese Y)** and CAD y the northing, so DXF
coordinates go straight into (E, N, H) columns; the check for swapped
columns (with a licence) catches drawings made the other way round.

Entities read from the ENTITIES section (blocks and INSERTs are not
expanded; a note counts them):

* POINT, LINE (their points), LWPOLYLINE (vertices at its elevation, group
  38), POLYLINE/VERTEX 3D polylines;
* 3DFACE (triangles; quads split in two) and POLYLINE polyface meshes
  (flag 64): these become ``SurveyData.faces``.

Values are text with up to 16 significant digits, so absolute CGCS2000
coordinates are exact. Binary DXF is refused. Drawings are often GBK
encoded (``$DWGCODEPAGE ANSI_936``): UTF-8 and GB18030 are tried.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from survey.model import SurveyInputError
from survey.readers.common import ReadOptions
from survey.readers.mesh import MeshRead
from survey.readers.text import read_text


@dataclass
class _Entity:
    kind: str
    line: int
    groups: list[tuple[int, str]] = field(default_factory=list)

    def values(self, code: int) -> list[str]:
        return [v for c, v in self.groups if c == code]

    def num(self, code: int, default: float = 0.0) -> float:
        vals = self.values(code)
        return float(vals[0]) if vals else default

    def flags(self) -> int:
        return int(self.num(70))


@dataclass
class _Collector:
    vertices: list[tuple[float, float, float]] = field(default_factory=list)
    faces: list[tuple[int, int, int]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)

    def add(self, x: float, y: float, z: float) -> int:
        self.vertices.append((x, y, z))
        return len(self.vertices) - 1

    def quad(self, idx: list[int]) -> None:
        # a 3DFACE with its 4th corner equal to the 3rd is a triangle
        if len(idx) == 4 and self.vertices[idx[3]] != self.vertices[idx[2]]:
            self.faces += [(idx[0], idx[1], idx[2]), (idx[0], idx[2], idx[3])]
        else:
            self.faces.append((idx[0], idx[1], idx[2]))


def _pairs(text: str, opts: ReadOptions) -> list[tuple[int, str, int]]:
    lines = text.splitlines()
    out: list[tuple[int, str, int]] = []
    for i in range(0, len(lines) - 1, 2):
        code = lines[i].strip()
        try:
            out.append((int(code), lines[i + 1].strip(), i + 1))
        except ValueError:
            raise SurveyInputError(
                f"expected a DXF group code (an integer), found {code[:40]!r}; is this an ASCII "
                "DXF? (binary DXF is not supported: save as ASCII DXF)",
                path=opts.path,
                line=i + 1,
            ) from None
    return out


def _entities(pairs: list[tuple[int, str, int]], opts: ReadOptions) -> list[_Entity]:
    ents: list[_Entity] = []
    in_entities = False
    current: _Entity | None = None
    for k, (code, value, line) in enumerate(pairs):
        if code == 0:
            if current is not None:
                ents.append(current)
                current = None
            if value == "SECTION" and k + 1 < len(pairs) and pairs[k + 1][1] == "ENTITIES":
                in_entities = True
            elif value == "ENDSEC":
                in_entities = False
            elif in_entities:
                current = _Entity(value, line)
        elif current is not None:
            current.groups.append((code, value))
    if current is not None:
        ents.append(current)
    if not any(value == "ENTITIES" for _code, value, _line in pairs):
        raise SurveyInputError("no ENTITIES section: not a DXF drawing?", path=opts.path)
    return ents


def _add_entity(e: _Entity, out: _Collector) -> None:
    if e.kind == "POINT":
        out.add(e.num(10), e.num(20), e.num(30))
    elif e.kind == "LINE":
        out.add(e.num(10), e.num(20), e.num(30))
        out.add(e.num(11), e.num(21), e.num(31))
    elif e.kind == "3DFACE":
        idx = [out.add(e.num(10 + i), e.num(20 + i), e.num(30 + i)) for i in range(4)]
        out.quad(idx)
    elif e.kind == "LWPOLYLINE":
        z = e.num(38)
        xs, ys = e.values(10), e.values(20)
        for x, y in zip(xs, ys, strict=False):
            out.add(float(x), float(y), z)
    else:
        out.skipped[e.kind] = out.skipped.get(e.kind, 0) + 1


def _add_polyline(head: _Entity, verts: list[_Entity], out: _Collector) -> None:
    if head.flags() & 64:  # polyface mesh: vertex records, then face records
        index: list[int] = []
        for v in verts:
            f = v.flags()
            if f & 128 and not f & 64:
                ids = [abs(int(v.num(71 + i))) for i in range(4) if v.values(71 + i)]
                ids = [i for i in ids if i > 0]
                if len(ids) >= 3:
                    out.quad([index[i - 1] for i in ids[:4]])
            else:
                index.append(out.add(v.num(10), v.num(20), v.num(30)))
        return
    for v in verts:
        out.add(v.num(10), v.num(20), v.num(30))


def read_dxf(opts: ReadOptions) -> MeshRead:
    """Vertices (E, N, H) of the drawing's entities, faces of its 3DFACEs
    and polyface meshes (None when there are none)."""
    path = opts.path
    if path.read_bytes()[:22].startswith(b"AutoCAD Binary DXF"):
        raise SurveyInputError("binary DXF is not supported: save as ASCII DXF", path=path)
    text, _enc = read_text(path)
    ents = _entities(_pairs(text, opts), opts)
    out = _Collector()
    k = 0
    try:
        while k < len(ents):
            e = ents[k]
            if e.kind == "POLYLINE":
                verts: list[_Entity] = []
                k += 1
                while k < len(ents) and ents[k].kind == "VERTEX":
                    verts.append(ents[k])
                    k += 1
                _add_polyline(e, verts, out)
                continue  # SEQEND (or the next entity) is handled next round
            if e.kind != "SEQEND":
                _add_entity(e, out)
            k += 1
    except (ValueError, IndexError) as exc:
        raise SurveyInputError(
            f"DXF entity {ents[k].kind} has a bad value ({exc})", path=path, line=ents[k].line
        ) from None
    if out.skipped:
        listed = ", ".join(f"{n} {kind}" for kind, n in sorted(out.skipped.items()))
        opts.notes.append(f"{path.name}: DXF entities not read: {listed}")
    xyz = np.array(out.vertices, dtype=np.float64).reshape(-1, 3)
    if xyz.shape[0] and not xyz[:, 2].any():
        opts.notes.append(f"{path.name}: every DXF height is 0 (a 2D plan?): levels are unknown")
    faces = np.array(out.faces, dtype=np.int64).reshape(-1, 3) if out.faces else None
    return MeshRead(xyz, faces)

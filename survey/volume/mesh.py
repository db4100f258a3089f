"""Volume of a closed mesh beyond a licensed limit: :func:`mesh_volume_beyond`
clips the mesh with the limit solid using trimesh's manifold3d boolean
engine (see :mod:`survey.volume`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
import shapely

from survey.model import F64, Licence, ViolationType

if TYPE_CHECKING:  # imported where meshes are handled: a scan check never needs it
    import trimesh


def make_mesh(vertices: F64, faces: npt.NDArray[np.int64], origin: F64) -> trimesh.Trimesh:
    """A trimesh in local coordinates (``vertices`` - ``origin`` (3,))."""
    import trimesh

    return trimesh.Trimesh(
        vertices=np.asarray(vertices, dtype=np.float64) - origin,
        faces=np.asarray(faces, dtype=np.int64),
        process=True,
    )


def _box(lo: F64, hi: F64) -> trimesh.Trimesh:
    import trimesh

    return trimesh.creation.box(bounds=np.array([lo, hi], dtype=np.float64))


def _intersect_volume(a: trimesh.Trimesh, b: trimesh.Trimesh) -> float:
    import trimesh

    inter = trimesh.boolean.intersection([a, b], engine="manifold")
    return float(inter.volume) if len(inter.faces) else 0.0


def mesh_volume_beyond(
    licence: Licence,
    mesh: trimesh.Trimesh,
    origin: F64,
    vtype: ViolationType,
    *,
    block: int = 0,
    bbox: tuple[F64, F64] | None = None,
) -> float | None:
    """Volume (m3) of the closed ``mesh`` (local coordinates, ``origin`` (3,)
    added gives licence coordinates) beyond one limit of ``licence``.

    ``vtype`` BOUNDARY: outside the union of the block polygons;
    ABOVE_RANGE / BELOW_RANGE: above z_top / below z_bottom of ``block``.
    ``bbox``: optional (lo, hi) (3,) absolute corners; only the part of the
    mesh inside it counts (one incident's share). A mesh given in absolute
    coordinates (``origin`` zero) is re-centred first: the boolean engine is
    not exact at 1e6 m magnitudes. Returns None when the
    method does not apply (mesh not watertight, or a seam limit, whose
    surfaces are not solids): the caller then uses the shell method.
    """
    import trimesh

    if not mesh.is_watertight or vtype is ViolationType.OUTSIDE_SEAM:
        return None
    centre = mesh.bounds.mean(axis=0)
    if np.abs(centre).max() > 1.0e3:
        # the boolean engine loses precision at CGCS2000 magnitudes (5e5,
        # 2.5e6 m): work about the mesh's own centre
        mesh = mesh.copy()
        mesh.apply_translation(-centre)
        origin = np.asarray(origin, dtype=np.float64) + centre
    lo = mesh.bounds[0] - 1.0
    hi = mesh.bounds[1] + 1.0
    if bbox is not None:
        lo = np.maximum(lo, np.asarray(bbox[0]) - origin)
        hi = np.minimum(hi, np.asarray(bbox[1]) - origin)
        if np.any(hi <= lo):
            return 0.0
    region = _box(lo, hi)
    blk = licence.blocks[block]
    if vtype is ViolationType.ABOVE_RANGE:
        zlo = blk.z_top - origin[2]
        if zlo >= hi[2]:
            return 0.0
        return _intersect_volume(mesh, _box(np.array([lo[0], lo[1], max(lo[2], zlo)]), hi))
    if vtype is ViolationType.BELOW_RANGE:
        zhi = blk.z_bottom - origin[2]
        if zhi <= lo[2]:
            return 0.0
        return _intersect_volume(mesh, _box(lo, np.array([hi[0], hi[1], min(hi[2], zhi)])))
    # boundary: what lies in the region minus what lies in the licence prism
    total = _intersect_volume(mesh, region)
    polys = [shapely.Polygon(b.polygon_en() - origin[:2]) for b in licence.blocks]
    union = shapely.union_all(polys)
    inside = 0.0
    for part in shapely.get_parts(union):
        prism = trimesh.creation.extrude_polygon(part, height=float(hi[2] - lo[2]))
        prism.apply_translation([0.0, 0.0, float(lo[2])])
        inside += _intersect_volume(_intersect_mesh(mesh, region), prism)
    return max(0.0, total - inside)


def _intersect_mesh(a: trimesh.Trimesh, b: trimesh.Trimesh) -> trimesh.Trimesh:
    import trimesh

    return trimesh.boolean.intersection([a, b], engine="manifold")

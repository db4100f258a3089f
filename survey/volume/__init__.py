"""Volume excavated beyond a licensed limit.

Two methods, one per kind of survey:

* **Scanned shell** (points on the walls, roof, floor and faces of the
  workings; an open surface, no inside/outside): :func:`shell_volume` is the
  section (overbreak) method of mine-survey packages. The points of one
  incident -- all beyond the limit -- are cut into slices along an axis;
  each slice's points, projected on the section plane, are split into
  openings on a ``tolerances.SECTION_CLUSTER_M`` grid (two drifts in one
  section are two openings), and the convex hull areas of the openings
  times the slice's thickness are summed. Because only points beyond the
  limit are given, each section is already clipped at the limit: where the
  workings cross it, the wall points end at the limit and close the section.
  The axis: the direction most parallel to the surface (from local normals:
  the drift axis of a drift however short, the long side of a chamber) and
  the three principal axes are all tried and the smallest estimate kept,
  since a slab cut obliquely only ever adds area.
  Slices are ``tolerances.VOLUME_SLICE_M`` thick, thicker for sparse
  surveys (``VOLUME_SLICE_SPACINGS`` point spacings).
  Limits: a single opening whose section is concave (an L-shaped chamber
  cut across its corner) is over-estimated by its hull; very sparse
  surveys (under ~2 pts/m2) under-estimate (hulls miss the corners). On the
  known-answer scenes of ``simulators.tunnels`` (2-400 pts/m2, 2 cm noise)
  it is within a few per cent.
* **Closed mesh** (a watertight tunnel model): :func:`mesh_volume_beyond`
  clips the mesh with the limit solid (the licence prism extruded over the
  mesh's heights, or the half-space above z_top / below z_bottom) using
  trimesh's manifold3d boolean engine and returns the volume outside the
  limit, optionally within a box around one incident.

Coordinates are (easting, northing, height) float64 metres; meshes are
shifted to a local origin before they reach the boolean engine (it works in
float64, but smaller numbers keep its tolerances meaningful).

Speed (the shell method runs for every incident of a scan check): with numba
installed, all sections along one axis are one compiled call (slice by a
counting sort, openings by a flood fill on each section's grid, hulls by
the monotone chain), the four axes run in threads (the kernels release the
GIL), and one neighbour search on a hash grid of cells gives both the
density and the surface normals. Without numba the same steps
run with numpy, ``scipy.ndimage`` and ``scipy.spatial`` (imported only
then: a scan check with numba never loads them), to the same results up to
rounding.

``jit`` (keyword of the shell functions): use the numba kernels; ``None``
(the default) means whenever numba is installed.

Modules: :mod:`~survey.volume.shell` (the section method),
:mod:`~survey.volume.sections` (one section's openings and hull areas),
:mod:`~survey.volume.surface` (density and axis of a scanned surface),
:mod:`~survey.volume.neighbours` (nearest neighbours on a hash grid),
:mod:`~survey.volume.mesh` (closed meshes).
"""

"""Every tolerance, grid size and limit of the survey check, in one place.

Lengths are metres, volumes cubic metres. The licence carries the survey
uncertainty a regulator accepts (``Licence.tolerance_m`` in plan,
``Licence.tolerance_z_m`` in height); the numbers here are the *numerical*
settings of the check itself, chosen so that they are small against those
uncertainties. Change them here, never inline.
"""

from __future__ import annotations

# --- incidents ---------------------------------------------------------------

#: Edge of the voxels that group violating points into incidents. 0.5 m is
#: about a tenth of a drift's width: two violating patches closer than one
#: voxel (26-connected, i.e. up to sqrt(3) * 0.5 = 0.87 m apart) belong to the
#: same working, while two drifts separated by a pillar of rock (several
#: metres) stay separate incidents. It bridges the gaps between points of a
#: scan at realistic densities (100-400 pts/m2 -> 5-10 cm spacing); sparser
#: surveys get a larger voxel (``VOXEL_SPACINGS``, ``VOXEL_MAX_M``).
VOXEL_SIZE_M: float = 0.5

#: Sparse surveys: the grouping voxel grows to this many mean
#: nearest-neighbour distances of the points beyond a limit (two points
#: closer than one voxel always join), ...
VOXEL_SPACINGS: float = 2.0

#: ... but never past this, so that workings separated by a pillar of a few
#: metres stay separate incidents even in a sparse survey.
VOXEL_MAX_M: float = 3.0

#: Above this many cells in the bounding box of the voxels to label, the
#: grouping switches from a dense ``scipy.ndimage.label`` grid to the sparse
#: neighbour graph (memory proportional to the occupied voxels only).
DENSE_LABEL_MAX_CELLS: int = 8_000_000

# --- plan classification (survey.classify) -----------------------------------

#: Cells along the longer side of the raster mask of a licence polygon. 1024
#: keeps the mask at 1 MiB (cache resident) and the boundary band at well
#: under 1 % of the cells for a 32-corner licence.
MASK_CELLS: int = 1024

#: Cells a side of the coarse grid that lists, per cell, the licence edges
#: that can be nearest to a point in it (the grid spans three times the
#: licence): a point's distance then needs 2-6 edges instead of all of them.
EDGE_GRID_CELLS: int = 64

#: Signed plan distances are computed exactly for every point outside the
#: licence and every point up to this far inside it; deeper points carry a
#: bound instead (|plan_dist| is at least that far inside), which is all a
#: plan plot or the check needs.
EXACT_INSIDE_BAND_M: float = 5.0

#: Two blocks whose distances to a point outside them differ by less than
#: this are equally near; the one listed first in the licence is taken.
NEAREST_BLOCK_TIE_M: float = 1e-6

#: Points per block of the fast classification loop; bounds temporary memory.
CLASSIFY_BLOCK_POINTS: int = 1 << 20

# --- volumes (survey.volume) --------------------------------------------------

#: Thickness of the slices a scanned shell is cut into along its principal
#: axis. Thin enough that the convex hull of each section follows a bend of
#: the drift, thick enough to hold a ring of points at 100 pts/m2.
VOLUME_SLICE_M: float = 0.5

#: Grid (m) on which the points of one section are split into separate
#: openings (two drifts cut by the same section). Twice the incident voxel:
#: a ring of wall points at 10+ pts/m2 stays one group, while drifts are
#: separated by pillars of several metres.
SECTION_CLUSTER_M: float = 1.0

#: For sparse surveys the grid above grows to this many mean gaps between
#: neighbouring points of one section's ring (1 / (density x slice)), so that
#: the random gaps of a 5 pts/m2 survey (the largest of ~100 is about 5
#: mean gaps) do not split a ring.
SECTION_CLUSTER_GAPS: float = 8.0

#: Sparse surveys: slices are at least this many point spacings
#: (1 / sqrt(density)) thick, e.g. 0.9 m at 5 pts/m2; dense scans keep
#: ``VOLUME_SLICE_M``.
VOLUME_SLICE_SPACINGS: float = 2.0

#: Incidents with more points are thinned at random to this many before
#: their volume is computed (time; the section hulls barely move).
VOLUME_MAX_POINTS: int = 200_000

#: ``survey.volume.surface.surface_density`` takes the nearest-neighbour distances of
#: a random subset of this many points (corrected for the thinning). 20 000
#: rather than the former 50 000: the mean distance is then known to well
#: under 1 %, and only sparse surveys (fewer points than this, so all of them
#: are used) depend on it.
VOLUME_DENSITY_SAMPLE: int = 20_000

#: The shell volume's one neighbour search: the 12 nearest, within a random
#: subset of ``VOLUME_AXIS_SAMPLE`` points, of ``VOLUME_AXIS_NORMALS`` of
#: them. Their normals give the surface axis (the neighbourhoods of a
#: 20 000-point subset, as before; 5 000 normals instead of 20 000 sample the
#: same distribution of directions), their nearest distances the density
#: behind the slice thickness and opening grid (5 000 distances: the mean to
#: about 1 %, the density to about 2 %, which only moves the slices of
#: sparse surveys; dense scans keep ``VOLUME_SLICE_M``). A quarter of the
#: former searches' time.
VOLUME_AXIS_SAMPLE: int = 20_000
VOLUME_AXIS_NORMALS: int = 5_000

#: Fewest points a section needs before its hull counts toward a volume.
VOLUME_MIN_SECTION_POINTS: int = 6

#: Density (points per m2) of the surface samples taken from a closed mesh so
#: that its faces can be classified and grouped like scan points.
MESH_SAMPLE_DENSITY_PER_M2: float = 25.0

#: Margin (m) added around an incident's bounding box when the incident's
#: share of a clipped mesh volume is cut out.
MESH_CLIP_MARGIN_M: float = 1.0

# --- streaming check (survey.check) ------------------------------------------

#: Points read and classified at once by ``check_files`` and the
#: ``minegate survey`` commands. 500 k points take 12 MB of float64
#: coordinates plus about 20 MB of classification: buffers that size are
#: reused from the heap chunk after chunk and stay in cache, where chunks of
#: millions of points are fresh memory each time (page faults): reading a
#: 20 M-point LAS took 0.11 s in 500 k chunks, 0.5 s in 2 M chunks
#: (bench/results/survey.md).
CHUNK_POINTS: int = 500_000

#: Most points beyond a limit a check keeps (about 64 bytes each). A survey
#: with more (typically one in the wrong coordinate system, entirely
#: "outside") is thinned evenly to this many, with a note in the result.
MAX_BEYOND_POINTS: int = 6_000_000

#: Points of the uniform plan-plot subsample kept in ``CheckResult.preview``
#: (and, separately, at most this many non-compliant points).
PREVIEW_POINTS: int = 100_000

#: Share of a survey's points beyond the boundary above which the check adds
#: a note suspecting the coordinate system (swapped X/Y, zone prefix, datum).
SUSPECT_CRS_SHARE: float = 0.5

# --- comparison of two scans (survey.compare) --------------------------------

#: A point of the newer scan farther than this from every point of the older
#: one is new excavation. Larger than the scanners' noise and spacing
#: (2 cm, 5-10 cm), smaller than a blasting round (about 2-3 m).
COMPARE_DISTANCE_M: float = 0.5

# --- reference comparison (tests) --------------------------------------------

#: Relative and absolute agreement demanded between the fast and the
#: reference distance (the fast path subtracts a local origin, which moves the
#: rounding by a few 1e-10 m at CGCS2000 magnitudes).
DIST_REL_TOL: float = 1e-9
DIST_ABS_TOL_M: float = 1e-6

"""Open-pit mines (issue 14): drone photogrammetry products (DSM rasters,
point clouds, meshes) checked for mining beyond the licensed boundary and
floor, benches outside the slope design, "one wall" faces (半边山一面墙) and
mining that is not top-down between two surveys.

Modules by concept: :mod:`.dsm` (reading and rasterising to a DSM),
:mod:`.ortho` (the orthophoto), :mod:`.kernels` (compiled kernels),
:mod:`.design` (the slope design), :mod:`.benches` (faces and berms along
the wall), :mod:`.violations` (against the design), :mod:`.boundary`
(beyond the boundary, below the floor; in strips), :mod:`.order` (two
surveys: cut/fill, top-down order), :mod:`.check` (all of them into one
result), :mod:`.report` and :mod:`.plots` (the report), :mod:`.sample` (a
synthetic pit with known answers). docs/survey-openpit.md
describes the method and its limits.
"""

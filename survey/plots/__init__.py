"""Pictures for the survey report: a plan view and an elevation section
through each incident. Each function returns PNG bytes.

Inputs are the licence, the incidents and a set of surveyed points with a
status per point:

* ``xyz``: (n, 3) float64 (easting, northing, height);
* ``status``: (n,) integer, :data:`COMPLIANT`, :data:`UNCERTAIN` (beyond a
  limit but within survey uncertainty) or :data:`VIOLATION`.

Axes follow the Chinese survey convention the licence uses: the plan's
horizontal axis is Y (easting), the vertical axis X (northing), equal scale.

Drawing is kept cheap (the report must not cost much next to the check;
about 30-40 ms a picture):

* the points are not drawn as markers but binned into an RGBA image with
  one cell per output pixel (a violating point wins its pixel over an
  uncertain one, an uncertain one over a compliant one), put 1:1 into the
  axes (no resampling); every point given is shown;
* each figure's layout (margins, legend strip, plan aspect) is computed up
  front in inches, so the figure is drawn once, on the Agg canvas;
* matplotlib draws the geometry only (polygons, lines, spans, arrows, grid
  and tick marks as line collections, no Tick objects); all text (tick
  labels, titles, corner numbers, incident labels, legend) is drawn by PIL
  over the finished drawing, in the same DejaVu font: matplotlib 3.11 lays
  out and rasterises text glyph by glyph in Python, ~0.1 ms a character;
* the PNG is written here (no row filters, zlib level 3): PIL tries every
  filter on every row, 2-3x the time for these flat-coloured pictures.

Only :class:`matplotlib.figure.Figure` and the Agg canvas are used (no
pyplot state, no backend selection), so the functions are safe to call from
any thread (the PIL font objects are shared under a lock) and importing
this module does not import pyplot. Output is deterministic: same inputs,
same bytes.

Modules: :mod:`~survey.plots.plan` (:func:`~survey.plots.plan.plan_view`),
:mod:`~survey.plots.labels` (the plan's labels: incidents close together on
the picture share one, each set out on a leader line where it covers no
other label or incident and crosses no other leader),
:mod:`~survey.plots.section` (:func:`~survey.plots.section.elevation_section`,
:func:`~survey.plots.section.section_caption`) and
:mod:`~survey.plots.drawing` (statuses, colours, the point image, the
picture with its text, legend and PNG encoding).
"""

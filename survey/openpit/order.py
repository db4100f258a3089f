"""Two surveys of the same pit: the volume mined between the flights
(cut/fill from the DSM difference, inside and outside the licence) and
mining that is not top-down (自上而下分台阶开采): a lower bench advanced
while the bench above it at the same wall has not.

Method (docs/survey-openpit.md): ``d = later - earlier`` on the earlier
DSM's cells; a cell is cut where ``d < -min_cut_m``, fill where ``d >
min_cut_m``. Each connected cut area is one place mined; its level is the
highest ground it removed (``h_top``). The bench above it is the face
ground of the earlier survey (steeper than ``face_min_deg``) from ``h_top``
up to one maximum bench height higher, within ``order_reach_m`` in plan of
the cut. If that bench exists and less than ``ADVANCED_SHARE`` of it was
cut too, the lower bench advanced alone: reported. A cut whose ground
above is no face (the top bench, the pit rim) is in order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from survey.model import Licence, SurveyInputError
from survey.openpit.design import PitDesign
from survey.openpit.dsm import Dsm, on_grid

ADVANCED_SHARE = 0.2  # share of the bench above that must be cut for it to count as advanced
MIN_CUT_CELLS = 20  # smaller cut areas are noise or a truck parked on a berm


@dataclass
class CutArea:
    id: str
    cells: int
    volume_m3: float
    volume_outside_m3: float
    centroid: tuple[float, float, float]  # (E, N, H) on the earlier surface
    h_top: float  # highest ground removed (earlier survey)
    h_bottom: float  # lowest ground left (later survey)
    above_face_cells: int  # face cells of the bench above, within reach
    above_cut_share: float  # share of them cut too
    out_of_order: bool


@dataclass
class OrderResult:
    earlier: str
    later: str
    cut_m3: float
    fill_m3: float
    cut_inside_m3: float
    cut_outside_m3: float
    fill_inside_m3: float
    fill_outside_m3: float
    areas: list[CutArea]
    d: np.ndarray  # (ny, nx) later - earlier on the earlier grid, NaN where either has no data


def compare_surveys(earlier: Dsm, later: Dsm, licence: Licence, design: PitDesign) -> OrderResult:
    a = design.analysis
    later = on_grid(later, earlier)
    d = np.asarray(later.z, dtype=np.float64) - earlier.z  # float64 sums (DSMs may be float32)
    finite = np.isfinite(d)
    both = int(finite.sum())
    if both == 0:
        raise SurveyInputError(
            "the earlier and the later survey do not overlap; give two flights of the same pit "
            "in the same coordinate system",
            path=later.source or None,
        )
    cut = finite & (d < -a.min_cut_m)
    fill = finite & (d > a.min_cut_m)
    inside = np.zeros(earlier.shape, dtype=bool)
    for b in licence.blocks:
        inside |= earlier.polygon_mask(b.polygon_en())
    area = earlier.cell_area()
    dz = np.nan_to_num(d)

    def vol(mask: np.ndarray) -> float:
        return float(np.abs(dz[mask]).sum() * area)

    slope, _, _ = earlier.slope()
    face = slope >= a.face_min_deg
    labels, _n_lab = ndimage.label(cut, structure=np.ones((3, 3)))
    areas: list[CutArea] = []
    max_h = max(
        [design.default.max_bench_height_m] + [z.design.max_bench_height_m for z in design.zones]
    )
    reach_cells = a.order_reach_m / earlier.cell
    pad = int(np.ceil(reach_cells)) + 1
    ny, nx = earlier.shape
    for lab, box in enumerate(ndimage.find_objects(labels), start=1):
        if box is None or (labels[box] == lab).sum() < MIN_CUT_CELLS:
            continue
        # the cut and the ground within reach of it: a window, not the whole DSM
        win = (
            slice(max(0, box[0].start - pad), min(ny, box[0].stop + pad)),
            slice(max(0, box[1].start - pad), min(nx, box[1].stop + pad)),
        )
        local = labels[win] == lab
        z_win = earlier.z[win]
        h_top = float(np.nanmax(z_win[local]))
        near = ndimage.distance_transform_edt(~local) <= reach_cells
        band = (
            near
            & face[win]
            & ~local
            & (z_win > h_top + a.min_cut_m)
            & (z_win <= h_top + max_h + a.min_cut_m)
        )
        n_above = int(band.sum())
        share = float((band & cut[win]).sum() / n_above) if n_above else 0.0
        rows, cols = np.nonzero(local)
        depth = np.abs(dz[win][local])
        w = depth + 1e-12
        areas.append(
            CutArea(
                "",
                int(local.sum()),
                float(depth.sum() * area),
                float(depth[~inside[win][local]].sum() * area),
                (
                    float(np.average(earlier.east[win[1].start + cols], weights=w)),
                    float(np.average(earlier.north[win[0].start + rows], weights=w)),
                    float(np.average(z_win[local], weights=w)),
                ),
                h_top,
                float(np.nanmin(later.z[win][local])),
                n_above,
                share,
                n_above >= MIN_CUT_CELLS and share < ADVANCED_SHARE,
            )
        )
    areas.sort(key=lambda c: -c.volume_m3)
    for k, c in enumerate(areas):
        c.id = f"M{k + 1}"
    return OrderResult(
        earlier.source,
        later.source,
        vol(cut),
        vol(fill),
        vol(cut & inside),
        vol(cut & ~inside),
        vol(fill & inside),
        vol(fill & ~inside),
        areas,
        d,
    )

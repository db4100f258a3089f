"""An open-pit check: one DSM (or cloud, or mesh) of the pit against the
licence and the slope design, optionally an earlier survey for the order
of mining and the volume mined between the flights.

Beyond-the-boundary and below-the-floor findings are the underground
model's incidents (:class:`survey.model.Incident`, in
:attr:`PitCheckResult.result`), so findings.json, the terminal and the
platform read them as they read an underground check; bench, one-wall and
order findings are added beside them (``open_pit`` in findings.json).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from survey.model import CheckResult, Licence
from survey.openpit.boundary import boundary_incidents, excavation
from survey.openpit.design import PitDesign
from survey.openpit.dsm import Dsm, read_dsm
from survey.openpit.order import CutArea, OrderResult, compare_surveys
from survey.openpit.ortho import Ortho, read_ortho
from survey.openpit.violations import BenchResult, analyse_benches
from survey.progress import ProgressCallback


@dataclass
class PitCheckResult:
    result: CheckResult
    dsm: Dsm
    design: PitDesign
    benches: BenchResult
    ground_source: str
    order: OrderResult | None = None
    earlier: Dsm | None = None
    notes: list[str] = field(default_factory=list)
    ortho: Ortho | None = None  # the report's backdrop, when given

    @property
    def out_of_order(self) -> list[CutArea]:
        return [a for a in self.order.areas if a.out_of_order] if self.order else []

    @property
    def has_violations(self) -> bool:
        return bool(self.result.incidents or self.benches.violations or self.out_of_order)


def check_pit_dsm(
    licence: Licence,
    dsm: Dsm,
    design: PitDesign,
    *,
    pre: Dsm | None = None,
    earlier: Dsm | None = None,
    notes: list[str] | None = None,
    centre: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
) -> PitCheckResult:
    """``centre``: (easting, northing) the profiles radiate from; default
    the pit floor found on the DSM (:func:`survey.openpit.benches.pit_centre`)."""
    timings: dict[str, float] = {}
    t = time.perf_counter()
    exc = excavation(dsm, pre, licence.tolerance_z_m)
    found = boundary_incidents(dsm, licence, exc, progress=progress)
    timings["boundary"] = time.perf_counter() - t
    violations = [i for i in found if not i.within_uncertainty]
    uncertain = [i for i in found if i.within_uncertainty]
    violations.sort(key=lambda i: -i.volume_m3)
    for k, inc in enumerate(violations):
        inc.id = f"I{k + 1}"
    for k, inc in enumerate(uncertain):
        inc.id = f"U{k + 1}"
    t = time.perf_counter()
    benches = analyse_benches(dsm, design, centre, progress)
    timings["benches"] = time.perf_counter() - t
    order = None
    if earlier is not None:
        t = time.perf_counter()
        order = compare_surveys(earlier, dsm, licence, design)
        timings["order"] = time.perf_counter() - t
    sources = [
        s for s in (dsm.source, pre.source if pre else "", earlier.source if earlier else "") if s
    ]
    result = CheckResult(
        licence=licence,
        sources=sources,
        n_points=int(dsm.points if dsm.points is not None else (dsm.z == dsm.z).sum()),
        incidents=violations,
        uncertain=uncertain,
        verdict="compliant",
        timings_s=timings,
        notes=list(notes or []),
    )
    out = PitCheckResult(result, dsm, design, benches, exc.ground_source, order, earlier)
    if out.has_violations:
        result.verdict = "violations found"
    elif uncertain:
        result.verdict = "within survey uncertainty"
    result.notes.append(f"ground before mining: {exc.ground_source}; slope design: {design.source}")
    return out


def check_pit(
    licence: Licence,
    dsm_path: str | Path,
    *,
    design: PitDesign | None = None,
    pre_path: str | Path | None = None,
    earlier_path: str | Path | None = None,
    ortho_path: str | Path | None = None,
    cell: float = 0.5,
    centre: tuple[float, float] | None = None,
    progress: ProgressCallback | None = None,
) -> PitCheckResult:
    """Read the files (DSMs as they are; clouds and meshes rasterised at
    ``cell`` metres) and check them."""
    notes: list[str] = []
    t = time.perf_counter()
    dsm = read_dsm(dsm_path, licence=licence, cell=cell, notes=notes, progress=progress)
    pre = read_dsm(pre_path, licence=licence, cell=cell, notes=notes) if pre_path else None
    earlier = (
        read_dsm(earlier_path, licence=licence, cell=cell, notes=notes) if earlier_path else None
    )
    ortho = read_ortho(ortho_path, licence=licence, notes=notes) if ortho_path else None
    t_read = time.perf_counter() - t
    out = check_pit_dsm(
        licence,
        dsm,
        design or PitDesign(),
        pre=pre,
        earlier=earlier,
        notes=notes,
        centre=centre,
        progress=progress,
    )
    out.result.timings_s = {"read": t_read, **out.result.timings_s}
    out.ortho = ortho
    return out

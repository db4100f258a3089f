"""Comparison of two scans of the same workings."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pytest

from simulators.tunnels import DRIFT_SECTION, EAST_EDGE_U, Scene
from survey.compare import ComparisonResult, compare_scans
from survey.model import SurveyData, SurveyInputError, ViolationType


@pytest.fixture(scope="module")
def comparison(compliant: Scene, violation: Scene) -> ComparisonResult:
    old = replace(compliant.survey(), surveyed_on=date(2026, 3, 1))
    return compare_scans(violation.licence, old, violation.survey())


def test_new_excavation_areas(comparison: ComparisonResult, violation: Scene) -> None:
    # the east drift advanced from u = 280 to 312, stope 1 was deepened from
    # -74 to -86, and the seam drift S is new
    assert len(comparison.areas) == 3
    assert all(a.beyond_licence for a in comparison.areas)
    assert [a.id for a in comparison.areas] == ["N1", "N2", "N3"]
    drift_area = min(comparison.areas, key=lambda a: abs(a.volume_m3 - DRIFT_SECTION.area * 32))
    advance = EAST_EDGE_U + 12.0 - 280.0
    assert drift_area.volume_m3 == pytest.approx(DRIFT_SECTION.area * advance, rel=0.1)
    stope_area = comparison.areas[0]
    assert stope_area.volume_m3 == pytest.approx(30 * 15 * 12, rel=0.1)
    assert comparison.new_points == sum(a.point_count for a in comparison.areas)
    assert 0 < comparison.new_points < len(violation.points)
    for a in comparison.areas:
        assert a.incident_ids, a


def test_new_incidents_beyond_the_licence(comparison: ComparisonResult, violation: Scene) -> None:
    assert comparison.verdict == "violations found"
    assert {i.type for i in comparison.incidents} == {e.type for e in violation.expected}
    for exp in violation.expected:
        (inc,) = [i for i in comparison.incidents if i.type is exp.type]
        assert inc.new_since == "2026-03-01"
        assert inc.max_exceedance_m == pytest.approx(exp.max_exceedance_m, abs=0.1)
        assert inc.volume_m3 == pytest.approx(exp.volume_m3, rel=0.1)
    boundary = next(i for i in comparison.incidents if i.type is ViolationType.BOUNDARY)
    assert boundary.nearest_edge == ("4", "5")
    assert comparison.preview is not None and comparison.preview.shape[1] == 4
    assert comparison.n_points == len(violation.points)


def test_same_scan_has_nothing_new(compliant: Scene) -> None:
    scan = compliant.survey()
    thinned = SurveyData("again.xyz", "xyz", compliant.points[::3])
    result = compare_scans(compliant.licence, scan, thinned)
    assert result.new_points == 0
    assert result.areas == [] and result.incidents == []
    assert result.verdict == "compliant"


def test_empty_scans_are_input_errors(compliant: Scene) -> None:
    empty = SurveyData("old.las", "las", np.zeros((0, 3)))
    with pytest.raises(SurveyInputError, match=r"old\.las.*older scan contains no points"):
        compare_scans(compliant.licence, empty, compliant.survey())
    with pytest.raises(SurveyInputError, match="newer scan contains no points"):
        compare_scans(compliant.licence, compliant.survey(), replace(empty, source="new.las"))


def test_meshes_compare_through_surface_samples(compliant: Scene, violation: Scene) -> None:
    result = compare_scans(violation.licence, compliant.mesh, violation.mesh)
    assert {i.type for i in result.incidents} == {e.type for e in violation.expected}
    assert len(result.areas) == 3 and all(a.beyond_licence for a in result.areas)
    boundary = next(i for i in result.incidents if i.type is ViolationType.BOUNDARY)
    assert boundary.max_exceedance_m == pytest.approx(12.0, abs=0.1)
    assert boundary.new_since == compliant.mesh.source

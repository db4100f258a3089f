"""Our cut/fill between two flights against CloudCompare's 2.5-D volume
(``CloudCompare -SILENT -O later -O earlier -VOLUME -GRID_STEP``) on the
same two DSMs of the sample pit, and both against the geometry that built
them. Skipped when CloudCompare (Debian package ``cloudcompare``) is not
installed, except under CI, where it is part of ``make debs``.

Tolerance: 1 % between us and CloudCompare. The two differ by our
``min_cut_m`` (changes under 0.2 m are noise, not mining: not counted)
where CloudCompare counts every difference; on the sample that is 0.3 %."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from bench.openpit_cc import cc_volume, cloudcompare_binary, dsm_points, write_ply
from survey.openpit.design import PitDesign
from survey.openpit.dsm import Dsm
from survey.openpit.geometry import PitGeometry
from survey.openpit.order import compare_surveys

pytestmark = pytest.mark.skipif(
    cloudcompare_binary() is None and not os.environ.get("CI"),
    reason="CloudCompare not installed (apt-get install cloudcompare)",
)
CELL = 0.5


def test_cut_and_fill_match_cloudcompare_volume(tmp_path: Path) -> None:
    g = PitGeometry()
    e, n = g.axes(CELL)
    ee, nn = np.meshgrid(e, n)
    earlier = Dsm(e, n, g.height(ee, nn, 1), "earlier")
    later = Dsm(e, n, g.height(ee, nn, 2), "later")
    # a dump: fill on the north rim, 2 m high on 20 m x 10 m
    dump = (np.abs(ee - (g.centre_en[0] - 60)) < 10) & (np.abs(nn - (g.centre_en[1] + 130)) < 5)
    later.z = np.where(dump, later.z + 2.0, later.z)
    ours = compare_surveys(earlier, later, g.licence(), PitDesign())
    offset = (float(np.floor(e[0])), float(np.floor(n[0])))
    files = []
    for d in (later, earlier):
        pts = dsm_points(d.east, d.north, d.z)
        files.append(write_ply(tmp_path / f"{d.source}.ply", [pts], len(pts), offset))
    # first cloud the "ceil", second the "ground": removed = cut, added = fill
    cc = cc_volume(files[0], CELL, tmp_path / "cc", ground=files[1])
    assert cc.matching_pct == pytest.approx(100.0)
    assert ours.cut_m3 == pytest.approx(cc.removed_m3, rel=0.01)
    assert ours.fill_m3 == pytest.approx(cc.added_m3, rel=0.01)
    assert cc.added_m3 == pytest.approx(int(dump.sum()) * CELL * CELL * 2.0, rel=1e-6)
    # both against the geometry (midpoint integration of the two surfaces)
    assert cc.removed_m3 == pytest.approx(sum(g.cut_volumes()), rel=0.01)
    assert ours.cut_m3 == pytest.approx(sum(g.cut_volumes()), rel=0.01)

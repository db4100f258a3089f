"""The licence examples in docs/survey-inputs.md load, and agree."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from survey.readers.licence_files import load_licence
from survey.writers import write_csv_points, write_esri_grid

DOC = Path(__file__).resolve().parents[2] / "docs" / "survey-inputs.md"


def _block(lang: str) -> str:
    m = re.search(rf"```{lang}\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    assert m is not None, f"no {lang} example in {DOC}"
    return m.group(1)


def test_doc_examples_load_and_agree(tmp_path: Path) -> None:
    (tmp_path / "seams").mkdir()
    e = 562000.0 + 20.0 * np.arange(61)
    n = 2430000.0 + 20.0 * np.arange(56)
    write_esri_grid(tmp_path / "seams" / "3_roof.asc", e, n, np.full((56, 61), -40.0))
    rng = np.random.default_rng(0)
    floor = np.column_stack(
        [rng.uniform(562000, 563200, 200), rng.uniform(2430000, 2431100, 200), np.full(200, -45.0)]
    )
    write_csv_points(tmp_path / "seams" / "3_floor.csv", floor)
    toml = tmp_path / "licence.toml"
    toml.write_text(_block("toml"), encoding="utf-8")
    gj = tmp_path / "licence.geojson"
    gj.write_text(_block("json"), encoding="utf-8")
    t, g = load_licence(toml), load_licence(gj)
    assert t.zone_prefix == 36 and g.zone_prefix is None  # 4524 vs 4545: same zone
    assert t.blocks[0].corners == g.blocks[0].corners
    assert (t.blocks[0].z_top, t.blocks[0].z_bottom) == (g.blocks[0].z_top, g.blocks[0].z_bottom)
    assert len(t.blocks) == 2 and t.seams[0].name == "3号煤"
    q = np.array([[562500.0, 2430500.0]])
    assert t.seams[0].roof.height(q)[0] > t.seams[0].floor.height(q)[0]

"""Property tests: any survey at mm precision survives every text format and
LAS, with or without the zone prefix, in the licence frame."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from survey.model import Block, Corner, Licence
from survey.readers import read_survey
from survey.writers import write_cass, write_csv_points, write_gsi16, write_las, write_xyz

LICENCE = Licence(
    "m",
    "n",
    4524,
    36,
    (
        Block(
            "b",
            (
                Corner("1", 2300000.0, 300000.0),
                Corner("2", 2300000.0, 700000.0),
                Corner("3", 2900000.0, 700000.0),
            ),
            1000.0,
            -1000.0,
        ),
    ),
)

# millimetre integers for E (6 digits), N (7 digits), H (+-2000 m)
mm_points = st.integers(1, 60).flatmap(
    lambda n: st.tuples(
        arrays(np.int64, n, elements=st.integers(300_000_000, 699_999_999)),
        arrays(np.int64, n, elements=st.integers(2_300_000_000, 2_899_999_999)),
        arrays(np.int64, n, elements=st.integers(-2_000_000, 2_000_000)),
    )
)


@settings(max_examples=25, deadline=None)
@given(
    mm=mm_points, prefix=st.booleans(), fmt=st.sampled_from(["cass", "gsi", "csv", "xyz", "las"])
)
def test_any_mm_survey_roundtrips(
    mm: tuple[np.ndarray, np.ndarray, np.ndarray], prefix: bool, fmt: str
) -> None:
    xyz = np.column_stack(mm).astype(np.float64) / 1000.0
    zone = 36 if prefix else None
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if fmt == "cass":
            p = write_cass(d / "p.dat", xyz, zone_prefix=zone)
        elif fmt == "gsi":
            p = write_gsi16(d / "p.gsi", xyz, zone_prefix=zone)
        elif fmt == "csv":
            p = write_csv_points(d / "p.csv", xyz, zone_prefix=zone, header=None)
        elif fmt == "xyz":
            shifted = xyz.copy()
            shifted[:, 0] += 36e6 if prefix else 0.0
            p = write_xyz(d / "p.xyz", shifted)
        else:
            shifted = xyz.copy()
            shifted[:, 0] += 36e6 if prefix else 0.0
            p = write_las(d / "p.las", shifted)
        got = read_survey(p, licence=LICENCE).xyz
    assert got.shape == xyz.shape
    np.testing.assert_allclose(got, xyz, atol=1e-6, rtol=0)

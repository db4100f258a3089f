"""Seam surfaces (grids and TINs) and licences that reference them.

Planes are interpolated exactly by bilinear grids and by linear TINs, so a
plane gives known answers everywhere inside the surface and NaN outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from survey.model import SurveyInputError
from survey.readers.licence_files import load_licence
from survey.surfaces import (
    GridSurface,
    TinSurface,
    load_esri_ascii_grid,
    load_surface,
    surface_from_points,
)
from survey.writers import write_csv_points, write_esri_grid, write_licence_toml, write_mesh

E0, N0 = 400000.0, 2421000.0


def plane(e: np.ndarray, n: np.ndarray) -> np.ndarray:
    return -20.0 + 0.05 * (e - E0) - 0.02 * (n - N0)


def grid_axes() -> tuple[np.ndarray, np.ndarray]:
    return E0 + 10.0 * np.arange(50), N0 + 10.0 * np.arange(40)


def queries(seed: int = 0, n: int = 500) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(E0, E0 + 490, n), rng.uniform(N0, N0 + 390, n)])


def test_grid_surface_plane_and_outside() -> None:
    e, n = grid_axes()
    z = plane(e[None, :], n[:, None])
    s = GridSurface(e, n, z)
    q = queries()
    np.testing.assert_allclose(s.height(q), plane(q[:, 0], q[:, 1]), atol=1e-9)
    out = s.height(np.array([[E0 - 1, N0 + 5], [E0 + 5, N0 + 400]]))
    assert np.isnan(out).all()


def test_grid_nodata_gives_nan_nearby_only() -> None:
    e, n = grid_axes()
    z = plane(e[None, :], n[:, None])
    z[10, 10] = np.nan
    s = GridSurface(e, n, z)
    near = s.height(np.array([[e[10] + 3, n[10] + 3]]))
    far = s.height(np.array([[e[30] + 3, n[30] + 3]]))
    assert np.isnan(near[0]) and far[0] == pytest.approx(plane(e[30] + 3, n[30] + 3))


@pytest.mark.parametrize("seed", range(12))
def test_grid_compiled_equals_regular_grid_interpolator(seed: int) -> None:
    """The numba bilinear kernel gives bit for bit what scipy's
    RegularGridInterpolator gives (even and uneven axes, no-data nodes,
    queries on nodes, on the rim and off the grid)."""
    rng = np.random.default_rng(seed)
    ne, nn = (int(v) for v in rng.integers(2, 30, 2))
    if seed % 3 == 0:
        e = E0 + np.cumsum(rng.uniform(0.5, 7.0, ne))
        n = N0 + np.cumsum(rng.uniform(0.5, 7.0, nn))
    else:
        cs = float(rng.choice([0.3, 0.5, 2.5, 10.0]))
        e, n = E0 + 0.123 + cs * np.arange(ne), N0 + 0.7 + cs * np.arange(nn)
    z = rng.normal(0.0, 20.0, (nn, ne))
    if seed % 4 == 0:
        z[rng.integers(0, nn, 3), rng.integers(0, ne, 3)] = np.nan
    s = GridSurface(e, n, z)
    m = 4000
    q = np.column_stack([rng.uniform(e[0] - 3, e[-1] + 3, m), rng.uniform(n[0] - 3, n[-1] + 3, m)])
    q[: m // 4, 0] = rng.choice(e, m // 4)
    q[m // 4 : m // 2, 1] = rng.choice(n, m // 4)
    q[m // 2 : m // 2 + 5, 0] = e[-1]
    q[m // 2 + 5 : m // 2 + 10, 1] = n[-1]
    ref = np.asarray(s.interpolator()((q - s.origin)[:, ::-1]))
    np.testing.assert_array_equal(s.height(q), ref)


def test_tin_from_points_plane_and_hull() -> None:
    rng = np.random.default_rng(4)
    pts = np.column_stack([rng.uniform(E0, E0 + 500, 300), rng.uniform(N0, N0 + 400, 300)])
    s = TinSurface(np.column_stack([pts, plane(pts[:, 0], pts[:, 1])]))
    q = queries(1)
    h = s.height(q)
    inside = ~np.isnan(h)
    assert inside.mean() > 0.8
    np.testing.assert_allclose(h[inside], plane(q[inside, 0], q[inside, 1]), atol=1e-6)
    assert np.isnan(s.height(np.array([[E0 - 10.0, N0 - 10.0]])))[0]


def test_tin_mesh_concave_footprint() -> None:
    # an L-shaped surface: the notch is inside the convex hull but not the mesh
    v2 = np.array([[0, 0], [2, 0], [2, 1], [1, 1], [1, 2], [0, 2]], dtype=float) * 100
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 5]])
    v = np.column_stack([v2[:, 0] + E0, v2[:, 1] + N0, np.zeros(6)])
    v[:, 2] = plane(v[:, 0], v[:, 1])
    s = TinSurface(v, faces)
    inside = np.array([[E0 + 50, N0 + 150], [E0 + 150, N0 + 50]])
    np.testing.assert_allclose(s.height(inside), plane(inside[:, 0], inside[:, 1]), atol=1e-6)
    assert np.isnan(s.height(np.array([[E0 + 150, N0 + 150]])))[0]


def test_esri_grid_roundtrip_with_prefix(tmp_path: Path) -> None:
    e, n = grid_axes()
    z = plane(e[None, :], n[:, None])
    z[0, 0] = np.nan
    p = write_esri_grid(tmp_path / "roof.asc", e + 36e6, n, z)
    s = load_esri_ascii_grid(p, zone=36)
    np.testing.assert_allclose(s.east, e)
    np.testing.assert_allclose(s.heights, z, atol=1e-4)
    with pytest.raises(SurveyInputError, match="zone prefix 36"):
        load_surface(p, zone=35)


def test_esri_grid_truncated(tmp_path: Path) -> None:
    e, n = grid_axes()
    p = write_esri_grid(tmp_path / "roof.asc", e, n, plane(e[None, :], n[:, None]))
    p.write_text("\n".join(p.read_text().splitlines()[:-3]) + "\n")
    with pytest.raises(SurveyInputError, match="truncated"):
        load_surface(p)


def test_csv_lattice_becomes_grid_scattered_becomes_tin(tmp_path: Path) -> None:
    e, n = grid_axes()
    ee, nn = np.meshgrid(e, n)
    lattice = np.column_stack([ee.ravel(), nn.ravel(), plane(ee.ravel(), nn.ravel())])
    s = load_surface(write_csv_points(tmp_path / "g.csv", lattice, header=None))
    assert isinstance(s, GridSurface)
    q = queries()
    np.testing.assert_allclose(s.height(q), plane(q[:, 0], q[:, 1]), atol=1e-3)
    t = surface_from_points(lattice[np.random.default_rng(0).permutation(len(lattice))[:500]])
    assert isinstance(t, TinSurface)


def test_mesh_surface_file(tmp_path: Path) -> None:
    e, n = grid_axes()
    ee, nn = np.meshgrid(e[:5], n[:4])
    v = np.column_stack([ee.ravel(), nn.ravel(), plane(ee.ravel(), nn.ravel())])
    tin = TinSurface(v)
    p = write_mesh(tmp_path / "floor.obj", v, tin.faces)
    s = load_surface(p)
    assert isinstance(s, TinSurface)
    q = np.array([[E0 + 12.5, N0 + 7.5]])
    np.testing.assert_allclose(s.height(q), plane(q[:, 0], q[:, 1]), atol=1e-6)


LICENCE_WITH_SEAM = """\
mine_name = "示例煤矿"
licence_no = "C4500002011011120000001"
epsg = 4524

[[blocks]]
name = "main"
elevation = "+50 m to -150 m"
corners = [
  { number = "1", x = 2421000.0, y = 36400000.0 },
  { number = "2", x = 2421000.0, y = 36400490.0 },
  { number = "3", x = 2421390.0, y = 36400490.0 },
]

[[seams]]
name = "3号煤"
roof = "seam3/roof.asc"
floor = "seam3/floor.csv"
"""


def test_licence_with_seams(tmp_path: Path) -> None:
    e, n = grid_axes()
    (tmp_path / "seam3").mkdir()
    write_esri_grid(tmp_path / "seam3" / "roof.asc", e + 36e6, n, plane(e[None, :], n[:, None]) + 3)
    rng = np.random.default_rng(9)
    pts = np.column_stack([rng.uniform(E0, E0 + 490, 400), rng.uniform(N0, N0 + 390, 400)])
    floor = np.column_stack([pts, plane(pts[:, 0], pts[:, 1])])
    write_csv_points(tmp_path / "seam3" / "floor.csv", floor, zone_prefix=36)
    p = tmp_path / "licence.toml"
    p.write_text(LICENCE_WITH_SEAM, encoding="utf-8")
    lic = load_licence(p)
    (seam,) = lic.seams
    assert seam.name == "3号煤"
    q = np.array([[E0 + 200.0, N0 + 200.0]])
    assert seam.roof.height(q)[0] == pytest.approx(plane(q[:, 0], q[:, 1])[0] + 3, abs=1e-3)
    assert seam.floor.height(q)[0] == pytest.approx(plane(q[:, 0], q[:, 1])[0], abs=1e-3)
    # the writer keeps the seam references
    out = write_licence_toml(
        tmp_path / "rt.toml", lic, seam_files={"3号煤": ("seam3/roof.asc", "seam3/floor.csv")}
    )
    assert load_licence(out).seams[0].name == "3号煤"
    (tmp_path / "seam3" / "floor.csv").unlink()
    with pytest.raises(SurveyInputError, match="not found"):
        load_licence(p)


def test_unknown_surface_type(tmp_path: Path) -> None:
    p = tmp_path / "roof.dxf"
    p.write_text("0\nSECTION\n")
    with pytest.raises(SurveyInputError, match=r"\.asc"):
        load_surface(p)

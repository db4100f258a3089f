"""``minegate survey sample``: a licence and scans to try the check on.

The scenes come from :mod:`simulators.tunnels` (drifts of a mine in Qinzhou,
Guangxi, at CGCS2000 Gauss-Krüger coordinates, with answers known by
construction). Written:

* ``licence.toml``: the licence, Y printed as on the paper licence;
* ``compliant.las``: a scan that stays inside the licence;
* ``violation.las``: a scan of the same mine with workings beyond the
  boundary and below the licensed floor;
* ``seam1_roof.asc`` / ``seam1_floor.asc``: the licensed seam's surfaces;
* ``violation_points.dat``: a sparser survey of the same workings as a
  South CASS point file (``name,code,Y,X,H``, easting first);
* ``violation_mesh.obj``: a closed triangle mesh (tunnel model) of the
  same workings;
* ``EXPECTED.txt``: what the check should find.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from survey.model import Licence

if TYPE_CHECKING:
    from simulators.tunnels import Expected

# The point file is a sparser survey of the same workings (a CASS file holds
# one line per point): 5 points per m2, about 80 k points, still dense enough
# that the 0.5 m voxels of the incident grouping join each working into one.
CASS_DENSITY = 5.0
SAMPLE_DENSITY = 40.0  # scan points per m2: about 600 k points, a quick first check


@dataclass(frozen=True)
class Sample:
    directory: Path
    files: list[Path]
    commands: list[str]
    expected: list[str]


def _q(p: Path) -> str:
    return shlex.quote(str(p))


def _describe(e: Expected) -> str:
    return (
        f"{e.working}: {e.type}, max exceedance {e.max_exceedance_m:.2f} m, "
        f"volume {e.volume_m3:,.0f} m³"
    )


def write_scene_licence(path: Path, licence: Licence) -> tuple[Path, list[Path]]:
    """Write a simulated scene's licence as TOML with its seam surfaces as
    ESRI ASCII grids next to it (``seam1_roof.asc``, ...). Returns the
    licence path and the grid files."""
    from simulators.tunnels import SceneSurface
    from survey.writers import write_esri_grid, write_licence_toml

    grids: list[Path] = []
    seam_files: dict[str, tuple[str, str]] = {}
    for k, seam in enumerate(licence.seams):
        names = (f"seam{k + 1}_roof.asc", f"seam{k + 1}_floor.asc")
        for surf, name in zip((seam.roof, seam.floor), names, strict=True):
            if not isinstance(surf, SceneSurface):
                raise TypeError(f"seam {seam.name!r}: only simulated seam surfaces can be written")
            grids.append(write_esri_grid(path.parent / name, *surf.grid(step=5.0)))
        seam_files[seam.name] = names
    return write_licence_toml(path, licence, seam_files=seam_files), grids


def write_sample(out: Path, *, density: float = SAMPLE_DENSITY) -> Sample:
    """Write the sample files into ``out`` (created if needed) and return
    them with the commands to run next. ``density``: scan points per m²."""
    from simulators.tunnels import compliant_scene, violation_scene
    from survey.writers import write_cass, write_las, write_mesh

    out.mkdir(parents=True, exist_ok=True)
    ok_scene = compliant_scene(density=density)
    bad_scene = violation_scene(density=density)
    licence: Licence = bad_scene.licence
    lic_path, files = write_scene_licence(out / "licence.toml", licence)
    ok_las = write_las(out / "compliant.las", ok_scene.xyz)
    bad_las = write_las(out / "violation.las", bad_scene.xyz)
    sparse = violation_scene(density=CASS_DENSITY, seed=5)
    cass = write_cass(out / "violation_points.dat", sparse.xyz, zone_prefix=licence.zone_prefix)
    mesh = bad_scene.mesh
    assert mesh.faces is not None
    obj = write_mesh(out / "violation_mesh.obj", mesh.xyz, mesh.faces)
    expected = [_describe(e) for e in bad_scene.expected]
    exp_path = out / "EXPECTED.txt"
    exp_path.write_text(
        f"Sample for {licence.mine_name}, licence {licence.licence_no}, EPSG:{licence.epsg}.\n"
        "What `minegate survey check` should find:\n\n"
        "compliant.las: compliant (exit code 0)\n"
        "violation.las: violations found (exit code 3):\n"
        + "".join(f"  - {e}\n" for e in expected)
        + f"violation_points.dat: the same workings surveyed sparsely ({len(sparse.xyz):,} "
        "points, South CASS format, easting first): the same incidents, rougher volumes.\n"
        "violation_mesh.obj: a closed tunnel model of the same workings: the same incidents, "
        "volumes clipped exactly from the mesh.\n",
        encoding="utf-8",
    )

    def check(scan: Path, name: str) -> str:
        return (
            f"minegate survey check --licence {_q(lic_path)} --scan {_q(scan)} "
            f"--out {_q(out / name)}"
        )

    commands = [
        check(ok_las, "out-compliant"),
        check(bad_las, "out-violation"),
        check(cass, "out-points"),
        check(obj, "out-mesh"),
        f"minegate survey compare --licence {_q(lic_path)} --old {_q(ok_las)} "
        f"--new {_q(bad_las)} --out {_q(out / 'out-compare')}",
    ]
    files = [lic_path, *files, ok_las, bad_las, cass, obj, exp_path]
    return Sample(out, files, commands, expected)

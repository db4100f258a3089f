"""``minegate survey sample --open-pit``: a synthetic pit
(:class:`survey.openpit.geometry.PitGeometry`) written as a contractor
would deliver it, with the answers the check should give, computed from
the geometry that built the files (not by the check):

* ``licence.toml``, ``design.toml`` (the default slope design, spelled out);
* ``dsm_<date1>.tif``, ``dsm_<date2>.tif``: GeoTIFF DSMs (0.25 m) of two
  flights; the second has a top-down pushback in the east (partly beyond
  the boundary) and a lower bench pushed back alone in the south;
* ``pre_mining.tif``: the ground before mining (1 m);
* ``ortho_<date2>.tif``: an RGB orthophoto (0.5 m) for the report's backdrop;
* ``cloud_<date1>.las``: the first flight's dense cloud (about 8 points/m²);
* ``mesh_<date1>.obj``: the first flight's surface as a 1 m triangle mesh;
* ``expected.json`` and ``EXPECTED.txt``: the answers.
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from survey.openpit.dsm import Dsm, write_geotiff
from survey.openpit.geometry import PitGeometry

DSM_CELL = 0.25
CLOUD_SPACING = 0.35  # metres between cloud points (jittered grid)
MESH_STEP = 1.0


@dataclass(frozen=True)
class PitSample:
    directory: Path
    files: list[Path]
    commands: list[str]
    expected: dict[str, object]


def expected_answers(g: PitGeometry) -> dict[str, object]:
    """What the check should find, from the numbers that build the pit."""
    inside, outside = g.cut_volumes()
    wall_mid = g.floor_m + g.n_benches * g.bench_height_m / 2
    r_mid = g.radius_at(g.wall.centre_deg, wall_mid)
    ce, cn = g.centre_en
    t = math.radians(g.wall.centre_deg)
    return {
        "bench_height_m": g.bench_height_m,
        "face_angle_deg": g.face_deg,
        "berm_width_m": g.berm_m,
        "steep_face": {
            "sector_deg": [
                g.steep.centre_deg - g.steep.half_width_deg,
                g.steep.centre_deg + g.steep.half_width_deg,
            ],
            "toe_h": g.floor_m + g.steep_face * g.bench_height_m,
            "angle_deg": g.steep_deg,
        },
        "one_wall": {
            "sector_deg": [
                g.wall.centre_deg - g.wall.half_width_deg,
                g.wall.centre_deg + g.wall.half_width_deg,
            ],
            "height_m": g.n_benches * g.bench_height_m,
            "angle_deg": g.wall_deg,
            "centre_en": [ce + r_mid * math.cos(t), cn + r_mid * math.sin(t)],
            "length_core_m": r_mid * math.radians(2 * g.wall.half_width_deg),
            "length_with_ramps_m": r_mid * math.radians(2 * (g.wall.half_width_deg + g.ramp_deg)),
        },
        "beyond_boundary": {
            "volume_m3": g.volume_beyond_east_edge(),
            "max_beyond_m": g.radius_at(0.0, g.ground_m) - g.licence_east_m,
        },
        "below_floor": {
            "volume_m3": g.sump_volume_below(g.z_bottom),
            "max_below_m": g.z_bottom - g.sump_bottom_m,
        },
        "between_surveys": {
            "cut_inside_m3": inside,
            "cut_outside_m3": outside,
            "fill_m3": 0.0,
            "out_of_order": {
                "sector_deg": [
                    g.pushback_out_of_order.centre_deg - g.pushback_out_of_order.half_width_deg,
                    g.pushback_out_of_order.centre_deg + g.pushback_out_of_order.half_width_deg,
                ],
                "level_m": [
                    g.floor_m + g.pushback_out_of_order_faces[0] * g.bench_height_m,
                    g.floor_m + (g.pushback_out_of_order_faces[0] + 1) * g.bench_height_m,
                ],
            },
            "berm_left_m": g.berm_m - g.pushback_m,
        },
    }


def _design_toml() -> str:
    from survey.openpit.design import Analysis, SlopeDesign

    d, a = SlopeDesign(), Analysis()
    return (
        "# Slope design of the sample pit: the built-in defaults, spelled out.\n"
        "# Replace with the figures of the mine's approved design (docs/survey-openpit.md).\n"
        "[design]\n"
        f"max_bench_height_m = {d.max_bench_height_m}\n"
        f"max_face_angle_deg = {d.max_face_angle_deg}\n"
        f"min_berm_width_m = {d.min_berm_width_m}\n"
        f"max_overall_slope_deg = {d.max_overall_slope_deg}\n\n"
        "[analysis]\n"
        f"face_min_deg = {a.face_min_deg}\n"
        f"profile_step_deg = {a.profile_step_deg}\n"
    )


def _ortho(path: Path, g: PitGeometry, epsg: int) -> Path:
    """A stand-in orthophoto of the second flight (0.5 m): rock shaded by the
    sun, the untouched ground green."""
    from matplotlib.colors import LightSource

    from survey.openpit.ortho import write_ortho

    e, n = g.axes(0.5)
    E, N = np.meshgrid(e, n)
    z = g.height(E, N, 2)
    shade = LightSource(azdeg=315, altdeg=45).hillshade(z, dx=0.5, dy=0.5)
    rock = np.array([196.0, 178.0, 150.0])
    grass = np.array([96.0, 140.0, 80.0])
    colour = np.where((z >= g.ground_m - 0.01)[..., None], grass, rock)
    rgb = np.clip(colour * (0.45 + 0.55 * shade[..., None]), 0, 255).astype(np.uint8)
    return write_ortho(path, rgb, Dsm(e, n, z), epsg=epsg)


def write_pit_sample(out: Path, g: PitGeometry | None = None) -> PitSample:
    from survey.writers import write_las, write_licence_toml, write_mesh

    g = g or PitGeometry()
    out.mkdir(parents=True, exist_ok=True)
    lic = g.licence()
    epsg = lic.epsg
    d1, d2 = g.dates
    files = [write_licence_toml(out / "licence.toml", lic)]
    design = out / "design.toml"
    design.write_text(_design_toml(), encoding="utf-8")
    files.append(design)
    e, n = g.axes(DSM_CELL)
    E, N = np.meshgrid(e, n)
    dsm1 = out / f"dsm_{d1}.tif"
    dsm2 = out / f"dsm_{d2}.tif"
    files.append(write_geotiff(dsm1, Dsm(e, n, g.height(E, N, 1)), epsg=epsg))
    files.append(write_geotiff(dsm2, Dsm(e, n, g.height(E, N, 2)), epsg=epsg))
    files.append(_ortho(out / f"ortho_{d2}.tif", g, epsg))
    pe, pn = g.axes(1.0)
    pre = out / "pre_mining.tif"
    files.append(
        write_geotiff(pre, Dsm(pe, pn, np.full((pn.size, pe.size), g.ground_m)), epsg=epsg)
    )
    # the cloud: a jittered grid, as dense matching gives
    rng = np.random.default_rng(14)
    ce, ge = g.axes(CLOUD_SPACING)
    CE, GE = np.meshgrid(ce, ge)
    pe_, pn_ = (
        CE.ravel() + rng.uniform(-0.1, 0.1, CE.size),
        GE.ravel() + rng.uniform(-0.1, 0.1, CE.size),
    )
    cloud = np.column_stack([pe_, pn_, g.height(pe_, pn_, 1) + rng.normal(0, 0.01, CE.size)])
    las = write_las(out / f"cloud_{d1}.las", cloud, epsg=epsg)
    files.append(las)
    me, mn = g.axes(MESH_STEP)
    ME, MN = np.meshgrid(me, mn)
    verts = np.column_stack([ME.ravel(), MN.ravel(), g.height(ME, MN, 1).ravel()])
    nx, ny = me.size, mn.size
    idx = np.arange(nx * ny).reshape(ny, nx)
    a, b, c, d = idx[:-1, :-1], idx[:-1, 1:], idx[1:, 1:], idx[1:, :-1]
    faces = np.concatenate(
        [np.stack([a, b, c], -1).reshape(-1, 3), np.stack([a, c, d], -1).reshape(-1, 3)]
    )
    obj = write_mesh(out / f"mesh_{d1}.obj", verts, faces)
    files.append(obj)
    expected = expected_answers(g)
    exp_json = out / "expected.json"
    exp_json.write_text(json.dumps(expected, indent=2) + "\n", encoding="utf-8")
    files.append(exp_json)
    bs = expected["between_surveys"]
    assert isinstance(bs, dict)
    ow, bb, bf = expected["one_wall"], expected["beyond_boundary"], expected["below_floor"]
    assert isinstance(ow, dict) and isinstance(bb, dict) and isinstance(bf, dict)
    txt = out / "EXPECTED.txt"
    txt.write_text(
        f"Sample open pit for {lic.mine_name}, licence {lic.licence_no}, EPSG:{epsg}; licensed "
        f"floor {lic.blocks[0].z_bottom:+g} m. Benches {g.bench_height_m:g} m high, faces "
        f"{g.face_deg:g}°, berms {g.berm_m:g} m, except:\n"
        f"- one wall (半边山一面墙) in the west ({ow['sector_deg'][0]:g}° to {ow['sector_deg'][1]:g}° "
        f"from east): a {ow['height_m']:g} m face at {g.wall_deg:g}° with no berm, about "
        f"{ow['length_core_m']:.0f} m along the wall (up to {ow['length_with_ramps_m']:.0f} m with "
        "the blend into the benches), also steeper overall than the design;\n"
        f"- the second face from the bottom at {g.steep_deg:g}° in the north (design at most 75°);\n"
        f"- the pit crosses the licence's east edge (corners 2-3) by {bb['max_beyond_m']:.2f} m: "
        f"{bb['volume_m3']:,.0f} m³ beyond the boundary;\n"
        f"- a sump {bf['max_below_m']:g} m below the licensed floor: {bf['volume_m3']:,.0f} m³.\n"
        f"Between {d1} and {d2}: {bs['cut_inside_m3']:,.0f} m³ mined inside the licence and "
        f"{bs['cut_outside_m3']:,.0f} m³ outside (the east pushback), no fill; in the south the "
        f"bench from {bs['out_of_order']['level_m'][0]:g} to {bs['out_of_order']['level_m'][1]:g} m "
        "was pushed back while the bench above was not (not top-down), leaving a "
        f"{bs['berm_left_m']:g} m berm.\n"
        "Every check below exits 3 (violations found). The cloud and the mesh are the first flight; "
        "their benches and volumes are the DSM's within the rasterising error.\n",
        encoding="utf-8",
    )
    files.append(txt)

    def q(p: Path) -> str:
        return shlex.quote(str(p))

    base = f"minegate survey check-pit --licence {q(files[0])} --design {q(design)}"
    commands = [
        f"{base} --dsm {q(dsm2)} --earlier {q(dsm1)} --pre-mining {q(pre)} "
        f"--ortho {q(out / f'ortho_{d2}.tif')} --out {q(out / 'out-pit')}",
        f"{base} --dsm {q(dsm1)} --out {q(out / 'out-dsm')}",
        f"{base} --dsm {q(las)} --out {q(out / 'out-cloud')}",
        f"{base} --dsm {q(obj)} --out {q(out / 'out-mesh')}",
    ]
    return PitSample(out, files, commands, expected)

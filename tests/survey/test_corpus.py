"""The corpus of real files written by other tools (``tests/survey/corpus``,
where each came from in its ``SOURCES.md``).

Each file is read twice: by minegate, and independently here (laspy's
``x, y, z``, pye57's posed scan, numpy on the PLY/OBJ/STL/XYZ bytes). A
licence is written around part of the points (a convex quadrilateral over
the middle of their plan extent, levels at height quantiles), and every
point's answer is checked against shapely and numpy on the independent
points: signed distance outside the boundary, height above the top and
below the bottom, violation or within-uncertainty status. Then the whole
check (``check_files``) must put exactly the points beyond each limit into
that type's incidents, and a mesh's largest exceedance must be its worst
vertex (distance to a convex polygon and height are convex, so no point of
a triangle goes further than its corners). Nothing is compared with
minegate's own earlier output.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import laspy
import numpy as np
import pytest
import shapely

from survey.check import check_files
from survey.classify import COMPLIANT, UNCERTAIN, VIOLATION, classify
from survey.model import Block, Corner, Licence, SurveyInputError, ViolationType
from survey.readers import read_survey

CORPUS = Path(__file__).parent / "corpus"
Reader = Callable[[Path], np.ndarray]


def _las(p: Path) -> np.ndarray:
    las = laspy.read(str(p))
    return np.column_stack([las.x, las.y, las.z]).astype(np.float64)


def _e57(p: Path) -> np.ndarray:
    import pye57

    e57 = pye57.E57(str(p))
    scans = [e57.read_scan(i, ignore_missing_fields=True) for i in range(e57.scan_count)]
    return np.concatenate(
        [np.column_stack([s["cartesianX"], s["cartesianY"], s["cartesianZ"]]) for s in scans]
    ).astype(np.float64)


_PLY_TYPES = {"float": "f4", "float32": "f4", "double": "f8", "float64": "f8", "uchar": "u1",
              "uint8": "u1", "char": "i1", "int8": "i1", "ushort": "u2", "short": "i2",
              "uint": "u4", "int": "i4", "uint32": "u4", "int32": "i4"}  # fmt: skip


def _ply(p: Path) -> np.ndarray:
    """The vertex element of a PLY whose first element is ``vertex`` with
    scalar properties only (as every corpus PLY)."""
    blob = p.read_bytes()
    end = blob.index(b"end_header") + len(b"end_header")
    end += 2 if blob[end : end + 2] == b"\r\n" else 1
    head = blob[:end].decode("ascii").splitlines()
    fmt = next(ln.split()[1] for ln in head if ln.startswith("format"))
    names: list[tuple[str, str]] = []
    n = -1
    for ln in head:
        parts = ln.split()
        if parts[:2] == ["element", "vertex"]:
            n = int(parts[2])
        elif parts and parts[0] == "element" and n >= 0:
            break
        elif parts[:1] == ["property"] and n >= 0:
            names.append((parts[2], _PLY_TYPES[parts[1]]))
    if fmt == "ascii":
        rows = blob[end:].decode("ascii").splitlines()[:n]
        table = np.array([[float(v) for v in r.split()[: len(names)]] for r in rows])
        cols = [[nm for nm, _t in names].index(c) for c in "xyz"]
        # the text holds the values of the declared type (float: float32)
        return np.column_stack([table[:, k].astype(names[k][1]) for k in cols]).astype(float)
    assert fmt == "binary_little_endian"
    rec = np.frombuffer(blob, dtype=[(nm, "<" + t) for nm, t in names], count=n, offset=end)
    return np.column_stack([rec["x"], rec["y"], rec["z"]]).astype(np.float64)


def _obj(p: Path) -> np.ndarray:
    rows = [ln.split()[1:4] for ln in p.read_text().splitlines() if ln.startswith("v ")]
    return np.array(rows, dtype=np.float64)


def _stl(p: Path) -> np.ndarray:
    """Distinct corners of a binary STL (minegate merges shared corners)."""
    blob = p.read_bytes()
    n = int(np.frombuffer(blob, "<u4", 1, 80)[0])
    rec = np.frombuffer(blob, [("n", "<f4", 3), ("v", "<f4", (3, 3)), ("a", "<u2")], n, 84)
    return np.unique(rec["v"].reshape(-1, 3).astype(np.float64), axis=0)


def _xyz(p: Path) -> np.ndarray:
    return np.loadtxt(p, usecols=(0, 1, 2), ndmin=2)


def _pcd(p: Path) -> np.ndarray:
    """x, y, z of a PCL ``DATA binary`` file in the declared storage type,
    of a ``DATA ascii`` file as the decimals are written."""
    blob = p.read_bytes()
    head: dict[str, list[str]] = {}
    pos = 0
    while "DATA" not in head:
        end = blob.index(b"\n", pos)
        parts = blob[pos:end].decode("ascii").split()
        pos = end + 1
        if parts and not parts[0].startswith("#"):
            head[parts[0]] = parts[1:]
    kinds = {"F": "f", "U": "u", "I": "i"}
    dtype = np.dtype(
        [
            (f"{k}{name}", f"<{kinds[t]}{size}")
            for k, (name, t, size) in enumerate(
                zip(head["FIELDS"], head["TYPE"], head["SIZE"], strict=True)
            )
        ]
    )
    n = int(head["POINTS"][0])
    if head["DATA"][0] == "ascii":
        rows = blob[pos:].decode("ascii").split("\n")[:n]
        text = [(f, "<f8") for f, _t in dtype.descr]
        rec = np.array([tuple(r.split()) for r in rows], dtype=text)
    else:
        rec = np.frombuffer(blob, dtype=dtype, count=n, offset=pos)
    names = [f"{k}{name}" for k, name in enumerate(head["FIELDS"])]
    return np.column_stack([rec[names[head["FIELDS"].index(c)]] for c in "xyz"]).astype(float)


def _dxf(p: Path) -> np.ndarray:
    """3DFACE corners (all four) and LWPOLYLINE vertices (at elevation 38)
    of the ENTITIES section, in file order: the group codes read pairwise."""
    lines = p.read_text(encoding="utf-8").splitlines()
    pairs = [(int(lines[i]), lines[i + 1].strip()) for i in range(0, len(lines) - 1, 2)]
    start = next(k for k, (c, v) in enumerate(pairs) if c == 2 and v == "ENTITIES")
    out: list[tuple[float, float, float]] = []
    k = start + 1
    while pairs[k] != (0, "ENDSEC"):
        kind = pairs[k][1]
        body = []
        k += 1
        while pairs[k][0] != 0:
            body.append(pairs[k])
            k += 1
        g: dict[int, list[float]] = {}
        for code, value in body:
            if code in (10, 11, 12, 13, 20, 21, 22, 23, 30, 31, 32, 33, 38):
                g.setdefault(code, []).append(float(value))
        if kind == "3DFACE":
            out += [(g[10 + i][0], g[20 + i][0], g[30 + i][0]) for i in range(4)]
        elif kind == "LWPOLYLINE":
            z = g.get(38, [0.0])[0]
            out += [(x, y, z) for x, y in zip(g[10], g[20], strict=True)]
    return np.array(out, dtype=np.float64)


#: corpus file -> independent reader; ``sorted`` where the vertex order is
#: not the file's (STL corners are merged)
FILES: dict[str, Reader] = {
    "laspy_simple.las": _las,  # LAS 1.2, point format 3
    "laspy_simple.laz": _las,  # LAZ 1.2
    "laspy_simple1_1.las": _las,  # LAS 1.1, point format 1
    "laspy_test1_4.las": _las,  # LAS 1.4, point format 6, scales ~1e-6
    "laspy_1_4_w_evlr.laz": _las,  # LAZ 1.4 with an extended VLR
    "laspy_simple.copc.laz": _las,  # COPC, point format 7
    "laspy_extrabytes.las": _las,  # LAS 1.4 with extra bytes
    "laspy_autzen.las": _las,  # GeoTIFF keys: EPSG 2994
    "laspy_fullwave.laz": _las,  # LAZ 1.4, point format 10 (waveforms)
    "laspy_plane.laz": _las,  # LAZ 1.2, 28,185 points
    "laszip_5points_14.las": _las,  # LAS 1.4 written by LASzip's example
    "pye57_testWithNormals.e57": _e57,
    "pye57_translationWithoutRotation.e57": _e57,  # a pose with a translation
    "libe57_bunnyInt32.e57": _e57,  # scaled-integer coordinates, 30,571 points
    "libe57_ColouredCubeFloat.e57": _e57,  # float32 with colours, 7,680 points
    "trimesh_fuze.ply": _ply,  # binary, float32, per-face texture coordinates
    "trimesh_fuze_ascii.ply": _ply,  # the same as ascii
    "trimesh_cube_blender_uv.ply": _ply,  # Blender, normals and s t per vertex
    "trimesh_points_bin.ply": _ply,
    "trimesh_points_ascii.ply": _ply,
    "trimesh_fuze.obj": _obj,  # textured: 502 vertices, 664 vertex/uv pairs
    "trimesh_box.obj": _obj,  # Blender, an object with a material
    "trimesh_teapot.stl": _stl,  # binary STL from Blender
    "trimesh_featuretype.STL": _stl,
    "trimesh_points_cloudcompare.xyz": _xyz,  # E N H R G B
    "trimesh_points_agisoft.xyz": _xyz,
    "pcl_bunny.pcd": _pcd,  # ascii, float32
    "pcl_colored_cloud.pcd": _pcd,  # binary, float32 with rgb and normals
    # 46 3DFACEs (184 corners) and 6 polylines (12 vertices no face uses)
    "ezdxf_3dface.dxf": _dxf,
}
MESHES = {".ply", ".obj", ".stl", ".dxf"}


def _licence_around(xyz: np.ndarray) -> tuple[Licence, shapely.Polygon]:
    """A one-block licence over part of the points: a convex quadrilateral
    inside the plan extent (corners at odd fractions, so no grid point lies
    on an edge) and levels between height quantiles; tolerances 1 % of the
    extent."""
    e0, n0 = xyz[:, 0].min(), xyz[:, 1].min()
    w = float(np.ptp(xyz[:, 0])) or 1.0
    h = float(np.ptp(xyz[:, 1])) or 1.0
    frac = [(0.2137, 0.1093), (0.8071, 0.2311), (0.6917, 0.8861), (0.1529, 0.7417)]
    en = [(e0 + fe * w, n0 + fn * h) for fe, fn in frac]
    z = xyz[:, 2]
    dz = float(np.ptp(z)) or 1.0
    top = float(np.quantile(z, 0.7)) + 0.00137 * dz
    bottom = float(np.quantile(z, 0.15)) - 0.00113 * dz
    corners = tuple(Corner(f"J{i + 1}", n, e) for i, (e, n) in enumerate(en))
    lic = Licence(
        mine_name="corpus",
        licence_no="C-1",
        epsg=4545,
        zone_prefix=None,
        blocks=(Block("1", corners, top, bottom),),
        tolerance_m=0.01 * max(w, h),
        tolerance_z_m=0.01 * dz,
    )
    return lic, shapely.Polygon(en)


def _independent(lic: Licence, poly: shapely.Polygon, xyz: np.ndarray) -> dict[str, np.ndarray]:
    """Exceedances (positive beyond) and status by shapely and numpy."""
    pts = shapely.points(xyz[:, 0], xyz[:, 1])
    inside = shapely.covers(poly, pts)
    dist = shapely.distance(poly.exterior, pts)
    plan = np.where(inside, -dist, dist)
    block = lic.blocks[0]
    above = xyz[:, 2] - block.z_top
    below = block.z_bottom - xyz[:, 2]
    violated = (plan > lic.tolerance_m) | (above > lic.tolerance_z_m) | (below > lic.tolerance_z_m)
    beyond = (plan > 0) | (above > 0) | (below > 0)
    status = np.where(violated, VIOLATION, np.where(beyond, UNCERTAIN, COMPLIANT))
    return {"plan": plan, "above": above, "below": below, "status": status}


def _same_points(mine: np.ndarray, ref: np.ndarray, ordered: bool) -> None:
    if not ordered:
        mine = mine[np.lexsort(mine.T[::-1])]
        ref = ref[np.lexsort(ref.T[::-1])]
    assert mine.shape == ref.shape
    np.testing.assert_allclose(mine, ref, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("name", sorted(FILES))
def test_corpus_file_checked_exactly(name: str) -> None:
    path = CORPUS / name
    ref = FILES[name](path)
    lic, poly = _licence_around(ref)
    data = read_survey(path, licence=lic)
    _same_points(data.xyz, ref, ordered=not name.lower().endswith(".stl"))

    ind = _independent(lic, poly, ref)
    got = classify(lic, ref)
    np.testing.assert_array_equal(got.status, ind["status"])
    out = ind["plan"] > 0
    np.testing.assert_allclose(got.plan_dist[out], ind["plan"][out], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got.above, ind["above"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got.below, ind["below"], rtol=0, atol=1e-9)
    # the licence cuts through the file: some points in, some beyond
    assert (ind["status"] == VIOLATION).any()
    assert (ind["status"] == COMPLIANT).any() or len(np.unique(ref, axis=0)) < 10

    result = check_files(lic, [path])
    groups = result.incidents + result.uncertain
    exceed = {
        ViolationType.BOUNDARY: ind["plan"],
        ViolationType.ABOVE_RANGE: ind["above"],
        ViolationType.BELOW_RANGE: ind["below"],
    }
    for vtype, values in exceed.items():
        mine = [g for g in groups if g.type is vtype]
        worst = max((g.max_exceedance_m for g in mine), default=0.0)
        assert worst == pytest.approx(max(float(values.max()), 0.0), rel=1e-9, abs=1e-9), vtype
        if path.suffix.lower() not in MESHES:  # meshes add surface samples
            assert sum(g.point_count for g in mine) == int((values > 0).sum()), vtype
    assert result.verdict == "violations found"


REFUSED = {
    # LASzip's own test files from 2011 (pointwise, LASzip 1.x)
    "laszip_broken_type.laz": "old pointwise variant (LASzip compressor 1",
    "laszip_broken_compressor.laz": "compressor 16, which LASzip does not define",
    "libe57_ZeroPoints.e57": "no points (empty scan)",
    "libe57_bad-crc.e57": "checksum mismatch",
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_corpus_damaged_or_empty_file_is_named_quietly(
    name: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """Refused in words, with nothing from the libraries on stderr."""
    with pytest.raises(SurveyInputError) as info:
        read_survey(CORPUS / name)
    assert REFUSED[name] in str(info.value)
    assert "chunk table" not in str(info.value)
    assert capfd.readouterr().err == ""


def test_corpus_pcd_binary_compressed_is_read() -> None:
    """PCL's default ``binary_compressed`` (LZF, fields one after the
    other). ``canny.pcd`` is an image as a cloud: its points must be the
    256 x 256 pixel grid (x = column, y = row, from 1; z = 0), a known
    answer no decoder bug keeps; ``milk.pcd`` is a scanned carton."""
    grid = read_survey(CORPUS / "pcl_canny.pcd").xyz
    col, row = np.meshgrid(np.arange(1.0, 257.0), np.arange(1.0, 257.0))
    expect = np.column_stack([col.ravel(), row.ravel(), np.zeros(256 * 256)])
    np.testing.assert_array_equal(grid, expect)
    milk = read_survey(CORPUS / "pcl_milk.pcd").xyz
    assert milk.shape == (13_704, 3)
    assert float(np.ptp(milk, axis=0).max()) < 0.3  # a carton, not noise


@pytest.mark.parametrize(
    ("cut", "words"),
    [(-5000, "truncated or damaged"), (None, "does not unpack to the size it announces")],
)
def test_pcd_binary_compressed_damaged(tmp_path: Path, cut: int | None, words: str) -> None:
    blob = bytearray((CORPUS / "pcl_milk.pcd").read_bytes())
    if cut is not None:
        blob = blob[:cut]
    else:  # a back reference reaching before the start of the output
        pos = blob.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n") + 8
        blob[pos : pos + 2] = bytes([0xE0, 0xFF])
    p = tmp_path / "milk.pcd"
    p.write_bytes(bytes(blob))
    with pytest.raises(SurveyInputError, match=words):
        read_survey(p)


def test_corpus_2d_dxf_is_read_with_its_notes() -> None:
    """trimesh's ``types.dxf``: lines and polylines at height 0, an arc and
    a circle (not read)."""
    data = read_survey(CORPUS / "trimesh_types.dxf")
    assert data.xyz.shape[0] > 0 and not data.xyz[:, 2].any()
    notes = " | ".join(data.notes)
    assert "DXF entities not read: 1 ARC, 1 CIRCLE" in notes
    assert "every DXF height is 0" in notes


def test_corpus_sources_name_every_file() -> None:
    sources = (CORPUS / "SOURCES.md").read_text(encoding="utf-8")
    files = sorted(p.name for p in CORPUS.iterdir() if p.is_file() and p.name != "SOURCES.md")
    assert [f for f in files if f"`{f}`" not in sources] == []
    assert set(files) == set(FILES) | set(REFUSED) | {
        "trimesh_types.dxf",
        "pcl_canny.pcd",
        "pcl_milk.pcd",
    }
    assert sum(p.stat().st_size for p in CORPUS.rglob("*")) < 3_000_000
    assert all(p.stat().st_size < 500_000 for p in CORPUS.rglob("*"))


def test_lzf_compiled_and_python_loops_agree() -> None:
    """The numba loop (files from 1 MiB) gives the Python loop's bytes."""
    from survey.readers import lzf

    if lzf._decode_jit is None:
        pytest.skip("numba is not installed")
    blob = (CORPUS / "pcl_milk.pcd").read_bytes()
    pos = blob.index(b"DATA binary_compressed\n") + len(b"DATA binary_compressed\n")
    packed, size = (int(v) for v in np.frombuffer(blob, "<u4", 2, pos))
    src = np.frombuffer(blob, np.uint8, packed, pos + 8)
    a, b = np.empty(size, np.uint8), np.empty(size, np.uint8)
    assert lzf._decode(src, a) == size == lzf._decode_jit(src, b)
    np.testing.assert_array_equal(a, b)
    assert lzf._decode_jit(src[:-7], b) == -1  # cut short: damaged, not garbage

"""The project's face (memorytalker.face): ICT-FaceKit reader, ARKit names, the shipped asset, posing, fitting,
and rendering it with its parts and colours."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import SHARED_DATA, shared_file

from memorytalker.errors import MemoryTalkerError, TopologyError
from memorytalker.face import arkit
from memorytalker.face.ictfacekit import NUM_VERTICES, FaceKitError, FaceXModel, read_obj, read_obj_vertices
from memorytalker.face.model import PART_ORDER, FaceAssetError, FaceModel, default_asset_path
from memorytalker.topology import inner_lip_gap
from memorytalker.topology.lips import boundary_loops

SUBSET_SHAPES = ("jawOpen", "mouthClose", "mouthFunnel", "mouthPucker")


@pytest.fixture(scope="module")
def face() -> FaceModel:
    return FaceModel.load()


@pytest.fixture(scope="module")
def subset() -> FaceXModel:
    shared_file("ictfacekit", "FaceXModel", "generic_neutral_mesh.obj")
    return FaceXModel(SHARED_DATA / "ictfacekit" / "FaceXModel")


def _naive_v_lines(path) -> np.ndarray:
    """Reference reader: every line starting with 'v ' in file order, three floats."""
    rows = []
    with open(path) as fh:
        for line in fh:
            if line.startswith("v "):
                rows.append([float(t) for t in line.split()[1:4]])
    return np.asarray(rows)


def _arkit_weights(**named: float) -> np.ndarray:
    w = np.zeros(arkit.NUM_ARKIT, dtype=np.float32)
    for k, v in named.items():
        w[arkit.ARKIT_NAMES.index(k)] = v
    return w


# ------------------------------------------------------------------------------------------ reader
def test_reader_keeps_vertex_order_and_count_of_the_distribution(subset):
    folder = subset.folder
    assert subset.num_vertices == NUM_VERTICES == 26719
    np.testing.assert_array_equal(subset.neutral, _naive_v_lines(folder / "generic_neutral_mesh.obj"))
    jaw = subset.shape("jawOpen")
    np.testing.assert_array_equal(jaw, _naive_v_lines(folder / "jawOpen.obj"))
    # 26,384 polygons, 548 triangles and 25,836 quads (2 triangles each), 12 materials
    assert subset.mesh.num_polygons == 26384
    assert subset.mesh.triangles.shape == (548 + 2 * 25836, 3)
    assert len(subset.mesh.materials) == 12 and subset.mesh.materials[0] == "M_Face"
    subset.check_parts()
    assert subset.available_expressions() == list(SUBSET_SHAPES)
    assert subset.identity_names == ["identity000"]
    assert len(subset.expression_names) == 53
    assert subset.landmarks.shape == (68,)


def test_reader_deltas_of_the_shared_subset(subset):
    jaw = subset.delta("jawOpen")
    np.testing.assert_allclose(jaw, subset.shape("jawOpen") - subset.neutral)
    mag = np.linalg.norm(jaw, axis=1)
    assert 4.1 < mag.max() < 4.3  # cm: the jaw drops about 4.2 cm
    assert mag[subset.neutral[:, 1] > 8].max() < 0.02  # the top of the head (y > 8 cm) stays (< 0.2 mm)
    ident = np.linalg.norm(subset.delta("identity000"), axis=1)
    assert (ident > 0).all() and 1.4 < ident.max() < 1.6  # an identity mode moves the whole head
    stacked = subset.deltas(["mouthClose", "mouthPucker"])
    assert stacked.shape == (2, NUM_VERTICES, 3)
    np.testing.assert_array_equal(stacked[1], subset.delta("mouthPucker"))


def test_read_obj_triangulates_polygons_and_resolves_negative_indices(tmp_path):
    path = tmp_path / "m.obj"
    path.write_text(
        "# comment\nv 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\nv 2 0 0\nvt 0 0\nusemtl A\nf 1/1 2/1 3/1 4/1\n"
        "usemtl B\nf -4 -3 -1\nf 1//1 2//1 3//1 4//1 5//1\n"
    )
    mesh = read_obj(path)
    np.testing.assert_array_equal(
        mesh.triangles, [[0, 1, 2], [0, 2, 3], [1, 2, 4], [0, 1, 2], [0, 2, 3], [0, 3, 4]]
    )
    np.testing.assert_array_equal(mesh.triangle_polygon, [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(mesh.polygon_material, [0, 1, 1])
    assert mesh.materials == ("A", "B")


def test_reader_fails_loudly_naming_the_file(tmp_path):
    with pytest.raises(FaceKitError, match="not found"):
        FaceXModel(tmp_path / "nowhere")
    bad = tmp_path / "bad.obj"
    bad.write_text("v 0 0 0\nv 1 x 0\n")
    with pytest.raises(FaceKitError, match=r"bad\.obj:2"):
        read_obj_vertices(bad)
    short = tmp_path / "short.obj"
    short.write_text("v 0 0\n")
    with pytest.raises(FaceKitError, match=r"short\.obj:1.*x y z"):
        read_obj_vertices(short)
    out_of_range = tmp_path / "f.obj"
    out_of_range.write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 9\n")
    with pytest.raises(FaceKitError, match=r"f\.obj:4.*out of range"):
        read_obj(out_of_range)
    with pytest.raises(FaceKitError, match="no vertices"):
        (tmp_path / "empty.obj").write_text("# nothing\n")
        read_obj_vertices(tmp_path / "empty.obj")
    # a folder with a neutral of the right size: a missing index file, then a shape of another vertex count
    folder = tmp_path / "FaceXModel"
    folder.mkdir()
    (folder / "generic_neutral_mesh.obj").write_text("v 0 0 0\n" * NUM_VERTICES + "f 1 2 3\n")
    with pytest.raises(FaceKitError, match="vertex_indices.json"):
        FaceXModel(folder)
    (folder / "vertex_indices.json").write_text("{not json")
    with pytest.raises(FaceKitError, match="cannot read .*vertex_indices.json"):
        FaceXModel(folder)
    (folder / "vertex_indices.json").write_text(json.dumps({"expressions": ["jawOpen"]}))
    model = FaceXModel(tmp_path)  # the parent folder is accepted too
    (folder / "jawOpen.obj").write_text("v 0 0 0\n" * 10)
    with pytest.raises(FaceKitError, match=rf"jawOpen\.obj has 10 vertices .* {NUM_VERTICES}"):
        model.shape("jawOpen")
    with pytest.raises(FaceKitError, match=r"mouthClose\.obj"):
        model.delta("mouthClose")
    (folder / "generic_neutral_mesh.obj").write_text("v 0 0 0\n" * 5)
    with pytest.raises(FaceKitError, match="has 5 vertices"):
        FaceXModel(folder)
    assert issubclass(FaceKitError, MemoryTalkerError)


# ------------------------------------------------------------------------------------------ ARKit names
def test_arkit_names_and_live_link_order():
    names = arkit.ARKIT_NAMES
    assert len(names) == len(set(names)) == 52
    assert names[:2] == ("eyeBlinkLeft", "eyeLookDownLeft") and names[7] == "eyeBlinkRight"
    assert names[17] == "jawOpen" and names[18] == "mouthClose" and names[-1] == "tongueOut"
    assert arkit.LIVE_LINK_NAMES[0] == "EyeBlinkLeft" and arkit.LIVE_LINK_NAMES[-1] == "TongueOut"
    header = arkit.live_link_header()
    assert header[:3] == ["Timecode", "BlendShapeCount", "EyeBlinkLeft"] and len(header) == 2 + 52 + 9
    assert header[-1] == "RightEyeRoll"


def test_ict_names_map_onto_51_of_the_52_arkit_shapes(face):
    ict = face.expression_names
    assert len(ict) == 53
    assert arkit.ict_to_arkit_name("eyeBlink_L") == "eyeBlinkLeft"
    assert arkit.ict_to_arkit_name("mouthSmile_R") == "mouthSmileRight"
    assert (
        arkit.ict_to_arkit_name("browInnerUp_L") == arkit.ict_to_arkit_name("browInnerUp_R") == "browInnerUp"
    )
    assert arkit.ict_to_arkit_name("cheekPuff_R") == "cheekPuff"
    assert arkit.ict_to_arkit_name("jawOpen") == "jawOpen"
    covered = arkit.arkit_coverage(ict)
    assert len(covered) == 51 and set(arkit.ARKIT_NAMES) - set(covered) == {"tongueOut"}
    m = face.arkit_matrix
    assert m.shape == (53, 52)
    np.testing.assert_array_equal(m.sum(1), 1)  # each ICT shape drives one ARKit shape
    counts = dict(zip(arkit.ARKIT_NAMES, m.sum(0)))
    assert counts["browInnerUp"] == counts["cheekPuff"] == 2 and counts["tongueOut"] == 0
    assert {k for k, c in counts.items() if c == 1} == set(covered) - {"browInnerUp", "cheekPuff"}
    # ARKit -> ICT weights and back (split pairs averaged)
    w = np.random.default_rng(0).uniform(size=52).astype(np.float32)
    ict_w = face.arkit_to_expression(w)
    assert ict_w[ict.index("browInnerUp_L")] == ict_w[ict.index("browInnerUp_R")] == w[43]
    back = face.expression_to_arkit(ict_w)
    w[-1] = 0  # tongueOut is not observable
    np.testing.assert_allclose(back, w, atol=1e-6)
    with pytest.raises(TopologyError, match="maps onto no ARKit"):
        arkit.ict_to_arkit_name("tongueRoll_L")
    with pytest.raises(TopologyError, match="all map onto ARKit 'jawOpen'"):
        arkit.arkit_to_ict_matrix(["jawOpen", "jawOpen"])


def test_left_shapes_move_the_faces_own_left_which_is_plus_x(face):
    """ARKit's Left is the face's own left (+x when +z faces the viewer); so are ICT's _L shapes."""
    v = face.num_animated
    checked = 0
    for k, name in enumerate(face.expression_names):
        if name[-2:] not in ("_L", "_R"):
            continue
        mag = np.linalg.norm(face.expression_basis[k, :v], axis=1)
        moved = mag > 0.5 * mag.max()
        side = float(np.average(face.neutral[:v][moved, 0], weights=mag[moved]))
        assert (side > 0) == (name.endswith("_L")), (name, side)
        checked += 1
    assert checked == 40


# ------------------------------------------------------------------------------------------ the asset
def test_shipped_asset_loads_and_is_small_with_its_licence(face):
    path = default_asset_path()
    assert path.stat().st_size < 15e6
    notice = (path.parent / "LICENSE-ICT-FaceKit.txt").read_text()
    assert "MIT License" in notice and "USC Institute for Creative Technologies" in notice
    info = face.info
    assert (
        info["vertices"]["animated"] == face.num_animated and info["vertices"]["total"] == face.num_vertices
    )
    assert 3000 <= face.num_animated <= 6000
    assert face.num_expressions == 53 and face.num_identities == 100
    assert list(face.parts) == list(PART_ORDER)
    assert face.expression_basis.shape == (53, face.num_vertices, 3)
    assert face.identity_basis.shape == (100, face.num_vertices, 3)
    assert face.vertex_colours.shape == (face.num_vertices, 3)
    assert 0 <= face.vertex_colours.min() and face.vertex_colours.max() <= 1


def test_asset_topology_regions_and_parts(face):
    topo = face.topology
    v = face.num_animated
    assert topo.num_vertices == v and np.array_equal(topo.vertices, face.neutral[:v])
    assert np.array_equal(np.unique(topo.faces), np.arange(v))  # every vertex is used by a triangle
    for name in (
        "lips",
        "upper_face",
        "upper_lip_inner",
        "lower_lip_inner",
        "eyelids",
        "eyelid_left",
        "eyelid_right",
        "jaw",
        "nose",
        "forehead",
        "eye_region",
        "face",
        "head_neck",
        "rigid",
    ):
        assert topo.region(name).size > 0, name
    assert np.isin(topo.region("upper_lip_inner"), topo.lips).all()
    assert np.isin(topo.region("lower_lip_inner"), topo.lips).all()
    # four openings: the mouth (to the mouth socket), two eyes (to the eye sockets), the neck
    loops = boundary_loops(topo.faces, v)
    assert len(loops) == 4
    assert np.array_equal(
        np.sort(np.concatenate(loops)),
        np.sort(
            np.concatenate(
                [
                    topo.region(r)
                    for r in ("mouth_boundary", "eye_boundary_left", "eye_boundary_right", "neck_boundary")
                ]
            )
        ),
    )
    # axes: +y up, mouth width along x
    assert topo.axes.up == 1 and topo.axes.up_sign == 1 and topo.axes.width == 0
    # the parts partition the vertices; sockets may use the face's seam vertices, nothing else is shared
    owned = np.concatenate([p.vertices for p in face.parts.values()])
    assert np.array_equal(np.sort(owned), np.arange(face.num_vertices))
    for p in face.parts.values():
        foreign = np.setdiff1d(np.unique(p.faces), p.vertices)
        if p.name in ("mouth_socket", "eye_socket"):
            assert foreign.size and foreign.max() < v
        else:
            assert foreign.size == 0, p.name
    assert face.landmarks.shape == (68,) and face.landmarks.max() < v
    assert face.faces.shape[0] == sum(len(p.faces) for p in face.parts.values())


def test_asset_keeps_correspondence_with_the_distribution(face, subset):
    src = face.source_index
    assert len(np.unique(src)) == len(src) and src.max() < NUM_VERTICES
    np.testing.assert_allclose(face.neutral, subset.neutral[src] / 100.0, atol=1e-7)
    tol = 2e-6  # m: the int16 storage error is below 1 micrometre (build_info), float32 adds less
    for name in SUBSET_SHAPES:
        k = face.expression_names.index(name)
        np.testing.assert_allclose(
            face.expression_basis[k], subset.delta(name)[src] / 100.0, atol=tol, rtol=0
        )
    np.testing.assert_allclose(
        face.identity_basis[0], subset.delta("identity000")[src] / 100.0, atol=tol, rtol=0
    )
    # the landmarks are the distribution's
    np.testing.assert_array_equal(src[face.landmarks], subset.landmarks)
    assert face.info["storage_error_mm"]["expression_max"] < 1e-3


def test_posing_is_linear_in_weights_and_identity(face):
    rng = np.random.default_rng(1)
    k, i = face.num_expressions, face.num_identities
    w1, w2 = rng.uniform(size=(2, k)).astype(np.float32)
    c = rng.standard_normal(i).astype(np.float32)
    np.testing.assert_allclose(face.pose(np.zeros(k)), face.neutral)
    both = face.pose(np.stack([w1, w2, 2 * w1 - w2]), identity=c)
    assert both.shape == (3, face.num_vertices, 3)
    base = face.identity_neutral(c)
    np.testing.assert_allclose(both[2] - base, 2 * (both[0] - base) - (both[1] - base), atol=2e-6)
    naive = face.neutral.astype(np.float64) + np.einsum("i,inc->nc", c, face.identity_basis)
    naive += np.einsum("k,knc->nc", w1, face.expression_basis)
    np.testing.assert_allclose(both[0], naive, atol=2e-6)
    # the first I' identity modes only
    np.testing.assert_allclose(
        face.identity_neutral(c[:3]),
        face.neutral + np.tensordot(c[:3], face.identity_basis[:3], 1),
        atol=1e-7,
    )
    # ARKit's browInnerUp drives both ICT halves
    names = face.expression_names
    w = np.zeros(k, np.float32)
    w[[names.index("browInnerUp_L"), names.index("browInnerUp_R")]] = 0.7
    np.testing.assert_allclose(face.pose_arkit(_arkit_weights(browInnerUp=0.7)), face.pose(w), atol=1e-7)
    assert face.arkit_basis.shape == (52, face.num_vertices, 3) and not face.arkit_basis[-1].any()
    np.testing.assert_array_equal(face.animated(both), both[:, : face.num_animated])
    with pytest.raises(FaceAssetError, match="K = 53"):
        face.pose(np.zeros(52))
    with pytest.raises(FaceAssetError, match="end in 52"):
        face.pose_arkit(np.zeros(53))
    with pytest.raises(FaceAssetError, match="101 identity coefficients"):
        face.identity_neutral(np.zeros(101))


def test_fit_identity_recovers_known_coefficients(face):
    rng = np.random.default_rng(2)
    c = rng.standard_normal(face.num_identities).astype(np.float32)
    target = face.identity_neutral(c)[: face.num_animated]
    np.testing.assert_allclose(face.fit_identity(target), c, atol=2e-3)
    few = face.fit_identity(face.identity_neutral(c[:10])[: face.num_animated], num_identities=10)
    np.testing.assert_allclose(few, c[:10], atol=1e-3)
    # on a region only, with a little ridge: still close
    ridge = face.fit_identity(target, regularization=1e-8, region=face.topology.region("face"))
    np.testing.assert_allclose(ridge, c, atol=0.05)
    with pytest.raises(FaceAssetError, match=rf"\({face.num_animated}, 3\)"):
        face.fit_identity(face.neutral)
    with pytest.raises(FaceAssetError, match="num_identities"):
        face.fit_identity(target, num_identities=0)


def test_inner_lip_contours_follow_jaw_and_mouth_close(face):
    """The named contours are where the lips meet (not the mouth socket seam): about 1 mm apart at rest,
    wide apart with jawOpen, and mouthClose brings them back together over the open jaw."""
    topo = face.topology
    inner = topo.inner_lips
    assert face.neutral[inner.mid_upper, 1] > face.neutral[inner.mid_lower, 1]  # upper above lower
    assert abs(face.neutral[inner.mid_upper, 0]) < 1e-3 and abs(face.neutral[inner.mid_lower, 0]) < 1e-3
    closes = np.linspace(0, 1, 5)
    weights = np.stack([_arkit_weights(jawOpen=1.0, mouthClose=float(m)) for m in closes])
    gaps = inner_lip_gap(face.animated(face.pose_arkit(np.vstack([_arkit_weights(), weights]))), topo) * 1000
    assert 0 < gaps[0] < 2  # mm, neutral
    assert gaps[1] > 25  # jaw open
    assert np.all(np.diff(gaps[1:]) < 0)  # mouthClose closes
    crossing = np.interp(0, gaps[1:][::-1], closes[::-1])
    assert 0.6 < crossing < 1.0  # the lips touch at mouthClose ~ 0.86 with jawOpen 1


def test_asset_load_errors(tmp_path, face):
    with pytest.raises(FaceAssetError, match="not found"):
        FaceModel.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(FaceAssetError, match="cannot read"):
        FaceModel.load(tmp_path / "junk.npz")
    with np.load(default_asset_path(), allow_pickle=False) as data:
        state = {k: data[k] for k in data.files}
    broken = dict(state, format=np.array("other/1"))
    np.savez(tmp_path / "fmt.npz", **broken)
    with pytest.raises(FaceAssetError, match=r"fmt\.npz.*format 'other/1'"):
        FaceModel.load(tmp_path / "fmt.npz")
    del state["identity_q"]
    np.savez(tmp_path / "part.npz", **state)
    with pytest.raises(FaceAssetError, match=r"part\.npz.*identity_q"):
        FaceModel.load(tmp_path / "part.npz")


# ------------------------------------------------------------------------------------------ rendering
def _pixel(img, camera, point, size):
    m = camera.projection_matrix(1.0) @ camera.view_matrix()
    p = m @ np.r_[point, 1.0]
    x, y = (p[0] / p[3] + 1) / 2 * size, (1 - p[1] / p[3]) / 2 * size
    return img[int(y), int(x)].astype(int)


def test_rendered_face_has_a_mouth_inside_and_eyes(face):
    from memorytalker.render.camera import frame_vertices
    from memorytalker.render.gl import BACKGROUND, MeshRenderer

    size = 160
    cam = frame_vertices(face.neutral[face.topology.region("narrow_face")], margin=1.2)
    open_mouth = face.pose_arkit(_arkit_weights(jawOpen=1.0))
    with MeshRenderer(
        face.faces, face.num_vertices, cam, size=size, samples=0, colours=face.vertex_colours
    ) as r:
        img = r.render(open_mouth)
        neutral = r.render(face.neutral)
    with MeshRenderer(face.topology.faces, face.num_animated, cam, size=size, samples=0) as r:
        skin_only = r.render(face.animated(open_mouth))
    inner = face.topology.inner_lips
    mouth = 0.5 * (open_mouth[inner.mid_upper] + open_mouth[inner.mid_lower])
    bg = np.asarray(BACKGROUND)
    skin = neutral[(neutral != bg).any(-1)].astype(int).mean(0)  # mean colour of the face
    inside = _pixel(img, cam, mouth, size)
    through = _pixel(skin_only, cam, mouth, size)  # the face alone: the inside of the back of the head
    assert not (inside == bg).all()  # with the parts the mouth has an inside
    assert inside.sum() < 0.7 * through.sum()
    assert inside.sum() < 0.8 * skin.sum() and inside[0] > inside[2]  # darker than skin, reddish
    for side in ("left", "right"):
        eye = face.parts["eyeball"].vertices
        eye = eye[(face.neutral[eye, 0] > 0) == (side == "left")]
        front = eye[np.argmax(face.neutral[eye, 2])]  # the pupil
        pupil = _pixel(neutral, cam, face.neutral[front], size)
        assert not (pupil == bg).all() and pupil.sum() < 0.5 * skin.sum()  # an eye, dark in the middle


def test_renderer_checks_vertex_colours():
    from test_render_meshes import sphere_head

    from memorytalker.render import RenderError, render_image

    topo = sphere_head(subdivisions=2)
    n = topo.num_vertices
    plain = render_image(topo.vertices, topo.faces, size=64)
    from memorytalker.render.gl import ALBEDO

    same = render_image(topo.vertices, topo.faces, size=64, colours=np.tile(ALBEDO, (n, 1)))
    np.testing.assert_array_equal(plain, same)  # the default is the one albedo
    red = np.tile([0.8, 0.1, 0.1], (n, 1))
    img = render_image(topo.vertices, topo.faces, size=64, colours=red)
    fg = (img != 255).any(-1)
    assert (img[fg, 0].astype(int) > img[fg, 2].astype(int) + 40).mean() > 0.9
    with pytest.raises(RenderError, match=rf"\({n}, 3\)"):
        render_image(topo.vertices, topo.faces, size=64, colours=red[:-1])
    with pytest.raises(RenderError, match=r"\[0, 1\]"):
        render_image(topo.vertices, topo.faces, size=64, colours=red * 2)

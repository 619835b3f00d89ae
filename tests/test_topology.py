"""FaceTopology: real FLAME/BIWI files (skipped when ../shared/data is absent) and hand-made region files."""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import trimesh
from conftest import dump_py2_pickle, shared_file

from memorytalker.errors import TopologyError
from memorytalker.topology import (
    FaceTopology,
    RegionDuplicatesWarning,
    biwi_topology,
    read_region_file,
    resolve_region,
    vocaset_topology,
)


# ----------------------------------------------------------------------------------- real reference files
def test_flame_masks_pickle_needs_latin1_and_has_known_counts():
    path = shared_file("flame", "FLAME_masks.pkl")
    with open(path, "rb") as fh, pytest.raises(UnicodeDecodeError):
        pickle.load(fh)  # a Python-2 pickle: only latin1 reads it
    masks = read_region_file(path)
    assert len(masks["lips"]) == 254 and len(np.unique(masks["lips"])) == 250
    assert len(masks["forehead"]) == 133 and len(masks["eye_region"]) == 751


def test_vocaset_topology_from_real_files():
    mesh, masks = shared_file("flame", "FLAME_sample.ply"), shared_file("flame", "FLAME_masks.pkl")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        topo = vocaset_topology(mesh, masks)
    dup = [w for w in caught if issubclass(w.category, RegionDuplicatesWarning)]
    assert len(dup) == 1 and "254 entries, 250 unique" in str(dup[0].message)  # reported exactly once
    assert topo.num_vertices == 5023 and len(topo.faces) == 9976 and topo.fps == 30
    assert len(topo.lips) == 250 and len(topo.upper_face) == 827  # forehead ∪ eye_region
    assert len(topo.region("nose")) == 379


def test_lips_coordinates_npy_is_the_flame_lips_array():
    lips = read_region_file(shared_file("flame", "lips_coordinates.npy"))
    masks = read_region_file(shared_file("flame", "FLAME_masks.pkl"))
    np.testing.assert_array_equal(lips, masks["lips"])


def test_biwi_topology_from_real_files():
    topo = biwi_topology(
        shared_file("biwi", "BIWI.ply"), shared_file("biwi", "lve.txt"), shared_file("biwi", "fdd.txt")
    )
    assert topo.num_vertices == 23370 and topo.fps == 25
    assert len(topo.lips) == 4996 and len(topo.upper_face) == 7784


def test_real_topology_survives_save_and_load(tmp_path):
    mesh, masks = shared_file("flame", "FLAME_sample.ply"), shared_file("flame", "FLAME_masks.pkl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RegionDuplicatesWarning)
        topo = vocaset_topology(mesh, masks)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # reloading de-duplicated regions warns no more
        back = FaceTopology.load(topo.save(tmp_path / "topology.npz"))
    np.testing.assert_array_equal(back.vertices, topo.vertices)
    np.testing.assert_array_equal(back.faces, topo.faces)
    assert back.fps == 30 and back.name == "flame" and set(back.regions) == set(topo.regions)
    np.testing.assert_array_equal(back.lips, topo.lips)


# ----------------------------------------------------------------------------------- hand-made files
@pytest.fixture
def mesh_file(tmp_path):
    verts = np.random.default_rng(0).normal(size=(20, 3))
    faces = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 19]])
    path = tmp_path / "m.ply"
    trimesh.Trimesh(verts, faces, process=False).export(path)
    return path, verts.astype(np.float32), faces


def test_mesh_keeps_vertex_order(mesh_file, tmp_path):
    path, verts, faces = mesh_file
    topo = FaceTopology.from_files(path, {"lips": [1, 2], "upper_face": [3]}, fps=30)
    np.testing.assert_allclose(topo.vertices, verts, atol=1e-6)
    np.testing.assert_array_equal(topo.faces, faces)
    assert topo.num_vertices == 20 and topo.name == "m"


@pytest.mark.parametrize("kind", ["npy", "txt", "pkl"])
def test_region_file_forms(kind, tmp_path, mesh_file):
    lips = np.array([3, 1, 2])
    path = tmp_path / f"lips.{kind}"
    if kind == "npy":
        np.save(path, lips)
    elif kind == "txt":
        path.write_text("3, 1,\n 2\n")
    else:
        dump_py2_pickle(path, {"lips": lips, "upper": np.array([7, 8])})
        path = f"{path}:lips"
    topo = FaceTopology.from_files(mesh_file[0], {"lips": path, "upper_face": [5]}, fps=25)
    assert topo.lips.tolist() == [1, 2, 3]


def test_union_of_pickle_regions(tmp_path, mesh_file):
    dump_py2_pickle(tmp_path / "masks.pkl", {"a": np.array([1, 2, 3]), "b": np.array([3, 4])})
    region = resolve_region(["masks.pkl:a", "masks.pkl:b"], base_dir=tmp_path)
    assert region.tolist() == [1, 2, 3, 4]  # overlap between parts is expected, not reported


def test_duplicates_are_reported_once(mesh_file):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        topo = FaceTopology.from_files(mesh_file[0], {"lips": [4, 4, 5, 5, 6], "upper_face": [1]}, fps=30)
    msgs = [str(w.message) for w in caught if issubclass(w.category, RegionDuplicatesWarning)]
    assert len(msgs) == 1 and "2 duplicate" in msgs[0] and "'lips'" in msgs[0]
    assert topo.lips.tolist() == [4, 5, 6]


@pytest.mark.parametrize(
    ("lips", "match"),
    [
        ([1, 20], r"out of range \[0, 20\)"),
        ([-1, 2], "out of range"),
        ([], "empty"),
        ([1.5, 2.0], "integers"),
        (np.array([True, False]), "integers"),
    ],
)
def test_bad_indices_are_refused(mesh_file, lips, match):
    with pytest.raises(TopologyError, match=match):
        FaceTopology.from_files(mesh_file[0], {"lips": np.asarray(lips), "upper_face": [1]}, fps=30)


def test_bad_region_files(tmp_path, mesh_file):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "words.txt").write_text("1, 2, three")
    (tmp_path / "junk.pkl").write_bytes(b"\x00not a pickle")
    np.save(tmp_path / "floats.npy", np.array([0.5, 1.0]))
    dump_py2_pickle(tmp_path / "masks.pkl", {"lips": np.array([1, 2])})
    cases = {
        "empty.txt": "empty",
        "words.txt": "not a list of integers",
        "junk.pkl": "cannot read region file",
        "floats.npy": "integers",
        "masks.pkl": r"name one as 'masks.pkl:<key>'",
        "masks.pkl:nose": "has no region 'nose'",
        "missing.npy": "region file not found",
        "floats.npy:x": "not found",
    }
    for src, match in cases.items():
        with pytest.raises(TopologyError, match=match):
            resolve_region(src, base_dir=tmp_path, name="lips")


def test_required_regions_and_vertex_checks(mesh_file):
    path = mesh_file[0]
    with pytest.raises(TopologyError, match="upper_face"):
        FaceTopology.from_files(path, {"lips": [1]}, fps=30)
    with pytest.raises(TopologyError, match="fps"):
        FaceTopology.from_files(path, {"lips": [1], "upper_face": [2]}, fps=0)
    with pytest.raises(TopologyError, match="mesh file not found"):
        FaceTopology.from_files(path.with_name("nope.ply"), {"lips": [1], "upper_face": [2]}, fps=30)
    topo = FaceTopology.from_files(path, {"lips": [1], "upper_face": [2]}, fps=30)
    topo.check_vertices(np.zeros((4, 20, 3)))
    topo.check_vertices(np.zeros((4, 60)))
    with pytest.raises(TopologyError, match="got 19 vertices"):
        topo.check_vertices(np.zeros((4, 19, 3)))


def test_presets_name_missing_masks(tmp_path, mesh_file):
    dump_py2_pickle(tmp_path / "masks.pkl", {"lips": np.array([1, 2]), "forehead": np.array([3])})
    with pytest.raises(TopologyError, match="eye_region"):
        vocaset_topology(mesh_file[0], tmp_path / "masks.pkl")


def test_unreadable_topology_file(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip archive")
    with pytest.raises(TopologyError, match="cannot read topology file"):
        FaceTopology.load(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", name="x", vertices=np.zeros((3, 3)))
    with pytest.raises(TopologyError, match="partial.npz: topology state is missing"):
        FaceTopology.load(tmp_path / "partial.npz")
    with pytest.raises(TopologyError, match="not found"):
        FaceTopology.load(tmp_path / "nope.npz")

"""The remeshed topology (an unseen mesh for any-topology kinds) and the corpus script built on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fast_simplification", reason="the dev extra's fast-simplification remeshes")
pytest.importorskip("rtree", reason="the dev extra's rtree finds closest surface points")

from memorytalker.errors import TopologyError  # noqa: E402
from memorytalker.synth.head import head_topology  # noqa: E402
from memorytalker.topology.remesh import remesh_topology  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def head():
    return head_topology()


@pytest.fixture(scope="module")
def remeshed(head):
    return remesh_topology(head, 2500)


def test_new_mesh_is_another_mesh_of_the_same_surface(head, remeshed):
    import trimesh

    new = remeshed.topology
    assert new.num_vertices != head.num_vertices and abs(new.num_vertices - 2500) < 250
    # most new vertices are not vertices of the original (the subdivision's midpoints moved by the collapses)
    d = np.linalg.norm(new.vertices[:, None] - head.vertices[None], axis=-1).min(1)
    assert (d > 1e-6).mean() > 0.5
    # ...but they lie on its surface: the closest surface point is the vertex itself
    original = trimesh.Trimesh(head.vertices, head.faces, process=False)
    _, dist, _ = trimesh.proximity.closest_point(original, new.vertices)
    assert dist.max() < 1e-5
    assert new.faces.max() < new.num_vertices and len(np.unique(new.faces)) == new.num_vertices


def test_weights_are_barycentric_and_carry_affine_motion_exactly(head, remeshed):
    w = remeshed.weights
    assert w.shape == (remeshed.topology.num_vertices, head.num_vertices)
    assert np.all(np.diff(w.indptr) <= 3) and w.data.min() >= 0
    assert np.allclose(np.asarray(w.sum(1)).ravel(), 1.0)
    assert np.allclose(remeshed.transfer(head.vertices), remeshed.topology.vertices, atol=1e-6)
    # an affine motion of the original vertices is the same affine motion of the new ones (batched frames)
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 3, 3)) * 0.1, rng.normal(size=(2, 1, 3))
    frames = np.stack([head.vertices @ a[i] + b[i] for i in range(2)]).astype(np.float64)
    expected = np.stack([remeshed.topology.vertices @ a[i] + b[i] for i in range(2)])
    assert np.allclose(remeshed.transfer(frames), expected, atol=1e-6)
    with pytest.raises(TopologyError, match="expected"):
        remeshed.transfer(np.zeros((4, head.num_vertices + 1, 3)))


def test_regions_and_inner_lips_carry_over(head, remeshed):
    new = remeshed.topology
    for name in ("lips", "upper_face"):
        assert new.regions[name].size > 0
        centre_old = head.vertices[head.regions[name]].mean(0)
        centre_new = new.vertices[new.regions[name]].mean(0)
        assert np.linalg.norm(centre_old - centre_new) < 0.05 * np.ptp(head.vertices, axis=0).max()
    inner = new.inner_lips
    assert inner.upper.size > 0 and inner.lower.size > 0
    assert inner.mid_upper != inner.mid_lower  # two sides of the mouth opening (closed slit on this head)
    ref = head.inner_lips
    assert np.allclose(new.vertices[inner.mid_upper], head.vertices[ref.mid_upper], atol=1e-3)
    assert np.allclose(new.vertices[inner.mid_lower], head.vertices[ref.mid_lower], atol=1e-3)


def test_bad_targets_fail_clearly(head):
    with pytest.raises(TopologyError, match="target_vertices"):
        remesh_topology(head, 10**7)


def test_corpus_script_writes_a_checked_corpus(tmp_path, head, monkeypatch):
    """A tiny corpus on the procedural head whose frames are affine motions of its templates: the remeshed
    corpus holds the same affine motions of the remeshed templates, passes ``data check`` and keeps audio."""
    import pickle

    import yaml
    from training_data import make_learnable_dataset

    from memorytalker.cli import main as cli_main
    from memorytalker.data.layout import load_dataset

    src = make_learnable_dataset(tmp_path / "src")
    head.save(src / "topology.npz")
    rng = np.random.default_rng(1)
    templates = {
        s: head.vertices + rng.normal(scale=1e-3, size=head.vertices.shape)
        for s in ("spk00", "spk01", "spk02", "spk03", "spk04")
    }
    with open(src / "templates.pkl", "wb") as fh:
        pickle.dump({k: v.astype(np.float32) for k, v in templates.items()}, fh, protocol=2)
    shift = np.array([0.0, -1e-3, 5e-4])
    for f in sorted((src / "vertices_npy").glob("*.npy")):
        t = len(np.load(f))
        frames = templates[f.stem.split("_")[0]][None] + np.arange(t)[:, None, None] * shift
        np.save(f, frames.reshape(t, -1).astype(np.float32))
    manifest = yaml.safe_load((src / "dataset.yaml").read_text())
    manifest["num_vertices"] = head.num_vertices
    (src / "dataset.yaml").write_text(yaml.safe_dump(manifest))

    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import remesh_corpus

    out = tmp_path / "remeshed"
    assert (
        remesh_corpus.main([str(src), "--out", str(out), "--vertices", "2500", "--splits", "test", "val"])
        == 0
    )
    with pytest.raises(SystemExit):  # never overwrites
        remesh_corpus.main([str(src), "--out", str(out)])
    index = load_dataset(out)
    assert index.topology.num_vertices != head.num_vertices
    assert sorted(index.split_names) == ["test", "val"]
    assert cli_main(["data", "check", str(out)]) == 0
    original = load_dataset(src)
    for clip in index.clips("test"):
        got = index.load_vertices(clip)
        tpl = index.template(clip.subject)
        expected = tpl[None] + np.arange(len(got))[:, None, None] * shift
        assert np.allclose(got, expected, atol=1e-6)
        assert np.array_equal(index.load_audio(clip), original.load_audio(clip.clip_id))


def test_named_contours_map_each_lip_to_its_own_side(head):
    """Named contours (the project's face names them) map vertex by vertex to new vertices of the same lip:
    opening the mouth of the original opens the remeshed one by the same gap."""
    from memorytalker.topology import FaceTopology
    from memorytalker.topology.lips import inner_lip_gap

    inner = head.inner_lips
    named = FaceTopology(
        head.name,
        head.vertices,
        head.faces,
        head.fps,
        {**head.regions, "upper_lip_inner": inner.upper, "lower_lip_inner": inner.lower},
    )
    remeshed = remesh_topology(named, 2500)
    new = remeshed.topology
    assert set(new.regions["upper_lip_inner"]).isdisjoint(new.regions["lower_lip_inner"])
    # open the mouth: the lower lip region moves down by 4 mm
    frame = head.vertices.astype(np.float64).copy()
    up = head.vertices[:, new.axes.up] * new.axes.up_sign
    jaw = up < up[inner.mid_lower] - 1e-4
    jaw[inner.lower] = True
    frame[jaw, new.axes.up] -= 0.004 * new.axes.up_sign
    rest = np.stack([head.vertices.astype(np.float64), frame])
    before = np.diff(inner_lip_gap(rest, named))[0]
    after = np.diff(inner_lip_gap(remeshed.transfer(rest), new))[0]  # the opening, not the rest offset:
    assert before > 0.003 and abs(after - before) < 5e-4  # new contour vertices sit a little off the slit

"""The ``scantalk`` kind: its defining mechanisms (no weight depends on the mesh: the model is equivariant to
renumbering the vertices, animates a subdivided head of another vertex count like the head itself, and scales
with the mesh's size; the batch's topology picks the operators), the padded batch, and training on two
corpora of different topologies through the CLI, then evaluating and animating a topology it never saw."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_common import make_batch, select, tiny_topology
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.errors import ConfigError, TopologyError
from memorytalker.models.builders import build_model
from memorytalker.models.config import BackboneConfig, ModelConfig, ScanTalkConfig
from memorytalker.models.scantalk import ScanTalk, topology_from_mesh
from memorytalker.topology import FaceTopology

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug_scantalk.yaml"


def st_config(**scantalk) -> ModelConfig:
    s = dict(width=8, encoder_blocks=1, decoder_blocks=1, mlp_layers=1, lstm_layers=2, k_eig=16)
    s.update(scantalk)
    return ModelConfig(
        kind="scantalk",
        backbone=BackboneConfig(width=32, layers=1, heads=2, ffn=64, window=4, conv_layers=1, dropout=0.0),
        scantalk=ScanTalkConfig(**s),
        motion_scale=0.003,
    )


def st_model(topology: FaceTopology, seed: int = 0, topologies=None, **scantalk) -> ScanTalk:
    torch.manual_seed(seed)
    model = build_model(st_config(**scantalk), topology, topologies=topologies)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the zero-initialised output map would predict the template alone
        model.decoder.last.weight.copy_(torch.randn(model.decoder.last.weight.shape, generator=g))
        for net in (model.encoder, model.decoder):
            for block in net.blocks:
                block.diffusion.time.uniform_(1e-3, 3e-2, generator=g)
    return model.eval()


@pytest.fixture(scope="module")
def head() -> FaceTopology:
    from memorytalker.synth.head import head_topology

    return head_topology()


def audio(seconds: float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    batch = make_batch(tiny_topology(), [seconds], seed=seed)
    return batch.audio, batch.audio_lengths


def permuted_topology(topo: FaceTopology, perm: np.ndarray) -> FaceTopology:
    """``topo`` with vertex ``perm[i]`` as vertex ``i`` (faces renumbered and reordered, regions mapped)."""
    inverse = np.argsort(perm)
    faces = inverse[topo.faces][np.random.default_rng(7).permutation(len(topo.faces))]
    regions = {k: inverse[v] for k, v in topo.regions.items()}
    return FaceTopology("permuted", topo.vertices[perm], faces, topo.fps, regions)


# ---------------------------------------------------------------------------------------------- any topology
def test_renumbering_the_vertices_renumbers_the_animation(head):
    model = st_model(head)
    perm = np.random.default_rng(3).permutation(head.num_vertices)
    other = permuted_topology(head, perm)
    a, lengths = audio(0.3)
    tpl = torch.from_numpy(np.array(head.vertices))[None]
    out = model.predict(a, lengths, tpl)
    out_p = model.predict(a, lengths, tpl[:, perm], topology=other)
    motion = (out - tpl[:, None]).abs().max().detach()
    assert motion > 1e-4  # it moves
    assert torch.allclose(out_p, out[:, :, perm], atol=1e-3 * float(motion))
    assert model.topology is head  # predict(topology=...) changes no selection


def test_a_subdivided_head_of_another_vertex_count_moves_like_the_head(head):
    import trimesh

    model = st_model(head)
    v, f = trimesh.remesh.subdivide(np.asarray(head.vertices, dtype=np.float64), head.faces)
    fine = topology_from_mesh(v, f, head, "subdivided")
    assert fine.num_vertices > 3 * head.num_vertices and np.allclose(v[: head.num_vertices], head.vertices)
    assert np.isin(head.lips, fine.lips).all()  # regions carried over by nearest vertex
    a, lengths = audio(0.3)
    tpl = torch.from_numpy(np.array(head.vertices))[None]
    coarse = model.predict(a, lengths, tpl) - tpl[:, None]
    out = model.predict(a, lengths, torch.from_numpy(np.array(fine.vertices))[None], topology=fine)
    assert out.shape == (1, coarse.shape[1], fine.num_vertices, 3) and bool(torch.isfinite(out).all())
    moved = out[:, :, : head.num_vertices] - tpl[:, None]  # the head's own vertices within the finer mesh
    err = (moved - coarse).norm() / coarse.norm()
    b, b_lengths = audio(0.3, seed=5)  # another utterance: how far apart two animations of the head are
    other = model.predict(b, b_lengths, tpl) - tpl[:, None]
    assert err < 0.05 and err < 0.2 * (other - coarse).norm() / coarse.norm()


def test_motion_scales_with_the_size_of_the_mesh(head):
    model = st_model(head)
    big = FaceTopology("big", head.vertices * 3.0, head.faces, head.fps, head.regions)
    assert float(model.unit_of(big)) == pytest.approx(3.0 * float(model.motion_scale), rel=1e-4)
    a, lengths = audio(0.3)
    tpl = torch.from_numpy(np.array(head.vertices))[None]
    small = model.predict(a, lengths, tpl) - tpl[:, None]
    large = model.predict(a, lengths, 3.0 * tpl, topology=big) - 3.0 * tpl[:, None]
    assert torch.allclose(large, 3.0 * small, atol=1e-3 * float(large.abs().max()))


def test_each_batch_runs_on_its_topology():
    small = tiny_topology()
    t = tiny_topology(num_vertices=16)
    big = FaceTopology("big", t.vertices, t.faces, t.fps, {"lips": [12, 13, 14, 15], "upper_face": [0, 1]})
    model = st_model(small, topologies={"big": big})
    model.train()
    for name, topo in (("tiny", small), ("big", big)):
        batch = make_batch(topo, [0.5, 0.4])
        batch.head = name
        assert model.topology_for(batch) is topo
        out = model(batch)
        assert out.vertices.shape[2] == topo.num_vertices
        out.vertices.square().mean().backward()  # every parameter is shared by both topologies
    assert model.topology is small
    batch = make_batch(big, [0.5])
    batch.head = "nope"
    with pytest.raises(ConfigError, match="batch topology 'nope'"):
        model(batch)
    with pytest.raises(TopologyError):  # templates of another topology than the one asked for
        model.predict(batch.audio, batch.audio_lengths, batch.templates)
    with pytest.raises(ConfigError, match="not one this model was trained on"):
        model.use_topology("nope")


def test_padded_batch_equals_each_clip_alone():
    topo = tiny_topology()
    model = st_model(topo)
    batch = make_batch(topo, [0.9, 0.5, 0.3])
    pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    out = model(batch).vertices
    for i in range(3):
        one = select(batch, i)
        t = int(one.frame_lengths[0])
        alone = model.predict(one.audio, one.audio_lengths, one.templates)
        assert torch.allclose(pred[i : i + 1, :t], alone, atol=1e-5)
        assert torch.allclose(pred[i, t:], batch.templates[i].expand_as(pred[i, t:]))  # template past the end
        assert torch.allclose(out[i : i + 1, :t], model(one).vertices, atol=1e-5)


def test_config_errors():
    with pytest.raises(ConfigError, match="width must be even"):
        st_config(width=7).validate()
    with pytest.raises(ConfigError, match="k_eig"):
        st_config(k_eig=0).validate()


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("st")
    a = make_learnable_dataset(root / "grid12")
    b = make_learnable_dataset(root / "grid16", num_vertices=16, topology="grid16", seed=1, sentences=2)
    out = root / "run"
    args = [
        "train",
        "--config",
        str(DEBUG),
        f"data.root={a}",
        f"output_dir={out}",
        f"data.corpora=[{{root: {b}}}]",
    ]
    assert cli_main(args) == 0
    return a, b, out


def test_train_two_topologies_then_evaluate_and_animate_one_never_seen(two_corpora, tmp_path):
    from memorytalker.models.loaders import load_model, read_checkpoint
    from memorytalker.topology import save_mesh

    a, b, out = two_corpora
    best = out / "scantalk" / "best.pt"
    ckpt = read_checkpoint(best)
    assert sorted(ckpt["head_topologies"]) == ["grid", "grid16"]
    assert [c["topology"] for c in ckpt["dataset"]["corpora"]] == ["grid", "grid16"]
    model, topo, _ = load_model(best)
    assert topo.name == "grid" and sorted(model.topologies) == ["grid", "grid16"]
    # a topology it never saw: evaluated on its own mesh
    other = make_learnable_dataset(tmp_path / "other", num_vertices=20, topology="grid20", seed=2)
    report = tmp_path / "other.json"
    base = ["evaluate", "--checkpoint", str(best), "--data", str(other), "--split", "val"]
    assert cli_main([*base, "--out", str(report), "--no-progress", "--plot-clips", "0"]) == 0
    rep = json.loads(report.read_text())
    assert rep["regions"]["num_vertices"] == 20 and math.isfinite(rep["pooled"]["lve"])
    # and animated from a template mesh file of that topology: the outputs use its faces
    grid20 = FaceTopology.load(other / "topology.npz")
    mesh = tmp_path / "face20.obj"
    save_mesh(mesh, grid20.vertices, grid20.faces)
    wav = sorted((other / "wav").glob("*.wav"))[0]
    anim = tmp_path / "anim"
    args = ["animate", str(wav), "-c", str(best), "--template", str(mesh), "--out", str(anim), "--size", "64"]
    assert cli_main(args) == 0
    vertices = np.load(anim / f"{wav.stem}.npy")
    assert vertices.shape[1:] == (20, 3) and np.isfinite(vertices).all()
    assert (anim / f"{wav.stem}.mp4").stat().st_size > 0 and (anim / f"{wav.stem}.glb").stat().st_size > 0
    # the Python API: the template mesh file sets the topology; the model's own mesh file keeps its own
    from memorytalker.inference import Animator

    animator = Animator(best)
    wave = np.random.default_rng(1).normal(scale=0.1, size=16000).astype(np.float32)
    assert animator.animate(wave, sample_rate=16000, template=mesh).shape == (30, 20, 3)
    assert animator.topology.num_vertices == 20 and animator.face is None
    own = tmp_path / "face12.ply"
    save_mesh(own, topo.vertices, topo.faces)
    assert animator.animate(wave, sample_rate=16000, template=own).shape == (30, 12, 3)
    assert animator.topology.name == "grid"

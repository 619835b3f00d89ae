"""The ``unitalker`` kind: its defining mechanisms (each corpus routed to its topology's head, everything else
shared; PCA targets; per-corpus identities with a common identity for unseen speakers), the batch sampler of
several corpora, the padded batch, and a two-corpus training run through the CLI with the checkpoint round
trip, evaluation per head, resume and animate."""

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
from memorytalker.models.config import BackboneConfig, ModelConfig, UniTalkerConfig
from memorytalker.models.losses import LossWeights, compute_losses
from memorytalker.models.unitalker import OutputHead
from memorytalker.topology import FaceTopology
from memorytalker.training.config import load_train_config
from memorytalker.training.sampler import CorpusBatchSampler

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug_unitalker.yaml"
IDS = ["a/s0", "a/s1", "b/s0"]


def topologies() -> tuple[FaceTopology, FaceTopology]:
    """Two topologies: ``tiny`` (12 vertices) and ``big`` (16)."""
    t = tiny_topology(num_vertices=16)
    big = FaceTopology("big", t.vertices, t.faces, t.fps, {"lips": [12, 13, 14, 15], "upper_face": [0, 1]})
    return tiny_topology(), big


def ut_config(**unitalker) -> ModelConfig:
    u = dict(width=16, identity_width=4, pca_dim=6, dropout=0.0, heads=["tiny", "big"], identities=IDS)
    u.update(unitalker)
    return ModelConfig(
        kind="unitalker",
        backbone=BackboneConfig(width=32, layers=1, heads=2, ffn=64, window=4, conv_layers=1, dropout=0.0),
        unitalker=UniTalkerConfig(**u),
    )


def ut_model(seed: int = 0, **unitalker):
    small, big = topologies()
    torch.manual_seed(seed)
    model = build_model(ut_config(**unitalker), small, topologies={"big": big})
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the zero-initialised heads would make every frame the fitted mean
        for head in model.heads:
            head.linear.weight.copy_(torch.randn(head.linear.weight.shape, generator=g) * 0.3)
            if head.k:
                head.basis.copy_(torch.randn(head.basis.shape, generator=g) * 0.2)
    return model.eval()


def with_ids(batch, ids, head=None):
    batch.subject_ids = torch.tensor(ids)
    batch.head = head
    return batch


# ---------------------------------------------------------------------------------------------- heads
def test_each_corpus_is_routed_to_its_head_and_the_rest_is_shared():
    model = ut_model()
    model.train()
    small, big = topologies()
    for head, topo, other in (("tiny", small, 1), ("big", big, 0)):
        model.zero_grad()
        batch = with_ids(make_batch(topo, [0.5, 0.4]), [0, 2], head)
        out = model(batch)
        assert out.vertices.shape[2] == topo.num_vertices
        loss = (out.vertices - batch.vertices).square()[
            batch.frame_mask
        ].mean() + out.ctc_logits.square().mean()
        loss.backward()
        this, that = model.heads[1 - other], model.heads[other]
        assert this.linear.weight.grad.abs().sum() > 0
        assert that.linear.weight.grad is None or that.linear.weight.grad.abs().sum() == 0
        for name in ("audio_proj", "decoder", "identity", "asr"):  # shared by every corpus
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameter_groups()[name])
    with pytest.raises(ConfigError, match="not one of this model's output heads"):
        model.predict(batch.audio, batch.audio_lengths, batch.templates, head="nope")
    with pytest.raises(TopologyError):  # a template of the other topology
        model.predict(batch.audio, batch.audio_lengths, batch.templates, head="tiny")
    assert model.head == "tiny" and model.topology.name == "tiny"  # a failed call changes no selection


def test_padded_batch_equals_each_clip_alone():
    model = ut_model()
    _, big = topologies()
    batch = make_batch(big, [1.0, 0.6])
    cond = torch.tensor([1, 3])
    both = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=cond, head="big")
    for i in range(2):
        one = select(batch, i)
        alone = model.predict(
            one.audio, one.audio_lengths, one.templates, conditions=cond[i : i + 1], head="big"
        )
        n = int(one.frame_lengths[0])
        assert torch.allclose(both[i, :n], alone[0], atol=1e-5)
        assert torch.equal(both[i, n:], batch.templates[i].expand_as(both[i, n:]))


def test_identities_and_the_common_identity():
    model = ut_model()
    assert model.speakers == [*IDS, "common"] and model.default_condition == 3
    assert model.training_condition("s1", "a") == 1 and model.training_condition("s9", "a") is None
    assert model.own_conditions(torch.tensor([2, -1])).tolist() == [2, 3]
    small, _ = topologies()
    batch = make_batch(small, [0.6])
    common = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    one = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=torch.tensor([0]))
    explicit = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=torch.tensor([3]))
    assert torch.equal(common, explicit)
    assert not torch.allclose(common, one)
    # random_identity = 1: every training batch runs under the common identity
    always = ut_model(random_identity=1.0).train()
    with torch.no_grad():
        seen = always(with_ids(make_batch(small, [0.6]), [0])).vertices
    always.eval()
    with torch.no_grad():
        as_common = always(with_ids(make_batch(small, [0.6]), [-1])).vertices
    assert torch.allclose(seen, as_common, atol=1e-6)
    assert ut_model(condition="a/s1").default_condition == 1
    with pytest.raises(ConfigError, match="common identity's name"):
        ut_config(identities=["common"]).validate()


def test_pca_heads_fit_encode_decode_and_the_pca_loss():
    rng = np.random.default_rng(0)
    head = OutputHead(8, 10, pca_dim=5)
    basis = rng.normal(size=(3, 30))
    offsets = rng.normal(size=(200, 3)) @ basis + 0.5  # rank 3, mean 0.5
    kept = head.fit(offsets)
    assert kept == pytest.approx(1.0, abs=1e-6) and bool(head.fitted)
    x = torch.from_numpy(offsets[:4]).float()[None]
    assert torch.allclose(head.decode(head.encode(x)), x, atol=1e-4)
    assert torch.all(head.basis[3:] == 0) and head.components == 3  # only the data's rank is used
    assert head.encode(x).shape == (1, 4, 3)
    with pytest.raises(ValueError, match="PCA needs"):
        head.fit(offsets[:, :7])
    no_pca = OutputHead(8, 10, pca_dim=0)
    assert no_pca.k == 0 and no_pca.linear.out_features == 30
    model = ut_model()
    small, _ = topologies()
    batch = with_ids(make_batch(small, [0.5]), [0], "tiny")
    out = model(batch)
    assert out.pca_pred.shape == out.pca_target.shape == (1, 15, 6)  # unfitted: every component
    losses = compute_losses(
        out,
        batch,
        LossWeights(velocity=0, teacher_mse=0, teacher_velocity=0, pca=0.01),
        small,
        model.motion_scale,
    )
    assert set(losses) >= {"mse", "pca", "ctc"} and math.isfinite(float(losses["pca"].detach()))
    expected = (out.pca_pred - out.pca_target).square().mean()
    assert float(losses["pca"].detach()) == pytest.approx(float(expected.detach()), rel=1e-5)


def test_each_head_has_its_own_motion_unit():
    """Corpora in metres and millimetres train together: each head's offsets are in its own unit (its
    corpora's RMS displacement), and the losses of its batches are measured in it."""
    model = ut_model(pca_dim=0)
    small, big = topologies()
    rng = np.random.default_rng(0)
    assert model.fit_head("tiny", 0.003, rng.normal(size=(20, 12, 3))) == 1.0
    model.fit_head("big", 3.0, rng.normal(size=(20, 16, 3)))  # a corpus in millimetres
    with pytest.raises(ConfigError, match="positive finite"):
        model.fit_head("big", 0.0, rng.normal(size=(20, 16, 3)))
    a = with_ids(make_batch(small, [0.5]), [0], "tiny")
    b = with_ids(make_batch(big, [0.5]), [2], "big")
    assert float(model.unit_for(a)) == pytest.approx(0.003) and float(model.unit_for(b)) == pytest.approx(3.0)
    with torch.no_grad():
        zero_tpl = torch.zeros_like(b.templates)
        out = model.predict(b.audio, b.audio_lengths, zero_tpl, head="big")
        model.heads[1].unit.fill_(1.5)
        half = model.predict(b.audio, b.audio_lengths, zero_tpl, head="big")
    assert torch.allclose(half, out / 2, atol=1e-5)


def test_config_errors():
    small, big = topologies()
    with pytest.raises(ConfigError, match="no topology for"):
        build_model(ut_config(), small)
    with pytest.raises(ConfigError, match="starts with"):
        build_model(ut_config(heads=["big", "tiny"]), small, topologies={"big": big})
    with pytest.raises(ConfigError, match="kernel must be odd"):
        ut_config(kernel=4).validate()
    with pytest.raises(ConfigError, match="one output topology"):
        build_model(ModelConfig(), small, topologies={"tiny": small, "big": big})


# ---------------------------------------------------------------------------------------------- sampler
def test_corpus_batches_hold_one_corpus_and_cover_every_clip():
    s = CorpusBatchSampler([5, 3], batch_size=2, repeats=[1, 2], seed=3)
    s.set_epoch(1)
    batches = list(s)
    assert len(batches) == s.batches_per_epoch() == 3 + 3
    for b in batches:
        assert all(i < 5 for i in b) or all(5 <= i < 8 for i in b)
    flat = sorted(i for b in batches for i in b)
    assert flat == [0, 1, 2, 3, 4, 5, 5, 6, 6, 7, 7]
    again = CorpusBatchSampler([5, 3], batch_size=2, repeats=[1, 2], seed=3)
    again.set_epoch(1)
    assert list(again) == batches  # deterministic per (seed, epoch)
    again.set_epoch(2)
    assert list(again) != batches
    s.set_epoch(1)
    s.start_at_batch(4)
    assert list(s) == batches[4:] and len(list(s)) == 6  # the start applies once
    ranks = [CorpusBatchSampler([5, 3], 2, [1, 2], True, 3, 4, r) for r in range(4)]
    for r in ranks:
        r.set_epoch(1)
    assert {len(list(r)) for r in ranks} == {2}  # padded to a multiple of the world size
    val = list(CorpusBatchSampler([3, 2], 2, shuffle=False))
    assert val == [[0, 1], [2], [3, 4]]


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def two_corpora(tmp_path_factory):
    root = tmp_path_factory.mktemp("ut")
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
    return a, b, out, args


def test_train_two_corpora_round_trip_evaluate_per_head(two_corpora, tmp_path, capsys):
    from memorytalker.models.loaders import load_model, read_checkpoint

    a, b, out, _ = two_corpora
    best = out / "unitalker" / "best.pt"
    ckpt = read_checkpoint(best)
    u = ckpt["config"]["model"]["unitalker"]
    assert u["heads"] == ["grid", "grid16"]
    assert u["identities"] == [f"grid12/spk0{i}" for i in range(3)] + [f"grid16/spk0{i}" for i in range(3)]
    assert sorted(ckpt["head_topologies"]) == ["grid", "grid16"]
    assert [c["topology"] for c in ckpt["dataset"]["corpora"]] == ["grid", "grid16"]
    model, topo, _ = load_model(best)
    assert topo.name == "grid" and bool(model.heads[1].fitted) and float(model.heads[1].unit) > 0
    again, _, _ = load_model(best)
    big = model.topologies["grid16"]
    batch = make_batch(big, [0.5])
    assert torch.equal(
        model.predict(batch.audio, batch.audio_lengths, batch.templates, head="grid16"),
        again.predict(batch.audio, batch.audio_lengths, batch.templates, head="grid16"),
    )
    reports = {}
    for data in (a, b):
        path = tmp_path / f"{data.name}.json"
        base = ["evaluate", "--checkpoint", str(best), "--data", str(data), "--split", "val"]
        assert cli_main([*base, "--out", str(path), "--no-progress", "--plot-clips", "0"]) == 0
        reports[data.name] = json.loads(path.read_text())
    assert (
        reports["grid16"]["regions"]["num_vertices"] == 16
        and reports["grid12"]["regions"]["num_vertices"] == 12
    )
    assert reports["grid16"]["conditions"]["protocol"] == "default"  # unseen speakers: the common identity
    assert math.isfinite(reports["grid16"]["pooled"]["lve"])
    other = make_learnable_dataset(tmp_path / "other", num_vertices=20, topology="grid20")
    code = cli_main(
        [
            "evaluate",
            "--checkpoint",
            str(best),
            "--data",
            str(other),
            "--split",
            "val",
            "--out",
            str(tmp_path / "x.json"),
        ]
    )
    assert (
        code != 0
        and "none of this model's output heads: grid (12 vertices), grid16 (16 vertices)"
        in capsys.readouterr().err
    )


def test_resume_and_animate_a_head(two_corpora, tmp_path):
    from memorytalker.inference import Animator

    a, b, out, args = two_corpora
    # one more epoch on the same run folder, resumed
    assert cli_main([*args, "resume=true", "stages.unitalker.max_epochs=3"]) == 0
    from memorytalker.models.loaders import read_checkpoint

    assert read_checkpoint(out / "unitalker" / "last.pt")["epoch"] == 3
    wave = np.random.default_rng(1).normal(scale=0.1, size=16000).astype(np.float32)
    anim = Animator(out / "unitalker" / "best.pt", head="grid16", condition="grid16/spk01")
    assert anim.topology.name == "grid16" and anim.animate(wave, sample_rate=16000).shape == (30, 16, 3)
    with pytest.raises(ConfigError, match="not one of this model's output heads"):
        Animator(out / "unitalker" / "best.pt", head="nope")


def test_corpora_need_a_kind_with_heads(tmp_path):
    cfg = Path(__file__).resolve().parents[1] / "configs" / "debug_faceformer.yaml"
    with pytest.raises(ConfigError, match="has one output topology"):
        load_train_config(cfg, [f"data.root={tmp_path}", f"data.corpora=[{{root: {tmp_path}}}]"])

"""The ``faceformer`` kind: its defining mechanisms (the periodic ALiBi bias as published, cached
autoregressive decoding equal to the uncached pass, causality, the one-hot condition, any length), the
padded batch, a training smoke run through the CLI, the conditions protocol of ``evaluate`` and the
checkpoint round trip."""

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
from memorytalker.errors import ConfigError
from memorytalker.models.builders import build_model
from memorytalker.models.config import BackboneConfig, FaceFormerConfig, ModelConfig
from memorytalker.models.faceformer import alibi_slopes, periodic_bias
from memorytalker.models.loaders import load_model, read_checkpoint
from memorytalker.training.config import load_train_config

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug_faceformer.yaml"
SPEAKERS = ["a", "b", "c"]


def ff_config(**faceformer) -> ModelConfig:
    ff = dict(width=16, heads=4, dropout=0.0, speakers=SPEAKERS, period=6)
    ff.update(faceformer)
    return ModelConfig(
        kind="faceformer",
        backbone=BackboneConfig(width=32, layers=1, heads=2, ffn=64, window=4, conv_layers=1, dropout=0.0),
        faceformer=FaceFormerConfig(**ff),
    )


def ff_model(seed: int = 0, **faceformer):
    torch.manual_seed(seed)
    model = build_model(ff_config(**faceformer), tiny_topology())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the published zero-initialised head would make every frame the template
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.3)
        model.head.bias.copy_(torch.randn(model.head.bias.shape, generator=g) * 0.05)
    return model.eval()


def _published_mask(heads: int, max_seq_len: int, period: int) -> torch.Tensor:
    """The published construction, written out naively: bias[i, j] = -slope * ((i - j) // period) for
    j <= i, -inf for j > i."""
    slopes = alibi_slopes(heads)
    out = torch.full((heads, max_seq_len, max_seq_len), float("-inf"))
    for h in range(heads):
        for i in range(max_seq_len):
            for j in range(i + 1):
                out[h, i, j] = -slopes[h] * ((i - j) // period)
    return out


def test_alibi_slopes_hand_values():
    assert alibi_slopes(4) == pytest.approx([0.25, 0.0625, 0.015625, 0.00390625])
    assert alibi_slopes(8) == pytest.approx([2 ** -(i + 1) for i in range(8)])
    # not a power of two: the 4 slopes of 4 heads, then every other slope of 8 heads
    assert alibi_slopes(6) == pytest.approx([0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125])


def test_periodic_bias_equals_the_published_mask_within_its_range():
    pos = torch.arange(20)
    ours = periodic_bias(torch.tensor(alibi_slopes(4)), pos, pos, 6, frames=20)
    assert torch.equal(ours, _published_mask(4, 20, 6))
    # beyond the attention range a frame sees only the last `frames` frames
    short = periodic_bias(torch.tensor(alibi_slopes(4)), pos, pos, 6, frames=5)
    assert torch.isinf(short[:, 10, :6]).all() and torch.isfinite(short[:, 10, 6:11]).all()


def _text_and_style(model, batch, conditions):
    logits, text = model.speech_features(
        batch.audio, batch.audio_lengths, batch.frame_lengths, int(batch.frame_lengths.max()), False
    )
    return text, model.style(conditions)


@pytest.mark.parametrize("frames", [600, 7])
def test_cached_autoregressive_decoding_equals_the_uncached_pass(frames):
    """Feeding the cached decoder's own outputs through the one-pass (uncached) decoder gives them back:
    the key/value cache, and the attention range when the clip is longer than it, change nothing."""
    model = ff_model(attention_frames=frames, layers=2)
    batch = make_batch(model.topology, [1.0])
    with torch.no_grad():
        text, style = _text_and_style(model, batch, torch.tensor([1]))
        y = model.autoregressive(text, style, 30)
        again = model.teacher_forced(text, y, style)
    assert torch.allclose(again, y, atol=1e-5, rtol=1e-4)
    assert y.abs().max() > 0.01


def test_frame_t_never_sees_motion_after_t():
    model = ff_model()
    batch = make_batch(model.topology, [1.0])
    with torch.no_grad():
        text, style = _text_and_style(model, batch, torch.tensor([0]))
        y = torch.randn(1, 30, 36)
        out = model.teacher_forced(text, y, style)
        changed = y.clone()
        changed[:, 12:] += 5.0  # the motion of frames 12.. changes
        out2 = model.teacher_forced(text, changed, style)
    # output t reads the motion of frames < t: frames 0..12 are untouched, 13.. change
    assert torch.equal(out[:, :13], out2[:, :13])
    assert not torch.allclose(out[:, 13:], out2[:, 13:])


def test_the_condition_selects_a_speaker_style_and_bad_conditions_fail():
    model = ff_model()
    batch = make_batch(model.topology, [0.8])
    a = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=torch.tensor([0]))
    b = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=torch.tensor([2]))
    default = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    assert not torch.allclose(a, b) and torch.equal(default, a)
    with pytest.raises(ValueError, match="not indices"):
        model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=torch.tensor([3]))
    with pytest.raises(ConfigError, match="not one of this model's training speakers"):
        model.condition_index("zz")
    named = ff_model(condition="c")
    assert named.default_condition == 2


def test_padded_batch_equals_each_clip_alone():
    model = ff_model()
    batch = make_batch(model.topology, [1.0, 0.6])
    cond = torch.tensor([1, 2])
    both = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=cond)
    for i in range(2):
        one = select(batch, i)
        alone = model.predict(one.audio, one.audio_lengths, one.templates, conditions=cond[i : i + 1])
        n = int(one.frame_lengths[0])
        assert torch.allclose(both[i, :n], alone[0], atol=1e-5)
        assert torch.equal(both[i, n:], batch.templates[i].expand_as(both[i, n:]))


def test_any_length_and_linear_cache():
    """20 s at 30 fps (600 frames is the published limit) with a 50-frame range: runs, and the cache
    holds at most the range."""
    model = ff_model(attention_frames=50)
    audio = torch.from_numpy(np.random.default_rng(0).normal(scale=0.1, size=16000 * 21).astype(np.float32))
    out = model.predict(
        audio[None], torch.tensor([audio.numel()]), torch.tensor(model.topology.vertices)[None]
    )
    assert out.shape[1] == 630 and torch.isfinite(out).all()
    _, cache = model.layers[0].self_attn.step(torch.zeros(1, 1, 16), None, 0)
    for t in range(1, 80):
        _, cache = model.layers[0].self_attn.step(torch.zeros(1, 1, 16), cache, t)
    assert cache["k"].shape[2] == 50


def test_training_forward_is_autoregressive_or_teacher_forced_and_trains_every_group():
    model = ff_model()
    batch = make_batch(model.topology, [0.6, 0.5])
    batch.subject_ids = torch.tensor([0, -1])
    model.train()
    out = model(batch)
    loss = (out.vertices - batch.vertices).square()[batch.frame_mask].mean() + out.ctc_logits.square().mean()
    loss.backward()
    for name, params in model.parameter_groups().items():
        if params:
            assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in params), name
    model.eval()
    with torch.no_grad():  # eval with vertices: teacher-forced; equals the AR pass only at frame 0
        tf = model(batch).vertices
        ar = model.predict(
            batch.audio, batch.audio_lengths, batch.templates, batch.frame_lengths, torch.tensor([0, 0])
        )
    assert torch.allclose(tf[:, 0], ar[:, 0], atol=1e-5) and not torch.allclose(tf, ar)


def test_config_errors():
    with pytest.raises(ConfigError, match="speakers is empty"):
        build_model(ff_config(speakers=[]), tiny_topology())
    with pytest.raises(ConfigError, match="divisible"):
        ff_config(width=18).validate()
    with pytest.raises(ConfigError, match="training must be one of"):
        ff_config(training="sometimes").validate()
    with pytest.raises(ConfigError, match="not one of its speakers"):
        ff_config(condition="zz").validate()


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = make_learnable_dataset(tmp_path_factory.mktemp("ff") / "data")
    out = tmp_path_factory.mktemp("ffrun")
    assert cli_main(["train", "--config", str(DEBUG), f"data.root={data}", f"output_dir={out}"]) == 0
    return data, out / "faceformer"


def test_train_evaluate_and_round_trip_through_the_cli(trained, tmp_path, capsys):
    data, run = trained
    ckpt = read_checkpoint(run / "best.pt")
    cfg = ckpt["config"]["model"]
    assert cfg["kind"] == "faceformer" and cfg["faceformer"]["speakers"] == ["spk00", "spk01", "spk02"]
    model, topo, _ = load_model(run / "best.pt")
    again, _, _ = load_model(run / "best.pt")
    batch = make_batch(topo, [0.5])
    assert torch.equal(
        model.predict(batch.audio, batch.audio_lengths, batch.templates),
        again.predict(batch.audio, batch.audio_lengths, batch.templates),
    )
    # the val speaker is unseen: 'all' predicts each clip under the 3 training speakers
    out_all, out_one = tmp_path / "all.json", tmp_path / "one.json"
    base = ["evaluate", "--checkpoint", str(run / "best.pt"), "--data", str(data), "--split", "val"]
    assert cli_main([*base, "--out", str(out_all), "--no-progress", "--plot-clips", "0"]) == 0
    assert (
        cli_main(
            [*base, "--out", str(out_one), "--no-progress", "--plot-clips", "0", "--conditions", "spk01"]
        )
        == 0
    )
    rep_all, rep_one = json.loads(out_all.read_text()), json.loads(out_one.read_text())
    assert rep_all["conditions"]["predictions"] == 3 * rep_one["conditions"]["predictions"]
    assert rep_all["data"]["clips"] == rep_one["data"]["clips"]
    assert rep_one["conditions"]["protocol"] == "spk01"
    assert math.isfinite(rep_all["pooled"]["lve"])
    assert cli_main([*base, "--out", str(tmp_path / "x.json"), "--conditions", "nobody"]) != 0
    assert "'nobody' is not one of this model's training speakers" in capsys.readouterr().err


def test_the_conditions_of_a_clip_run_as_one_batch_equal_to_one_call_each(trained):
    from memorytalker.data import load_dataset
    from memorytalker.evaluation.scoring import predict_split

    data, run = trained
    model, _, _ = load_model(run / "best.pt")
    index = load_dataset(data)
    one = predict_split(model, index, "val", progress=False, conditions="all", condition_batch=1)
    batched = predict_split(model, index, "val", progress=False, conditions="all")
    assert [c.clip_id for c in one] == [c.clip_id for c in batched] and len(one) == 3 * len(
        index.clips("val")
    )
    for a, b in zip(one, batched):
        assert np.allclose(a.pred, b.pred, atol=1e-5)


def test_speakers_given_must_be_the_training_split(tmp_path):
    data = make_learnable_dataset(tmp_path / "data")
    cfg = load_train_config(
        DEBUG, [f"data.root={data}", f"output_dir={tmp_path}/r", "model.faceformer.speakers=[spk00]"]
    )
    from memorytalker.training.engine import train

    with pytest.raises(ConfigError, match="not the training split's speakers"):
        train(cfg)


def test_animator_takes_a_condition(trained):
    from memorytalker.inference import Animator, default_checkpoint

    _, run = trained
    wave = np.random.default_rng(1).normal(scale=0.1, size=16000).astype(np.float32)
    a = Animator(run / "best.pt").animate(wave, sample_rate=16000)
    b = Animator(run / "best.pt", condition="spk02").animate(wave, sample_rate=16000)
    assert a.shape == b.shape == (30, 12, 3) and not np.allclose(a, b)
    with pytest.raises(ConfigError, match="not one of this model's training speakers"):
        Animator(run / "best.pt", condition="nobody")
    with pytest.raises(ConfigError, match="takes no speaker condition"):
        Animator(default_checkpoint(), condition="spk00")

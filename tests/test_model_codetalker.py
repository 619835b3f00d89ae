"""The ``codetalker`` kind: its defining mechanisms (the quantiser picks the nearest entry and passes gradients
straight through; stage 1 autoencodes motion with the published loss terms; stage 2's output is the VQ
decoder's image of codebook entries; its codes are causal; the teacher-forced pass repeats an
autoregressive run on the run's own inputs), codebook usage against a hand-computed example, the padded
batch, the stage presets, and stage 1 -> stage 2 through the CLI (strict init, frozen VQ-VAE)."""

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
from memorytalker.models.codetalker import (
    CODEBOOK_GROUPS,
    GROUPS,
    PREDICTOR_GROUPS,
    Quantizer,
    codebook_usage,
)
from memorytalker.models.config import BackboneConfig, CodeTalkerConfig, ModelConfig
from memorytalker.models.loaders import load_model, read_checkpoint
from memorytalker.models.losses import compute_losses
from memorytalker.training.config import PRESETS

ROOT = Path(__file__).resolve().parents[1]
DEBUG = ROOT / "configs" / "debug_codetalker.yaml"
SPEAKERS = ["a", "b", "c"]


def ct_config(stage: str = "predictor", **codetalker) -> ModelConfig:
    c = dict(
        stage=stage,
        n_embed=16,
        zquant_dim=4,
        face_quan_num=4,
        hidden=16,
        vq_layers=1,
        vq_heads=2,
        vq_ffn=32,
        width=16,
        layers=2,
        heads=4,
        period=6,
        dropout=0.0,
        vq_dropout=0.0,
        speakers=SPEAKERS,
    )
    c.update(codetalker)
    return ModelConfig(
        kind="codetalker",
        backbone=BackboneConfig(width=32, layers=1, heads=2, ffn=64, window=4, conv_layers=1, dropout=0.0),
        codetalker=CodeTalkerConfig(**c),
    )


def ct_model(stage: str = "predictor", seed: int = 0, **codetalker):
    torch.manual_seed(seed)
    model = build_model(ct_config(stage, **codetalker), tiny_topology())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # the published zero-initialised feat_map would give every frame one code
        model.feat_map.weight.copy_(torch.randn(model.feat_map.weight.shape, generator=g) * 0.5)
        model.quantizer.embedding.weight.copy_(
            torch.randn(model.quantizer.embedding.weight.shape, generator=g)
        )
    return model.eval()


# ---------------------------------------------------------------------------------------------- codebook usage
def test_codebook_usage_against_a_hand_computed_example():
    # codes 0, 0, 1, 2 of a 4-entry codebook (-1 = padding): p = (1/2, 1/4, 1/4, 0)
    u = codebook_usage(torch.tensor([[0, 0], [1, 2], [-1, -1]]), 4)
    entropy = -(0.5 * math.log(0.5) + 2 * 0.25 * math.log(0.25))  # = 1.5 ln 2
    assert u.perplexity == pytest.approx(math.exp(entropy)) and u.perplexity == pytest.approx(2**1.5)
    assert (u.dead, u.used, u.count) == (1, 3, 4) and u.dead_fraction == pytest.approx(0.25)
    assert codebook_usage(np.arange(8), 8).perplexity == pytest.approx(8.0)  # uniform: all entries
    assert codebook_usage([3, 3, 3], 8).perplexity == pytest.approx(1.0)
    with pytest.raises(ValueError, match="outside a codebook"):
        codebook_usage([9], 8)


# ---------------------------------------------------------------------------------------------- quantiser
def test_quantizer_picks_the_nearest_entry_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    quant = Quantizer(10, 3)
    with torch.no_grad():
        quant.embedding.weight.normal_()
    z = torch.randn(2, 5, 2 * 3, requires_grad=True)  # two codes per frame
    q = quant(z)
    parts = z.detach().view(2, 5, 2, 3)
    brute = (parts[..., None, :] - quant.embedding.weight.detach()).square().sum(-1).argmin(-1)
    assert torch.equal(q.codes, brute)
    entries = quant.embedding.weight.detach()[brute].view(2, 5, 6)
    assert torch.allclose(q.quantized, entries, atol=1e-6)
    err = (z.detach() - entries).square().mean(-1)
    assert torch.allclose(q.commitment, err) and torch.allclose(q.codebook, err)
    w = torch.randn_like(z)
    (q.quantized * w).sum().backward()
    assert torch.equal(z.grad, w)  # straight through: d quantized / d z = identity
    assert quant.embedding.weight.grad is None  # the output's gradient does not reach the codebook
    q2 = quant(z)
    q2.codebook.sum().backward()  # the codebook term moves the entries, not the encoder
    assert quant.embedding.weight.grad.abs().sum() > 0


# ---------------------------------------------------------------------------------------------- stage 1
def test_stage1_forward_reconstructs_through_the_codebook_and_has_the_published_terms():
    model = ct_model("codebook")
    batch = make_batch(model.topology, [1.0])
    out = model(batch)
    assert out.ctc_logits is None and out.code_pred is None  # stage 1 hears no audio
    y = model.displacement(batch.vertices, batch.templates)
    lengths = batch.frame_lengths
    codes = model.quantizer(model.encode(y, lengths)).codes
    assert torch.equal(out.codes, codes)
    again = model.offsets_to_vertices(model.decode_codes(codes, lengths), batch.templates)
    assert torch.allclose(out.vertices, again, atol=1e-5)
    weights = PRESETS["codetalker_vq"]().loss
    terms = compute_losses(out, batch, weights, model.topology, model.motion_scale)
    assert set(terms) == {"total", "l1", "quant"}
    l1 = (out.vertices - batch.vertices).abs().mean() / model.motion_scale
    assert terms["l1"].item() == pytest.approx(l1.item(), rel=1e-5)
    z = model.encode(y, lengths)
    e = model.quantizer.lookup(codes)
    quant = 0.25 * (z - e).square().mean() + (z - e).square().mean()  # beta 0.25 on the commitment term
    assert terms["quant"].item() == pytest.approx(quant.item(), rel=1e-5)
    # the autoencoder learns: a few Adam steps on the clip cut the reconstruction error
    model.train()
    opt = torch.optim.Adam([p for g in CODEBOOK_GROUPS for p in model.parameter_groups()[g]], lr=3e-3)
    first = None
    for _ in range(60):
        loss = compute_losses(model(batch), batch, weights, model.topology, model.motion_scale)
        first = loss["l1"].item() if first is None else first
        opt.zero_grad()
        loss["total"].backward()
        opt.step()
    assert loss["l1"].item() < 0.7 * first


def test_stage1_predicts_only_ground_truth_motion():
    model = ct_model("codebook")
    batch = make_batch(model.topology, [0.7])
    with pytest.raises(ConfigError, match="stage-1 model.*stage-2 checkpoint"):
        model.predict(batch.audio, batch.audio_lengths, batch.templates)
    batch.subject_ids = torch.tensor([0])
    options = model.predict_options(batch)
    assert options["motion"] is batch.vertices
    rec = model.predict(batch.audio, batch.audio_lengths, batch.templates, batch.frame_lengths, **options)
    assert torch.allclose(rec, model(batch).vertices, atol=1e-5)


# ---------------------------------------------------------------------------------------------- stage 2
def _text_and_style(model, batch, conditions):
    _, text = model.speech_features(
        batch.audio, batch.audio_lengths, batch.frame_lengths, int(batch.frame_lengths.max()), False
    )
    return text, model.style(conditions)


def test_predict_is_the_vq_decoder_of_codebook_entries():
    model = ct_model()
    batch = make_batch(model.topology, [1.0])
    cond = torch.tensor([1])
    pred = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=cond)
    codes = model.predicted_codes(batch.audio, batch.audio_lengths, conditions=cond)
    assert len(torch.unique(codes)) > 2  # not a constant code
    entries = model.quantizer.embedding.weight[codes]  # (1, T, N, zquant_dim): codebook rows
    decoded = model.offsets_to_vertices(model.vq_decoder(entries.flatten(-2)), batch.templates)
    assert torch.equal(pred, decoded)


def test_codes_are_causal_in_the_speech():
    """Frame t's codes depend on the speech features of frames <= t only (the output, the VQ decoder over
    the whole clip, is not causal: published CodeTalker re-decodes every frame at the end)."""
    model = ct_model()
    batch = make_batch(model.topology, [1.0])
    with torch.no_grad():
        text, style = _text_and_style(model, batch, torch.tensor([2]))
        a = model.autoregressive(text, style, 30).codes
        changed = text.clone()
        changed[:, 12:] += 3.0 * torch.randn_like(changed[:, 12:])
        b = model.autoregressive(changed, style, 30).codes
    assert torch.equal(a[:, :12], b[:, :12]) and not torch.equal(a[:, 12:], b[:, 12:])


@pytest.mark.parametrize("decode_frames", [600, 5])
def test_teacher_forcing_on_the_runs_own_inputs_repeats_the_autoregressive_run(decode_frames):
    model = ct_model(decode_frames=decode_frames, attention_frames=8)
    batch = make_batch(model.topology, [1.0])
    with torch.no_grad():
        text, style = _text_and_style(model, batch, torch.tensor([0]))
        run = model.autoregressive(text, style, 30, keep_inputs=True)
        feats = model.teacher_forced(text, run.inputs, style)
    assert run.inputs.shape == (1, 30, 36)
    assert torch.allclose(feats, run.features, atol=1e-4, rtol=1e-4)
    assert torch.equal(model.quantizer(feats).codes, run.codes)


def test_any_length():
    """21 s at 30 fps (past the published 600-frame cap) with short attention and decoding ranges."""
    model = ct_model(attention_frames=20, decode_frames=10)
    audio = torch.from_numpy(np.random.default_rng(0).normal(scale=0.1, size=16000 * 21).astype(np.float32))
    tpl = torch.tensor(model.topology.vertices)[None]
    out = model.predict(audio[None], torch.tensor([audio.numel()]), tpl)
    assert out.shape[1] == 630 and torch.isfinite(out).all()


def test_padded_batch_equals_each_clip_alone():
    for stage in ("predictor", "codebook"):
        model = ct_model(stage)
        batch = make_batch(model.topology, [1.0, 0.6])
        cond = torch.tensor([1, 2])
        extra = {"motion": batch.vertices} if stage == "codebook" else {}
        both = model.predict(batch.audio, batch.audio_lengths, batch.templates, conditions=cond, **extra)
        for i in range(2):
            one = select(batch, i)
            extra = {"motion": one.vertices} if stage == "codebook" else {}
            alone = model.predict(
                one.audio, one.audio_lengths, one.templates, conditions=cond[i : i + 1], **extra
            )
            n = int(one.frame_lengths[0])
            assert torch.allclose(both[i, :n], alone[0], atol=1e-5), stage
            assert torch.equal(both[i, n:], batch.templates[i].expand_as(both[i, n:]))


def test_stage2_training_forward_and_losses():
    model = ct_model()
    batch = make_batch(model.topology, [0.6, 0.5])
    batch.subject_ids = torch.tensor([0, -1])
    model.train()
    out = model(batch)  # teacher-forced, as published
    weights = PRESETS["codetalker"]().loss
    terms = compute_losses(out, batch, weights, model.topology, model.motion_scale)
    assert {"mse", "code_reg", "ctc"} <= set(terms) and "quant" not in terms
    target = model.quantizer(
        model.encode(model.displacement(batch.vertices, batch.templates), batch.frame_lengths)
    )
    assert torch.allclose(out.code_target, target.quantized)
    terms["total"].backward()
    groups = model.parameter_groups()
    for name in PREDICTOR_GROUPS:
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in groups[name]), name
    model.zero_grad()
    auto = ct_model(training="autoregressive").train()
    out = auto(batch)
    compute_losses(out, batch, weights, auto.topology, auto.motion_scale)["total"].backward()
    assert auto.motion_encoder.weight.grad.abs().sum() > 0  # the model's own outputs feed back


def test_presets_split_the_groups_between_the_stages():
    vq, pred = PRESETS["codetalker_vq"](), PRESETS["codetalker"]()
    assert vq.model["codetalker"]["stage"] == "codebook" and pred.model["codetalker"]["stage"] == "predictor"
    assert tuple(vq.trainable) == CODEBOOK_GROUPS
    assert set(pred.trainable) == set(GROUPS) - set(CODEBOOK_GROUPS) == set(pred.init_exclude)
    assert set(PREDICTOR_GROUPS) <= set(pred.trainable)
    assert pred.init_from == "{output_dir}/codetalker_vq/best.pt"
    assert (vq.loss.l1, vq.loss.quant, vq.loss.mse) == (1.0, 1.0, 0.0)
    assert (pred.loss.mse, pred.loss.code_reg, pred.loss.l1, pred.loss.quant) == (1.0, 1.0, 0.0, 0.0)
    model = ct_model()
    groups = model.parameter_groups()
    ids = [id(p) for g in groups.values() for p in g]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))


def test_config_errors():
    with pytest.raises(ConfigError, match="speakers is empty"):
        build_model(ct_config(speakers=[]), tiny_topology())
    with pytest.raises(ConfigError, match="must equal face_quan_num x zquant_dim"):
        ct_config(hidden=32).validate()
    ct_config(hidden=32, projection=True).validate()  # BIWI's variant maps between the widths
    with pytest.raises(ConfigError, match="quant_factor"):
        ct_config(quant_factor=1).validate()
    with pytest.raises(ConfigError, match="stage must be one of"):
        ct_config(stage="both").validate()
    with pytest.raises(ConfigError, match="training must be one of"):
        ct_config(training="sometimes").validate()


def test_biwi_projection_variant_runs():
    model = ct_model("codebook", hidden=24, vq_heads=2, projection=True)
    batch = make_batch(model.topology, [0.5])
    assert model.vq_decoder.head.bias is None and model.vq_encoder.post is not None
    assert torch.isfinite(model(batch).vertices).all()


# ---------------------------------------------------------------------------------------------- CLI
@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    data = make_learnable_dataset(tmp_path_factory.mktemp("ct") / "data")
    out = tmp_path_factory.mktemp("ctrun")
    base = ["train", "--config", str(DEBUG), f"data.root={data}", f"output_dir={out}"]
    assert cli_main(base) == 0
    assert cli_main([*base, "--stage", "codetalker"]) == 0
    return data, out


def test_stage1_then_stage2_through_the_cli(trained, tmp_path, capsys):
    data, out = trained
    s1, s2 = (
        read_checkpoint(out / "codetalker_vq" / "best.pt"),
        read_checkpoint(out / "codetalker" / "best.pt"),
    )
    assert s1["config"]["model"]["codetalker"]["stage"] == "codebook"
    assert s2["config"]["model"]["codetalker"]["stage"] == "predictor"
    assert s2["config"]["model"]["codetalker"]["speakers"] == ["spk00", "spk01", "spk02"]
    prefixes = ("vq_encoder.", "quantizer.", "vq_decoder.")
    vq_keys = [k for k in s1["model_state"] if k.startswith(prefixes)]
    assert vq_keys
    for k in vq_keys:  # stage 2 loaded stage 1's VQ-VAE and kept it frozen
        assert torch.equal(s1["model_state"][k], s2["model_state"][k]), k
    assert float(s1["model_state"]["motion_scale"]) == float(s2["model_state"]["motion_scale"])
    assert not torch.equal(s1["model_state"]["style.weight"], s2["model_state"]["style.weight"])
    model, topo, _ = load_model(out / "codetalker" / "best.pt")
    batch = make_batch(topo, [0.5])
    assert torch.isfinite(model.predict(batch.audio, batch.audio_lengths, batch.templates)).all()
    report = tmp_path / "r.json"
    base = ["evaluate", "--data", str(data), "--split", "val", "--no-progress", "--plot-clips", "0"]
    assert cli_main([*base, "--checkpoint", str(out / "codetalker" / "best.pt"), "--out", str(report)]) == 0
    assert math.isfinite(json.loads(report.read_text())["pooled"]["lve"])
    capsys.readouterr()
    bad = ["--checkpoint", str(out / "codetalker_vq" / "best.pt"), "--out", str(tmp_path / "x.json")]
    assert cli_main([*base, *bad]) != 0
    assert "stage-1 model" in capsys.readouterr().err


def test_codebook_usage_script(trained, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location("codebook_usage", ROOT / "scripts" / "codebook_usage.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    data, out = trained
    for stage, names in (("codetalker_vq", {"ground truth"}), ("codetalker", {"ground truth", "predicted"})):
        result = tmp_path / f"{stage}.json"
        ckpt = str(out / stage / "best.pt")
        assert script.main([ckpt, "--data", str(data), "--split", "val", "--json", str(result)]) == 0
        numbers = json.loads(result.read_text())
        assert names <= set(numbers)
        for name in names:
            assert 1.0 <= numbers[name]["perplexity"] <= numbers["codebook"]
            assert 0 <= numbers[name]["dead"] < numbers["codebook"]
    assert "perplexity" in capsys.readouterr().out

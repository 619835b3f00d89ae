"""The ``selftalk`` kind: the lip-reading consistency branch (its CTC loss decreases on a toy batch, it
reads only the lip vertices and its gradient reaches the animation), the greedy transcript, padded batch,
the BIWI frame-pair variant, a training smoke run through the CLI and the checkpoint round trip."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_model_common import make_batch, select, tiny_topology
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.models.builders import build_model
from memorytalker.models.config import BackboneConfig, ModelConfig, SelfTalkConfig
from memorytalker.models.loaders import load_model, read_checkpoint
from memorytalker.models.losses import LossWeights, compute_losses, greedy_transcript

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug_selftalk.yaml"
LIP_ONLY = LossWeights(
    mse=0,
    velocity=0,
    teacher_mse=0,
    teacher_velocity=0,
    mem=0,
    align=0,
    ctc=0,
    lipread_feature=1,
    lipread_ctc=1,
)


def st_model(seed: int = 0, text_rate: str = "mesh"):
    torch.manual_seed(seed)
    cfg = ModelConfig(
        kind="selftalk",
        backbone=BackboneConfig(
            width=32, layers=1, heads=2, ffn=64, window=4, conv_layers=1, dropout=0.0, text_rate=text_rate
        ),
        selftalk=SelfTalkConfig(
            width=16,
            heads=2,
            dropout=0.0,
            lip_width=16,
            lip_layers=1,
            lip_heads=2,
            lip_ffn=32,
            lip_dropout=0.0,
        ),
    )
    model = build_model(cfg, tiny_topology())
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.3)
    return model


def test_greedy_transcript_hand_values():
    best = torch.tensor([[0, 3, 3, 0, 3, 5, 5, 2, 0], [1, 1, 0, 0, 0, 0, 0, 0, 0]])
    logits = torch.nn.functional.one_hot(best, 6).float()
    targets, lengths = greedy_transcript(logits, torch.tensor([8, 2]))
    assert lengths.tolist() == [4, 1]
    assert targets[0, :4].tolist() == [3, 3, 5, 2] and targets[1, :1].tolist() == [1]


def test_lip_reading_ctc_loss_decreases_on_a_toy_batch():
    model = st_model().train()
    batch = make_batch(model.topology, [0.8, 0.6])
    opt = torch.optim.Adam(model.parameter_groups()["lipreader"], lr=3e-3)
    values = []
    for _ in range(40):
        losses = compute_losses(model(batch), batch, LIP_ONLY, model.topology, model.motion_scale)
        opt.zero_grad()
        losses["total"].backward()
        opt.step()
        values.append(float(losses["lipread_ctc"].detach()))
    assert values[-1] < 0.7 * values[0]


def test_the_lip_reader_reads_only_the_lips_and_supervises_the_animation():
    model = st_model().train()
    batch = make_batch(model.topology, [0.7])
    losses = compute_losses(model(batch), batch, LIP_ONLY, model.topology, model.motion_scale)
    losses["total"].backward()
    # the head's rows of each vertex (x, y, z): gradient through the lip reader reaches exactly the lips'
    grad = model.head.weight.grad.abs().sum(1).view(-1, 3).sum(1)
    lips = set(model.topology.lips)
    assert all(float(grad[v]) > 0 for v in lips)
    assert all(float(grad[v]) == 0 for v in range(model.topology.num_vertices) if v not in lips)


def test_without_phoneme_labels_the_transcript_is_the_recognisers_greedy_decoding():
    model = st_model().train()
    batch = make_batch(model.topology, [0.7])
    out = model(batch)
    labelled = compute_losses(out, batch, LIP_ONLY, model.topology)["lipread_ctc"]
    batch.phoneme_lengths = torch.zeros_like(batch.phoneme_lengths)
    greedy = compute_losses(out, batch, LIP_ONLY, model.topology)
    targets, lengths = greedy_transcript(out.recognizer, out.ctc_lengths)
    from memorytalker.models.losses import ctc_loss

    expected = ctc_loss(out.lip_logits, out.ctc_lengths, targets, lengths)
    if expected is None:  # an untrained recogniser may decode nothing but blanks
        assert "lipread_ctc" not in greedy
    else:
        assert torch.allclose(greedy["lipread_ctc"], expected) and not torch.allclose(labelled, expected)


@pytest.mark.parametrize("text_rate", ["mesh", "double"])
def test_padded_batch_equals_each_clip_alone(text_rate):
    model = st_model(text_rate=text_rate).eval()
    batch = make_batch(model.topology, [1.0, 0.6])
    both = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    for i in range(2):
        one = select(batch, i)
        alone = model.predict(one.audio, one.audio_lengths, one.templates)
        n = int(one.frame_lengths[0])
        assert torch.allclose(both[i, :n], alone[0], atol=1e-5)
    out = model.train()(batch)
    assert (
        out.lip_logits.shape[1]
        == out.ctc_logits.shape[1]
        == both.shape[1] * (2 if text_rate == "double" else 1)
    )


def test_train_evaluate_and_round_trip_through_the_cli(tmp_path):
    data = make_learnable_dataset(tmp_path / "data")
    assert cli_main(["train", "--config", str(DEBUG), f"data.root={data}", f"output_dir={tmp_path}/r"]) == 0
    best = tmp_path / "r" / "selftalk" / "best.pt"
    ckpt = read_checkpoint(best)
    assert ckpt["config"]["model"]["kind"] == "selftalk"
    assert "lipreader" in ckpt["trainable_groups"]
    model, topo, _ = load_model(best)
    batch = make_batch(topo, [0.5])
    a = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    b = load_model(best)[0].predict(batch.audio, batch.audio_lengths, batch.templates)
    assert torch.equal(a, b)
    rep = tmp_path / "rep.json"
    args = ["evaluate", "--checkpoint", str(best), "--data", str(data), "--split", "val", "--out", str(rep)]
    assert cli_main([*args, "--no-progress", "--plot-clips", "0"]) == 0
    report = json.loads(rep.read_text())
    assert "conditions" not in report and report["data"]["clips"] == 3

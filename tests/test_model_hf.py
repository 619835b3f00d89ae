"""Hugging Face CTC backbones (tiny, randomly initialised Wav2Vec2 and HuBERT configs saved with
save_pretrained and loaded by path; nothing downloads): forward, frame alignment, freezing, windowing."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch
from test_model_common import make_batch, tiny_config, tiny_topology

from memorytalker.errors import CheckpointError
from memorytalker.models.losses import LossWeights, compute_losses
from memorytalker.models.memorytalker import MemoryTalker

transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.usefixtures("hf_offline")

TINY = dict(
    vocab_size=32,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=48,
    conv_dim=(16,) * 7,
    num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2,
    mask_time_prob=0.05,
    mask_time_length=2,
)


@pytest.fixture(scope="module", params=["wav2vec2", "hubert"])
def hf_dir(request, tmp_path_factory):
    torch.manual_seed(0)
    if request.param == "wav2vec2":
        model = transformers.Wav2Vec2ForCTC(transformers.Wav2Vec2Config(**TINY))
    else:
        model = transformers.HubertForCTC(transformers.HubertConfig(**TINY))
    path = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(path)
    return path


def _cfg(path, **kw):
    cfg = tiny_config()
    backbone = dataclasses.replace(cfg.backbone, kind="huggingface", name_or_path=str(path), **kw)
    return dataclasses.replace(cfg, backbone=backbone)


@pytest.mark.parametrize("fps", [25.0, 30.0])
def test_forward_offline_from_local_dir(hf_dir, fps):
    topo = tiny_topology(fps)
    model = MemoryTalker(_cfg(hf_dir), topo).train()
    assert model.slots == 32 and model.memory.memory.shape == (32, 16)
    batch = make_batch(topo, [1.0, 0.6])
    out = model(batch, teacher_forcing=True)
    assert out.vertices.shape == (2, int(fps), 12, 3) and out.ctc_logits.shape == (2, int(fps), 32)
    losses = compute_losses(out, batch, LossWeights(ctc=0.0), topo)
    losses["total"].backward()
    groups = model.parameter_groups()
    assert all(not p.requires_grad for p in groups["asr_frontend"])  # conv front end frozen
    assert any(p.grad is not None for p in groups["asr"]) and any(
        p.grad is not None for p in groups["ctc_head"]
    )
    ids = [id(p) for ps in groups.values() for p in ps]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())


def test_double_text_rate_and_frozen_transformer(hf_dir):
    topo = tiny_topology(25.0)
    model = MemoryTalker(_cfg(hf_dir, text_rate="double", freeze_transformer=True), topo)
    out = model(make_batch(topo, [1.0, 0.6]))
    assert out.ctc_logits.shape == (2, 50, 32) and out.ctc_lengths.tolist() == [50, 30]
    assert out.vertices.shape == (2, 25, 12, 3)
    groups = model.parameter_groups()
    assert not any(p.requires_grad for g in ("asr_frontend", "asr", "ctc_head") for p in groups[g])
    assert all(p.requires_grad for p in groups["decoder"])


def test_windowed_inference_on_long_audio(hf_dir):
    topo = tiny_topology()
    model = MemoryTalker(_cfg(hf_dir, chunk_seconds=1.0, context_seconds=0.5), topo).eval()
    batch = make_batch(topo, [3.3])
    seen: list[int] = []
    forward = model.backbone.forward

    def spy(audio, *args):
        seen.append(audio.shape[-1])
        return forward(audio, *args)

    model.backbone.forward = spy
    with torch.no_grad():
        logits = model.text_logits(batch.audio, batch.audio_lengths, torch.tensor([99]), 99, chunked=True)
        pred = model.predict(batch.audio, batch.audio_lengths, batch.templates)
    assert pred.shape == (1, 99, 12, 3) and torch.isfinite(pred).all()
    # windows of 1 s + 0.5 s context each side, and every frame filled (no zero gaps between windows)
    assert len(seen) == 2 * 4 and max(seen) <= 2.0 * 16000 + 1
    assert logits.shape == (1, 99, 32) and bool((logits.abs().sum(-1) > 0).all())
    # short audio takes the single-call path
    seen.clear()
    with torch.no_grad():
        model.text_logits(batch.audio, batch.audio_lengths, torch.tensor([99]), 99, chunked=False)
    assert seen == [batch.audio.shape[-1]]


def test_missing_model_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="nothing is downloaded"):
        MemoryTalker(_cfg(tmp_path / "no-such-model"), tiny_topology())
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_padded_batch_equals_unbatched(hf_dir):
    """Each clip's feature encoder runs on its own samples, so the group norm of base-size checkpoints
    does not see the batch's padding."""
    topo = tiny_topology()
    model = MemoryTalker(_cfg(hf_dir), topo).eval()
    batch = make_batch(topo, [1.0, 0.6])
    with torch.no_grad():
        both = model.text_logits(batch.audio, batch.audio_lengths, batch.frame_lengths, 30)
        n = int(batch.audio_lengths[1])
        one = model.text_logits(batch.audio[1:, :n], batch.audio_lengths[1:], batch.frame_lengths[1:], 18)
    torch.testing.assert_close(both[1, :18], one[0], atol=1e-5, rtol=1e-4)
    assert bool((both[1, 18:] == 0).all())


def _count_encoder_calls(backbone) -> list[int]:
    calls: list[int] = []
    backbone.base.feature_extractor.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[-1]))
    return calls


def test_frozen_feature_encoder_runs_once_per_clip_in_training(hf_dir):
    topo = tiny_topology()
    model = MemoryTalker(_cfg(hf_dir), topo)
    bb = model.backbone
    calls = _count_encoder_calls(bb)
    batch = make_batch(topo, [1.0, 0.6])
    lengths = bb.base._get_feat_extract_output_lengths(batch.audio_lengths).long()
    bb.eval()
    with torch.no_grad():
        fresh = bb._encode_features(batch.audio, batch.audio_lengths, lengths)
    assert calls == [16000, 9600] and len(bb._cache) == 0  # no cache outside training
    bb.train()
    first = bb._encode_features(batch.audio, batch.audio_lengths, lengths)
    second = bb._encode_features(batch.audio, batch.audio_lengths, lengths)
    assert len(calls) == 4 and len(bb._cache) == 2 and (bb._cache.hits, bb._cache.misses) == (2, 2)
    assert torch.equal(first, fresh) and torch.equal(second, fresh)  # float32: the cache changes nothing
    assert not second.requires_grad
    for _ in range(2):  # training steps: the model's normalised audio is encoded once per clip
        out = model(batch, teacher_forcing=True)
        compute_losses(out, batch, LossWeights(ctc=0.0), topo)["total"].backward()
    assert len(calls) == 6 and len(bb._cache) == 4
    # a feature encoder that trains is never cached
    tuned = MemoryTalker(_cfg(hf_dir, freeze_feature_encoder=False), topo).train()
    tuned_calls = _count_encoder_calls(tuned.backbone)
    tuned(batch)
    tuned(batch)
    assert len(tuned_calls) == 4 and len(tuned.backbone._cache) == 0
    off = MemoryTalker(_cfg(hf_dir, cache_mb=0), topo).train()
    off_calls = _count_encoder_calls(off.backbone)
    off(batch)
    off(batch)
    assert len(off_calls) == 4 and len(off.backbone._cache) == 0

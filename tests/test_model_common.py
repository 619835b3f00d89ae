"""Helpers shared by the model, loss and inference tests (tiny configs, fake batches), and the checks of
the shared building blocks (banded attention, aligned cross-attention, interpolation, log-mel)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from memorytalker.models.config import BackboneConfig, DecoderConfig, MemoryConfig, ModelConfig, StyleConfig
from memorytalker.models.layers import band_attention, interpolate_frames
from memorytalker.models.mel import LogMel
from memorytalker.topology import FaceTopology

SR = 16000


def tiny_topology(fps: float = 30.0, num_vertices: int = 12) -> FaceTopology:
    rng = np.random.default_rng(0)
    verts = rng.normal(scale=0.05, size=(num_vertices, 3)).astype(np.float32)
    faces = np.array([[i, i + 1, i + 2] for i in range(num_vertices - 2)])
    return FaceTopology("tiny", verts, faces, fps, {"lips": [8, 9, 10, 11], "upper_face": [0, 1, 2]})


def tiny_config(style: bool = False, memory: bool = True, **backbone) -> ModelConfig:
    bb = dict(width=32, layers=2, heads=2, ffn=64, window=4, conv_layers=2, dropout=0.0)
    bb.update(backbone)
    return ModelConfig(
        backbone=BackboneConfig(**bb),
        memory=MemoryConfig(enabled=memory, width=16),
        style=StyleConfig(enabled=style, channels=16, blocks=2, embed=32),
        decoder=DecoderConfig(layers=1, heads=4, ffn=32, dropout=0.0, window=5),
    )


def randomize_head(model: nn.Module, seed: int = 0) -> None:
    """Give the zero-initialised head random weights so outputs depend on the whole network."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head = model.decoder.head
        head.weight.copy_(torch.randn(head.weight.shape, generator=g) * 0.1)
        head.bias.copy_(torch.randn(head.bias.shape, generator=g) * 0.01)


@dataclass
class FakeBatch:
    """The fields of ``memorytalker.data.Batch`` the model and the losses use."""

    audio: torch.Tensor
    audio_lengths: torch.Tensor
    vertices: torch.Tensor
    frame_lengths: torch.Tensor
    frame_mask: torch.Tensor
    templates: torch.Tensor
    phoneme_targets: torch.Tensor
    phoneme_lengths: torch.Tensor
    positive_audio: torch.Tensor | None = None
    positive_lengths: torch.Tensor | None = None
    negative_audio: torch.Tensor | None = None
    negative_lengths: torch.Tensor | None = None


def speechlike(seconds: float, seed: int = 0) -> np.ndarray:
    """Tones with a syllable-rate envelope plus noise: not silent, not constant."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    f0 = rng.uniform(100, 220)
    env = 0.5 + 0.5 * np.sin(2 * math.pi * rng.uniform(3, 5) * t) ** 2
    x = env * (np.sin(2 * math.pi * f0 * t) + 0.5 * np.sin(2 * math.pi * 3.1 * f0 * t))
    return (0.3 * x + 0.01 * rng.normal(size=n)).astype(np.float32)


def make_batch(
    topology: FaceTopology, seconds: list[float], triplets: bool = False, seed: int = 0
) -> FakeBatch:
    """A padded batch of clips of the given durations (frames = round(duration * fps))."""
    rng = np.random.default_rng(seed)
    v = topology.num_vertices
    clips = [speechlike(s, seed + i) for i, s in enumerate(seconds)]
    lengths = torch.tensor([len(c) for c in clips])
    audio = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        audio[i, : len(c)] = torch.from_numpy(c)
    frames = torch.tensor([max(1, round(s * topology.fps)) for s in seconds])
    t = int(frames.max())
    mask = torch.arange(t)[None] < frames[:, None]
    templates = torch.from_numpy(np.array(topology.vertices))[None].repeat(len(clips), 1, 1)
    templates = templates + torch.from_numpy(rng.normal(scale=0.002, size=templates.shape).astype(np.float32))
    motion = torch.from_numpy(rng.normal(scale=0.003, size=(len(clips), t, v, 3)).astype(np.float32))
    vertices = (templates[:, None] + motion) * mask[:, :, None, None]
    n_ph = [max(1, int(s * 8)) for s in seconds]
    targets = torch.zeros(len(clips), max(n_ph), dtype=torch.long)
    for i, n in enumerate(n_ph):
        targets[i, :n] = torch.from_numpy(rng.integers(1, 40, size=n))
    batch = FakeBatch(audio, lengths, vertices, frames, mask, templates, targets, torch.tensor(n_ph))
    if triplets:
        batch.positive_audio, batch.positive_lengths = audio.roll(1, 0), lengths.roll(1, 0)
        batch.negative_audio, batch.negative_lengths = audio.flip(0), lengths.flip(0)
    return batch


def select(batch: FakeBatch, i: int) -> FakeBatch:
    """Clip ``i`` of a batch alone, without padding."""
    s, t = int(batch.audio_lengths[i]), int(batch.frame_lengths[i])
    return FakeBatch(
        batch.audio[i : i + 1, :s],
        batch.audio_lengths[i : i + 1],
        batch.vertices[i : i + 1, :t],
        batch.frame_lengths[i : i + 1],
        batch.frame_mask[i : i + 1, :t],
        batch.templates[i : i + 1],
        batch.phoneme_targets[i : i + 1, : int(batch.phoneme_lengths[i])],
        batch.phoneme_lengths[i : i + 1],
    )


# ---------------------------------------------------------------------------------------------- blocks
def _dense_band(q, k, v, window, key_valid):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    t = q.shape[2]
    idx = torch.arange(t)
    allowed = (
        ((idx[:, None] - idx[None, :]).abs() <= window)[None, None]
        if window
        else torch.ones(1, 1, t, t, dtype=torch.bool)
    )
    allowed = allowed & key_valid[:, None, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    return torch.softmax(scores, -1) @ v


def test_band_attention_equals_dense_masked_attention():
    g = torch.Generator().manual_seed(0)
    for t, window in [(1, 3), (7, 3), (16, 4), (23, 5), (40, 1), (9, 0)]:
        q, k, v = (torch.randn(2, 3, t, 8, generator=g) for _ in range(3))
        lengths = torch.tensor([t, max(1, t - 3)])
        valid = torch.arange(t)[None] < lengths[:, None]
        got = band_attention(q, k, v, window, valid)
        ref = _dense_band(q, k, v, window, valid)
        for b in range(2):
            n = int(lengths[b])
            torch.testing.assert_close(got[b, :, :n], ref[b, :, :n], atol=1e-5, rtol=1e-5)


def test_interpolate_frames_matches_f_interpolate_per_clip():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(3, 20, 4, generator=g)
    in_len, out_len = torch.tensor([20, 13, 1]), torch.tensor([12, 31, 5])
    got = interpolate_frames(x, in_len, out_len, 31)
    for b in range(3):
        a, t = int(in_len[b]), int(out_len[b])
        ref = torch.nn.functional.interpolate(
            x[b : b + 1, :a].transpose(1, 2), size=t, mode="linear", align_corners=True
        ).transpose(1, 2)[0]
        torch.testing.assert_close(got[b, :t], ref, atol=1e-5, rtol=1e-5)
        assert torch.all(got[b, t:] == 0)


def test_log_mel_matches_reference_stft_and_padding():
    mel = LogMel(SR, 400, 160, 40)
    x = torch.from_numpy(speechlike(0.5))
    out, lengths = mel(x[None], torch.tensor([len(x)]))
    assert out.shape == (1, 40, len(x) // 160 + 1) and int(lengths[0]) == out.shape[-1]
    # reference: numpy framing with zero centring pad, periodic Hann, |rfft|^2, HTK filters
    xp = np.pad(x.numpy().astype(np.float64), 200)
    win = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
    frames = np.stack([xp[i * 160 : i * 160 + 400] * win for i in range(out.shape[-1])])
    power = np.abs(np.fft.rfft(frames, axis=-1)) ** 2
    ref = 10 * np.log10(np.maximum(power @ mel.fbank.double().numpy(), 1e-10)).T
    np.testing.assert_allclose(out[0].double().numpy(), ref, atol=2e-3)
    # padded in a batch: identical valid frames, zeros after
    padded = torch.cat([x, torch.zeros(1000)])[None]
    out2, len2 = mel(padded, torch.tensor([len(x)]))
    assert int(len2[0]) == out.shape[-1]
    torch.testing.assert_close(out2[0, :, : out.shape[-1]], out[0], atol=1e-4, rtol=1e-5)
    assert torch.all(out2[0, :, out.shape[-1] :] == 0)

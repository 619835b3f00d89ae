"""Windowed inference equals one predict() call: a clip decoded in windows (with the receptive-field
context, the per-clip statistics from streaming passes) gives the whole-clip frames up to rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_model_common import randomize_head, speechlike, tiny_config, tiny_topology

from memorytalker.models.memorytalker import MemoryTalker
from memorytalker.models.windowed import (
    WindowedPrediction,
    _Moments,
    mel_band_mean,
    mel_frames,
    waveform_stats,
)


def _model(
    style: bool, level: str = "absolute", memory: bool = True, read_skip: bool = False, gain: bool = False
) -> MemoryTalker:
    torch.manual_seed(0)
    cfg = tiny_config(style=style, memory=memory)
    cfg.style.level = level
    cfg.style.gain = gain
    cfg.decoder.read_skip = read_skip
    model = MemoryTalker(cfg, tiny_topology()).eval()
    randomize_head(model)
    if gain:  # a gain that depends on the audio (and is not 1)
        with torch.no_grad():
            torch.nn.init.normal_(model.style.to_slots.weight, std=0.5)
            torch.nn.init.normal_(model.style.gain_head.weight, std=0.2)
    return model


def _whole_and_windowed(model, seconds: float, window: int):
    audio = torch.from_numpy(speechlike(seconds, seed=3)).float()
    template = torch.from_numpy(model.topology.vertices.copy())
    with torch.inference_mode():
        whole = model.predict(audio[None], torch.tensor([audio.numel()]), template[None])[0]
        run = WindowedPrediction(model, audio, template, window)
        parts = list(run)
    assert run.windowed
    starts = [s for s, _ in parts]
    assert starts == list(range(0, whole.shape[0], window))
    return whole, torch.cat([p for _, p in parts])


@pytest.mark.parametrize(
    "style,level,memory,read_skip,gain",
    [
        (False, "absolute", True, False, False),
        (True, "absolute", True, False, False),
        (True, "normalized", True, False, False),
        (True, "normalized", True, True, False),
        (True, "spectral", True, True, False),
        (True, "spectral", True, True, True),
        (False, "absolute", False, False, False),
    ],
)
def test_windows_equal_the_whole_clip(style, level, memory, read_skip, gain):
    model = _model(style, level, memory, read_skip, gain)
    whole, windowed = _whole_and_windowed(model, 7.3, window=41)
    assert windowed.shape == whole.shape
    scale = float((whole - torch.from_numpy(model.topology.vertices)).abs().max())
    assert scale > 0
    err = float((windowed - whole).abs().max())
    assert err <= 1e-5 * max(scale, 1.0), (err, scale)


def test_short_clip_runs_in_one_call():
    model = _model(True)
    audio = torch.from_numpy(speechlike(1.0)).float()
    template = torch.from_numpy(model.topology.vertices.copy())
    with torch.inference_mode():
        run = WindowedPrediction(model, audio, template, 1000)
        parts = list(run)
    assert not run.windowed and len(parts) == 1 and parts[0][0] == 0


def test_streaming_statistics_match_direct_ones():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(0.1, 0.3, 50_000)).float()
    mean, denom = waveform_stats(x)
    assert float(mean) == pytest.approx(float(x.double().mean()), abs=1e-6)
    assert float(denom) == pytest.approx(float(torch.sqrt(x.double().var(unbiased=False) + 1e-7)), rel=1e-5)
    m = _Moments()
    data = torch.from_numpy(rng.normal(size=(3, 1000)))
    for a in range(0, 1000, 137):
        m.add(data[:, a : a + 137])
    np.testing.assert_allclose(m.mean.numpy(), data.mean(-1).numpy(), atol=1e-12)
    np.testing.assert_allclose((m.m2 / m.n).numpy(), data.var(-1, unbiased=False).numpy(), atol=1e-12)
    model = _model(False)
    logmel = model.backbone.mel
    n = x.numel()
    with torch.inference_mode():
        full, _ = logmel(x[None], torch.tensor([n]))
        part = mel_frames(logmel, lambda s0, s1: x[s0:s1], n, 40, 90)
        band = mel_band_mean(logmel, lambda s0, s1: x[s0:s1], n)
    torch.testing.assert_close(part, full[0, :, 40:90], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(band[0, :, 0], full[0].double().mean(-1).float(), atol=1e-4, rtol=1e-4)


def test_npy_frames_reads_frames_without_loading_the_file(tmp_path):
    from memorytalker.errors import MemoryTalkerError
    from memorytalker.pipeline import NpyFrames

    x = np.random.default_rng(0).normal(size=(7, 5, 3)).astype(np.float32)
    np.save(tmp_path / "a.npy", x)
    frames = NpyFrames(tmp_path / "a.npy")
    assert len(frames) == 7 and frames.shape == (7, 5, 3)
    np.testing.assert_array_equal(frames[3], x[3])
    np.testing.assert_array_equal(frames[-1], x[-1])
    np.testing.assert_array_equal(frames[2:5], x[2:5])
    with pytest.raises(IndexError):
        frames[7]
    frames.close()
    np.save(tmp_path / "b.npy", x.astype(np.float64))
    with pytest.raises(MemoryTalkerError, match="float32"):
        NpyFrames(tmp_path / "b.npy")

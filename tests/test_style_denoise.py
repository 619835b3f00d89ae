"""The style encoder's noise subtraction (``model.style.denoise``): hand-computed pieces, padding, the
streamed estimate of long audio, and that white noise no longer reads as a flatter spectral tilt."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from test_model_common import tiny_config, tiny_topology

from memorytalker.data.augment import add_noise
from memorytalker.models import windowed
from memorytalker.models.mel import LogMel, NoiseSubtraction, normalize_waveform
from memorytalker.models.memorytalker import MemoryTalker

SR = 16000
#: The default of model.style.denoise_* (StyleConfig).
NS = NoiseSubtraction(share=0.1, over=2.0, floor_db=-40.0)


def _sentence(seconds: float = 3.0, seed: int = 0) -> np.ndarray:
    """Voiced syllables (a harmonic series falling 12 dB per octave) with pauses of digital silence between
    words: most energy low, little above 2 kHz, as in speech."""
    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    t = np.arange(n) / SR
    f0 = 140.0
    voice = sum(
        (1.0 / k**2) * np.sin(2 * math.pi * k * f0 * t + rng.uniform(0, 2 * math.pi)) for k in range(1, 40)
    )
    syllables = np.clip(np.sin(2 * math.pi * 4.0 * t), 0.0, None)  # 4 syllables a second
    words = (np.floor(t / 0.6) % 2 == 0).astype(float)  # 0.6 s of speech, 0.6 s of silence
    return (0.3 * voice * syllables * words).astype(np.float32)


def test_quiet_frames_are_the_quietest_share():
    totals = torch.tensor([5.0, 1.0, 3.0, 2.0, 9.0, 8.0, 7.0, 6.0, 4.0, 10.0])
    assert NS.quiet_frames(totals).tolist() == [False, True] + [False] * 8  # 10 % of 10 frames: one
    twenty = torch.cat([totals, totals + 10])
    assert torch.nonzero(NS.quiet_frames(twenty)).flatten().tolist() == [1, 3]  # two of 20
    assert NS.quiet_frames(torch.tensor([3.0])).tolist() == [True]  # at least one


def test_noise_estimate_and_subtraction_by_hand():
    # 10 frames, 2 bands: frame 4 is the quietest (total 2); its power per band is the noise
    power = torch.full((2, 10), 50.0, dtype=torch.float64)
    power[:, 4] = torch.tensor([1.5, 0.5])
    noise, floor = NS.estimate(power)
    np.testing.assert_allclose(noise.flatten().numpy(), [1.5, 0.5])
    mean_band = (9 * 100.0 + 2.0) / 10 / 2
    assert float(floor) == pytest.approx(mean_band * 1e-4)  # 40 dB below
    assert float(NS.floor(power.sum(0), 2)) == pytest.approx(float(floor))
    db = torch.tensor([[10.0, 0.0], [20.0, -30.0]])  # powers 10, 1 / 100, 1e-3
    out = NS.subtract(db, torch.tensor([[2.0], [5.0]]), torch.tensor(0.01))
    expected = [
        [10 * math.log10(10 - NS.over * 2), -20.0],
        [10 * math.log10(100 - NS.over * 5), -20.0],
    ]
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-5)  # below the floor: the floor (0.01 = -20 dB)


def test_padded_batch_equals_each_clip_alone():
    mel = LogMel()
    a = torch.from_numpy(_sentence(2.0, 0))
    b = torch.from_numpy(add_noise(_sentence(1.3, 1), 10.0, np.random.default_rng(0)))
    batch = torch.zeros(2, a.numel())
    batch[0], batch[1, : b.numel()] = a, b
    db, lengths = mel(batch, torch.tensor([a.numel(), b.numel()]))
    out = NS(db, lengths)
    for i, clip in enumerate((a, b)):
        alone_db, alone_len = mel(clip[None], torch.tensor([clip.numel()]))
        alone = NS(alone_db, alone_len)
        n = int(alone_len[0])
        torch.testing.assert_close(out[i, :, :n], alone[0], atol=1e-4, rtol=1e-5)
        assert not out[i, :, n:].any()  # padding stays zero
    assert not torch.equal(out, db)


def _band_means(wave: np.ndarray, denoise: bool) -> torch.Tensor:
    """Per-band clip mean of the style encoder's log-mel (normalised waveform, the ``spectral`` offset)."""
    x = torch.from_numpy(wave)[None]
    lengths = torch.tensor([wave.size])
    db, frames = LogMel()(normalize_waveform(x, lengths), lengths)
    if denoise:
        db = NS(db, frames)
    db = db - db.mean(dim=(-2, -1), keepdim=True)  # one offset over bands and frames, as `spectral` removes
    return db[0].mean(-1)


def test_white_noise_no_longer_flattens_the_tilt():
    clean = _sentence()
    noisy = add_noise(clean, 15.0, np.random.default_rng(1), "white")
    before = (_band_means(noisy, False) - _band_means(clean, False)).abs()
    after = (_band_means(noisy, True) - _band_means(clean, True)).abs()
    assert float(before[60:].mean()) > 10.0, before  # the noise lifts the quiet high bands (> ~3.5 kHz)
    assert float(before.max()) > 40.0, before
    assert float(after.max()) < 6.0, after  # every band within a few dB of the clean clip's
    # on the clean clip the subtraction changes little where speech is
    low = slice(5, 30)
    assert float((_band_means(clean, True) - _band_means(clean, False))[low].abs().max()) < 6.0


def test_streamed_estimate_equals_the_whole_clip(monkeypatch):
    monkeypatch.setattr(windowed, "MEL_CHUNK_FRAMES", 70)  # several chunks in a 3-second clip
    wave = torch.from_numpy(add_noise(_sentence(), 15.0, np.random.default_rng(2)))
    mel = LogMel()
    db, _ = mel(wave[None], torch.tensor([wave.numel()]))
    ns = NoiseSubtraction(share=0.05, over=1.5, floor_db=-50.0)
    noise, floor = ns.estimate(10.0 ** (db[0].double() / 10.0))
    s_noise, s_floor = windowed.mel_noise_estimate(mel, lambda s0, s1: wave[s0:s1], wave.numel(), ns)
    torch.testing.assert_close(s_noise, noise, rtol=1e-4, atol=0)
    assert float(s_floor) == pytest.approx(float(floor), rel=1e-5)


def test_windowed_style_with_denoise_equals_the_whole_clip(monkeypatch):
    monkeypatch.setattr(windowed, "MEL_CHUNK_FRAMES", 90)
    torch.manual_seed(0)
    cfg = tiny_config(style=True)
    cfg.style.level = "spectral"
    cfg.style.denoise = True
    model = MemoryTalker(cfg, tiny_topology()).eval()
    with torch.no_grad():
        torch.nn.init.normal_(model.style.to_slots.weight, std=0.5)
    wave = torch.from_numpy(add_noise(_sentence(), 15.0, np.random.default_rng(3)))
    n = wave.numel()
    with torch.inference_mode():
        whole = model.style.logits(wave[None], torch.tensor([n]))
        norm = normalize_waveform(wave[None], torch.tensor([n]))[0]
        streamed = windowed.style_logits(model.style, lambda a, b: wave[a:b], lambda a, b: norm[a:b], n, 64)
        cfg.style.denoise = False
        plain = model.style.logits(wave[None], torch.tensor([n]))
    torch.testing.assert_close(streamed, whole, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(plain, whole, atol=1e-3)  # the switch changes what the encoder hears


@pytest.mark.parametrize(
    "field, value, match",
    [
        ("denoise_floor_db", 0.0, "negative"),
        ("denoise_share", 0.0, r"\(0, 1\]"),
        ("denoise_over", -1.0, ">= 0"),
    ],
)
def test_bad_denoise_settings_are_named(field, value, match):
    from memorytalker.errors import ConfigError
    from memorytalker.models.config import StyleConfig

    cfg = StyleConfig(denoise=True, **{field: value})
    with pytest.raises(ConfigError, match=f"model.style.{field}.*{match}"):
        cfg.validate()
    ok = StyleConfig(denoise=True, denoise_share=0.05, denoise_over=1.0, denoise_floor_db=-60.0)
    ok.validate()
    assert ok.noise_subtraction() == NoiseSubtraction(0.05, 1.0, -60.0)

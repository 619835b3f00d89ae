"""Audio augmentation (memorytalker.data.augment): each transform measured against what it promises, the
chain's determinism, and the dataset applying it to the training audio only."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf
from scipy import signal

from memorytalker.data.augment import (
    AugmentConfig,
    Augmenter,
    RecordingCondition,
    add_noise,
    apply_gain,
    coloured_noise,
    load_rirs,
    mu_law,
    reverberate,
    rms,
    synthetic_rir,
    telephone,
)
from memorytalker.errors import ConfigError, DatasetError

SR = 16000


def speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonics of a 120 Hz voice, amplitude-modulated at 4 Hz (syllables)."""
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    x = sum(np.sin(2 * np.pi * 120 * k * t + rng.uniform(0, 6)) / k for k in range(1, 30))
    return (0.1 * x * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def band_energy(x: np.ndarray, lo: float, hi: float) -> float:
    f, p = signal.welch(x, SR, nperseg=1024)
    return float(p[(f >= lo) & (f < hi)].sum())


def test_gain_is_exact():
    x = speechlike()
    np.testing.assert_allclose(rms(apply_gain(x, -12.0)) / rms(x), 10 ** (-12 / 20), rtol=1e-5)


@pytest.mark.parametrize("snr", [0.0, 10.0, 25.0])
@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_noise_at_the_requested_snr(snr, colour):
    x = speechlike()
    y = add_noise(x, snr, np.random.default_rng(1), colour)
    measured = 20 * np.log10(rms(x) / rms(y - x))
    assert measured == pytest.approx(snr, abs=0.01)


def test_noise_colours_have_their_slopes():
    rng = np.random.default_rng(0)
    slopes = {}
    for colour in ("white", "pink", "brown"):
        n = coloured_noise(SR * 4, colour, rng)
        assert rms(n) == pytest.approx(1.0, rel=1e-5)
        f, p = signal.welch(n, SR, nperseg=2048)
        keep = (f > 100) & (f < 6000)
        slopes[colour] = np.polyfit(np.log10(f[keep]), np.log10(p[keep]), 1)[0]  # dB/decade / 10
    assert slopes["white"] == pytest.approx(0.0, abs=0.1)
    assert slopes["pink"] == pytest.approx(-1.0, abs=0.1)
    assert slopes["brown"] == pytest.approx(-2.0, abs=0.15)


def test_silence_gets_no_noise():
    np.testing.assert_array_equal(add_noise(np.zeros(100, np.float32), 10.0, np.random.default_rng(0)), 0.0)


@pytest.mark.parametrize("rt60", [0.2, 0.5, 0.9])
def test_synthetic_rir_decays_in_rt60(rt60):
    h = synthetic_rir(rt60, np.random.default_rng(3)).astype(np.float64)
    assert h[0] == 1.0 and np.argmax(np.abs(h)) == 0
    tail = h.copy()
    tail[0] = 0.0
    # Schroeder backward integration; T20 (-5 .. -25 dB) extrapolated to 60 dB
    edc = np.cumsum(tail[::-1] ** 2)[::-1]
    edc_db = 10 * np.log10(edc / edc[0])
    t5, t25 = np.argmax(edc_db <= -5), np.argmax(edc_db <= -25)
    assert 3 * (t25 - t5) / SR == pytest.approx(rt60, rel=0.15)


def test_reverb_keeps_timing_length_and_level():
    x = speechlike(seed=2)
    y = reverberate(x, synthetic_rir(0.4, np.random.default_rng(0)))
    assert y.shape == x.shape and y.dtype == np.float32
    assert rms(y) == pytest.approx(rms(x), rel=1e-5)
    lags = signal.correlation_lags(len(y), len(x))
    assert lags[np.argmax(signal.correlate(y, x))] == 0  # the direct path stays at lag 0
    assert np.corrcoef(x, y)[0, 1] < 0.99  # and it is audibly reverberant


def test_reverb_aligns_a_delayed_response_on_its_peak():
    x = speechlike(seed=4)
    h = np.zeros(800, np.float32)
    h[300] = 1.0
    np.testing.assert_allclose(reverberate(x, h), x, atol=1e-5)


def test_telephone_band():
    rng = np.random.default_rng(5)
    x = coloured_noise(SR * 2, "white", rng)
    y = telephone(x)
    assert y.shape == x.shape
    assert band_energy(y, 4500, 8000) < 1e-4 * band_energy(x, 4500, 8000)
    assert band_energy(y, 20, 150) < 0.05 * band_energy(x, 20, 150)
    assert band_energy(y, 800, 3000) == pytest.approx(band_energy(x, 800, 3000), rel=0.1)
    lags = signal.correlation_lags(len(y), len(x))
    assert lags[np.argmax(signal.correlate(y, x))] == 0  # zero-phase


def test_mu_law_quantises_mildly():
    x = speechlike()
    y = mu_law(x)
    err = rms(y - x) / rms(x)
    assert 1e-4 < err < 0.05  # audible grain, not destruction
    assert len(np.unique(y)) <= 256
    assert np.max(np.abs(y)) == pytest.approx(np.max(np.abs(x)), rel=1e-6)


def test_chain_is_deterministic_and_varies_by_draw():
    aug = Augmenter(
        AugmentConfig(enabled=True, p=1.0, reverb_p=1.0, noise_p=1.0, telephone_p=1.0, codec_p=1.0)
    )
    x = speechlike()
    y1, s1 = aug(x, np.random.default_rng([0, 0, 3]))
    y2, s2 = aug(x, np.random.default_rng([0, 0, 3]))
    y3, _ = aug(x, np.random.default_rng([0, 1, 3]))
    np.testing.assert_array_equal(y1, y2)
    assert s1 == s2 and len(s1) == 5 and s1[0].startswith("gain") and "telephone band" in s1
    assert not np.allclose(y1, y3)
    np.testing.assert_array_equal(x, speechlike())  # the input is not modified


def test_chain_with_p_zero_returns_the_input():
    aug = Augmenter(AugmentConfig(enabled=True, p=0.0))
    x = speechlike()
    y, steps = aug(x, np.random.default_rng(0))
    assert steps == [] and y is x


def test_chain_rates_follow_the_probabilities():
    aug = Augmenter(
        AugmentConfig(enabled=True, p=1.0, reverb_p=0.0, noise_p=0.5, telephone_p=0.0, codec_p=0.0)
    )
    x = speechlike(0.2)
    noisy = sum("noise" in " ".join(aug(x, np.random.default_rng(i))[1]) for i in range(400))
    assert 160 < noisy < 240


def test_real_rirs_from_a_folder(tmp_path):
    h = np.zeros(4410, np.float32)
    h[100], h[900] = 0.9, 0.3
    sf.write(tmp_path / "room.wav", np.stack([h, h * 0.5], 1), 44100)  # stereo, 44.1 kHz
    rirs = load_rirs(tmp_path)
    assert len(rirs) == 1 and rirs[0].ndim == 1 and abs(len(rirs[0]) - 1600) <= 1
    cfg = AugmentConfig(
        enabled=True,
        p=1.0,
        reverb_p=1.0,
        rir_dir=str(tmp_path),
        real_rir_p=1.0,
        noise_p=0.0,
        telephone_p=0.0,
        codec_p=0.0,
    )
    _, steps = Augmenter(cfg)(speechlike(), np.random.default_rng(0))
    assert "room response 0" in steps


def test_bad_rir_folders_are_named(tmp_path):
    with pytest.raises(DatasetError, match="not a folder"):
        load_rirs(tmp_path / "missing")
    with pytest.raises(DatasetError, match="no .wav"):
        load_rirs(tmp_path)
    sf.write(tmp_path / "zero.wav", np.zeros(100, np.float32), SR)
    with pytest.raises(DatasetError, match="zero.wav.*silent"):
        load_rirs(tmp_path)


@pytest.mark.parametrize(
    "change, match",
    [
        ({"p": 1.5}, "data.augment.p"),
        ({"noise_p": -0.1}, "data.augment.noise_p"),
        ({"snr_db": (20.0, 5.0)}, "data.augment.snr_db"),
        ({"rt60": (0.0, 0.5)}, "rt60 must be positive"),
        ({"noise_colours": ("violet",)}, "noise_colours"),
        ({"noise_colours": ()}, "noise_colours"),
    ],
)
def test_config_errors(change, match):
    with pytest.raises(ConfigError, match=match):
        AugmentConfig(**change).validate()


def test_train_config_carries_augment():
    from memorytalker.training.config import load_train_config

    cfg = load_train_config("configs/debug.yaml", ["data.augment.enabled=true", "data.augment.snr_db=[0,20]"])
    assert cfg.data.augment.enabled and cfg.data.augment.snr_db == (0.0, 20.0)
    with pytest.raises(ConfigError, match="data.augment.p"):
        load_train_config("configs/debug.yaml", ["data.augment.p=2"])


def test_a_stage_can_augment_alone():
    """stages.<name>.augment merges into data.augment for that stage only (and survives a reload of the stored
    config); a stage config that does not match data.augment is refused."""
    import dataclasses

    from memorytalker.training.config import (
        TrainConfig,
        config_to_dict,
        load_train_config,
        train_config_from_dict,
    )

    over = ["stages.animating.augment={enabled: true, snr_db: [5, 30]}", "data.augment.noise_p=0.3"]
    two = load_train_config("configs/debug.yaml", over, stage="animating")
    assert (
        two.data.augment.enabled
        and two.data.augment.snr_db == (5.0, 30.0)
        and two.data.augment.noise_p == 0.3
    )
    assert train_config_from_dict(config_to_dict(two)) == two
    one = load_train_config("configs/debug.yaml", over, stage="memorizing")
    assert not one.data.augment.enabled and one.data.augment.snr_db == AugmentConfig().snr_db
    with pytest.raises(ConfigError, match="snr"):
        load_train_config("configs/debug.yaml", ["stages.animating.augment={snr: 3}"], stage="animating")
    with pytest.raises(ConfigError, match="must map data.augment fields"):
        load_train_config("configs/debug.yaml", ["stages.animating.augment=3"], stage="animating")
    bad = dataclasses.replace(two, data=dataclasses.replace(two.data, augment=AugmentConfig()))
    assert isinstance(bad, TrainConfig)
    with pytest.raises(ConfigError, match="needs augmentation"):
        bad.validate()


def test_dataset_augments_audio_only(tiny_dataset):
    from memorytalker.data import load_dataset
    from memorytalker.data.dataset import TalkingFaceDataset

    index = load_dataset(tiny_dataset)
    cfg = AugmentConfig(enabled=True, p=1.0, noise_p=1.0, snr_db=(10.0, 10.0))
    plain = TalkingFaceDataset(index, "train")
    aug = TalkingFaceDataset(index, "train", augment=cfg, seed=0)
    again = TalkingFaceDataset(index, "train", augment=cfg, seed=0)
    a, b, c = plain[0], aug[0], again[0]
    assert b.audio.shape == a.audio.shape and not np.allclose(a.audio.numpy(), b.audio.numpy())
    np.testing.assert_array_equal(b.audio.numpy(), c.audio.numpy())
    np.testing.assert_array_equal(b.vertices.numpy(), a.vertices.numpy())
    np.testing.assert_array_equal(b.frame_phonemes.numpy(), a.frame_phonemes.numpy())
    aug.set_epoch(1)
    assert not np.allclose(aug[0].audio.numpy(), b.audio.numpy())
    off = TalkingFaceDataset(index, "train", augment=AugmentConfig(enabled=False))
    np.testing.assert_array_equal(off[0].audio.numpy(), a.audio.numpy())


def test_recording_condition_applies_room_noise_and_gain_in_order():
    x = speechlike(1.5)
    cond = RecordingCondition(snr_db=15.0, rt60=0.3, gain_db=-12.0)
    assert cond.describe() == "room RT60 0.3 s, white noise 15 dB SNR, 12 dB quieter" and not cond.clean
    y = cond.apply(x, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    by_hand = apply_gain(add_noise(reverberate(x, synthetic_rir(0.3, rng)), 15.0, rng, "white"), -12.0)
    np.testing.assert_allclose(y, by_hand, atol=1e-7)
    np.testing.assert_array_equal(y, cond.apply(x, np.random.default_rng(4)))  # seeded
    assert y.dtype == np.float32 and y.shape == x.shape
    clean = RecordingCondition()
    assert clean.clean and clean.describe() == "as recorded"
    np.testing.assert_array_equal(clean.apply(x, np.random.default_rng(0)), x)
    assert RecordingCondition(gain_db=6.0).describe() == "6 dB louder"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"noise": "blue"}, "noise colour"), ({"rt60": 0.0}, "RT60"), ({"snr_db": float("nan")}, "snr_db")],
)
def test_recording_condition_refuses_bad_values(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        RecordingCondition(**kwargs)

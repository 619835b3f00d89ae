"""Upper-face motion from the audio's prosody: pitch and energy -> brow raise; blinks.

* :func:`frame_features` measures, per mesh frame (time ``k / fps``), the fundamental frequency (normalised
  autocorrelation over a 50 ms window, corrected for the window, 60-450 Hz, with parabolic peak interpolation; voiced = periodic,
  within 30 dB of the loudest frame, few zero crossings, no isolated octave jump; 0 = unvoiced) and the
  energy in dB. It is computed from the waveform that is written, so the link between what you hear and
  the brows is exact.
* :func:`brow_curve`: pitch excursions above the speaker's own mean (in semitones) and energy accents
  raise the brows, smoothed to a plausible muscle speed.
* :func:`blink_curve`: blinks at a per-speaker rate (Poisson), more likely in pauses, each ~270 ms
  (fast close, slower open).
"""

from __future__ import annotations

import numpy as np

from memorytalker.data.audio import SAMPLE_RATE

F0_MIN, F0_MAX = 60.0, 450.0


def frame_features(audio: np.ndarray, num_frames: int, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(f0 (T,) Hz with 0 = unvoiced, energy (T,) dB)`` of 16 kHz ``audio`` ``(S,)`` at frames ``k / fps``."""
    x = np.asarray(audio, dtype=np.float64)
    win = int(0.05 * SAMPLE_RATE)
    half = win // 2
    pad = np.pad(x, (half, half + win))
    centres = np.round(np.arange(num_frames) / fps * SAMPLE_RATE).astype(np.int64)
    frames = np.stack([pad[c : c + win] for c in centres]) if num_frames else np.zeros((0, win))
    frames = frames - frames.mean(axis=1, keepdims=True)
    energy = 10 * np.log10((frames**2).mean(axis=1) + 1e-10)
    nfft = 2 * win
    window = np.hanning(win)
    spec = np.fft.rfft(frames * window, n=nfft, axis=1)
    ac = np.fft.irfft(np.abs(spec) ** 2, n=nfft, axis=1)[:, :win]
    ac_w = np.fft.irfft(np.abs(np.fft.rfft(window, n=nfft)) ** 2, n=nfft)[:win]
    # divide out the window's own autocorrelation (Boersma 1993) so long lags (low f0) are not penalised
    ac = ac / np.maximum(ac[:, :1], 1e-12) / np.maximum(ac_w / ac_w[0], 1e-3)
    lo, hi = int(SAMPLE_RATE / F0_MAX), int(SAMPLE_RATE / F0_MIN)
    seg = ac[:, lo:hi]
    k = np.argmax(seg, axis=1)
    peak = seg[np.arange(len(k)), k]
    # parabolic interpolation around the peak
    km = np.clip(k, 1, seg.shape[1] - 2)
    a, b, c = seg[np.arange(len(k)), km - 1], seg[np.arange(len(k)), km], seg[np.arange(len(k)), km + 1]
    denom = a - 2 * b + c
    off = np.divide(0.5 * (a - c), denom, out=np.zeros_like(denom), where=np.abs(denom) > 1e-12)
    lag = lo + km + np.clip(off, -1, 1)
    # voiced: periodic, loud enough, and not frication noise (few zero crossings)
    zcr = (np.diff(np.signbit(frames), axis=1) != 0).mean(axis=1)
    voiced = (peak > 0.5) & (energy > energy.max(initial=-100) - 30) & (zcr < 0.2)
    f0 = np.where(voiced, SAMPLE_RATE / lag, 0.0)
    # remove isolated octave jumps: compare with the median of the voiced neighbours
    if voiced.sum() >= 5:
        from scipy.ndimage import median_filter

        med = median_filter(np.where(voiced, f0, np.nan), size=7, mode="nearest")
        med = np.where(np.isnan(med), f0, med)
        jump = voiced & (np.abs(np.log2(np.maximum(f0, 1e-6) / np.maximum(med, 1e-6))) > 0.6)
        f0 = np.where(jump, 0.0, f0)
    return f0, energy


def _smooth(x: np.ndarray, sigma_frames: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma_frames, mode="nearest") if x.size else x


def brow_curve(f0: np.ndarray, energy: np.ndarray, gain: float, fps: float) -> np.ndarray:
    """Brow raise ``(T,)`` in [0, ~1.5]: pitch above the clip's mean (semitones) plus energy accents."""
    voiced = f0 > 0
    raise_ = np.zeros_like(f0)
    if voiced.sum() >= 3:
        st = 12 * np.log2(np.where(voiced, f0, 1.0) / np.exp(np.mean(np.log(f0[voiced]))))
        raise_ = np.where(voiced, np.clip(st / 4.0, 0.0, 1.5), 0.0)
    accent = np.clip((energy - np.median(energy)) / 12.0, 0.0, 1.0)
    curve = 0.75 * raise_ + 0.25 * accent
    return gain * _smooth(curve, 0.08 * fps)


def blink_curve(
    num_frames: int,
    fps: float,
    rate_per_min: float,
    rng: np.random.Generator,
    pauses: list[tuple[float, float]] | None = None,
) -> np.ndarray:
    """Eyelid closure ``(T,)`` in [0, 1]: Poisson blinks at ``rate_per_min``, plus one in half the pauses."""
    dur = num_frames / fps
    times = []
    t = rng.exponential(60.0 / rate_per_min) * 0.5
    while t < dur:
        times.append(t)
        t += max(0.4, rng.exponential(60.0 / rate_per_min))
    for s, e in pauses or []:
        if e - s > 0.2 and rng.uniform() < 0.5:
            times.append(s + 0.3 * (e - s))
    out = np.zeros(num_frames)
    tt = np.arange(num_frames) / fps
    for c in sorted(times):
        close, open_ = 0.08, 0.19  # seconds
        d = tt - c
        shape = np.where(d < 0, np.clip(1 + d / close, 0, 1), np.clip(1 - d / open_, 0, 1)) ** 1.2
        out = np.maximum(out, shape)
    return out

"""Log-mel spectrogram in pure PyTorch (no torchaudio), padding-safe for batches.

Matches ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, hop_length, n_mels)`` (periodic Hann
window, power 2, HTK mel scale, no filter normalisation) followed by ``AmplitudeToDB()`` (10 log10, floor
1e-10, no top_db), except that the centring pad is zeros instead of a reflection: the frames near the end of a
clip then see the same zeros whether the clip is alone or zero-padded in a batch.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from memorytalker.data.audio import SAMPLE_RATE


def hz_to_mel(freq: torch.Tensor) -> torch.Tensor:
    """HTK mel scale."""
    return 2595.0 * torch.log10(1.0 + freq / 700.0)


def mel_to_hz(mel: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`hz_to_mel`."""
    return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)


def mel_filterbank(
    n_freqs: int, n_mels: int, sample_rate: int, f_min: float = 0.0, f_max: float | None = None
) -> torch.Tensor:
    """Triangular HTK mel filters ``(n_freqs, n_mels)`` (torchaudio's ``melscale_fbanks`` with norm=None)."""
    f_max = sample_rate / 2 if f_max is None else f_max
    all_freqs = torch.linspace(0, sample_rate // 2, n_freqs, dtype=torch.float64)
    m_pts = torch.linspace(
        hz_to_mel(torch.tensor(f_min, dtype=torch.float64)).item(),
        hz_to_mel(torch.tensor(f_max, dtype=torch.float64)).item(),
        n_mels + 2,
        dtype=torch.float64,
    )
    f_pts = mel_to_hz(m_pts)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts.unsqueeze(0) - all_freqs.unsqueeze(1)  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / f_diff[:-1]
    up = slopes[:, 2:] / f_diff[1:]
    return torch.clamp(torch.minimum(down, up), min=0.0).float()


def mel_lengths(audio_lengths: torch.Tensor, hop_length: int) -> torch.Tensor:
    """Valid mel frames of clips of ``audio_lengths`` samples: ``S // hop + 1`` (centred frames)."""
    return torch.div(audio_lengths, hop_length, rounding_mode="floor") + 1


class LogMel(nn.Module):
    """Waveform ``(B, S)`` -> log-mel ``(B, n_mels, F)`` in dB, with ``F = S // hop + 1``.

    The filterbank and window are non-persistent buffers (rebuilt from the config, not stored in
    checkpoints).
    """

    def __init__(
        self, sample_rate: int = SAMPLE_RATE, n_fft: int = 400, hop_length: int = 160, n_mels: int = 80
    ) -> None:
        super().__init__()
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.n_mels = int(n_mels)
        self.register_buffer("window", torch.hann_window(self.n_fft, periodic=True), persistent=False)
        self.register_buffer(
            "fbank", mel_filterbank(self.n_fft // 2 + 1, self.n_mels, self.sample_rate), persistent=False
        )

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(log_mel (B, n_mels, F), frame_lengths (B,))``; frames past a clip's end are zero."""
        audio = audio.float()
        spec = torch.stft(
            audio,
            n_fft=self.n_fft,
            hop_length=self.hop_length,
            win_length=self.n_fft,
            window=self.window.to(audio.device),
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        power = spec.real.square() + spec.imag.square()  # (B, n_freqs, F)
        mel = torch.matmul(power.transpose(1, 2), self.fbank.to(power.dtype)).transpose(1, 2)
        db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        frames = db.shape[-1]
        if audio_lengths is None:
            lengths = torch.full((audio.shape[0],), frames, dtype=torch.long, device=audio.device)
        else:
            lengths = mel_lengths(audio_lengths.to(audio.device).long(), self.hop_length).clamp(max=frames)
        mask = torch.arange(frames, device=audio.device)[None, :] < lengths[:, None]
        return db * mask[:, None, :], lengths


def masked_mean_std(
    x: torch.Tensor, mask: torch.Tensor, dim: int = -1, eps: float = 1e-5
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation of ``x`` over ``dim`` counting only ``mask`` (broadcastable) positions."""
    mask = mask.to(x.dtype)
    count = mask.sum(dim=dim, keepdim=True).clamp(min=1.0)
    mean = (x * mask).sum(dim=dim, keepdim=True) / count
    var = ((x - mean).square() * mask).sum(dim=dim, keepdim=True) / count
    return mean, torch.sqrt(var + eps)


def normalize_waveform(audio: torch.Tensor, audio_lengths: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Zero-mean, unit-variance per clip over its valid samples (``Wav2Vec2FeatureExtractor``'s
    ``do_normalize``); padding stays zero. ``audio`` ``(B, S)``."""
    s = audio.shape[-1]
    mask = torch.arange(s, device=audio.device)[None, :] < audio_lengths.to(audio.device)[:, None]
    m = mask.to(audio.dtype)
    count = m.sum(-1, keepdim=True).clamp(min=1.0)
    mean = (audio * m).sum(-1, keepdim=True) / count
    var = ((audio - mean).square() * m).sum(-1, keepdim=True) / count
    return (audio - mean) / torch.sqrt(var + eps) * m


@dataclass(frozen=True)
class NoiseSubtraction:
    """Spectral subtraction of a clip's stationary background noise from its log-mel (the style encoder's
    ``model.style.denoise``; the fields are ``model.style.denoise_*``).

    Attributes:
        share: share of the clip's frames, the quietest by their total power over the bands, whose mean power
            per band is taken as the background noise (a sentence's pauses and silences).
        over: the estimated noise power is removed this many times from every frame: the estimate is a mean,
            and the noise power of one frame and band scatters around it (over-subtraction).
        floor_db: what is left is floored this many dB (negative) below the clip's mean power per band, so that
            silence reads the same whether it was digital zero or noise that was subtracted.
    """

    share: float
    over: float
    floor_db: float

    def quiet_frames(self, totals: torch.Tensor) -> torch.Tensor:
        """Boolean ``(F,)``: the ``share`` quietest frames (at least one) of one clip, by its per-frame total
        power ``(F,)`` (frames tied with the last one chosen are all chosen)."""
        k = max(1, round(self.share * totals.numel()))
        return totals <= torch.kthvalue(totals, k).values

    def floor(self, totals: torch.Tensor, n_mels: int) -> torch.Tensor:
        """The floor (linear power, a scalar) of one clip with per-frame total power ``totals`` ``(F,)`` over
        ``n_mels`` bands: its mean power per band lowered by ``floor_db``."""
        return totals.double().mean() / n_mels * 10.0 ** (self.floor_db / 10.0)

    def estimate(self, power: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One clip's ``(noise (n_mels, 1), floor ())`` from its mel power ``(n_mels, F)`` (linear, valid frames
        only): the mean power per band over :meth:`quiet_frames`, and :meth:`floor`."""
        power = power.double()
        totals = power.sum(0)
        noise = power[:, self.quiet_frames(totals)].mean(-1, keepdim=True)
        return noise, self.floor(totals, power.shape[0])

    def subtract(self, db: torch.Tensor, noise: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
        """Log-mel ``db`` (dB, ``(..., n_mels, F)``) with ``over`` times ``noise`` (linear power, broadcastable)
        removed from each frame's power, floored at ``floor`` (linear), back in dB (float32)."""
        return self._subtract_power(10.0 ** (db.double() / 10.0), noise, floor)

    def _subtract_power(self, power: torch.Tensor, noise: torch.Tensor, floor: torch.Tensor) -> torch.Tensor:
        """:meth:`subtract` of frames already in linear power (float64)."""
        return (10.0 * torch.log10(torch.maximum(power - self.over * noise, floor))).float()

    def __call__(self, db: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, n_mels, F)`` of clips of ``lengths`` frames with each clip's own noise subtracted;
        frames past a clip's end stay zero.

        White noise at 15 dB SNR fills the quiet high bands of speech and flattens its spectral tilt; a
        tilt-reading style encoder hears that as vocal effort (docs/RESULTS.md, "Noise and the style encoder").
        """
        out = torch.zeros_like(db)
        for b, n in enumerate(lengths.tolist()):
            if n == 0:
                continue
            power = 10.0 ** (db[b, :, :n].double() / 10.0)  # once, for the estimate and the subtraction
            out[b, :, :n] = self._subtract_power(power, *self.estimate(power))
        return out


__all__ = [
    "LogMel",
    "NoiseSubtraction",
    "mel_filterbank",
    "mel_lengths",
    "masked_mean_std",
    "normalize_waveform",
]

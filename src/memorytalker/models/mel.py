"""Log-mel spectrogram in pure PyTorch (no torchaudio), padding-safe for batches.

Matches ``torchaudio.transforms.MelSpectrogram(sample_rate, n_fft, hop_length, n_mels)`` (periodic Hann
window, power 2, HTK mel scale, no filter normalisation) followed by ``AmplitudeToDB()`` (10 log10, floor
1e-10, no top_db), except that the centring pad is zeros instead of a reflection: the frames near the end of a
clip then see the same zeros whether the clip is alone or zero-padded in a batch.
"""

from __future__ import annotations

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


__all__ = ["LogMel", "mel_filterbank", "mel_lengths", "masked_mean_std", "normalize_waveform"]

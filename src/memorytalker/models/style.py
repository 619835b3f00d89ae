"""Speaking-style encoder (stage 2): log-mel of the clip -> per-sample memory slot weights.

``f_s = psi'(E_s(mel)) in R^M``; weights ``w = sigmoid(f_s) * psi_1(f_s)`` (``paper``; ``psi_1`` is a
bias-free ``Linear(M, 1)``, so the scale may be negative) or ``sigmoid(f_s) * softplus(psi_1(f_s))``
(``softplus``); triplet embeddings ``g(f_s)`` with ``g = MLP(M, M)``; with ``gain`` on (ours), a per-clip
output gain ``exp(psi_g(f_s))`` that multiplies the predicted offsets; with ``denoise`` on (ours), the log-mel
has the clip's stationary background noise subtracted first (:class:`memorytalker.models.mel.NoiseSubtraction`).

``E_s`` is a masked residual conv stack (every second block strided by 2) with masked mean+std pooling over
the whole clip: padding never changes a clip's weights, and the weights are per sample (the authors' code
averaged them over the batch).

Initialisation (:meth:`StyleEncoder.reset_to_identity`): ``psi'`` starts with near-zero weights and a bias of
:data:`IDENTITY_LOGIT`, and ``psi_1`` is set so every slot weight is 1 (up to ~1e-2 of audio-dependent
variation). Stage 2 therefore starts from exactly the stage-1 model (unstylised memory = weights of 1) and
learns departures from it, instead of first undoing random weights near 0 that erase the retrieved motion.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.models.config import StyleConfig
from memorytalker.models.layers import MaskedConv1d, lengths_to_mask
from memorytalker.models.mel import LogMel, masked_mean_std, normalize_waveform

#: dB of log-mel are divided by this after per-clip mean removal.
DB_SCALE = 20.0
#: ``level = "absolute"``: dB subtracted from the log-mel (about a mel band's level in speech at -23 dBFS).
ABSOLUTE_DB_REFERENCE = -20.0
#: Style levels whose encoder hears the waveform normalised per clip (zero mean, unit variance).
NORMALIZED_WAVEFORM_LEVELS = ("normalized", "spectral")


def level_offset(level: str, band_mean: Callable[[], torch.Tensor]) -> torch.Tensor | float:
    """What ``level`` subtracts from the log-mel (dB): ``normalized`` each band's clip mean (``band_mean()``,
    ``(..., n_mels, 1)``), ``spectral`` the mean of those over the bands (``(..., 1, 1)``), ``absolute`` the
    fixed :data:`ABSOLUTE_DB_REFERENCE` (``band_mean`` is not called). The one definition that
    :meth:`StyleEncoder.logits` and the windowed long-audio path both use."""
    if level == "absolute":
        return ABSOLUTE_DB_REFERENCE
    mean = band_mean()
    return mean if level == "normalized" else mean.mean(dim=-2, keepdim=True)


#: Initial value of every style logit ``f_s`` (see :meth:`StyleEncoder.reset_to_identity`).
IDENTITY_LOGIT = 1.0
#: Standard deviation of ``psi'``'s initial weights: small, so initial slot weights are ~1 for any audio.
IDENTITY_INIT_STD = 1e-2


class _ResBlock(nn.Module):
    def __init__(self, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = MaskedConv1d(channels, channels, 5, padding=2)
        self.conv2 = MaskedConv1d(channels, channels, 5, stride=stride, padding=2)
        self.stride = stride

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y, _ = self.conv1(x, lengths)
        y, out_lengths = self.conv2(F.relu(y), lengths)
        if self.stride > 1:
            mask = lengths_to_mask(lengths, x.shape[-1])[:, None, :].to(x.dtype)
            xs = x * mask
            extra = (-xs.shape[-1]) % self.stride  # pad with zeros (not a partial window) so a clip's
            xs = F.pad(xs, (0, extra))  # last window is averaged the same alone and in a padded batch
            short = F.avg_pool1d(xs, self.stride)[..., : y.shape[-1]]
        else:
            short = x
        return F.relu(y + short), out_lengths


class StyleEncoder(nn.Module):
    """Audio ``(B, S)`` -> style logits ``f_s`` ``(B, M)``; slot weights; triplet embeddings."""

    def __init__(self, cfg: StyleConfig, slots: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.mel = LogMel(SAMPLE_RATE, cfg.n_fft, cfg.hop_length, cfg.n_mels)
        self.conv_in = MaskedConv1d(cfg.n_mels, cfg.channels, 5, padding=2)
        self.blocks = nn.ModuleList([_ResBlock(cfg.channels, 2 if i % 2 else 1) for i in range(cfg.blocks)])
        self.pool_proj = nn.Sequential(
            nn.Linear(2 * cfg.channels, cfg.embed), nn.ReLU(), nn.Linear(cfg.embed, cfg.embed), nn.ReLU()
        )
        self.to_slots = nn.Linear(cfg.embed, slots)  # psi' (-> M)
        self.scale = nn.Linear(slots, 1, bias=False)  # psi_{-> 1}
        self.triplet_head = nn.Sequential(nn.Linear(slots, slots), nn.ReLU(), nn.Linear(slots, slots))  # g
        self.gain_head = nn.Linear(slots, 1) if cfg.gain else None  # psi_g
        self.reset_to_identity()

    @torch.no_grad()
    def reset_to_identity(self) -> None:
        """Initialise ``psi'`` and ``psi_1`` so that the slot weights are ~1 for any audio (the stage-1 model).

        ``f_s ~= b`` for every slot (weights ~N(0, 1e-2), bias ``b``); then ``psi_1(f_s) = b * sum(a)``, and
        ``a = c / (M b)`` with ``c = 1 / sigmoid(b)`` (``paper``) or ``softplus^-1(1 / sigmoid(b))``
        (``softplus``) gives ``sigmoid(b) * scale = 1``.
        """
        b = IDENTITY_LOGIT
        slots = self.to_slots.out_features
        nn.init.normal_(self.to_slots.weight, std=IDENTITY_INIT_STD)
        nn.init.constant_(self.to_slots.bias, b)
        target = 1.0 / torch.sigmoid(torch.tensor(b, dtype=torch.float64))
        if self.cfg.scale == "softplus":
            target = torch.log(torch.expm1(target))  # softplus^-1
        nn.init.constant_(self.scale.weight, float(target) / (slots * b))
        if self.gain_head is not None:  # log-gain 0: the offsets as stage 1 predicts them
            nn.init.zeros_(self.gain_head.weight)
            nn.init.zeros_(self.gain_head.bias)

    def logits(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> torch.Tensor:
        """``f_s`` ``(B, M)`` of raw audio ``(B, S)`` (whole clip, masked pooling).

        ``level = "normalized"`` (the paper's): the waveform is normalised to zero mean and unit variance
        and each mel band's mean over the clip is removed, so the recording level does not matter (and
        vocal loudness cannot be heard). ``level = "spectral"``: the same waveform normalisation, then one
        offset (the mean over bands and frames) removed, so the level does not matter but the balance
        between the bands (spectral tilt) stays. ``level = "absolute"``: log-mel of the waveform as recorded, in dB
        relative to :data:`ABSOLUTE_DB_REFERENCE`, so loudness and spectral balance are heard. With ``denoise``
        on, each clip's stationary background noise is subtracted from the log-mel first.
        """
        if self.cfg.level in NORMALIZED_WAVEFORM_LEVELS:
            audio = normalize_waveform(audio, audio_lengths)
        mel, lengths = self.mel(audio, audio_lengths)
        if self.cfg.denoise:
            mel = self.cfg.noise_subtraction()(mel, lengths)
        mask = lengths_to_mask(lengths, mel.shape[-1])[:, None, :]
        offset = level_offset(
            self.cfg.level, lambda: masked_mean_std(mel, mask)[0]
        )  # band means (B, n_mels, 1)
        x, lengths = self.features((mel - offset) * mask / DB_SCALE, lengths)
        mask = lengths_to_mask(lengths, x.shape[-1])[:, None, :]
        mu, sd = masked_mean_std(x, mask)
        return self.pooled_logits(mu.squeeze(-1), sd.squeeze(-1))

    def features(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The conv stack: offset, scaled log-mel ``(B, n_mels, F)`` -> ``(B, C, F')`` and their lengths
        (``F'`` = ``F`` over :attr:`stride`)."""
        x, lengths = self.conv_in(x, lengths)
        x = F.relu(x)
        for block in self.blocks:
            x, lengths = block(x, lengths)
        return x, lengths

    def pooled_logits(self, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
        """``f_s`` ``(B, M)`` from the clip's per-channel mean and standard deviation ``(B, C)`` of
        :meth:`features`."""
        pooled = torch.cat([mean, std], dim=-1)  # (B, 2C)
        return self.to_slots(self.pool_proj(pooled))

    @property
    def strides(self) -> list[int]:
        """Stride of each residual block (:meth:`features` downsamples by their product)."""
        return [block.stride for block in self.blocks]

    def weights(self, style_logits: torch.Tensor) -> torch.Tensor:
        """Per-sample slot weights ``(B, M)`` from ``f_s`` ``(B, M)``."""
        scale = self.scale(style_logits)  # (B, 1)
        if self.cfg.scale == "softplus":
            scale = F.softplus(scale)
        return torch.sigmoid(style_logits) * scale

    def gain(self, style_logits: torch.Tensor) -> torch.Tensor | None:
        """Per-sample output gain ``(B,)`` = ``exp(psi_g(f_s))`` from ``f_s`` ``(B, M)``; None when
        ``gain`` is off."""
        if self.gain_head is None:
            return None
        return torch.exp(self.gain_head(style_logits.float())).squeeze(-1)

    def embed(self, style_logits: torch.Tensor) -> torch.Tensor:
        """Triplet embedding ``g(f_s)`` ``(B, M)``."""
        return self.triplet_head(style_logits)

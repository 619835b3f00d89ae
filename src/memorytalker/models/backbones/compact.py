"""The compact built-in text encoder: log-mel -> convs (50 Hz) -> interpolation to the mesh rate ->
local-attention transformer -> CTC head over the phoneme vocabulary (``len(CTC_VOCAB) = 40``).

Every layer is local (convolutions, +-``window``-frame attention) and masked, so any length runs in one
call with cost and memory linear in length, and a padded batch gives each clip its unbatched output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.models.backbones import TextBackbone
from memorytalker.models.config import BackboneConfig
from memorytalker.models.layers import LocalSelfAttention, MaskedConv1d, interpolate_frames, lengths_to_mask
from memorytalker.models.mel import LogMel, masked_mean_std

#: dB of log-mel are divided by this after per-clip mean removal (keeps inputs near unit scale).
DB_SCALE = 20.0


class EncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer with local self-attention."""

    def __init__(self, dim: int, heads: int, ffn: int, window: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.self_attn = LocalSelfAttention(dim, heads, window, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.linear1 = nn.Linear(dim, ffn)
        self.linear2 = nn.Linear(ffn, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        x = x + self.dropout(self.self_attn(self.norm1(x), valid))
        x = x + self.dropout(self.linear2(self.dropout(F.gelu(self.linear1(self.norm2(x))))))
        return x * valid.unsqueeze(-1).to(x.dtype)


class LocalCTCHead(TextBackbone):
    """Base of backbones that end in the compact encoder's head: a depthwise positional convolution,
    ``cfg.layers`` local-attention layers (``+-cfg.window`` text frames) and a CTC head over the phoneme
    vocabulary, on ``cfg.width`` features at the text rate (:meth:`encode`). The attribute names
    (``pos_conv``, ``layers``, ``final_norm``, ``ctc_head``) are the checkpoint keys."""

    def _build_head(self, cfg: BackboneConfig) -> None:
        k = cfg.conv_kernel
        self.vocab_size = int(cfg.vocab_size)
        self.pos_conv = MaskedConv1d(cfg.width, cfg.width, k, padding=k // 2, groups=cfg.width)
        self.layers = nn.ModuleList(
            [EncoderLayer(cfg.width, cfg.heads, cfg.ffn, cfg.window, cfg.dropout) for _ in range(cfg.layers)]
        )
        self.final_norm = nn.LayerNorm(cfg.width)
        self.ctc_head = nn.Linear(cfg.width, self.vocab_size)

    def encode(self, x: torch.Tensor, frame_lengths: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Features at the text rate ``(B, T, D)`` -> CTC logits ``(B, T, 40)`` (positional convolution,
        local-attention layers, CTC head; zero past ``frame_lengths``)."""
        valid = lengths_to_mask(frame_lengths.to(x.device), num_frames)
        pos, _ = self.pos_conv(x.transpose(1, 2), frame_lengths.to(x.device))
        x = (x + F.gelu(pos.transpose(1, 2))) * valid.unsqueeze(-1).to(x.dtype)
        for layer in self.layers:
            x = layer(x, valid)
        logits = self.ctc_head(self.final_norm(x))
        return logits * valid.unsqueeze(-1).to(logits.dtype)

    def head_parameters(self) -> list[nn.Parameter]:
        """The positional convolution, local-attention layers and final norm (not the CTC head)."""
        return [*self.pos_conv.parameters(), *self.layers.parameters(), *self.final_norm.parameters()]


class CompactEncoder(LocalCTCHead):
    """Compact CTC encoder (a few million parameters at the default size)."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.chunk_samples = None
        self.mel = LogMel(SAMPLE_RATE, cfg.n_fft, cfg.hop_length, cfg.n_mels)
        k = cfg.conv_kernel
        self.convs = nn.ModuleList(
            [MaskedConv1d(cfg.n_mels, cfg.width, k, stride=2, padding=k // 2)]
            + [MaskedConv1d(cfg.width, cfg.width, k, padding=k // 2) for _ in range(cfg.conv_layers - 1)]
        )
        self.conv_norm = nn.LayerNorm(cfg.width)
        self._build_head(cfg)

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        """Normalised audio ``(B, S)`` -> CTC logits ``(B, num_frames, 40)`` (zero past ``frame_lengths``)."""
        mel, lengths = self.mel(audio, audio_lengths)  # (B, n_mels, F) dB
        mask = lengths_to_mask(lengths, mel.shape[-1])[:, None, :]
        mean, _ = masked_mean_std(mel, mask)
        x, lengths = self.front(mel, lengths, mean)  # (B, A, D) at 50 Hz
        x = interpolate_frames(x, lengths, frame_lengths, num_frames)  # (B, T, D)
        return self.encode(x, frame_lengths, num_frames)

    def front(
        self, mel: torch.Tensor, lengths: torch.Tensor, mean: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel ``(B, n_mels, F)`` with ``lengths`` and the clip's per-band mean ``(B, n_mels, 1)`` ->
        50 Hz features ``(B, A, D)`` and their lengths (the convolutional front end)."""
        x = (mel - mean) / DB_SCALE
        for i, conv in enumerate(self.convs):
            y, lengths = conv(x, lengths)
            y = F.gelu(y)
            x = y if i == 0 else x + y
        return self.conv_norm(x.transpose(1, 2)), lengths

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        frontend = [*self.convs.parameters(), *self.conv_norm.parameters()]
        return {
            "asr_frontend": frontend,
            "asr": self.head_parameters(),
            "ctc_head": list(self.ctc_head.parameters()),
        }

"""Whisper's audio encoder in plain PyTorch, with the state-dict keys of ``transformers``' ``WhisperEncoder``.

The network (Radford et al. 2022): two GELU convolutions over the log-mel (the second with stride 2, so
100 Hz -> 50 Hz), learned positions, ``encoder_layers`` pre-norm transformer layers (self-attention with
a bias-free key projection, GELU MLP) and a final layer norm. Building it needs no ``transformers`` import
(which costs seconds at start-up on a 2-core machine); weights come from a CTranslate2 file
(:mod:`memorytalker.models.backbones.whisper_ct2`) or are copied from a ``transformers`` encoder
(:func:`from_transformers`). tests/test_model_whisper.py checks it equals ``transformers``' forward.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class WhisperEncoderConfig:
    """Sizes of a Whisper encoder (the field names of ``transformers.WhisperConfig``)."""

    d_model: int
    num_mel_bins: int
    max_source_positions: int
    encoder_layers: int
    encoder_attention_heads: int
    encoder_ffn_dim: int

    def validate(self) -> None:
        if min(self.d_model, self.num_mel_bins, self.max_source_positions, self.encoder_layers) < 1:
            raise ValueError(f"Whisper encoder sizes must be positive: {self}")
        if self.encoder_attention_heads < 1 or self.d_model % self.encoder_attention_heads:
            raise ValueError(
                f"d_model {self.d_model} is not divisible by {self.encoder_attention_heads} attention heads"
            )


class WhisperAttention(nn.Module):
    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        # transformers' order, so state dicts list the same keys in the same order
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model)
        self.q_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, A, D)`` -> ``(B, A, D)`` (full self-attention)."""
        b, a, d = x.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, a, h, d // h).transpose(1, 2)  # (B, h, A, D/h)

        out = F.scaled_dot_product_attention(
            split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x))
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, a, d))


class WhisperEncoderLayer(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = WhisperAttention(d_model, heads)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn)
        self.fc2 = nn.Linear(ffn, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, A, D)`` -> ``(B, A, D)`` (Whisper's encoder attends to every frame: no mask)."""
        x = x + self.self_attn(self.self_attn_layer_norm(x))
        return x + self.fc2(F.gelu(self.fc1(self.final_layer_norm(x))))


class WhisperEncoderNet(nn.Module):
    """The encoder: log-mel ``(B, num_mel_bins, F)`` -> ``(B, ceil(F / 2), d_model)`` (:meth:`forward`);
    ``conv1``, ``conv2``, ``embed_positions``, ``layers``, ``layer_norm`` and ``config`` as in
    ``transformers``, so the backbone can run it layer by layer."""

    def __init__(self, config: WhisperEncoderConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        d = config.d_model
        self.conv1 = nn.Conv1d(config.num_mel_bins, d, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d, d, kernel_size=3, stride=2, padding=1)
        self.embed_positions = nn.Embedding(config.max_source_positions, d)
        self.layers = nn.ModuleList(
            [
                WhisperEncoderLayer(d, config.encoder_attention_heads, config.encoder_ffn_dim)
                for _ in range(config.encoder_layers)
            ]
        )
        self.layer_norm = nn.LayerNorm(d)

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        """Log-mel ``(B, num_mel_bins, F)`` -> the input of the first layer ``(B, ceil(F / 2), d_model)``
        (the two convolutions plus the positions).

        Raises:
            ValueError: more frames than Whisper has positions (30 s).
        """
        x = F.gelu(self.conv2(F.gelu(self.conv1(mel)))).transpose(1, 2)
        if x.shape[1] > self.config.max_source_positions:
            raise ValueError(
                f"{x.shape[1]} encoder frames: Whisper has {self.config.max_source_positions} positions"
            )
        return x + self.embed_positions.weight[: x.shape[1]]

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.embed(mel)
        for layer in self.layers:
            x = layer(x)
        return self.layer_norm(x)


def encoder_from_state(config: WhisperEncoderConfig, state: dict[str, torch.Tensor]) -> WhisperEncoderNet:
    """A float32 encoder (eval mode) holding ``state`` (``transformers`` key names), loaded strictly.

    Raises:
        ValueError: a missing or unexpected key, or a shape that does not fit ``config``.
    """
    # built on the CPU, not the meta device: a first meta-device use imports torch._refs (seconds)
    encoder = WhisperEncoderNet(config)
    state = {k: v.float() for k, v in state.items()}
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(f"the weights do not fit a Whisper encoder of {config}: {exc}") from None
    return encoder.eval()


def config_from_transformers(config, layers: int | None = None) -> WhisperEncoderConfig:
    """The encoder sizes of a ``transformers`` ``WhisperConfig`` (``layers`` overrides its layer count)."""
    return WhisperEncoderConfig(
        d_model=int(config.d_model),
        num_mel_bins=int(config.num_mel_bins),
        max_source_positions=int(config.max_source_positions),
        encoder_layers=int(config.encoder_layers if layers is None else layers),
        encoder_attention_heads=int(config.encoder_attention_heads),
        encoder_ffn_dim=int(config.encoder_ffn_dim),
    )


def from_transformers(encoder: nn.Module) -> WhisperEncoderNet:
    """This module with the weights of a ``transformers`` ``WhisperEncoder`` (the key bias of attention,
    which ``transformers`` does not have either, is absent)."""
    config = config_from_transformers(encoder.config, len(encoder.layers))
    return encoder_from_state(config, {k: v.detach().clone() for k, v in encoder.state_dict().items()})

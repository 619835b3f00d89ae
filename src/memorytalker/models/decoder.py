"""Motion decoder (memorytalker.md §1.5): fusion -> periodic positional encoding -> transformer decoder with
FaceFormer's one-frame alignment mask -> zero-initialised vertex head added to the template.

Differences from the authors' ``nn.TransformerDecoder`` (docs/MODEL.md): self-attention is limited to
``+-window`` frames (bidirectional, exact banded attention at linear cost) and key-padding masked; the
aligned cross-attention is computed per frame (exactly what the alignment-masked dense attention gives);
the positional encoding is built for any length (no 600/630-frame cap).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from memorytalker.models.layers import AlignedCrossAttention, LocalSelfAttention, periodic_positional_encoding


class DecoderLayer(nn.Module):
    """Post-norm transformer decoder layer (ReLU FFN), parameter names as ``nn.TransformerDecoderLayer``."""

    def __init__(self, dim: int, heads: int, ffn: int, window: int, dropout: float) -> None:
        super().__init__()
        self.self_attn = LocalSelfAttention(dim, heads, window, dropout)
        self.multihead_attn = AlignedCrossAttention(dim, heads, dropout)
        self.linear1 = nn.Linear(dim, ffn)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(ffn, dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, text: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, D)``, ``text`` ``(B, r T, D)``, ``valid`` ``(B, T)`` -> ``(B, T, D)``."""
        return self.after_self_attention(x, self.self_attn(x, valid), text)

    def after_self_attention(
        self, x: torch.Tensor, attended: torch.Tensor, text: torch.Tensor
    ) -> torch.Tensor:
        """The rest of the layer given the self-attention's output ``attended`` ``(B, T, D)``: residual and
        norm, aligned cross-attention to ``text``, feed-forward."""
        x = self.norm1(x + self.dropout1(attended))
        x = self.norm2(x + self.dropout2(self.multihead_attn(x, text)))
        return self.norm3(x + self.dropout3(self.linear2(self.dropout(F.relu(self.linear1(x))))))


class MotionDecoder(nn.Module):
    """Fusion + PPE + decoder layers + zero-initialised head.

    Args:
        fusion_in: input width of the fusion layer (``2 D`` with memory, ``D`` without).
        dim: ``D``. num_vertices: ``V``. period: PPE period in frames (the mesh fps).
        skip_in: width of the motion feature at the end of the fused input that a bias-free linear map
            adds to the layers' output (``DecoderConfig.read_skip``); 0 = none (the paper's decoder).
    """

    def __init__(
        self,
        fusion_in: int,
        dim: int,
        num_vertices: int,
        period: int,
        layers: int,
        heads: int,
        ffn: int,
        window: int,
        dropout: float,
        skip_in: int = 0,
    ) -> None:
        super().__init__()
        self.dim, self.num_vertices, self.period = dim, int(num_vertices), int(period)
        self.fusion = nn.Linear(fusion_in, dim)
        self.ppe_dropout = nn.Dropout(dropout)
        self.layers = nn.ModuleList([DecoderLayer(dim, heads, ffn, window, dropout) for _ in range(layers)])
        if not 0 <= skip_in <= fusion_in:
            raise ValueError(f"skip_in={skip_in} must be within the fused input's {fusion_in} features")
        self.read_skip = nn.Linear(skip_in, dim, bias=False) if skip_in else None
        self.head = nn.Linear(dim, 3 * self.num_vertices)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(
        self,
        fused_in: torch.Tensor,
        text: torch.Tensor,
        valid: torch.Tensor,
        templates: torch.Tensor,
        scale: torch.Tensor | float = 1.0,
    ) -> torch.Tensor:
        """Decode vertices: :meth:`hidden` then :meth:`vertices`.

        Args:
            fused_in: ``(B, T, fusion_in)`` concatenated ``[f_txt ; motion feature]`` (or ``f_txt``).
            text: ``(B, r T, D)`` text features the cross-attention aligns to.
            valid: ``(B, T)`` bool frame mask.
            templates: ``(B, V, 3)`` neutral meshes.
            scale: the head's output unit in the data's units (the model's ``motion_scale``): the head
                predicts offsets of order 1 and they are multiplied by it.

        Returns:
            ``(B, T, V, 3)`` = template + ``scale`` * head offsets.
        """
        return self.vertices(self.hidden(fused_in, text, valid), templates, scale)

    def hidden(
        self, fused_in: torch.Tensor, text: torch.Tensor, valid: torch.Tensor, start: int = 0
    ) -> torch.Tensor:
        """Fusion, PPE and the decoder layers (plus the read skip, when on): ``(B, T, D)`` features the head
        reads (``start``: the first frame's index when decoding a window of a longer sequence, for the
        positional encoding)."""
        x = self.fusion(fused_in)
        t = x.shape[1]
        x = x + periodic_positional_encoding(t, self.dim, self.period, x.device, x.dtype, start)[None]
        x = self.ppe_dropout(x)
        for layer in self.layers:
            x = layer(x, text, valid)
        if self.read_skip is not None:  # past the last LayerNorm: the head sees the read's magnitude
            x = x + self.read_skip(fused_in[..., -self.read_skip.in_features :])
        return x

    def vertices(
        self, x: torch.Tensor, templates: torch.Tensor, scale: torch.Tensor | float = 1.0
    ) -> torch.Tensor:
        """The head: ``(B, T, D)`` features -> ``(B, T, V, 3)`` = template + ``scale`` * offsets (``scale`` a
        number, a 0-d tensor or one per sample ``(B,)``)."""
        b, t, _ = x.shape
        # head(x) + template as a matrix product plus ONE in-place broadcast add of (bias + template): the
        # (B, T, V*3) output is the largest tensor of a long clip, and nn.Linear would first fill it with the
        # broadcast bias (an extra pass over ~1 GB for 10 minutes of FLAME). Autograd-safe: mm's backward
        # does not need its output.
        # Vertices stay float32 under bf16 autocast (bf16 would round 0.1 m coordinates to ~0.4 mm).
        # The scale multiplies x (B, T, D), not the (B, T, 3V) output: the same product, far less memory traffic.
        s = torch.as_tensor(scale, device=x.device, dtype=torch.float32)
        per_sample = s.dim() > 0
        if per_sample and s.shape != (b,):
            raise ValueError(f"scale must be a number or one per sample ({b},), got shape {tuple(s.shape)}")
        out = torch.matmul(
            x * (s.view(b, 1, 1).to(x.dtype) if per_sample else s), self.head.weight.t()
        ).float()
        shift = self.head.bias.float() * (s.view(b, 1) if per_sample else s)  # (3V,) or (B, 3V)
        shift = shift + templates.reshape(b, -1).float()  # (B, 3V)
        out.add_(shift.unsqueeze(1))
        return out.view(b, t, self.num_vertices, 3)

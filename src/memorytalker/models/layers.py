"""Shared building blocks: banded (local) self-attention, one-frame-aligned cross-attention, masked 1-D
convolutions and per-sample frame-rate interpolation. Every one is linear in sequence length.

Shapes: ``B`` batch, ``T`` frames, ``D`` width, ``H`` heads, ``W`` window (frames each side).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: Score given to masked-out keys: finite, so a padded query with no valid key yields a finite (ignored)
#: output instead of NaN; exp() of it underflows to exactly 0 next to any valid key.
MASKED_SCORE = -1e9


def lengths_to_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """``(B,)`` lengths -> ``(B, max_len)`` bool mask, True = valid."""
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def band_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, window: int, key_valid: torch.Tensor | None
) -> torch.Tensor:
    """Softmax attention where query ``i`` sees keys ``j`` with ``|i - j| <= window`` (and ``key_valid``).

    Exactly equal to dense attention with that band mask, at ``O(T * 3W)`` cost: the sequence is cut into
    blocks of ``W`` frames and each block attends to itself and its two neighbours.

    Args:
        q, k, v: ``(B, H, T, dh)``.
        window: ``W >= 1``; ``0`` = dense attention over all valid keys.
        key_valid: ``(B, T)`` bool (True = a real frame) or None.

    Returns:
        ``(B, H, T, dh)``.
    """
    b, h, t, dh = q.shape
    scale = 1.0 / math.sqrt(dh)
    if window <= 0 or t <= window + 1:
        scores = torch.matmul(q, k.transpose(-1, -2)) * scale  # (B, H, T, T)
        if window > 0:
            idx = torch.arange(t, device=q.device)
            band = (idx[:, None] - idx[None, :]).abs() <= window
            scores = scores.masked_fill(~band, MASKED_SCORE)
        if key_valid is not None:
            scores = scores.masked_fill(~key_valid[:, None, None, :], MASKED_SCORE)
        return torch.matmul(torch.softmax(scores, dim=-1), v)
    w = int(window)
    nb = -(-t // w)
    pad = nb * w - t
    if key_valid is None:
        key_valid = torch.ones(b, t, dtype=torch.bool, device=q.device)
    # pad to whole blocks plus one block of context on each side
    qp = F.pad(q, (0, 0, 0, pad)).view(b, h, nb, w, dh)
    kp = F.pad(k, (0, 0, w, pad + w))  # (B, H, (nb + 2) W, dh)
    vp = F.pad(v, (0, 0, w, pad + w))
    valid = F.pad(key_valid, (w, pad + w), value=False)  # (B, (nb + 2) W)
    # keys of block j: padded positions [j W, j W + 3 W)  (= original [(j - 1) W, (j + 2) W))
    kb = kp.unfold(2, 3 * w, w).transpose(-1, -2)  # (B, H, nb, 3W, dh)
    vb = vp.unfold(2, 3 * w, w).transpose(-1, -2)
    vb_mask = valid.unfold(1, 3 * w, w)  # (B, nb, 3W)
    scores = torch.matmul(qp, kb.transpose(-1, -2)) * scale  # (B, H, nb, W, 3W)
    qi = torch.arange(w, device=q.device)[:, None] + w  # query offset inside the 3W key span
    kj = torch.arange(3 * w, device=q.device)[None, :]
    band = (qi - kj).abs() <= w  # (W, 3W)
    allowed = band[None, None] & vb_mask[:, :, None, :]  # (B, nb, W, 3W)
    scores = scores.masked_fill(~allowed[:, None], MASKED_SCORE)
    out = torch.matmul(torch.softmax(scores, dim=-1), vb)  # (B, H, nb, W, dh)
    return out.reshape(b, h, nb * w, dh)[:, :, :t]


class AttentionProjections(nn.Module):
    """The parameters of ``nn.MultiheadAttention`` (``in_proj_weight``, ``in_proj_bias``, ``out_proj``) and its
    initialisation, shared by this package's attention modules so their state dicts match PyTorch's layers.
    ``dropout`` is the output dropout rate the subclass applies in training."""

    def __init__(self, dim: int, heads: int, dropout: float = 0.0) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"width {dim} is not divisible by heads {heads}")
        self.dim, self.heads = dim, heads
        self.in_proj_weight = nn.Parameter(torch.empty(3 * dim, dim))
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * dim))
        self.out_proj = nn.Linear(dim, dim)
        self.dropout = float(dropout)
        nn.init.xavier_uniform_(self.in_proj_weight)
        nn.init.zeros_(self.out_proj.bias)


class LocalSelfAttention(AttentionProjections):
    """Multi-head self-attention restricted to ``+-window`` frames, with key padding masks.

    Parameter names and layout are those of ``nn.MultiheadAttention`` (``in_proj_weight``, ``in_proj_bias``,
    ``out_proj``), so it is a drop-in for the ``self_attn`` of ``nn.TransformerDecoderLayer`` /
    ``nn.TransformerEncoderLayer`` and the tests can compare it with them.
    """

    def __init__(self, dim: int, heads: int, window: int, dropout: float = 0.0) -> None:
        super().__init__(dim, heads, dropout)
        self.window = int(window)

    def forward(self, x: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, T, D)``, ``valid`` ``(B, T)`` -> ``(B, T, D)``."""
        b, t, d = x.shape
        h = self.heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias).view(b, t, 3, h, d // h)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)  # each (B, H, T, dh)
        out = band_attention(q, k, v, self.window, valid)
        out = out.transpose(1, 2).reshape(b, t, d)
        if self.training and self.dropout > 0:
            # attention-weight dropout is replaced by output dropout (documented in docs/MODEL.md)
            out = F.dropout(out, self.dropout)
        return self.out_proj(out)


class AlignedCrossAttention(AttentionProjections):
    """Cross-attention with FaceFormer's alignment mask: mesh frame ``t`` sees only text frames
    ``r t ... r t + r - 1`` (``r`` = 1, or 2 for the BIWI variant).

    With ``r = 1`` the single allowed key gets weight 1, so the output is ``out_proj(value(text_t))``:
    exactly what masked dense attention computes, at linear cost. ``nn.MultiheadAttention`` parameter layout.
    """

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, D)`` queries, ``text`` ``(B, r T, D)`` -> ``(B, T, D)``."""
        b, t, d = x.shape
        r = text.shape[1] // t
        if text.shape[1] != r * t or r < 1:
            raise ValueError(f"text frames ({text.shape[1]}) must be a multiple of mesh frames ({t})")
        wq, wk, wv = self.in_proj_weight.chunk(3, dim=0)
        bq, bk, bv = self.in_proj_bias.chunk(3, dim=0)
        v = F.linear(text, wv, bv)
        if r == 1:
            out = v
        else:
            h, dh = self.heads, d // self.heads
            q = F.linear(x, wq, bq).view(b, t, 1, h, dh)
            k = F.linear(text, wk, bk).view(b, t, r, h, dh)
            scores = (q * k).sum(-1) / math.sqrt(dh)  # (B, T, r, H)
            att = torch.softmax(scores, dim=2)
            out = (att.unsqueeze(-1) * v.view(b, t, r, h, dh)).sum(2).reshape(b, t, d)
        if self.training and self.dropout > 0:
            out = F.dropout(out, self.dropout)
        return self.out_proj(out)


def interpolation_positions(
    t: torch.Tensor, in_lengths: torch.Tensor, out_lengths: torch.Tensor, num_in: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Where :func:`interpolate_frames` reads output frames ``t`` ``(B, N)`` (float64 frame indices): the
    input frames ``lo``, ``hi`` ``(B, N)`` (long, below ``num_in`` = the padded input length) and the weight
    ``frac`` of ``hi`` (float64), for clips of ``in_lengths`` -> ``out_lengths`` ``(B,)`` frames."""
    n_in = in_lengths.double().clamp(min=1)[:, None]
    n_out = out_lengths.double()[:, None]
    ratio = torch.where(n_out > 1, (n_in - 1) / (n_out - 1).clamp(min=1), torch.zeros_like(n_out))
    pos = (t * ratio).clamp(max=n_in - 1)  # (B, N)
    lo = pos.floor().long().clamp(0, max(num_in - 1, 0))
    hi = (lo + 1).clamp(max=(n_in.long() - 1).clamp(min=0)).clamp(max=max(num_in - 1, 0))
    return lo, hi, pos - lo.double()


def interpolate_frames(
    x: torch.Tensor, in_lengths: torch.Tensor, out_lengths: torch.Tensor, out_max: int
) -> torch.Tensor:
    """Per-sample linear resampling along time, ``F.interpolate(mode="linear", align_corners=True)`` of
    each clip's valid part (FaceFormer's 50 Hz -> mesh-fps alignment), batched without Python loops.

    Args:
        x: ``(B, A, C)`` features; row ``b`` is valid for ``in_lengths[b]`` frames.
        in_lengths, out_lengths: ``(B,)``.
        out_max: output frames ``T`` (>= ``out_lengths.max()``).

    Returns:
        ``(B, T, C)``, zero past ``out_lengths``.
    """
    b, a, c = x.shape
    dev = x.device
    t = torch.arange(out_max, device=dev, dtype=torch.float64)[None, :]
    lo, hi, frac = interpolation_positions(t, in_lengths.to(dev), out_lengths.to(dev), a)
    frac = frac.to(x.dtype).unsqueeze(-1)
    g_lo = torch.gather(x, 1, lo.unsqueeze(-1).expand(-1, -1, c))
    g_hi = torch.gather(x, 1, hi.unsqueeze(-1).expand(-1, -1, c))
    out = g_lo + (g_hi - g_lo) * frac
    mask = lengths_to_mask(out_lengths.to(dev), out_max)
    return out * mask.unsqueeze(-1).to(x.dtype)


def conv_out_lengths(lengths: torch.Tensor, kernel: int, stride: int, padding: int) -> torch.Tensor:
    """Output lengths of a 1-D convolution."""
    return torch.div(lengths + 2 * padding - kernel, stride, rounding_mode="floor") + 1


class MaskedConv1d(nn.Conv1d):
    """``nn.Conv1d`` on ``(B, C, L)`` that zeroes input frames past each clip's length first, so a padded
    batch gives each clip the output it gets alone. ``forward(x, lengths) -> (y, out_lengths)``."""

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        mask = lengths_to_mask(lengths, x.shape[-1])
        y = super().forward(x * mask[:, None, :].to(x.dtype))
        out_lengths = conv_out_lengths(lengths, self.kernel_size[0], self.stride[0], self.padding[0])
        out_lengths = out_lengths.clamp(min=0, max=y.shape[-1])
        return y, out_lengths


def periodic_positional_encoding(
    length: int, dim: int, period: int, device=None, dtype=torch.float32, start: int = 0
) -> torch.Tensor:
    """FaceFormer's periodic sinusoidal encoding for any length: ``pe[t] = sinusoid(t mod period)``.

    Returns ``(length, dim)`` for frames ``start ... start + length - 1`` (``start``: a window of a longer
    sequence gets the encoding of its place in it).
    """
    pos = torch.arange(period, device=device, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(period, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: dim // 2])
    idx = torch.arange(start, start + length, device=device) % period
    return pe[idx].to(dtype)

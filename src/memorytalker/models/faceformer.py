"""FaceFormer (Fan et al., CVPR'22) as the ``faceformer`` model kind; what is published and what differs:
docs/MODELS.md.

Data flow (shapes: ``B`` clips, ``T`` mesh frames, ``r T`` text frames, ``M`` CTC symbols, ``D`` width,
``V`` vertices, ``N`` training speakers)::

    audio (B, S) -> per-clip normalisation -> backbone -> CTC logits (B, rT, M) -> audio_proj -> (B, rT, D)
    s = speaker(one_hot(condition)) (B, D)                      the one-hot style embedding
    input_0 = s;  input_t = motion_encoder(y_{t-1}) + s         y = (v - template) / motion_scale
    x_t = PPE(input_t) -> decoder layers (causal self-attention with the periodic ALiBi bias over the last
          ``attention_frames`` frames; cross-attention to text frame t only, or 2t and 2t+1) -> head -> y_t
    vertices_t = template + motion_scale * y_t

Training is autoregressive as published (``y_{t-1}`` is the model's own output) or teacher-forced (the
ground truth's previous frame). Inference is autoregressive with a key/value cache: one decoder step per
frame over at most ``attention_frames`` cached frames, so its cost is linear in the clip length and it has
no 600-frame limit.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from memorytalker.errors import ConfigError
from memorytalker.models.common import KindOutput, SpeakerConditions, SpeechToFace, fps_period
from memorytalker.models.config import ModelConfig
from memorytalker.models.decoder import DecoderLayer
from memorytalker.models.layers import AttentionProjections, lengths_to_mask, periodic_positional_encoding
from memorytalker.topology import FaceTopology

#: Parameter groups of :meth:`FaceFormer.parameter_groups` (the backbone's three, then FaceFormer's own).
GROUPS = ("asr_frontend", "asr", "ctc_head", "audio_proj", "motion_encoder", "speaker", "decoder", "head")


def alibi_slopes(heads: int) -> list[float]:
    """ALiBi's per-head slopes (Press et al.): a geometric sequence from ``2^(-8/n)``; for a head count
    that is not a power of two, the power of two below's slopes plus every other slope of twice that."""

    def power_of_2(n: int) -> list[float]:
        start = 2.0 ** (-(2.0 ** -(math.log2(n) - 3)))
        return [start * start**i for i in range(n)]

    if math.log2(heads).is_integer():
        return power_of_2(heads)
    below = 2 ** math.floor(math.log2(heads))
    return power_of_2(below) + alibi_slopes(2 * below)[0::2][: heads - below]


def periodic_bias(
    slopes: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor, period: int, frames: int
) -> torch.Tensor:
    """FaceFormer's temporal bias ``(H, Tq, Tk)``: ``-slope_h * floor((i - j) / period)`` for a query at
    frame ``i`` and a key at frame ``j`` with ``0 <= i - j < frames``, ``-inf`` elsewhere (the future, and
    frames beyond the attention range)."""
    d = q_pos[:, None] - k_pos[None, :]  # (Tq, Tk)
    allowed = (d >= 0) & (d < frames)
    steps = torch.div(d.clamp(min=0), period, rounding_mode="floor").to(slopes.dtype)
    bias = -slopes[:, None, None] * steps[None]
    return bias.masked_fill(~allowed[None], float("-inf"))


class BiasedSelfAttention(AttentionProjections):
    """Causal multi-head self-attention with the periodic bias; parameter names as ``nn.MultiheadAttention``.

    ``forward`` runs a whole sequence; ``step`` one new frame against a key/value cache (the same result).
    ``dropout`` is the attention-weight dropout (as ``nn.MultiheadAttention``'s).
    """

    def __init__(self, dim: int, heads: int, period: int, frames: int, dropout: float) -> None:
        super().__init__(dim, heads, dropout)
        self.period, self.frames = int(period), int(frames)
        self.register_buffer("slopes", torch.tensor(alibi_slopes(heads)), persistent=False)

    def _heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = x.shape
        q, k, v = F.linear(x, self.in_proj_weight, self.in_proj_bias).chunk(3, dim=-1)
        shape = (b, t, self.heads, self.dim // self.heads)
        return tuple(z.reshape(shape).transpose(1, 2) for z in (q, k, v))  # type: ignore[return-value]

    def _attend(self, q, k, v, bias) -> torch.Tensor:
        p = self.dropout if self.training else 0.0
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias.to(q.dtype), dropout_p=p)
        b, _, t, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(b, t, self.dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, D)`` frames ``0 .. T-1`` -> ``(B, T, D)``; frame ``t`` sees frames ``<= t`` only."""
        q, k, v = self._heads(x)
        pos = torch.arange(x.shape[1], device=x.device)
        return self._attend(q, k, v, periodic_bias(self.slopes, pos, pos, self.period, self.frames))

    def step(self, x: torch.Tensor, cache: dict | None, t: int) -> tuple[torch.Tensor, dict]:
        """Frame ``t``'s ``(B, 1, D)`` against the cached keys/values of frames ``< t``; returns its output
        and the cache with frame ``t`` added (frames beyond the attention range dropped)."""
        q, k, v = self._heads(x)
        if cache is not None:
            k = torch.cat([cache["k"], k], dim=2)[:, :, -self.frames :]
            v = torch.cat([cache["v"], v], dim=2)[:, :, -self.frames :]
        n = k.shape[2]
        k_pos = torch.arange(t - n + 1, t + 1, device=x.device)
        q_pos = torch.tensor([t], device=x.device)
        out = self._attend(q, k, v, periodic_bias(self.slopes, q_pos, k_pos, self.period, self.frames))
        return out, {"k": k, "v": v}


class FaceFormerLayer(DecoderLayer):
    """Post-norm decoder layer (ReLU FFN) as ``nn.TransformerDecoderLayer``: biased causal self-attention,
    aligned cross-attention to the audio, feed-forward (MemoryTalker's layer with FaceFormer's
    self-attention)."""

    def __init__(self, dim: int, heads: int, ffn: int, period: int, frames: int, dropout: float) -> None:
        super().__init__(dim, heads, ffn, window=1, dropout=dropout)
        self.self_attn = BiasedSelfAttention(dim, heads, period, frames, dropout)

    def forward(self, x: torch.Tensor, text: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` ``(B, T, D)``, ``text`` ``(B, r T, D)`` -> ``(B, T, D)`` (causal: no padding mask needed,
        ``valid`` is not used)."""
        return self.after_self_attention(x, self.self_attn(x), text)

    def step(
        self, x: torch.Tensor, text: torch.Tensor, cache: dict | None, t: int
    ) -> tuple[torch.Tensor, dict]:
        """Frame ``t``: ``x`` ``(B, 1, D)``, its text frames ``(B, r, D)``."""
        attended, cache = self.self_attn.step(x, cache, t)
        return self.after_self_attention(x, attended, text), cache


#: A FaceFormer forward pass (vertices, frame mask, the backbone's CTC logits).
FaceFormerOutput = KindOutput


class FaceFormer(SpeakerConditions, SpeechToFace):
    """Speech + a training speaker's one-hot -> per-frame vertices, decoded autoregressively.

    Args:
        cfg: the model config (``kind: faceformer``; its ``faceformer`` section, with ``speakers`` filled).
        topology: the face topology.
    """

    def __init__(self, cfg: ModelConfig, topology: FaceTopology) -> None:
        super().__init__(cfg, topology)
        f = cfg.faceformer
        if not f.speakers:
            raise ConfigError(
                "model.faceformer.speakers is empty: a FaceFormer is conditioned on its training speakers "
                "(a training run fills them in from its training split)"
            )
        self.unseen_protocol = "all"  # the published protocol: every training speaker, averaged
        default = f.condition or f.speakers[0]
        self.set_conditions(f.speakers, len(f.speakers), default, f.speakers.index(default))
        d, v = f.width, topology.num_vertices
        self.dim, self.num_vertices = d, v
        self.period = fps_period(topology, f.period)
        self.audio_proj = nn.Linear(self.backbone.vocab_size, d)  # FaceFormer's audio_feature_map
        self.motion_encoder = nn.Linear(3 * v, d)  # vertice_map
        self.speaker = nn.Linear(self.num_conditions, d, bias=False)  # obj_vector (one-hot -> style)
        self.ppe_dropout = nn.Dropout(f.dropout)
        ffn = f.ffn or 2 * d
        self.layers = nn.ModuleList(
            [
                FaceFormerLayer(d, f.heads, ffn, self.period, f.attention_frames, f.dropout)
                for _ in range(f.layers)
            ]
        )
        self.head = nn.Linear(d, 3 * v)  # vertice_map_r, zero-initialised as published
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (:data:`GROUPS`); every parameter in exactly one group."""
        return self.module_groups(
            GROUPS,
            audio_proj=self.audio_proj,
            motion_encoder=self.motion_encoder,
            speaker=self.speaker,
            decoder=self.layers,
            head=self.head,
        )

    # ------------------------------------------------------------------ pieces
    def style(self, conditions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` speaker indices -> ``(B, D)``: the one-hot through ``speaker`` (a column of its weight)."""
        return self.speaker.weight.t()[conditions]

    def _input(self, y: torch.Tensor, style: torch.Tensor, start: int) -> torch.Tensor:
        """Decoder input ``(B, n, D)``: ``motion_encoder(y) + style`` plus PPE of frames from ``start``."""
        x = self.motion_encoder(y) + style[:, None]
        pe = periodic_positional_encoding(x.shape[1], self.dim, self.period, x.device, x.dtype, start)
        return self.ppe_dropout(x + pe[None])

    def teacher_forced(self, text: torch.Tensor, y: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """One decoder pass: ``text`` ``(B, rT, D)``, ground-truth motion ``y`` ``(B, T, 3V)`` in the
        motion unit, ``style`` ``(B, D)`` -> predicted motion ``(B, T, 3V)``; frame ``t`` reads ``y_{<t}``."""
        b, t, _ = y.shape
        first = (
            style[:, None]
            + periodic_positional_encoding(1, self.dim, self.period, y.device, style.dtype)[None]
        )
        rest = self._input(y[:, : t - 1], style, start=1)
        x = torch.cat([self.ppe_dropout(first), rest], dim=1)
        for layer in self.layers:
            x = layer(x, text)
        return self.head(x).float()

    def autoregressive(self, text: torch.Tensor, style: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Decode ``num_frames`` frames, each from the model's own previous output (key/value cached):
        ``text`` ``(B, rT, D)``, ``style`` ``(B, D)`` -> motion ``(B, T, 3V)`` in the motion unit."""
        r = self.text_rate
        caches: list[dict | None] = [None] * len(self.layers)
        pe = periodic_positional_encoding(self.period, self.dim, self.period, style.device, style.dtype)
        inp = style[:, None]
        outs = []
        for t in range(num_frames):
            x = self.ppe_dropout(inp + pe[t % self.period])
            for i, layer in enumerate(self.layers):
                x, caches[i] = layer.step(x, text[:, r * t : r * (t + 1)], caches[i], t)
            y = self.head(x)  # (B, 1, 3V)
            outs.append(y)
            inp = self.motion_encoder(y) + style[:, None]
        return torch.cat(outs, dim=1).float()

    # ------------------------------------------------------------------ forward / predict
    def forward(self, batch: Any, teacher_forcing: bool = False) -> FaceFormerOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch`: each clip under its own
        speaker's condition (``subject_ids``; a clip of a speaker outside training, id -1, under the
        default condition). Decoding: autoregressive in training with ``faceformer.training:
        autoregressive`` (as published); teacher-forced otherwise when the batch has vertices.

        ``teacher_forcing`` (MemoryTalker's extra teacher pass) does not apply and is ignored.
        """
        audio, audio_lengths, templates, vertices, frame_lengths, num_frames = self.batch_inputs(batch)
        dev = audio.device
        ids = getattr(batch, "subject_ids", None)
        conditions = None if ids is None else self.own_conditions(ids.to(dev))
        style = self.style(self.checked_conditions(conditions, audio.shape[0], dev))
        logits, text = self.speech_features(audio, audio_lengths, frame_lengths, num_frames, False)
        autoregressive = vertices is None or (
            self.training and self.cfg.faceformer.training == "autoregressive"
        )
        if autoregressive:
            y = self.autoregressive(text, style, num_frames)
        else:
            disp = (vertices.to(dev) - templates.unsqueeze(1)).flatten(2) / self.motion_scale
            y = self.teacher_forced(text, disp, style)
        return FaceFormerOutput(
            vertices=self.offsets_to_vertices(y, templates),
            frame_mask=lengths_to_mask(frame_lengths, num_frames),
            ctc_logits=logits,
            ctc_lengths=frame_lengths * self.text_rate,
        )

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Autoregressive inference (eval mode, restored afterwards) from audio, neutral templates and a
        training speaker's condition.

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``.
            templates: ``(B, V, 3)``.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).
            conditions: ``(B,)`` indices into :attr:`speakers` (None = the config's default condition).

        Returns:
            ``(B, T, V, 3)``; frames past a clip's length hold its template.
        """

        def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
            style = self.style(self.checked_conditions(conditions, audio.shape[0], audio.device))
            _, text = self.speech_features(audio, audio_lengths, frame_lengths, t, True)
            return self.offsets_to_vertices(self.autoregressive(text, style, t), templates.to(audio.device))

        return self.run_predict(audio, audio_lengths, templates, num_frames, decode)

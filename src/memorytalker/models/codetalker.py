"""CodeTalker (Xing et al., CVPR'23) as the ``codetalker`` model kind; what is published and what differs:
docs/MODELS.md.

Two stages, one class (``model.codetalker.stage``). Shapes: ``B`` clips, ``T`` mesh frames, ``r T`` text
frames, ``V`` vertices, ``H`` the VQ-VAE width, ``D`` the predictor width, ``F = face_quan_num x zquant_dim``
a frame's latent, ``N`` = ``face_quan_num`` codes per frame, ``K`` = ``n_embed`` codebook entries::

    stage 1 (codebook):  y = (v - template) / motion_scale (B, T, 3V)
        VQ encoder: Linear + LeakyReLU -> Conv1d (replicate pad) + LeakyReLU + InstanceNorm over time
                    -> Linear -> pre-norm transformer [-> Linear H->F (BIWI)]           z (B, T, F)
        quantiser:  each of a frame's N parts (zquant_dim wide) -> its nearest of K entries   zq (B, T, F)
        VQ decoder: [Linear F->H (BIWI)] -> Conv1d + LeakyReLU + InstanceNorm -> Linear -> transformer
                    -> Linear H->3V                                                     y' (B, T, 3V)
    stage 2 (predictor): audio -> backbone -> CTC logits (B, rT, M) -> audio_proj -> (B, rT, D)
        input_0 = style(s);  input_t = motion_encoder(y_{t-1}) + style(s)        one-hot speaker style
        PPE -> FaceFormer decoder layers (periodic biased causal self-attention, aligned cross-attention)
        -> feat_map (zero-init, no bias) -> features (B, T, F) -> frozen quantiser -> frozen VQ decoder

Training of stage 2 is teacher-forced as published (``y_{t-1}`` = the ground truth's previous frame) or
autoregressive. Inference is autoregressive: frame ``t``'s codes come from the predictor (key/value cached);
the next input is the VQ decoder's last frame over the latest ``decode_frames`` frames of codes (the
published loop re-decodes the whole prefix each step); the output is the VQ decoder over all of the clip's
codes. The VQ-VAE normalises over time (InstanceNorm) and attends over the whole clip, so it runs on each
clip at its own length (a padded batch equals each clip alone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memorytalker.errors import ConfigError
from memorytalker.models.common import KindOutput, SpeakerConditions, SpeechToFace, fps_period
from memorytalker.models.config import CodeTalkerConfig, ModelConfig
from memorytalker.models.faceformer import FaceFormerLayer
from memorytalker.models.layers import lengths_to_mask, periodic_positional_encoding
from memorytalker.topology import FaceTopology

#: The VQ-VAE's groups: what stage 1 (``codetalker_vq``) trains and stage 2 keeps frozen.
CODEBOOK_GROUPS = ("vq_encoder", "codebook", "vq_decoder")
#: The code predictor's own groups (stage 2 trains them with the backbone's).
PREDICTOR_GROUPS = ("audio_proj", "motion_encoder", "style", "predictor", "feat_map")
#: Parameter groups of :meth:`CodeTalker.parameter_groups` (the backbone's three, then CodeTalker's own).
GROUPS = ("asr_frontend", "asr", "ctc_head", *CODEBOOK_GROUPS, *PREDICTOR_GROUPS)
#: InstanceNorm's epsilon (``nn.InstanceNorm1d``'s default).
NORM_EPS = 1e-5


# ---------------------------------------------------------------------------------------------- codebook usage
@dataclass(frozen=True)
class CodebookUsage:
    """How a set of codes uses a codebook of ``size`` entries.

    Attributes:
        perplexity: ``exp(H)`` of the codes' histogram (``H = -sum_k p_k log p_k``, ``0 log 0 = 0``): the
            number of equally used entries that would give the same entropy (1 .. ``size``).
        dead: entries never used. dead_fraction: ``dead / size``. used: ``size - dead``.
        count: how many codes were counted.
    """

    perplexity: float
    dead: int
    dead_fraction: float
    used: int
    size: int
    count: int


def codebook_usage(indices: Any, size: int) -> CodebookUsage:
    """Perplexity and dead entries of code ``indices`` (any shape; negative values = padding, ignored) of a
    codebook of ``size`` entries."""
    idx = np.asarray(indices.detach().cpu() if isinstance(indices, torch.Tensor) else indices).reshape(-1)
    idx = idx[idx >= 0].astype(np.int64)
    if idx.size == 0:
        raise ValueError("codebook_usage: no codes to count")
    if int(idx.max()) >= size:
        raise ValueError(f"codebook_usage: code {int(idx.max())} is outside a codebook of {size} entries")
    counts = np.bincount(idx, minlength=size).astype(np.float64)
    p = counts / counts.sum()
    nz = p[p > 0]
    dead = int((counts == 0).sum())
    return CodebookUsage(
        perplexity=float(np.exp(-(nz * np.log(nz)).sum())),
        dead=dead,
        dead_fraction=dead / size,
        used=size - dead,
        size=size,
        count=int(idx.size),
    )


# ---------------------------------------------------------------------------------------------- VQ-VAE
def instance_norm(x: torch.Tensor, eps: float = NORM_EPS) -> torch.Tensor:
    """``nn.InstanceNorm1d`` without affine parameters over ``(B, C, T)``: each channel normalised over time
    (biased variance). A single frame normalises to 0 (what the published loop's duplicated first frame
    gives)."""
    mean = x.mean(-1, keepdim=True)
    var = (x - mean).square().mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


class VQBlock(nn.Module):
    """The VQ-VAE's pre-norm transformer block: ``x + Attn(LN(x))``, ``x + MLP(LN(x))`` (GELU), full
    attention over the clip with bias-free ``q, k, v`` and the published scale ``width^-0.5`` (not per head)."""

    def __init__(self, dim: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.dim, self.heads = dim, heads
        self.norm1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.out = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, ffn)
        self.fc2 = nn.Linear(ffn, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, H)`` -> ``(B, T, H)``."""
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = F.scaled_dot_product_attention(q, k, v, scale=d**-0.5)
        x = x + self.out(att.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class _VQStack(nn.Module):
    """Conv1d + LeakyReLU + InstanceNorm over time, then Linear, dropout and the transformer blocks."""

    def __init__(self, c: CodeTalkerConfig) -> None:
        super().__init__()
        h = c.hidden
        self.slope = c.negative_slope
        self.conv = nn.Conv1d(h, h, c.kernel, padding=c.kernel // 2, padding_mode="replicate")
        self.embed = nn.Linear(h, h)
        self.dropout = nn.Dropout(c.vq_dropout)
        self.blocks = nn.ModuleList([VQBlock(h, c.vq_heads, c.vq_ffn) for _ in range(c.vq_layers)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, T, H)`` of one length (no padding) -> ``(B, T, H)``."""
        x = self.conv(x.transpose(1, 2))
        x = instance_norm(F.leaky_relu(x, self.slope)).transpose(1, 2)
        x = self.dropout(self.embed(x))
        for block in self.blocks:
            x = block(x)
        return x


class VQEncoder(nn.Module):
    """Motion ``(B, T, 3V)`` (motion unit) -> latent ``(B, T, F)``; clips of one length (no padding)."""

    def __init__(self, c: CodeTalkerConfig, num_vertices: int) -> None:
        super().__init__()
        self.slope = c.negative_slope
        self.vertex_map = nn.Linear(3 * num_vertices, c.hidden)
        self.stack = _VQStack(c)
        self.post = nn.Linear(c.hidden, c.face_quan_num * c.zquant_dim) if c.projection else None

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        x = self.stack(F.leaky_relu(self.vertex_map(y), self.slope))
        return x if self.post is None else self.post(x)


class VQDecoder(nn.Module):
    """Latent ``(B, T, F)`` -> motion ``(B, T, 3V)`` in the motion unit; clips of one length (no padding)."""

    def __init__(self, c: CodeTalkerConfig, num_vertices: int) -> None:
        super().__init__()
        self.pre = nn.Linear(c.face_quan_num * c.zquant_dim, c.hidden) if c.projection else None
        self.stack = _VQStack(c)
        self.head = nn.Linear(c.hidden, 3 * num_vertices, bias=not c.projection)

    def forward(self, zq: torch.Tensor, last_only: bool = False) -> torch.Tensor:
        """``last_only``: only the last frame's output ``(B, 1, 3V)`` (the autoregressive step's input)."""
        x = self.stack(zq if self.pre is None else self.pre(zq))
        return self.head(x[:, -1:] if last_only else x)


class Quantized(NamedTuple):
    """A quantisation: ``quantized`` (straight-through: the entries' values, the input's gradient),
    ``codes`` (long, ``(..., N)``), and per frame the commitment ``|z - sg(e)|^2`` and codebook
    ``|sg(z) - e|^2`` errors (means over the frame's ``F`` values)."""

    quantized: torch.Tensor
    codes: torch.Tensor
    commitment: torch.Tensor
    codebook: torch.Tensor


class Quantizer(nn.Module):
    """The codebook: ``K`` entries of ``zquant_dim`` (``nn.Embedding``, uniform init in ``+-1/K`` as published);
    a frame's latent ``(..., N * zquant_dim)`` is quantised part by part to the nearest entry (L2)."""

    def __init__(self, entries: int, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.embedding = nn.Embedding(entries, dim)
        nn.init.uniform_(self.embedding.weight, -1.0 / entries, 1.0 / entries)

    def nearest(self, z: torch.Tensor) -> torch.Tensor:
        """``(..., N * zquant_dim)`` -> codes ``(..., N)`` (argmin of the squared distance)."""
        flat = z.reshape(-1, self.dim).float()
        e = self.embedding.weight.float()
        d = flat.square().sum(1, keepdim=True) + e.square().sum(1)[None] - 2.0 * flat @ e.t()
        return d.argmin(1).view(*z.shape[:-1], z.shape[-1] // self.dim)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``(..., N)`` -> the entries ``(..., N * zquant_dim)``."""
        return self.embedding(codes).flatten(-2)

    def forward(self, z: torch.Tensor) -> Quantized:
        if z.shape[-1] % self.dim:
            raise ValueError(f"latent width {z.shape[-1]} is not a multiple of the code width {self.dim}")
        codes = self.nearest(z)
        e = self.lookup(codes).to(z.dtype)
        commitment = (z - e.detach()).float().square().mean(-1)
        codebook = (z.detach() - e).float().square().mean(-1)
        return Quantized(z + (e - z).detach(), codes, commitment, codebook)


def per_clip(
    fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """``fn`` over ``x`` ``(B, T, C)`` with each clip at its own length (clips of equal length together);
    frames past a clip's length are 0."""
    t = x.shape[1]
    ls = [int(n) for n in lengths.tolist()]
    if all(n == t for n in ls):
        return fn(x)
    out: torch.Tensor | None = None
    for n in sorted(set(ls)):
        rows = [i for i, m in enumerate(ls) if m == n]
        part = fn(x[rows, :n])
        if out is None:
            out = part.new_zeros(x.shape[0], t, part.shape[-1])
        out[rows, :n] = part
    return out


# ---------------------------------------------------------------------------------------------- the model
@dataclass
class CodeTalkerOutput(KindOutput):
    """A CodeTalker forward pass: :class:`KindOutput`'s fields, plus ``quant_error`` ``(B, T)`` (stage 1: the
    quantiser loss per frame, ``beta`` x commitment + codebook), ``code_pred`` / ``code_target``
    ``(B, T, F)`` (stage 2: the predicted features before quantisation and the ground truth's quantised
    features) and ``codes`` ``(B, T, N)`` (the codes the output was decoded from)."""

    quant_error: torch.Tensor | None = None
    code_pred: torch.Tensor | None = None
    code_target: torch.Tensor | None = None
    codes: torch.Tensor | None = None


class Decoded(NamedTuple):
    """An autoregressive run: ``features`` ``(B, T, F)`` (before quantisation), ``quantized`` ``(B, T, F)``,
    ``codes`` ``(B, T, N)`` and ``inputs`` ``(B, T - 1, 3V)`` (``(B, T, 3V)`` with ``keep_inputs``): frame
    ``t``'s is the VQ decoder's last frame over the codes of frames ``<= t``, frame ``t + 1``'s input; so
    :meth:`CodeTalker.teacher_forced` on them repeats the run."""

    features: torch.Tensor
    quantized: torch.Tensor
    codes: torch.Tensor
    inputs: torch.Tensor | None


class CodeTalker(SpeakerConditions, SpeechToFace):
    """Stage 1: a motion VQ-VAE; stage 2: speech + a training speaker's one-hot -> codes -> vertices.

    Args:
        cfg: the model config (``kind: codetalker``; its ``codetalker`` section, with ``speakers`` filled).
        topology: the face topology.
    """

    def __init__(self, cfg: ModelConfig, topology: FaceTopology) -> None:
        super().__init__(cfg, topology)
        c = cfg.codetalker
        if not c.speakers:
            raise ConfigError(
                "model.codetalker.speakers is empty: CodeTalker's style is a one-hot of its training speakers "
                "(a training run fills them in from its training split)"
            )
        self.unseen_protocol = "all"  # as FaceFormer's: every training speaker's style, averaged
        default = c.condition or c.speakers[0]
        self.set_conditions(c.speakers, len(c.speakers), default, c.speakers.index(default))
        v, d = topology.num_vertices, c.width
        self.dim, self.latent = d, c.face_quan_num * c.zquant_dim
        self.period = fps_period(topology, c.period)
        self.vq_encoder = VQEncoder(c, v)
        self.quantizer = Quantizer(c.n_embed, c.zquant_dim)
        self.vq_decoder = VQDecoder(c, v)
        self.audio_proj = nn.Linear(self.backbone.vocab_size, d)  # audio_feature_map
        self.motion_encoder = nn.Linear(3 * v, d)  # vertice_map
        self.style = nn.Embedding(self.num_conditions, d)  # learnable_style_emb
        self.ppe_dropout = nn.Dropout(c.dropout)
        ffn = c.ffn or 2 * d
        self.layers = nn.ModuleList(
            [
                FaceFormerLayer(d, c.heads, ffn, self.period, c.attention_frames, c.dropout)
                for _ in range(c.layers)
            ]
        )
        self.feat_map = nn.Linear(d, self.latent, bias=False)  # zero-initialised as published
        nn.init.zeros_(self.feat_map.weight)

    @property
    def stage(self) -> str:
        """``codebook`` (stage 1) or ``predictor`` (stage 2)."""
        return self.cfg.codetalker.stage

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (:data:`GROUPS`); every parameter in exactly one group."""
        return self.module_groups(
            GROUPS,
            vq_encoder=self.vq_encoder,
            codebook=self.quantizer,
            vq_decoder=self.vq_decoder,
            audio_proj=self.audio_proj,
            motion_encoder=self.motion_encoder,
            style=self.style,
            predictor=self.layers,
            feat_map=self.feat_map,
        )

    # ------------------------------------------------------------------ the VQ-VAE
    def displacement(self, vertices: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
        """``(B, T, V, 3)`` vertices -> ``(B, T, 3V)`` displacements in the motion unit."""
        return (vertices.float() - templates.float().unsqueeze(1)).flatten(2) / self.motion_scale

    def encode(self, y: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Motion ``(B, T, 3V)`` -> latent ``(B, T, F)``, each clip at its own length."""
        return per_clip(self.vq_encoder, y, lengths)

    def decode(self, zq: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Quantised latent ``(B, T, F)`` -> motion ``(B, T, 3V)``, each clip at its own length."""
        return per_clip(self.vq_decoder, zq, lengths)

    def decode_codes(self, codes: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Codes ``(B, T, N)`` -> motion ``(B, T, 3V)`` (the codebook's entries through the VQ decoder)."""
        return self.decode(self.quantizer.lookup(codes.clamp(min=0)), lengths)

    def motion_codes(
        self, vertices: torch.Tensor, templates: torch.Tensor, lengths: torch.Tensor
    ) -> torch.Tensor:
        """The stage-1 encoder's codes ``(B, T, N)`` of ground-truth ``vertices`` ``(B, T, V, 3)`` (-1 past
        each clip's length)."""
        with self.evaluating(), torch.no_grad():
            codes = self.quantizer(self.encode(self.displacement(vertices, templates), lengths)).codes
        return codes.masked_fill(~lengths_to_mask(lengths, codes.shape[1])[..., None], -1)

    # ------------------------------------------------------------------ the predictor
    def teacher_forced(self, text: torch.Tensor, y: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """One predictor pass: ``text`` ``(B, rT, D)``, motion inputs ``y`` ``(B, T, 3V)`` in the motion unit,
        ``style`` ``(B, D)`` -> features ``(B, T, F)``; frame ``t`` reads ``y_{<t}`` (frame 0: the style)."""
        b, t, _ = y.shape
        x = torch.cat([style[:, None], self.motion_encoder(y[:, : t - 1]) + style[:, None]], dim=1)
        pe = periodic_positional_encoding(t, self.dim, self.period, y.device, x.dtype)
        x = self.ppe_dropout(x + pe[None])
        for layer in self.layers:
            x = layer(x, text)
        return self.feat_map(x)

    def autoregressive(
        self, text: torch.Tensor, style: torch.Tensor, num_frames: int, keep_inputs: bool = False
    ) -> Decoded:
        """Decode ``num_frames`` frames of codes, each step's input the VQ decoder's last frame over the codes
        so far (its latest ``decode_frames``); the predictor's keys/values are cached. ``keep_inputs`` also
        decodes after the last frame, so :attr:`Decoded.inputs` has all ``T`` frames."""
        r, window = self.text_rate, self.cfg.codetalker.decode_frames
        caches: list[dict | None] = [None] * len(self.layers)
        pe = periodic_positional_encoding(self.period, self.dim, self.period, style.device, style.dtype)
        inp = style[:, None]
        feats, quants, codes, inputs = [], [], [], []
        for t in range(num_frames):
            x = self.ppe_dropout(inp + pe[t % self.period])
            for i, layer in enumerate(self.layers):
                x, caches[i] = layer.step(x, text[:, r * t : r * (t + 1)], caches[i], t)
            f = self.feat_map(x)  # (B, 1, F)
            q = self.quantizer(f)
            feats.append(f)
            quants.append(q.quantized)
            codes.append(q.codes)
            if t + 1 < num_frames or keep_inputs:
                y = self.vq_decoder(torch.cat(quants[-window:], dim=1), last_only=True)  # (B, 1, 3V)
                inputs.append(y)
                inp = self.motion_encoder(y) + style[:, None]
        cat = lambda xs: torch.cat(xs, dim=1)  # noqa: E731
        return Decoded(cat(feats), cat(quants), cat(codes), cat(inputs) if inputs else None)

    def _style(self, conditions: torch.Tensor | None, batch: int, device: Any) -> torch.Tensor:
        return self.style(self.checked_conditions(conditions, batch, device))

    # ------------------------------------------------------------------ forward / predict
    def forward(self, batch: Any, teacher_forcing: bool = False) -> CodeTalkerOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch`.

        Stage 1 (``codebook``): the VQ-VAE reconstructs the batch's ground-truth motion (no audio).
        Stage 2 (``predictor``): codes from speech under each clip's own speaker's style (a clip of a speaker
        outside training: the default condition), teacher-forced on the ground truth's previous frames when
        the batch has vertices (``codetalker.training: teacher_forcing``, as published), else autoregressive.
        ``teacher_forcing`` (MemoryTalker's extra teacher pass) does not apply and is ignored.
        """
        audio, audio_lengths, templates, vertices, frame_lengths, num_frames = self.batch_inputs(batch)
        dev = audio.device
        mask = lengths_to_mask(frame_lengths, num_frames)
        y_true = None if vertices is None else self.displacement(vertices.to(dev), templates)
        if self.stage == "codebook":
            if y_true is None:
                raise ConfigError(
                    "a stage-1 CodeTalker (codetalker.stage: codebook) trains on ground-truth motion"
                )
            q = self.quantizer(self.encode(y_true, frame_lengths))
            y = self.decode(q.quantized, frame_lengths)
            beta = self.cfg.codetalker.beta
            return CodeTalkerOutput(
                vertices=self.offsets_to_vertices(y, templates),
                frame_mask=mask,
                quant_error=beta * q.commitment + q.codebook,
                codes=q.codes,
            )
        ids = getattr(batch, "subject_ids", None)
        style = self._style(None if ids is None else self.own_conditions(ids.to(dev)), audio.shape[0], dev)
        logits, text = self.speech_features(audio, audio_lengths, frame_lengths, num_frames, False)
        target = None
        if y_true is not None:
            with torch.no_grad():  # the frozen encoder's quantised features of the ground truth
                target = self.quantizer(self.encode(y_true, frame_lengths)).quantized
        autoregressive = y_true is None or (
            self.training and self.cfg.codetalker.training == "autoregressive"
        )
        feats = (
            self.autoregressive(text, style, num_frames).features
            if autoregressive
            else self.teacher_forced(text, y_true, style)
        )
        q = self.quantizer(feats)
        y = self.decode(q.quantized, frame_lengths)
        return CodeTalkerOutput(
            vertices=self.offsets_to_vertices(y, templates),
            frame_mask=mask,
            ctc_logits=logits,
            ctc_lengths=frame_lengths * self.text_rate,
            code_pred=feats,
            code_target=target,
            codes=q.codes,
        )

    def predict_options(self, batch: Any) -> dict[str, Any]:
        """Each clip's own condition; a stage-1 model also gets the batch's ground-truth motion, which it
        reconstructs (validation of stage 1 scores the VQ-VAE's reconstruction)."""
        options = super().predict_options(batch)
        if self.stage == "codebook":
            options["motion"] = batch.vertices
        return options

    def _check_stage(self, motion: torch.Tensor | None) -> None:
        if motion is None and self.stage == "codebook":
            raise ConfigError(
                "this CodeTalker is a stage-1 model (model.codetalker.stage: codebook): it only reconstructs "
                "ground-truth motion; animating speech needs its stage-2 checkpoint (train --stage codetalker)"
            )

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
        motion: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Autoregressive inference (eval mode, restored afterwards) from audio, neutral templates and a
        training speaker's condition; or, given ``motion``, its reconstruction through the VQ-VAE.

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``.
            templates: ``(B, V, 3)``.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).
            conditions: ``(B,)`` indices into :attr:`speakers` (None = the config's default condition).
            motion: ``(B, T', V, 3)`` ground-truth vertices (``T' >= T``) to reconstruct instead; the only
                input a stage-1 model predicts from.

        Returns:
            ``(B, T, V, 3)``; frames past a clip's length hold its template.

        Raises:
            ConfigError: a stage-1 model without ``motion``.
        """
        self._check_stage(motion)

        def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
            tpl = templates.to(audio.device)
            if motion is not None:
                q = self.quantizer(
                    self.encode(self.displacement(motion[:, :t].to(audio.device), tpl), frame_lengths)
                )
                return self.offsets_to_vertices(self.decode(q.quantized, frame_lengths), tpl)
            codes = self._predict_codes(audio, audio_lengths, frame_lengths, t, conditions)
            return self.offsets_to_vertices(self.decode_codes(codes, frame_lengths), tpl)

        return self.run_predict(audio, audio_lengths, templates, num_frames, decode)

    def _predict_codes(self, audio, audio_lengths, frame_lengths, t, conditions) -> torch.Tensor:
        style = self._style(conditions, audio.shape[0], audio.device)
        _, text = self.speech_features(audio, audio_lengths, frame_lengths, t, True)
        return self.autoregressive(text, style, t).codes

    def predicted_codes(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        num_frames: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The codes ``(B, T, N)`` :meth:`predict` decodes (a stage-2 model; -1 past each clip's length)."""
        self._check_stage(None)
        audio_lengths = audio_lengths.to(audio.device).long()
        lengths = self.frames_for(audio_lengths) if num_frames is None else num_frames.to(audio.device).long()
        t = int(lengths.max())
        with self.evaluating(), torch.no_grad():
            codes = self._predict_codes(audio, audio_lengths, lengths, t, conditions)
        return codes.masked_fill(~lengths_to_mask(lengths, t)[..., None], -1)

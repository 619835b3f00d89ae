"""UniTalker (Fan et al., ECCV'24) as the ``unitalker`` model kind; what is published and what differs:
docs/MODELS.md.

One model over several corpora of different topologies. Data flow (shapes: ``B`` clips, ``T`` mesh frames,
``r T`` text frames, ``M`` CTC symbols, ``D`` width, ``E`` identity width, ``K`` PCA components, ``V_h``
vertices of head ``h``, ``N`` identities)::

    audio (B, S) -> per-clip normalisation -> backbone -> CTC logits (B, rT, M) -> as (B, T, r M)
    x = dropout(audio_proj(.)) (B, T, D) ; e = identity(id) (B, E), repeated over the frames
    h = temporal convolutions([x ; e]) (B, T, D)       3 layers: conv k=3 -> LayerNorm -> + residual -> ReLU
    c = head_h(h) (B, T, K)                            the batch's corpus' topology picks the head
    y = c @ basis_h + mean_h (B, T, 3 V_h)              PCA decode (or y = head_h(h) without PCA)
    vertices = template + unit_h * y                    unit_h: the head's corpora's RMS displacement

Identities: every training speaker of every corpus, then the common ("pivot") identity, which a training
batch takes with probability ``random_identity`` and every speaker outside training takes at inference.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from memorytalker.errors import ConfigError, TopologyError
from memorytalker.models.common import KindOutput, SpeakerConditions, SpeechToFace
from memorytalker.models.config import COMMON_IDENTITY, ModelConfig
from memorytalker.models.layers import lengths_to_mask
from memorytalker.models.mel import normalize_waveform
from memorytalker.topology import FaceTopology

#: Parameter groups of :meth:`UniTalker.parameter_groups`.
GROUPS = ("asr_frontend", "asr", "ctc_head", "audio_proj", "identity", "decoder", "heads")


@dataclass
class UniTalkerOutput(KindOutput):
    """A forward pass (:class:`~memorytalker.models.common.KindOutput`) plus the head's PCA coefficients
    ``pca_pred`` and the ground truth's ``pca_target`` ``(B, T, R)`` (the ``R`` components in use) in the
    motion unit (None without PCA or without ground truth), for the ``pca`` loss term."""

    pca_pred: torch.Tensor | None = None
    pca_target: torch.Tensor | None = None


class TemporalConv(nn.Module):
    """One layer of the decoder: centred ``Conv1d`` -> LayerNorm over channels -> + residual (the input, or
    a convolution of it when the widths differ) -> ReLU. Padded frames are zeroed before the convolution,
    so a padded batch equals its clips alone (a clip alone is zero-padded at its end too)."""

    def __init__(self, cin: int, cout: int, kernel: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=kernel // 2)
        self.norm = nn.LayerNorm(cout)
        self.residual = nn.Identity() if cin == cout else nn.Conv1d(cin, cout, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, C_in)``, ``valid`` ``(B, T)`` -> ``(B, T, C_out)``."""
        xc = (x * valid[..., None].to(x.dtype)).transpose(1, 2)
        out = self.norm(self.conv(xc).transpose(1, 2))
        return F.relu(out + self.residual(xc).transpose(1, 2))


class OutputHead(nn.Module):
    """A topology's output head: a zero-initialised linear map to its ``K`` PCA coefficients, decoded with
    the basis fitted on its training displacements (``basis`` ``(K, 3V)``, ``mean`` ``(3V,)``, both in the
    head's motion unit; buffers, stored in checkpoints); with ``pca_dim`` 0, to the ``3V`` offsets directly.

    ``unit`` (a buffer; 0 = not measured, the model's ``motion_scale`` applies) is the head's motion unit in
    its corpora's units: the RMS displacement of their training clips, so corpora in metres and in
    millimetres (VOCASET and BIWI) train together with losses of the same order."""

    def __init__(self, width: int, num_vertices: int, pca_dim: int) -> None:
        super().__init__()
        dim = 3 * int(num_vertices)
        self.num_vertices = int(num_vertices)
        self.k = min(int(pca_dim), dim) if pca_dim > 0 else 0
        self.linear = nn.Linear(width, self.k or dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.register_buffer("unit", torch.zeros(()))
        if self.k:
            self.register_buffer("basis", torch.zeros(self.k, dim))
            self.register_buffer("mean", torch.zeros(dim))
            self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))
            self.register_buffer("rank", torch.tensor(self.k))

    @property
    def components(self) -> int:
        """PCA components in use: the fitted basis' rank (at most ``K``; the head's outputs beyond it are
        unused, as the published head has only as many outputs as the basis has components)."""
        return int(self.rank)

    def decode(self, out: torch.Tensor) -> torch.Tensor:
        """Head output ``(B, T, K or 3V)`` -> offsets ``(B, T, 3V)`` in the motion unit."""
        if not self.k:
            return out.float()
        r = self.components
        return torch.matmul(out[..., :r].float(), self.basis[:r]) + self.mean

    def encode(self, offsets: torch.Tensor) -> torch.Tensor:
        """Offsets ``(B, T, 3V)`` in the motion unit -> the used PCA coefficients ``(B, T, components)``."""
        return torch.matmul(offsets.float() - self.mean, self.basis[: self.components].t())

    @torch.no_grad()
    def fit(self, offsets: np.ndarray) -> float:
        """Fit the basis on training offsets ``(N, 3V)`` (motion unit): the mean and the top ``K`` right
        singular vectors (rows beyond the data's rank stay zero). Returns the fraction of the variance the
        basis keeps."""
        x = torch.from_numpy(np.asarray(offsets, dtype=np.float64))
        if x.ndim != 2 or x.shape[1] != self.basis.shape[1] or x.shape[0] < 2:
            raise ValueError(f"PCA needs (N >= 2, {self.basis.shape[1]}) offsets, got {tuple(x.shape)}")
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        rank = int((s > s[0] * 1e-6).sum()) if s.numel() and s[0] > 0 else 0
        k = min(self.k, rank)
        self.basis.zero_()
        self.basis[:k] = vt[:k].float()
        self.mean.copy_(mean.float())
        self.fitted.fill_(True)
        self.rank.fill_(k)
        var = s.square()
        return float(var[:k].sum() / var.sum().clamp(min=1e-30))


class UniTalker(SpeakerConditions, SpeechToFace):
    """Speech + an identity -> per-frame vertices of any of its heads' topologies, in one pass.

    Args:
        cfg: the model config (``kind: unitalker``; its ``unitalker`` section with ``heads`` and
            ``identities`` filled, or empty for a one-corpus model).
        topology: the first head's topology (the one ``topology`` selects until :meth:`select_head`).
        topologies: every head's topology by name (``cfg.unitalker.heads``); ``topology`` alone for one head.
    """

    condition_noun = "identities"

    def __init__(
        self, cfg: ModelConfig, topology: FaceTopology, topologies: Mapping[str, FaceTopology] | None = None
    ) -> None:
        super().__init__(cfg, topology)
        u = cfg.unitalker
        names = list(u.heads) or [topology.name]
        given = {topology.name: topology, **dict(topologies or {})}
        missing = [h for h in names if h not in given]
        if missing:
            raise ConfigError(
                f"model.unitalker.heads {names}: no topology for {missing} (given: {sorted(given)})"
            )
        if names[0] != topology.name:
            raise ConfigError(
                f"model.unitalker.heads starts with {names[0]!r} but the model's topology is {topology.name!r}"
            )
        self.head_names = names
        self.topologies = {h: given[h] for h in names}
        self.head = names[0]
        self.identities = list(u.identities)
        self.common_condition = len(self.identities)
        self.set_conditions(
            [*self.identities, COMMON_IDENTITY],
            len(self.identities),
            u.condition or COMMON_IDENTITY,
            self.common_condition,
        )
        d, m = u.width, self.backbone.vocab_size
        self.audio_proj = nn.Linear(self.text_rate * m, d)
        self.identity = nn.Embedding(self.num_conditions, u.identity_width)
        self.input_dropout = nn.Dropout(u.dropout)
        self.layers = nn.ModuleList(
            [TemporalConv(d + u.identity_width if i == 0 else d, d, u.kernel) for i in range(u.layers)]
        )
        self.heads = nn.ModuleList([OutputHead(d, self.topologies[h].num_vertices, u.pca_dim) for h in names])

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (:data:`GROUPS`); every parameter in exactly one group."""
        return self.module_groups(
            GROUPS, audio_proj=self.audio_proj, identity=self.identity, decoder=self.layers, heads=self.heads
        )

    # ------------------------------------------------------------------ heads and identities
    def head_index(self, name: str | None) -> int:
        """The index of head ``name`` (None = the selected head); a clear error for another name."""
        name = self.head if name is None else name
        if name not in self.head_names:
            raise ConfigError(f"head {name!r} is not one of this model's output heads {self.head_names}")
        return self.head_names.index(name)

    def select_head(self, name: str) -> FaceTopology:
        """Make head ``name`` the one :meth:`predict` and :attr:`topology` use; returns its topology."""
        self.head = self.head_names[self.head_index(name)]
        self.topology = self.topologies[self.head]
        self.fps = float(self.topology.fps)
        return self.topology

    @contextmanager
    def using_head(self, name: str | None) -> Iterator[OutputHead]:
        """Head ``name`` selected inside the block (the previous one restored after it)."""
        before = self.head
        self.select_head(self.head if name is None else name)
        try:
            yield self.heads[self.head_index(None)]
        finally:
            self.select_head(before)

    def topology_for(self, batch: Any) -> FaceTopology:
        """The topology a batch's clips are in: its ``head`` (a multi-corpus batch), else the selected one."""
        return self.topologies[self.head_names[self.head_index(getattr(batch, "head", None))]]

    def training_condition(self, subject: str, dataset: str) -> int | None:
        """The identity of ``subject`` of corpus ``dataset`` when it was trained on (else None)."""
        name = f"{dataset}/{subject}"
        return self.identities.index(name) if name in self.identities else None

    def predict_options(self, batch: Any) -> dict[str, Any]:
        """``predict`` keywords for a batch: each clip's own identity and the batch's head."""
        return {**super().predict_options(batch), "head": getattr(batch, "head", None)}

    # ------------------------------------------------------------------ units and PCA
    def unit_for(self, batch: Any) -> torch.Tensor:
        """The motion unit of a batch's head (its measured ``unit``, else the model's ``motion_scale``)."""
        return self._unit(self.heads[self.head_index(getattr(batch, "head", None))])

    def _unit(self, head: OutputHead) -> torch.Tensor:
        return torch.where(head.unit > 0, head.unit, self.motion_scale)

    def fit_head(self, head: str, unit: float, offsets: np.ndarray) -> float:
        """Set head ``head``'s motion unit (its corpora's RMS displacement, data units) and fit its PCA
        basis on training displacements ``(N, V, 3)`` (data units; divided by the unit here). Returns the
        fraction of the variance the basis keeps (1.0 without PCA)."""
        if not (unit > 0 and math.isfinite(unit)):
            raise ConfigError(f"head {head!r}: motion unit must be a positive finite number, got {unit}")
        h = self.heads[self.head_index(head)]
        h.unit.fill_(float(unit))
        if not h.k:
            return 1.0
        return h.fit(np.asarray(offsets, dtype=np.float64).reshape(len(offsets), -1) / float(unit))

    # ------------------------------------------------------------------ forward / predict
    def _decode(
        self, audio, audio_lengths, frame_lengths, num_frames, conditions, chunked
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone logits ``(B, rT, M)`` and the selected head's raw output ``(B, T, K or 3V)``."""
        audio_n = normalize_waveform(audio.float(), audio_lengths)
        logits = self.text_logits(audio_n, audio_lengths, frame_lengths, num_frames, chunked)
        b = logits.shape[0]
        x = self.input_dropout(self.audio_proj(logits.reshape(b, num_frames, -1)))
        e = self.identity(conditions)[:, None].expand(b, num_frames, -1)
        h = torch.cat([x, e.to(x.dtype)], dim=-1)
        valid = lengths_to_mask(frame_lengths, num_frames)
        for layer in self.layers:
            h = layer(h, valid)
        return logits, self.heads[self.head_index(None)].linear(h)

    def _vertices(self, y: torch.Tensor, templates: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
        """Offsets ``(B, T, 3V)`` in the head's unit -> ``(B, T, V, 3)`` = template + unit * offsets."""
        b, t, _ = y.shape
        return (templates.float().reshape(b, 1, -1) + y * unit).view(b, t, -1, 3)

    def forward(self, batch: Any, teacher_forcing: bool = False) -> UniTalkerOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch` (its ``head`` picks the output
        head): each clip under its own identity, in training the whole batch under the common identity with
        probability ``random_identity``. ``teacher_forcing`` (MemoryTalker's extra pass) does not apply."""
        with self.using_head(getattr(batch, "head", None)) as head:
            audio, audio_lengths, templates, vertices, frame_lengths, num_frames = self.batch_inputs(batch)
            dev = audio.device
            ids = getattr(batch, "subject_ids", None)
            conditions = self.checked_conditions(
                None if ids is None else self.own_conditions(ids.to(dev)), audio.shape[0], dev
            )
            p = self.cfg.unitalker.random_identity
            if self.training and p > 0 and float(torch.rand(())) < p:
                conditions = torch.full_like(conditions, self.common_condition)
            logits, out = self._decode(audio, audio_lengths, frame_lengths, num_frames, conditions, False)
            y = head.decode(out)
            pca_pred = pca_target = None
            unit = self._unit(head)
            if head.k and vertices is not None:
                disp = (vertices.to(dev) - templates.unsqueeze(1)).flatten(2) / unit
                pca_pred, pca_target = out[..., : head.components].float(), head.encode(disp)
            return UniTalkerOutput(
                vertices=self._vertices(y, templates, unit),
                frame_mask=lengths_to_mask(frame_lengths, num_frames),
                ctc_logits=logits,
                ctc_lengths=frame_lengths * self.text_rate,
                pca_pred=pca_pred,
                pca_target=pca_target,
            )

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
        head: str | None = None,
    ) -> torch.Tensor:
        """Inference (eval mode, restored afterwards) from audio, neutral templates of a head's topology and
        an identity.

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``.
            templates: ``(B, V_h, 3)`` of head ``head``'s topology.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).
            conditions: ``(B,)`` identity indices into :attr:`speakers` (None = the default condition,
                the common identity unless ``unitalker.condition`` names another).
            head: the output head (None = the selected one, :meth:`select_head`).

        Returns:
            ``(B, T, V_h, 3)``; frames past a clip's length hold its template.
        """
        with self.using_head(head) as out_head:

            def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
                cond = self.checked_conditions(conditions, audio.shape[0], audio.device)
                _, out = self._decode(audio, audio_lengths, frame_lengths, t, cond, True)
                return self._vertices(out_head.decode(out), templates.to(audio.device), self._unit(out_head))

            return self.run_predict(audio, audio_lengths, templates, num_frames, decode)


def check_head_topology(model: UniTalker, topology: FaceTopology) -> str:
    """The head of ``model`` whose topology is ``topology`` (same name and vertex count), or a
    :class:`TopologyError` listing the heads."""
    mine = model.topologies.get(topology.name)
    if mine is None or mine.num_vertices != topology.num_vertices:
        heads = ", ".join(f"{h} ({t.num_vertices} vertices)" for h, t in model.topologies.items())
        raise TopologyError(
            f"topology {topology.name!r} ({topology.num_vertices} vertices) is none of this model's output "
            f"heads: {heads}"
        )
    return topology.name

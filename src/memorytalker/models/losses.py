"""Training losses (memorytalker.md §2), all masked by the frame mask; zero-weight terms are not computed.

Terms (keys of :func:`compute_losses`'s dict, besides ``"total"``):

* ``mse``: mean squared vertex error over valid frames (element-wise mean over ``V x 3``), in the model's
  motion unit (``unit`` below; so are ``velocity``, ``teacher_*`` and ``lip``).
* ``velocity``: the same on frame differences ``x_{t+1} - x_t`` (pairs of valid frames).
* ``teacher_mse`` / ``teacher_velocity``: the same for the teacher-forced pass.
* ``mem``: ``MSE(value_read, sg(f_m))`` (eq. 3; only the memory gets gradient).
* ``align``: ``KL(sg(K) || V)`` summed over slots, averaged over valid frames (eq. 7; the authors sum over
  frames, which ties the weight to the clip length).
* ``lip``: mean squared error over the topology's lip vertices.
* ``style``: triplet margin loss on ``g(f_s)`` of anchor / positive / negative (eq. 13).
* ``ctc``: CTC loss of the backbone logits on the phoneme targets (clips with labels only; per-clip loss
  divided by target length, averaged).

Stage presets: stage 1 = mse + velocity (+ teacher) + 0.01 (mem + align) + ctc; stage 2 = mse + velocity +
0.01 (lip + style); no-memory ablation = mse + velocity (+ ctc).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.errors import ConfigError
from memorytalker.topology import FaceTopology

TERMS = ("mse", "velocity", "teacher_mse", "teacher_velocity", "mem", "align", "lip", "style", "ctc")


@dataclass
class LossWeights:
    """Weight of each loss term (0 = not computed) and the triplet margin. Defaults = stage 1."""

    mse: float = 1.0
    velocity: float = 1.0
    teacher_mse: float = 1.0
    teacher_velocity: float = 1.0
    mem: float = 0.01
    align: float = 0.01
    lip: float = 0.0
    style: float = 0.0
    ctc: float = 1.0
    triplet_margin: float = 1.0

    @property
    def teacher_forcing(self) -> bool:
        """Whether these weights need the teacher-forced pass (``teacher_mse`` or ``teacher_velocity`` > 0):
        the one switch of that pass."""
        return self.teacher_mse > 0 or self.teacher_velocity > 0

    def validate(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not value >= 0:
                raise ConfigError(f"loss.{f.name} must be >= 0, got {value!r}")


def _masked_frame_mean(err: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of per-frame values ``err`` ``(B, T)`` over ``mask`` ``(B, T)``."""
    m = mask.to(err.dtype)
    return (err * m).sum() / m.sum().clamp(min=1.0)


def vertex_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked MSE of ``(B, T, V, 3)`` vertices (mean over ``V x 3``, then over valid frames)."""
    return _masked_frame_mean((pred.float() - target.float()).square().mean(dim=(-1, -2)), mask)


def velocity_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked MSE of frame differences; a difference counts when both of its frames are valid."""
    dp = pred[:, 1:].float() - pred[:, :-1].float()
    dt = target[:, 1:].float() - target[:, :-1].float()
    return _masked_frame_mean((dp - dt).square().mean(dim=(-1, -2)), mask[:, 1:] & mask[:, :-1])


def ctc_loss(
    logits: torch.Tensor,
    lengths: torch.Tensor,
    targets: torch.Tensor,
    target_lengths: torch.Tensor,
    blank: int = 0,
) -> torch.Tensor | None:
    """CTC loss over clips with labels (``target_lengths > 0``); None when no clip has labels.

    Args:
        logits: ``(B, A, M)``; lengths: ``(B,)`` valid frames. targets: ``(B, L)``; target_lengths ``(B,)``.
    """
    have = target_lengths > 0
    if not bool(have.any()):
        return None
    log_probs = torch.log_softmax(logits[have].float(), dim=-1).transpose(0, 1)  # (A, B', M)
    return F.ctc_loss(
        log_probs,
        targets[have],
        lengths[have],
        target_lengths[have],
        blank=blank,
        reduction="mean",
        zero_infinity=True,
    )


def compute_losses(
    output: Any,
    batch: Any,
    weights: LossWeights,
    topology: FaceTopology | None,
    unit: float | torch.Tensor = 1.0,
) -> dict[str, torch.Tensor]:
    """Weighted loss terms of a forward pass.

    Args:
        output: :class:`~memorytalker.models.memorytalker.MemoryTalkerOutput`.
        batch: the batch it came from (``vertices``, ``frame_mask``; ``phoneme_targets`` /
            ``phoneme_lengths`` for CTC).
        weights: :class:`LossWeights`.
        topology: needed for ``lip`` (its ``lips`` region).
        unit: the motion unit (the model's ``motion_scale``, data units): the vertex terms (``mse``,
            ``velocity``, ``teacher_*``, ``lip``) are measured in it, i.e. divided by ``unit**2``. Raw
            squared errors in metres are ~1e-7, so their gradients fall below Adam's epsilon (1e-8) for the
            decoder's parameters, which then barely train; in the unit they are of order 0.1.

    Returns:
        ``{"total": ..., term: unweighted value, ...}`` for every term with a positive weight whose inputs
        exist (a route the output lacks, e.g. the teacher pass with teacher forcing off, or CTC on a batch
        without labels, is left out).

    Raises:
        ConfigError: ``lip`` without a topology; ``style`` without triplet embeddings; ``ctc`` with labels
            on a backbone whose vocabulary is not the phoneme vocabulary.
    """
    mask = output.frame_mask
    target = batch.vertices.to(output.vertices.device)
    terms: dict[str, torch.Tensor] = {}
    inv_sq = 1.0 / (unit * unit)
    if weights.mse > 0:
        terms["mse"] = vertex_mse(output.vertices, target, mask) * inv_sq
    if weights.velocity > 0:
        terms["velocity"] = velocity_mse(output.vertices, target, mask) * inv_sq
    if output.teacher_vertices is not None:
        if weights.teacher_mse > 0:
            terms["teacher_mse"] = vertex_mse(output.teacher_vertices, target, mask) * inv_sq
        if weights.teacher_velocity > 0:
            terms["teacher_velocity"] = velocity_mse(output.teacher_vertices, target, mask) * inv_sq
    if weights.mem > 0 and output.value_read is not None:
        err = (output.value_read.float() - output.motion_feat.detach().float()).square().mean(-1)
        terms["mem"] = _masked_frame_mean(err, mask)
    if weights.align > 0 and output.value_address is not None:
        k = output.key_address.detach().float()
        log_v = torch.log(output.value_address.float().clamp(min=1e-12))
        kl = (torch.xlogy(k, k) - k * log_v).sum(-1)  # (B, T)
        terms["align"] = _masked_frame_mean(kl, mask)
    if weights.lip > 0:
        if topology is None:
            raise ConfigError("loss.lip > 0 needs the face topology (its lips region)")
        lips = torch.from_numpy(np.array(topology.lips, dtype=np.int64)).to(target.device)
        terms["lip"] = vertex_mse(output.vertices[:, :, lips], target[:, :, lips], mask) * inv_sq
    if weights.style > 0:
        if output.style_positive is None or output.style_negative is None or output.style_anchor is None:
            raise ConfigError(
                "loss.style > 0 needs triplet embeddings: a style encoder (model.style.enabled) and batches "
                "with positive/negative audio (triplet sampling)"
            )
        terms["style"] = F.triplet_margin_loss(
            output.style_anchor,
            output.style_positive,
            output.style_negative,
            margin=weights.triplet_margin,
            p=2,
        )
    targets = getattr(batch, "phoneme_targets", None)
    t_lengths = getattr(batch, "phoneme_lengths", None)
    if weights.ctc > 0 and output.ctc_logits is not None and targets is not None and t_lengths is not None:
        if bool((t_lengths > 0).any()) and output.ctc_logits.shape[-1] != len(CTC_VOCAB):
            raise ConfigError(
                f"loss.ctc > 0 with phoneme labels, but the backbone has {output.ctc_logits.shape[-1]} CTC "
                f"symbols, not the {len(CTC_VOCAB)} phoneme symbols: set loss.ctc=0 for Hugging Face backbones"
            )
        value = ctc_loss(
            output.ctc_logits, output.ctc_lengths.to(targets.device), targets, t_lengths.to(targets.device)
        )
        if value is not None:
            terms["ctc"] = value
    total = sum(
        (getattr(weights, k) * v for k, v in terms.items()), torch.zeros((), device=output.vertices.device)
    )
    return {"total": total, **terms}

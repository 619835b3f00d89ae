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
* ``gap``: squared error of the signed inner lip gap (the distance across the mouth between facing
  inner-lip vertices, :func:`~memorytalker.topology.lips.inner_lip_pairs`), per pair and frame, weighted
  ``1 + gap_closed_weight`` on frames where the ground truth is closed (its midline gap below
  ``gap_closed_below`` motion units): a closure the prediction misses costs as much as its
  ``gap_closed_weight + 1`` open frames, where the vertex MSE lets the model hedge (docs/RESULTS.md).
* ``laplacian``: squared error of the uniform mesh Laplacian ``x_i - mean_{j in N(i)} x_j`` of the lips
  region's vertices (their shape relative to their mesh neighbours), over valid frames, in the motion unit.
  The ``gap`` term moves the inner-contour vertices alone, and without this term they rise or drop apart
  from the rest of the lip: a model trained with ``gap`` only drew the open lower lip jagged, with its
  contour vertices 5.5 mm too high where their neighbours were 2 mm off (docs/RESULTS.md).
* ``style``: triplet margin loss on ``g(f_s)`` of anchor / positive / negative (eq. 13).
* ``ctc``: CTC loss of the backbone logits on the phoneme targets (clips with labels only; per-clip loss
  divided by target length, averaged).
* ``pca`` (UniTalker): mean squared error of the head's PCA coefficients against the ground truth's
  (``output.pca_pred`` vs ``output.pca_target``, motion unit, over valid frames).
* ``lipread_feature`` (SelfTalk): mean squared error of the lip reader's features against the speech
  recogniser's (``output.lip_features`` vs ``output.recognizer``, over valid text frames).
* ``lipread_ctc`` (SelfTalk): CTC loss of the lip reader's logits on the recogniser's transcript: the
  clip's phoneme labels when it has them and the vocabulary is the phoneme one, else the greedy CTC decoding
  of the recogniser's logits (:func:`greedy_transcript`).
* ``contact`` (Imitator's lip-contact loss): the vertex squared error weighted per frame by a Gaussian
  bump (``contact_sigma`` frames wide, ``contact_radius`` frames each side, 1 at its centre) at the centre
  frame of each bilabial (P, B, M) run of the clip's per-frame phoneme labels (``batch.frame_phonemes``),
  averaged over all valid frames (published ``MBP_reconstruction_loss``: at the bilabials the prediction
  is pulled to the ground truth's closed lips; :func:`bilabial_weights`, :func:`lip_contact_loss`).
* ``l1`` (CodeTalker's stage-1 reconstruction): mean absolute vertex error over valid frames (element-wise
  mean over ``V x 3``), in the motion unit (published ``nn.L1Loss`` on the VQ-VAE's reconstruction).
* ``quant`` (CodeTalker's stage 1): the quantiser loss ``beta |z - sg(e)|^2 + |sg(z) - e|^2`` per frame
  (``output.quant_error``, computed by the model with its ``beta``), averaged over valid frames.
* ``code_reg`` (CodeTalker's stage 2): mean squared error of the predicted features before quantisation
  against the ground truth's quantised features (``output.code_pred`` vs ``output.code_target``, over
  valid frames).

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
from memorytalker.models.layers import lengths_to_mask
from memorytalker.topology import FaceTopology

TERMS = (
    "mse",
    "velocity",
    "teacher_mse",
    "teacher_velocity",
    "mem",
    "align",
    "lip",
    "gap",
    "laplacian",
    "style",
    "ctc",
    "lipread_feature",
    "lipread_ctc",
    "pca",
    "contact",
    "l1",
    "quant",
    "code_reg",
)


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
    gap: float = 0.0
    laplacian: float = 0.0
    style: float = 0.0
    ctc: float = 1.0
    lipread_feature: float = 0.0
    lipread_ctc: float = 0.0
    pca: float = 0.0
    contact: float = 0.0
    contact_sigma: float = 1.0
    contact_radius: int = 2
    l1: float = 0.0
    quant: float = 0.0
    code_reg: float = 0.0
    triplet_margin: float = 1.0
    gap_closed_weight: float = 4.0
    gap_closed_below: float = 0.3

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


#: Frames ``x V x 3`` elements per chunk of :class:`_VertexErrors` (~2 MB of float32): each chunk's errors and
#: differences stay in cache, so the large ``(B, T, V, 3)`` tensors are each read once per pass.
CHUNK_ELEMENTS = 1 << 19


def _frame_weights(
    mask: torch.Tensor, per_frame: int, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Row weights ``(B T,)`` of the masked means: ``mask / (valid frames * per_frame)`` for the MSE and the
    same over pairs of consecutive valid frames of one clip for the velocity (0 on each clip's last frame)."""
    m = mask.to(dtype)
    pair = torch.zeros_like(m)
    pair[:, :-1] = m[:, 1:] * m[:, :-1]
    w_mse = m / (m.sum().clamp(min=1.0) * per_frame)
    w_vel = pair / (pair.sum().clamp(min=1.0) * per_frame)
    return w_mse.reshape(-1), w_vel.reshape(-1)


class _VertexErrors(torch.autograd.Function):
    """``(sum_r w_mse[r] |e_r|^2, sum_r w_vel[r] |e_{r+1} - e_r|^2)`` of the errors ``e = pred - target``
    of ``R`` rows (frames) of ``N`` values, and their analytic gradient.

    Exactly the masked means :func:`vertex_mse` and :func:`velocity_mse` define (the velocity error is the
    difference of consecutive errors: ``(p_{t+1} - p_t) - (g_{t+1} - g_t) = e_{t+1} - e_t``), computed in
    chunks of rows that stay in cache: autograd's elementwise graph of the same expressions makes about 30
    passes over ``(B, T, V, 3)`` tensors per prediction, which at ``V = 5023`` and batch 8 (58 MB each) cost
    more than the rest of a compact-backbone training step. This does 2 reads forward and 2 reads + 1 write
    backward, saves nothing but its inputs, and recomputes the errors in the backward pass.
    """

    @staticmethod
    def forward(ctx, pred, target, w_mse, w_vel, take=None):  # type: ignore[override]
        rows, n = pred.shape
        dt = w_mse.dtype  # float32, or float64 for float64 inputs
        step = max(2, CHUNK_ELEMENTS // max(n, 1))
        mse = pred.new_zeros((), dtype=dt)
        vel = pred.new_zeros((), dtype=dt)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            # the velocity needs one row past the chunk for its last difference
            hi = min(rows, r1 + 1) if w_vel is not None else r1
            e = pred[r0:hi].to(dt) - target[r0:hi].to(dt)
            mse = mse + torch.dot(torch.linalg.vecdot(e[: r1 - r0], e[: r1 - r0]), w_mse[r0:r1])
            if w_vel is not None and hi - r0 > 1:
                d = e[1:] - e[:-1]  # differences of rows r0 .. hi - 2
                vel = vel + torch.dot(torch.linalg.vecdot(d, d), w_vel[r0 : hi - 1])
        ctx.save_for_backward(pred, target, w_mse, w_vel, take)
        ctx.step = step
        ctx.set_materialize_grads(False)
        local = pred.index_select(1, take) if take is not None else pred.new_zeros(())
        return mse, vel, local

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_mse, g_vel, g_local=None):  # type: ignore[override]
        pred, target, w_mse, w_vel, take = ctx.saved_tensors
        rows, dt = pred.shape[0], w_mse.dtype
        a_mse = w_mse * (0.0 if g_mse is None else 2.0 * g_mse.to(dt))
        a_vel = None if w_vel is None or g_vel is None else w_vel * (2.0 * g_vel.to(dt))
        grad = torch.empty(pred.shape, dtype=dt, device=pred.device)
        for r0 in range(0, rows, ctx.step):
            r1 = min(rows, r0 + ctx.step)
            lo, hi = (max(0, r0 - 1), min(rows, r1 + 1)) if a_vel is not None else (r0, r1)
            e = pred[lo:hi].to(dt) - target[lo:hi].to(dt)  # the chunk's rows and their neighbours
            out = grad[r0:r1]
            torch.mul(e[r0 - lo : r1 - lo], a_mse[r0:r1, None], out=out)
            if a_vel is not None and hi - lo > 1:
                # d_k = e_{lo+k+1} - e_{lo+k}, weighted; row r gains ad_{r-1} and loses ad_r
                ad = (e[1:] - e[:-1]).mul_(a_vel[lo : hi - 1, None])
                p0 = max(r0, lo + 1)
                out[p0 - r0 :].add_(ad[p0 - 1 - lo : r1 - 1 - lo])
                m1 = min(r1, hi - 1)
                out[: m1 - r0].sub_(ad[r0 - lo : m1 - lo])
        grad_target = (-grad).to(target.dtype) if ctx.needs_input_grad[1] else None
        if take is not None and g_local is not None:  # the taken columns' own gradient, in the same buffer
            grad.index_add_(1, take, g_local.to(dt))
        grad_pred = grad.to(pred.dtype) if ctx.needs_input_grad[0] else None
        return grad_pred, grad_target, None, None, None


def vertex_errors(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, velocity: bool = True
) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`vertex_mse` and :func:`velocity_mse` of ``(B, T, V, 3)`` vertices in one pass (computed in
    float32, or float64 for float64 inputs).

    Args:
        pred, target: ``(B, T, V, 3)`` (any float dtype; gradients flow to both where they require them).
        mask: ``(B, T)`` bool, True = valid frame.
        velocity: also compute the velocity term (else it is returned as 0 and costs nothing).

    Returns:
        ``(mse, velocity)`` scalars.
    """
    if pred.shape != target.shape or pred.dim() < 3 or mask.shape != pred.shape[:2]:
        raise ValueError(
            f"vertex losses: pred {tuple(pred.shape)}, target {tuple(target.shape)} and mask "
            f"{tuple(mask.shape)} must be (B, T, ...), (B, T, ...) and (B, T)"
        )
    mse, vel, _ = _vertex_errors(pred, target, mask, velocity)
    return mse, vel


def _vertex_errors(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    velocity: bool,
    take: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """:func:`vertex_errors`, and ``pred[:, :, take]`` ``(B, T, R, 3)`` when ``take`` (vertex indices) is given:
    a slice whose gradient joins the errors' own in one full-size buffer (a separate index of ``pred``
    would scatter into a fresh ``(B, T, V, 3)`` tensor and add it to this one: two more passes over it)."""
    b, t = pred.shape[:2]
    per_frame = pred[0, 0].numel() if b * t else 1
    dtype = torch.promote_types(torch.promote_types(pred.dtype, target.dtype), torch.float32)
    w_mse, w_vel = _frame_weights(mask.to(pred.device), per_frame, dtype)
    flat = None
    if take is not None:
        k = pred.shape[3] if pred.dim() == 4 else 1
        take = take.to(pred.device)
        flat = (take[:, None] * k + torch.arange(k, device=pred.device)).reshape(-1)
    with torch.autocast(pred.device.type, enabled=False):  # sums of squares stay in float32 under autocast
        mse, vel, local = _VertexErrors.apply(
            pred.reshape(b * t, -1), target.reshape(b * t, -1), w_mse, w_vel if velocity else None, flat
        )
    return mse, vel, (local.reshape(b, t, len(take), *pred.shape[3:]) if take is not None else None)


def vertex_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked MSE of ``(B, T, V, 3)`` vertices (mean over ``V x 3``, then over valid frames)."""
    return vertex_errors(pred, target, mask, velocity=False)[0]


def velocity_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked MSE of frame differences ``x_{t+1} - x_t``; a difference counts when both of its frames are
    valid."""
    return vertex_errors(pred, target, mask)[1]


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


def greedy_transcript(
    logits: torch.Tensor, lengths: torch.Tensor, blank: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Greedy CTC decoding of ``logits`` ``(B, A, M)`` (valid for ``lengths`` frames): per frame the best
    symbol, repeats merged, blanks dropped. Returns zero-padded targets ``(B, L)`` and their lengths ``(B,)``."""
    best = logits.argmax(-1)  # (B, A)
    valid = lengths_to_mask(lengths.to(best.device), best.shape[1])
    prev = torch.nn.functional.pad(best, (1, 0), value=blank)[:, :-1]
    keep = valid & (best != blank) & (best != prev)
    counts = keep.sum(1)
    out = torch.zeros(
        best.shape[0],
        max(int(counts.max()) if counts.numel() else 0, 1),
        dtype=torch.long,
        device=best.device,
    )
    for b in range(best.shape[0]):
        sym = best[b][keep[b]]
        out[b, : sym.numel()] = sym
    return out, counts


def _lipread_terms(output: Any, batch: Any, weights: LossWeights) -> dict[str, torch.Tensor]:
    """SelfTalk's lip-reading consistency terms (empty when the output has no lip reader)."""
    terms: dict[str, torch.Tensor] = {}
    if getattr(output, "lip_logits", None) is None:
        return terms
    lengths = output.ctc_lengths.to(output.lip_logits.device)
    mask = lengths_to_mask(lengths, output.lip_logits.shape[1])
    if weights.lipread_feature > 0:
        err = (output.lip_features.float() - output.recognizer.float()).square().mean(-1)
        terms["lipread_feature"] = _masked_frame_mean(err, mask)
    if weights.lipread_ctc > 0:
        targets = getattr(batch, "phoneme_targets", None)
        t_lengths = getattr(batch, "phoneme_lengths", None)
        phonemes = output.lip_logits.shape[-1] == len(CTC_VOCAB)
        if not (phonemes and targets is not None and t_lengths is not None and bool((t_lengths > 0).all())):
            targets, t_lengths = greedy_transcript(output.recognizer, lengths)
        value = ctc_loss(output.lip_logits, lengths, targets.to(lengths.device), t_lengths.to(lengths.device))
        if value is not None:
            terms["lipread_ctc"] = value
    return terms


#: Phoneme ids (``CTC_VOCAB``) of the bilabials, whose lips must meet: the lip-contact term's frames.
BILABIAL_IDS = tuple(CTC_VOCAB.index(p) for p in ("P", "B", "M"))


def bilabial_weights(
    frame_phonemes: torch.Tensor, mask: torch.Tensor, sigma: float = 1.0, radius: int = 2
) -> torch.Tensor:
    """Per-frame weights ``(B, T)`` of the lip-contact term: a Gaussian bump ``exp(-d^2 / (2 sigma^2))``
    for ``|d| <= radius`` frames around the centre frame of every run of bilabial phoneme labels (the
    larger where bumps overlap), 0 elsewhere and on invalid frames. Published: precomputed per sequence,
    1 / 0.607 / 0.135 at 0 / 1 / 2 frames from each bilabial (sigma 1, radius 2).

    Args:
        frame_phonemes: ``(B, T)`` phoneme id per frame (``CTC_VOCAB``; -1 unknown / padding).
        mask: ``(B, T)`` valid frames.
    """
    if not (sigma > 0 and radius >= 0):
        raise ConfigError(f"loss.contact_sigma must be > 0 and contact_radius >= 0, got {sigma}, {radius}")
    ids = torch.tensor(BILABIAL_IDS, device=frame_phonemes.device)
    bil = torch.isin(frame_phonemes, ids) & mask.to(frame_phonemes.device)
    prev = F.pad(bil, (1, 0))[:, :-1]
    nxt = F.pad(bil, (0, 1))[:, 1:]
    starts, ends = (bil & ~prev).nonzero(), (bil & ~nxt).nonzero()  # runs in row-major order: paired
    centres = torch.zeros(bil.shape, dtype=torch.float32, device=bil.device)
    centres[starts[:, 0], torch.div(starts[:, 1] + ends[:, 1], 2, rounding_mode="floor")] = 1.0
    t = bil.shape[1]
    weights = torch.zeros_like(centres)
    for d in range(-int(radius), int(radius) + 1):
        g = float(np.exp(-(d * d) / (2.0 * sigma * sigma)))
        shifted = torch.zeros_like(centres)  # shifted[:, i] = centres[:, i - d]
        if d >= 0:
            shifted[:, d:] = centres[:, : t - d]
        else:
            shifted[:, :d] = centres[:, -d:]
        weights = torch.maximum(weights, g * shifted)
    return weights * mask.to(weights)


def lip_contact_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    frame_phonemes: torch.Tensor,
    unit: float | torch.Tensor = 1.0,
    sigma: float = 1.0,
    radius: int = 2,
) -> torch.Tensor:
    """The ``contact`` term (module docstring) of ``(B, T, V, 3)`` vertices: ``sum_t w_t mean_V,3 (pred -
    target)^2 / unit^2`` over valid frames, divided by the number of valid frames (the published mean over
    every frame, so clips with more bilabials weigh more), ``w`` from :func:`bilabial_weights`.

    Raises:
        ConfigError: a valid clip without phoneme labels (every frame -1): the bilabials are unknown.
    """
    labelled = ((frame_phonemes >= 0) & mask.to(frame_phonemes.device)).any(1)
    has_frames = mask.any(1).to(labelled.device)
    if bool((has_frames & ~labelled).any()):
        raise ConfigError(
            "loss.contact > 0 needs per-frame phoneme labels (phonemes/<clip>.json) for every clip: the "
            "lip-contact term weights the frames of bilabial phonemes (`memorytalker align` writes them)"
        )
    w = bilabial_weights(frame_phonemes, mask, sigma, radius).to(pred.device)
    on = w > 0
    valid = mask.to(pred.device).sum().clamp(min=1).to(torch.float32)
    if not bool(on.any()):
        return pred.sum() * 0.0
    err = (pred[on].float() - target.to(pred.device)[on].float()).square().mean((-2, -1))  # (K,)
    return (err * w[on]).sum() / valid / (unit * unit)


def signed_gaps(vertices: torch.Tensor, topology: FaceTopology, pairs=None) -> torch.Tensor:
    """``(B, T, P)`` signed inner lip gaps of ``(B, T, V, 3)`` vertices over the facing pairs
    (:func:`~memorytalker.topology.lips.inner_lip_pairs`, or ``pairs`` = ``(upper, lower)`` indices)."""
    from memorytalker.topology.lips import inner_lip_pairs

    upper, lower = pairs if pairs is not None else inner_lip_pairs(topology)
    axes = topology.axes
    up = torch.as_tensor(np.asarray(upper), device=vertices.device)
    lo = torch.as_tensor(np.asarray(lower), device=vertices.device)
    return axes.up_sign * (vertices[:, :, up, axes.up] - vertices[:, :, lo, axes.up]).float()


def lip_gap_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    mask: torch.Tensor,
    topology: FaceTopology,
    unit: float | torch.Tensor = 1.0,
    closed_weight: float = 4.0,
    closed_below: float = 0.3,
) -> torch.Tensor:
    """The ``gap`` term (module docstring): mean over valid frames and facing pairs of
    ``w_t (gap_pred - gap_true)^2 / unit^2``, ``w_t = 1 + closed_weight`` where the true midline gap is
    below ``closed_below * unit`` (else 1), normalised by the mean weight so the term's scale does not
    depend on how often the lips close."""
    sub = _lip_subset(topology, gap=True, laplacian=False)
    return _gap_term(sub.take(pred), sub.take(target), mask, topology, sub, unit, closed_weight, closed_below)


def _gap_term(
    pred,
    target,
    mask,
    topology: FaceTopology,
    sub: _LipSubset,
    unit,
    closed_weight: float,
    closed_below: float,
):
    """:func:`lip_gap_loss` on the subset's vertices ``(B, T, R, 3)``."""
    g_pred = signed_gaps(pred, topology, sub.gap_pairs) / unit
    g_true = signed_gaps(target, topology, sub.gap_pairs) / unit
    mid = signed_gaps(target, topology, sub.mid_pair)[..., 0] / unit
    m = mask.to(g_pred.dtype)
    w = (1.0 + closed_weight * (mid < closed_below).to(g_pred.dtype)) * m
    err = (g_pred - g_true).square().mean(-1)
    return (err * w).sum() / w.sum().clamp(min=1e-12)


@dataclass(frozen=True)
class _LipSubset:
    """The few vertices the lip terms read (inner-lip pairs and midline, the lips' Laplacian rows and
    their neighbours), as columns of ``(B, T, V, 3)`` vertices, with every index re-expressed in them.

    Taking them with one ``index_select`` keeps the terms' backward small: indexing a ``(B, T, V, 3)``
    tensor directly makes each index (and the Laplacian's full-size difference) scatter its gradient into a
    fresh full-size tensor, which at batch 8 and V = 5023 cost more than the rest of the loss
    (docs/BENCHMARKS.md); one gather scatters once."""

    cols: torch.Tensor  # (R,) vertex indices
    gap_pairs: tuple[np.ndarray, np.ndarray] | None  # (P,), (P,) into cols: signed_gaps' pairs
    mid_pair: tuple[np.ndarray, np.ndarray] | None  # (1,), (1,)
    lap: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # rows (L,), neighbours (L, K), weights

    def take(self, vertices: torch.Tensor) -> torch.Tensor:
        """``(B, T, V, 3)`` -> ``(B, T, R, 3)``."""
        return vertices.index_select(2, self.cols.to(vertices.device))


_SUBSETS: dict[tuple[int, bool, bool], tuple[FaceTopology, _LipSubset]] = {}


def _lip_subset(topology: FaceTopology, gap: bool, laplacian: bool) -> _LipSubset:
    key = (id(topology), gap, laplacian)
    cached = _SUBSETS.get(key)
    if cached is not None and cached[0] is topology:
        return cached[1]
    from memorytalker.topology.lips import inner_lip_pairs

    parts: list[np.ndarray] = []
    if gap:
        inner = topology.inner_lips
        upper, lower = (np.asarray(a, dtype=np.int64) for a in inner_lip_pairs(topology))
        mid = (np.array([inner.mid_upper], dtype=np.int64), np.array([inner.mid_lower], dtype=np.int64))
        parts += [upper, lower, *mid]
    if laplacian:
        rows, nbr, w = laplacian_operator(topology)
        parts += [rows, nbr.reshape(-1)]
    cols = np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def local(idx: np.ndarray) -> np.ndarray:
        return np.searchsorted(cols, idx).astype(np.int64)

    sub = _LipSubset(
        cols=torch.from_numpy(cols),
        gap_pairs=(local(upper), local(lower)) if gap else None,
        mid_pair=(local(mid[0]), local(mid[1])) if gap else None,
        lap=(torch.from_numpy(local(rows)), torch.from_numpy(local(nbr)), torch.from_numpy(w))
        if laplacian
        else None,
    )
    _SUBSETS[key] = (topology, sub)
    return sub


def laplacian_operator(
    topology: FaceTopology, region: str = "lips"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The uniform Laplacian of ``region``'s vertices as padded neighbour lists: ``(rows (R,), neighbours
    (R, K), weights (R, K))`` int64/int64/float32, ``L(x)_r = x[rows_r] - sum_k weights_rk x[neighbours_rk]``
    (weights ``1 / degree``, 0 on padding, which points at the vertex itself). Neighbours are the vertices
    sharing a mesh edge, inside the region or not."""
    rows = np.asarray(topology.region(region), dtype=np.int64)
    faces = np.asarray(topology.faces, dtype=np.int64)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges = np.unique(np.sort(edges, axis=1), axis=0)
    both = np.concatenate([edges, edges[:, ::-1]])
    both = both[np.isin(both[:, 0], rows)]
    order = np.argsort(both[:, 0], kind="stable")
    both = both[order]
    starts = np.searchsorted(both[:, 0], rows)
    ends = np.searchsorted(both[:, 0], rows, side="right")
    degree = ends - starts
    if (degree == 0).any():
        raise ConfigError(f"region {region!r} has vertices on no mesh edge: {rows[degree == 0][:8].tolist()}")
    k = int(degree.max())
    nbr = np.repeat(rows[:, None], k, axis=1)
    w = np.zeros((rows.size, k), dtype=np.float32)
    for r, (a, b) in enumerate(zip(starts, ends)):
        nbr[r, : b - a] = both[a:b, 1]
        w[r, : b - a] = 1.0 / (b - a)
    return rows, nbr, w


def lip_laplacian_loss(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor, topology: FaceTopology, unit=1.0
) -> torch.Tensor:
    """The ``laplacian`` term (module docstring) of ``(B, T, V, 3)`` vertices: mean over valid frames, lip
    vertices and axes of ``|L(pred - target)|^2 / unit^2`` (the Laplacian is linear)."""
    sub = _lip_subset(topology, gap=False, laplacian=True)
    return _laplacian_term(sub.take(pred), sub.take(target), mask, sub, unit)


def _laplacian_term(pred, target, mask, sub: _LipSubset, unit) -> torch.Tensor:
    """:func:`lip_laplacian_loss` on the subset's vertices ``(B, T, R, 3)``."""
    rows, nbr, w = (a.to(pred.device) for a in sub.lap)
    diff = (pred - target.to(pred.dtype)).float()
    lap = diff[:, :, rows] - (diff[:, :, nbr] * w[None, None, :, :, None]).sum(3)  # (B, T, L, 3)
    return _masked_frame_mean(lap.square().mean((-2, -1)), mask) / (unit * unit)


def _codetalker_terms(
    output: Any, target: torch.Tensor, mask: torch.Tensor, weights: LossWeights, unit
) -> dict[str, torch.Tensor]:
    """CodeTalker's ``l1``, ``quant`` and ``code_reg`` terms (module docstring); each skipped when the
    output lacks its field."""
    terms: dict[str, torch.Tensor] = {}
    if weights.l1 > 0:
        err = (output.vertices.float() - target.float()).abs().mean((-2, -1))  # (B, T)
        terms["l1"] = _masked_frame_mean(err, mask) / unit
    if weights.quant > 0 and getattr(output, "quant_error", None) is not None:
        terms["quant"] = _masked_frame_mean(output.quant_error.float(), mask)
    if weights.code_reg > 0 and getattr(output, "code_target", None) is not None:
        err = (output.code_pred.float() - output.code_target.float()).square().mean(-1)
        terms["code_reg"] = _masked_frame_mean(err, mask)
    return terms


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
        topology: needed for ``lip`` (its ``lips`` region), ``gap`` (its inner-lip contours) and
            ``laplacian`` (its lips region and faces).
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
    gap, laplacian = weights.gap > 0, weights.laplacian > 0
    if gap and topology is None:
        raise ConfigError("loss.gap > 0 needs the face topology (its inner-lip contours)")
    if laplacian and topology is None:
        raise ConfigError("loss.laplacian > 0 needs the face topology (its lips region and faces)")
    sub = _lip_subset(topology, gap, laplacian) if gap or laplacian else None
    local_pred = None
    passes = [(output.vertices, "mse", "velocity")]
    if output.teacher_vertices is not None:
        passes.append((output.teacher_vertices, "teacher_mse", "teacher_velocity"))
    for pred, mse_key, vel_key in passes:  # both terms of a prediction from one pass over it
        want_mse, want_vel = getattr(weights, mse_key) > 0, getattr(weights, vel_key) > 0
        if want_mse or want_vel:
            take = sub.cols if sub is not None and pred is output.vertices else None
            mse, vel, local = _vertex_errors(pred, target, mask, want_vel, take)
            if local is not None:
                local_pred = local
            if want_mse:
                terms[mse_key] = mse * inv_sq
            if want_vel:
                terms[vel_key] = vel * inv_sq
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
    if sub is not None:  # both lip terms read one gather of the few vertices they need
        local_pred = sub.take(output.vertices) if local_pred is None else local_pred
        local_target = sub.take(target)
        if gap:
            terms["gap"] = _gap_term(
                local_pred,
                local_target,
                mask,
                topology,
                sub,
                unit,
                weights.gap_closed_weight,
                weights.gap_closed_below,
            )
        if laplacian:
            terms["laplacian"] = _laplacian_term(local_pred, local_target, mask, sub, unit)
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
    if weights.lipread_feature > 0 or weights.lipread_ctc > 0:
        terms.update(_lipread_terms(output, batch, weights))
    if weights.pca > 0 and getattr(output, "pca_pred", None) is not None:
        err = (output.pca_pred.float() - output.pca_target.float()).square().mean(-1)
        terms["pca"] = _masked_frame_mean(err, mask)
    if weights.contact > 0:
        phonemes = getattr(batch, "frame_phonemes", None)
        if phonemes is None:
            raise ConfigError("loss.contact > 0 needs batches with per-frame phoneme labels (frame_phonemes)")
        terms["contact"] = lip_contact_loss(
            output.vertices, target, mask, phonemes, unit, weights.contact_sigma, weights.contact_radius
        )
    if weights.l1 > 0 or weights.quant > 0 or weights.code_reg > 0:
        terms.update(_codetalker_terms(output, target, mask, weights, unit))
    total = sum(
        (getattr(weights, k) * v for k, v in terms.items()), torch.zeros((), device=output.vertices.device)
    )
    return {"total": total, **terms}

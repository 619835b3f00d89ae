"""What every model kind shares: :class:`SpeechToFace`, the base of
:class:`~memorytalker.models.memorytalker.MemoryTalker`, :class:`~memorytalker.models.faceformer.FaceFormer`,
:class:`~memorytalker.models.selftalk.SelfTalk`, :class:`~memorytalker.models.unitalker.UniTalker`,
:class:`~memorytalker.models.codetalker.CodeTalker`, :class:`~memorytalker.models.imitator.Imitator` and
:class:`~memorytalker.models.scantalk.ScanTalk`.

It holds the config, the topology, the speech encoder (``cfg.backbone``, the same choice for every kind, so
a comparison differs by method and not by encoder), the motion unit buffer ``motion_scale``, and the pieces
every kind needs: mesh frames of an audio length, the templates check, and the backbone's CTC logits of a
clip (in windows for long audio on backbones with a window size).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
from torch import nn

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.errors import ConfigError, TopologyError
from memorytalker.models.backbones import TextBackbone, build_backbone
from memorytalker.models.config import ModelConfig
from memorytalker.models.layers import lengths_to_mask
from memorytalker.models.mel import normalize_waveform
from memorytalker.topology import FaceTopology


def fps_period(topology: FaceTopology, period: int) -> int:
    """A positional-encoding / bias period in frames: ``period``, or the topology's fps when 0."""
    if period > 0:
        return int(period)
    p = int(round(topology.fps))
    if p < 1:
        raise ConfigError(
            f"topology {topology.name!r} fps {topology.fps} gives no positional-encoding period"
        )
    return p


@dataclass
class KindOutput:
    """A forward pass of a kind without MemoryTalker's routes: ``vertices`` ``(B, T, V, 3)``,
    ``frame_mask`` ``(B, T)``, the backbone's CTC logits ``(B, rT, M)`` and their lengths ``(B,)`` (for the
    CTC loss of encoders trained from scratch). The other fields are MemoryTalker's routes, absent here
    (the loss module skips their terms)."""

    vertices: torch.Tensor
    frame_mask: torch.Tensor
    ctc_logits: torch.Tensor | None = None
    ctc_lengths: torch.Tensor | None = None
    teacher_vertices: None = None
    value_read: None = None
    value_address: None = None
    motion_feat: None = None
    key_address: None = None
    style_anchor: None = None
    style_positive: None = None
    style_negative: None = None


class BatchInputs(NamedTuple):
    """What a forward pass reads of a batch, on the audio's device: ``audio`` ``(B, S)``,
    ``audio_lengths`` ``(B,)``, ``templates`` ``(B, V, 3)``, ``vertices`` ``(B, T, V, 3)`` or None,
    ``frame_lengths`` ``(B,)`` long and ``num_frames`` ``T``."""

    audio: torch.Tensor
    audio_lengths: torch.Tensor
    templates: torch.Tensor
    vertices: torch.Tensor | None
    frame_lengths: torch.Tensor
    num_frames: int


class SpeechToFace(nn.Module):
    """Base of the model kinds (see the module docstring).

    Args:
        cfg: the model config (validated here).
        topology: the face topology (``V``, fps, lips).

    Attributes:
        num_conditions: style conditions the model is conditioned on (0: audio only; a one-hot speaker
            kind: its training speakers).
    """

    num_conditions: int = 0
    #: How ``evaluate`` conditions clips of speakers outside training by default (kinds with conditions):
    #: ``all`` = under every training speaker's condition, metrics averaged; ``default`` = the model's
    #: default condition (:func:`memorytalker.evaluation.scoring.clip_conditions`).
    unseen_protocol: str = "default"

    def __init__(self, cfg: ModelConfig, topology: FaceTopology) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.topology = topology
        self.fps = float(topology.fps)
        self.text_rate = 2 if cfg.backbone.text_rate == "double" else 1
        self.backbone: TextBackbone = build_backbone(cfg.backbone)
        # The motion unit (``ModelConfig.motion_scale``): motion inputs are read in it, the head writes it.
        scale = 1.0 if cfg.motion_scale is None else float(cfg.motion_scale)
        self.register_buffer("motion_scale", torch.tensor(scale, dtype=torch.float32))

    def set_motion_scale(self, value: float) -> None:
        """Set the motion unit (a training run that starts from scratch measures it on its data)."""
        if not (value > 0 and torch.isfinite(torch.tensor(value))):
            raise ConfigError(f"motion scale must be a positive finite number, got {value}")
        self.motion_scale.fill_(float(value))

    def topology_for(self, batch: Any) -> FaceTopology:
        """The topology of a batch's clips (a kind with several output topologies picks its head's)."""
        return self.topology

    def unit_for(self, batch: Any) -> torch.Tensor:
        """The motion unit a batch's losses are measured in (``motion_scale``; a kind with a head per
        topology: its head's)."""
        return self.motion_scale

    def predict_options(self, batch: Any) -> dict[str, Any]:
        """Extra ``predict`` keywords that score a training/validation batch as the kind is meant to run
        on it (a speaker-conditioned kind: each clip's own condition). None here."""
        return {}

    def frames_for(self, audio_lengths: torch.Tensor) -> torch.Tensor:
        """Mesh frames of clips of ``audio_lengths`` samples: ``round(S / 16000 * fps)`` (>= 1), as
        :func:`memorytalker.data.audio.num_frames`."""
        frames = torch.round(audio_lengths.double() / SAMPLE_RATE * self.fps).long()
        return frames.clamp(min=1)

    def _check_templates(self, templates: torch.Tensor) -> None:
        v = self.topology.num_vertices
        if templates.dim() != 3 or templates.shape[1:] != (v, 3):
            raise TopologyError(
                f"templates have shape {tuple(templates.shape)}: expected (B, {v}, 3) for topology "
                f"{self.topology.name!r} ({v} vertices)"
            )

    def text_logits(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        frame_lengths: torch.Tensor,
        num_frames: int,
        chunked: bool = False,
    ) -> torch.Tensor:
        """Backbone CTC logits ``(B, r T, M)`` of normalised audio; ``chunked`` runs backbones with a
        window size in overlapping windows when the audio is longer than that."""
        r = self.text_rate
        text_lengths = frame_lengths * r
        n_text = num_frames * r
        bb = self.backbone
        chunk = bb.chunk_samples
        if not chunked or chunk is None or audio.shape[-1] <= chunk + 2 * bb.context_samples:
            return bb(audio, audio_lengths, text_lengths, n_text)
        rate = self.fps * r  # text frames per second
        win = max(1, int(round(chunk / SAMPLE_RATE * rate)))
        ctx = int(round(bb.context_samples / SAMPLE_RATE * rate))
        out = audio.new_zeros(audio.shape[0], n_text, bb.vocab_size)
        for b in range(audio.shape[0]):
            n_b, s_b = int(text_lengths[b]), int(audio_lengths[b])
            for f0 in range(0, n_b, win):
                f1 = min(n_b, f0 + win)
                s0, e0 = max(0, f0 - ctx), min(n_b, f1 + ctx)
                a0 = min(s_b - 1, int(round(s0 * SAMPLE_RATE / rate)))
                a1 = max(a0 + 1, min(s_b, int(round(e0 * SAMPLE_RATE / rate))))
                seg = audio[b : b + 1, a0:a1]
                seg_len = torch.tensor([a1 - a0], device=audio.device)
                n_seg = torch.tensor([e0 - s0], device=audio.device)
                logits = bb(seg, seg_len, n_seg, e0 - s0)
                out[b, f0:f1] = logits[0, f0 - s0 : f1 - s0]
        return out

    def speech_features(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        frame_lengths: torch.Tensor,
        num_frames: int,
        chunked: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The CTC logits ``(B, rT, M)`` of the per-clip normalised audio and their ``audio_proj`` ``(B, rT, D)``
        (the kinds whose ``audio_proj`` reads the logits text frame by text frame: FaceFormer, CodeTalker,
        Imitator)."""
        audio_n = normalize_waveform(audio.float(), audio_lengths)
        logits = self.text_logits(audio_n, audio_lengths, frame_lengths, num_frames, chunked)
        return logits, self.audio_proj(logits)

    def backbone_groups(self, names: tuple[str, ...]) -> dict[str, list[nn.Parameter]]:
        """``{name: []}`` for every group name, with the backbone's groups filled in."""
        groups: dict[str, list[nn.Parameter]] = {g: [] for g in names}
        groups.update(self.backbone.parameter_groups())
        return groups

    def module_groups(
        self, names: tuple[str, ...], **modules: nn.Module | list[nn.Module]
    ) -> dict[str, list[nn.Parameter]]:
        """:meth:`backbone_groups` plus one group per keyword: the parameters of its module(s)."""
        groups = self.backbone_groups(names)
        for name, mods in modules.items():
            groups[name] = [p for m in (mods if isinstance(mods, list) else [mods]) for p in m.parameters()]
        return groups

    def batch_inputs(self, batch: Any) -> BatchInputs:
        """A batch's inputs (templates checked; ``frame_lengths`` from the audio when the batch has none;
        ``T`` = the vertices' frames, else the longest clip's)."""
        audio = batch.audio
        dev = audio.device
        templates = batch.templates.to(dev)
        self._check_templates(templates)
        vertices = getattr(batch, "vertices", None)
        audio_lengths = batch.audio_lengths.to(dev)
        frame_lengths = getattr(batch, "frame_lengths", None)
        if frame_lengths is None:
            frame_lengths = self.frames_for(audio_lengths)
        frame_lengths = frame_lengths.to(dev).long()
        num_frames = int(vertices.shape[1]) if vertices is not None else int(frame_lengths.max())
        if int(frame_lengths.max()) > num_frames:
            raise ValueError(
                f"frame_lengths max {int(frame_lengths.max())} exceeds the {num_frames} vertex frames"
            )
        return BatchInputs(audio, audio_lengths, templates, vertices, frame_lengths, num_frames)

    def run_predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None,
        decode: Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor],
    ) -> torch.Tensor:
        """The frame of every kind's ``predict``: checks, frames per clip (``num_frames`` or from the
        audio), ``decode(audio_lengths, frame_lengths, T) -> (B, T, V, 3)`` in eval mode (restored
        afterwards), and each clip's template on the frames past its length."""
        dev = audio.device
        audio_lengths = audio_lengths.to(dev).long()
        templates = templates.to(dev)
        self._check_templates(templates)
        frame_lengths = self.frames_for(audio_lengths) if num_frames is None else num_frames.to(dev).long()
        t = int(frame_lengths.max())
        with self.evaluating():
            pred = decode(audio_lengths, frame_lengths, t)
        valid = lengths_to_mask(frame_lengths, t)
        if bool(valid.all()):
            return pred
        return torch.where(valid[:, :, None, None], pred, templates.unsqueeze(1).to(pred.dtype))

    @contextmanager
    def evaluating(self) -> Iterator[None]:
        """Eval mode inside the block, the previous mode restored after it."""
        was_training = self.training
        self.eval()
        try:
            yield
        finally:
            self.train(was_training)

    def offsets_to_vertices(self, y: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
        """Head output ``y`` ``(B, T, 3V)`` in the motion unit -> ``(B, T, V, 3)`` = template + unit * y."""
        b, t, _ = y.shape
        out = templates.float().reshape(b, 1, -1) + y * self.motion_scale
        return out.view(b, t, self.topology.num_vertices, 3)


class SpeakerConditions:
    """The speaker conditions of a speaker-conditioned kind (FaceFormer's one-hot training speakers,
    UniTalker's identities): a mixin for :class:`SpeechToFace` subclasses, which set :meth:`set_conditions`.

    Attributes:
        speakers: the conditions' names, in index order. num_conditions: their number.
        default_condition: the condition ``predict`` uses when given none.
        unseen_condition: the condition of a batch's clip whose speaker was not trained on (``subject_id``
            -1): FaceFormer's default one, UniTalker's common identity.
        trained: how many of the first ``speakers`` are training speakers (the rest, UniTalker's common
            identity, is no speaker).
    """

    condition_noun = "training speakers"

    def set_conditions(self, speakers: list[str], trained: int, default: str, unseen: int) -> None:
        self.speakers = list(speakers)
        self.num_conditions = len(self.speakers)
        self.trained = int(trained)
        self.unseen_condition = int(unseen)
        self.default_condition = self.condition_index(default)

    def condition_index(self, speaker: str) -> int:
        """The index of condition ``speaker`` (a clear error for another name)."""
        if speaker not in self.speakers:
            raise ConfigError(
                f"speaker {speaker!r} is not one of this model's {self.condition_noun} {self.speakers}"
            )
        return self.speakers.index(speaker)

    def training_condition(self, subject: str, dataset: str) -> int | None:
        """The condition of ``subject`` when it is one of the training speakers (else None; ``dataset``
        unused here: UniTalker's identities name their corpus)."""
        own = self.speakers[: self.trained]
        return own.index(subject) if subject in own else None

    def training_conditions(self) -> list[tuple[str, int]]:
        """Every training speaker's condition ``(name, index)``."""
        return list(zip(self.speakers[: self.trained], range(self.trained)))

    def own_conditions(self, subject_ids: torch.Tensor) -> torch.Tensor:
        """Each clip's own condition ``(B,)`` from a batch's ``subject_ids`` (indices of the training
        speakers; a speaker outside training, id -1, gets :attr:`unseen_condition`)."""
        ids = subject_ids.long()
        return torch.where(ids >= 0, ids, torch.full_like(ids, self.unseen_condition))

    def checked_conditions(self, conditions: torch.Tensor | None, batch: int, device: Any) -> torch.Tensor:
        """``conditions`` ``(B,)`` checked (shape, range), or the default condition for every clip."""
        if conditions is None:
            return torch.full((batch,), self.default_condition, dtype=torch.long, device=device)
        conditions = conditions.to(device).long()
        if conditions.shape != (batch,):
            raise ValueError(f"conditions must have shape ({batch},), got {tuple(conditions.shape)}")
        bad = (conditions < 0) | (conditions >= self.num_conditions)
        if bool(bad.any()):
            raise ValueError(
                f"conditions {conditions[bad].tolist()} are not indices of the {self.num_conditions} "
                f"{self.condition_noun}"
            )
        return conditions

    def predict_options(self, batch: Any) -> dict[str, Any]:
        """``predict`` keywords for a batch: each clip's own condition."""
        return {"conditions": self.own_conditions(batch.subject_ids)}

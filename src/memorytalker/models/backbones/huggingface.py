"""Hugging Face CTC checkpoints (Wav2Vec2ForCTC, HubertForCTC, or anything ``AutoModelForCTC`` builds with
the same structure) as the text branch.

FaceFormer's frame-rate alignment: the convolutional front end's 50 Hz features are linearly interpolated
to the requested number of frames (``align_corners=True``) *before* the feature projection and the
transformer, so the CTC logits come out one per mesh frame (or two, ``text_rate: double``).

Limits (docs/MODEL.md): the transformer attends over the whole input, so audio longer than
``chunk_seconds`` is processed at inference in windows with ``context_seconds`` of context per side; and
base-size checkpoints normalise their first convolution over time (``feat_extract_norm="group"``): on the
CPU, and in training with the feature cache, each clip's features come from its own samples (a padded batch
equals the clips alone); one batched call on a GPU lets the padding into those statistics.
"""

from __future__ import annotations

import torch
from torch import nn

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.errors import CheckpointError, ConfigError
from memorytalker.models.backbones import TextBackbone
from memorytalker.models.backbones.cache import ClipFeatureCache
from memorytalker.models.config import BackboneConfig
from memorytalker.models.layers import interpolate_frames, lengths_to_mask

#: Shortest input the convolutional front end accepts (its receptive field), in samples.
MIN_SAMPLES = 400


def load_ctc_model(name_or_path: str, pretrained: bool) -> nn.Module:
    """``AutoModelForCTC`` from a model id or folder: weights when ``pretrained``, else random from its
    config. Offline-friendly: a missing model is a :class:`CheckpointError` naming it."""
    try:
        from transformers import AutoConfig, AutoModelForCTC
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ConfigError(f"model.backbone.kind=huggingface needs the transformers package: {exc}") from exc
    try:
        if pretrained:
            return AutoModelForCTC.from_pretrained(name_or_path)
        config = AutoConfig.from_pretrained(name_or_path)
        return AutoModelForCTC.from_config(config)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot load the Hugging Face CTC model {name_or_path!r} (a model id in the local Hugging Face "
            f"cache, or a folder written by save_pretrained; nothing is downloaded when offline): {exc}"
        ) from exc


def _no_input_gradient(feature_encoder: nn.Module) -> None:
    """Stop a Wav2Vec2/HuBERT feature encoder from making its input waveform require grad.

    In training mode these encoders set ``requires_grad`` on the waveform unless their private
    ``_requires_grad`` flag was cleared by ``freeze_feature_encoder()`` (which the parameter groups' own
    ``requires_grad`` switches do not do). Autograd then differentiates all seven convolutions down to the
    waveform, a gradient nothing reads, on every step: with the encoder frozen, that is the whole backward
    pass of the front end (7 of the 8 convolution backwards of a step). The flag only matters for gradient
    checkpointing, so it is kept exactly when checkpointing is on and some of the encoder's parameters train.
    Values and parameter gradients are unchanged.
    """
    if not hasattr(feature_encoder, "_requires_grad"):
        return
    trains = any(p.requires_grad for p in feature_encoder.parameters())
    feature_encoder._requires_grad = (
        bool(getattr(feature_encoder, "gradient_checkpointing", False)) and trains
    )


class HuggingFaceCTC(TextBackbone):
    """Wav2Vec2/HuBERT CTC model with FaceFormer interpolation to the mesh frame rate."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        model = load_ctc_model(cfg.name_or_path, cfg.pretrained)
        base = getattr(model, "base_model", None)
        needed = ("feature_extractor", "feature_projection", "encoder")
        if base is None or not all(hasattr(base, n) for n in needed) or not hasattr(model, "lm_head"):
            raise ConfigError(
                f"model.backbone.name_or_path={cfg.name_or_path!r} is a {type(model).__name__}; expected a "
                "Wav2Vec2/HuBERT-style CTC model (feature_extractor, feature_projection, encoder, lm_head)"
            )
        self.model = model
        self.vocab_size = int(model.config.vocab_size)
        self.chunk_samples = int(round(cfg.chunk_seconds * SAMPLE_RATE))
        self.context_samples = int(round(cfg.context_seconds * SAMPLE_RATE))
        # layerdrop would make the padded and unpadded passes differ in training; keep it as configured
        if cfg.freeze_feature_encoder:
            for p in base.feature_extractor.parameters():
                p.requires_grad_(False)
        if cfg.freeze_transformer:
            for p in model.parameters():
                p.requires_grad_(False)
        self._cache = ClipFeatureCache(cfg.cache_mb)  # float32: cached features equal fresh ones

    @property
    def base(self) -> nn.Module:
        return self.model.base_model

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        """Normalised audio ``(B, S)`` -> CTC logits ``(B, num_frames, M)`` (zero past ``frame_lengths``)."""
        base = self.base
        if audio.shape[-1] < MIN_SAMPLES:
            audio = nn.functional.pad(audio, (0, MIN_SAMPLES - audio.shape[-1]))
        audio_lengths = audio_lengths.to(audio.device).clamp(min=MIN_SAMPLES)
        in_lengths = base._get_feat_extract_output_lengths(audio_lengths).long()
        feats = self._encode_features(audio, audio_lengths, in_lengths).transpose(1, 2)  # (B, A, 512), 50 Hz
        in_lengths = in_lengths.clamp(1, feats.shape[1])
        frame_lengths = frame_lengths.to(audio.device)
        feats = interpolate_frames(feats, in_lengths, frame_lengths, num_frames)  # (B, T, 512)
        hidden = base.feature_projection(feats)
        if isinstance(hidden, tuple):  # Wav2Vec2 returns (hidden, normed features)
            hidden = hidden[0]
        valid = lengths_to_mask(frame_lengths, num_frames)
        if self.training and hasattr(base, "_mask_hidden_states"):
            hidden = base._mask_hidden_states(hidden, attention_mask=valid.long())  # SpecAugment
        hidden = base.encoder(hidden, attention_mask=valid).last_hidden_state
        dropout = getattr(self.model, "dropout", None)
        if dropout is not None:
            hidden = dropout(hidden)
        logits = self.model.lm_head(hidden)
        return logits * valid.unsqueeze(-1).to(logits.dtype)

    def _encode_features(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, feat_lengths: torch.Tensor
    ) -> torch.Tensor:
        """The convolutional feature encoder on ``(B, S)`` audio -> ``(B, 512, A)``, zero past ``feat_lengths``.

        On the CPU, and whenever the cache is used, one clip at a time on its own samples (no padding): the
        output of base-size checkpoints, which normalise their first convolution over time, is then the
        clip's own, whatever it is batched with; and a batched call's activations are ``B`` times larger (at
        batch 8 of 4 s clips ~200 MB per layer, mapped fresh from the OS at every step, which made the front
        end ~25 % slower per clip than at batch 1; docs/BENCHMARKS.md). In training with the encoder frozen
        (``freeze_feature_encoder``) its output is cached per clip (``cache_mb``): it runs once per clip,
        not once per epoch. On a GPU without the cache, one batched call (launch-bound steps).
        """
        encoder = self.base.feature_extractor
        _no_input_gradient(encoder)
        frozen = not any(p.requires_grad for p in encoder.parameters())
        cached = self.training and frozen and self.cfg.cache_mb > 0
        if not cached and (audio.shape[0] == 1 or audio.device.type != "cpu"):
            return encoder(audio)
        frames = int(feat_lengths.max())
        out = []
        for i in range(audio.shape[0]):
            clip = audio[i : i + 1, : int(audio_lengths[i])]
            f = self._cache.get_or_compute(clip, lambda c=clip: encoder(c)) if cached else encoder(clip)
            out.append(nn.functional.pad(f, (0, frames - f.shape[-1])))
        return torch.cat(out)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        frontend = list(self.base.feature_extractor.parameters())
        head = list(self.model.lm_head.parameters())
        taken = {id(p) for p in frontend + head}
        asr = [p for p in self.model.parameters() if id(p) not in taken]
        return {"asr_frontend": frontend, "asr": asr, "ctc_head": head}

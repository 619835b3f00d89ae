"""Imitator (Thambiraja et al., ICCV'23) as the ``imitator`` model kind; what is published and what differs:
docs/MODELS.md. Personalisation (test-time optimisation of a new speaker's style): :mod:`memorytalker.training.adapt`.

Data flow (shapes: ``B`` clips, ``T`` mesh frames, ``r T`` text frames, ``M`` CTC symbols, ``D`` width,
``V`` vertices, ``N`` style codes)::

    audio (B, S) -> per-clip normalisation -> backbone -> CTC logits (B, rT, M) -> audio_proj -> (B, rT, D)
    viseme decoder (style-agnostic, autoregressive over its own features):
        input_0 = PE(0) applied to a zero start token;  input_t = PE(t) + f_{t-1}
        f_t = decoder layers (causal self-attention; cross-attention to text frame t, or 2t and 2t+1)
    style code s = style(one_hot(condition)) (B, D)         one column per training / adapted speaker
    motion decoder: y_t = head(MLP(f_t + s))                MLP: (decoder_layers - 1) x Linear + LeakyReLU;
                                                            head: the displacement layer D -> 3V
    vertices_t = template + motion_scale * y_t

The style enters after the transformer only, so the viseme features of a clip do not depend on the speaker:
personalisation computes them once per clip and then optimises the style code (stage 1) and the
displacement layer ``head`` (stage 2) on them.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from memorytalker.errors import ConfigError
from memorytalker.models.common import KindOutput, SpeakerConditions, SpeechToFace
from memorytalker.models.config import MEAN_STYLE, ModelConfig
from memorytalker.models.faceformer import FaceFormerLayer
from memorytalker.models.layers import lengths_to_mask, periodic_positional_encoding
from memorytalker.topology import FaceTopology

#: Parameter groups of :meth:`Imitator.parameter_groups` (the backbone's three, then Imitator's own).
#: Personalisation trains ``style`` (stage 1), then ``style`` and ``head`` (stage 2, the displacements).
GROUPS = ("asr_frontend", "asr", "ctc_head", "audio_proj", "decoder", "style", "motion_decoder", "head")

#: The published motion decoder's activation: ``nn.LeakyReLU(0.01)``.
LEAKY_SLOPE = 0.01

#: An Imitator forward pass (vertices, frame mask, the backbone's CTC logits).
ImitatorOutput = KindOutput


def sinusoidal_encoding(length: int, dim: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """The transformer's sinusoidal positional encoding ``(length, dim)`` of frames ``0 .. length - 1`` (the
    published ``PositionalEncoding``; not periodic): FaceFormer's encoding with a period longer than the clip."""
    return periodic_positional_encoding(length, dim, max(int(length), 1), device, dtype)


class Imitator(SpeakerConditions, SpeechToFace):
    """Speech + a style code -> per-frame vertices: a style-agnostic autoregressive viseme decoder and a
    style-adaptable motion decoder (module docstring).

    Conditions (:attr:`speakers`): the training speakers, then the adapted speakers, then
    :data:`~memorytalker.models.config.MEAN_STYLE` (the mean of the training speakers' codes, no parameter).

    Args:
        cfg: the model config (``kind: imitator``; its ``imitator`` section, with ``speakers`` filled).
        topology: the face topology.
    """

    condition_noun = "style codes"

    def __init__(self, cfg: ModelConfig, topology: FaceTopology) -> None:
        super().__init__(cfg, topology)
        m = cfg.imitator
        if not m.speakers:
            raise ConfigError(
                "model.imitator.speakers is empty: the style codes are its training speakers' (a training run "
                "fills them in from its training split)"
            )
        names = [*m.speakers, *m.adapted, MEAN_STYLE]
        self.unseen_protocol = "all" if m.unseen == "all" else "default"
        self.set_conditions(names, len(m.speakers), self._default_name(), 0)
        self.unseen_condition = self.default_condition
        d, v = m.width, topology.num_vertices
        self.dim, self.num_vertices = d, v
        self.audio_proj = nn.Linear(self.backbone.vocab_size, d)  # audio_feature_map
        self.pe_dropout = nn.Dropout(m.dropout)  # the published PositionalEncoding's dropout
        ffn = m.ffn or 2 * d
        self.layers = nn.ModuleList(
            [FaceFormerLayer(d, m.heads, ffn, 1, m.attention_frames, m.dropout) for _ in range(m.layers)]
        )
        for layer in self.layers:  # the published mask is plain causal: FaceFormer's bias with zero slopes
            layer.self_attn.slopes.zero_()
        self.style = nn.Linear(len(m.speakers) + len(m.adapted), d, bias=False)  # obj_vector
        hidden: list[nn.Module] = []
        for _ in range(m.decoder_layers - 1):
            hidden += [nn.Linear(d, d), nn.LeakyReLU(LEAKY_SLOPE)]
        self.motion_decoder = nn.Sequential(*hidden)
        self.head = nn.Linear(d, 3 * v)  # final_out_layer: the displacements
        for layer in self.motion_decoder:
            if isinstance(layer, nn.Linear):  # the published init: Xavier weights, zero biases
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        nn.init.zeros_(self.head.weight)  # zero-initialised, as published
        nn.init.zeros_(self.head.bias)

    def _default_name(self) -> str:
        m = self.cfg.imitator
        if m.condition is not None:
            return m.condition
        if m.adapted:
            return m.adapted[-1]
        return MEAN_STYLE if m.unseen == "all" else m.unseen

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (:data:`GROUPS`); every parameter in exactly one group."""
        return self.module_groups(
            GROUPS,
            audio_proj=self.audio_proj,
            decoder=self.layers,
            style=self.style,
            motion_decoder=self.motion_decoder,
            head=self.head,
        )

    # ------------------------------------------------------------------ conditions
    def training_condition(self, subject: str, dataset: str) -> int | None:
        """The condition of ``subject`` when it is a training or adapted speaker (else None)."""
        own = self.speakers[:-1]  # the mean style is no speaker
        return own.index(subject) if subject in own else None

    def style_table(self) -> torch.Tensor:
        """Every condition's style code ``(N + 1, D)``: the style codes, then their training part's mean."""
        codes = self.style.weight.t()
        return torch.cat([codes, codes[: self.trained].mean(0, keepdim=True)], dim=0)

    def style_codes(self, conditions: torch.Tensor) -> torch.Tensor:
        """``(B,)`` condition indices -> ``(B, D)`` style codes."""
        return self.style_table()[conditions]

    # ------------------------------------------------------------------ pieces
    def viseme_features(self, text: torch.Tensor, num_frames: int) -> torch.Tensor:
        """The style-agnostic decoder, autoregressive over its own outputs with a key/value cache:
        ``text`` ``(B, rT, D)`` -> features ``(B, T, D)``; frame ``t``'s input is ``f_{t-1}`` (a zero start
        token for frame 0) plus the positional encoding of ``t``."""
        r = self.text_rate
        caches: list[dict | None] = [None] * len(self.layers)
        pe = sinusoidal_encoding(num_frames, self.dim, text.device, text.dtype)
        prev = text.new_zeros(text.shape[0], 1, self.dim)
        outs = []
        for t in range(num_frames):
            x = self.pe_dropout(prev + pe[t])
            for i, layer in enumerate(self.layers):
                x, caches[i] = layer.step(x, text[:, r * t : r * (t + 1)], caches[i], t)
            outs.append(x)
            prev = x
        return torch.cat(outs, dim=1)

    def motion(self, features: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
        """The motion decoder: features ``(B, T, D)`` + style codes ``(B, D)`` -> offsets ``(B, T, 3V)`` in the
        motion unit."""
        return self.head(self.motion_decoder(features + style[:, None])).float()

    def decode(self, features: torch.Tensor, style: torch.Tensor, templates: torch.Tensor) -> torch.Tensor:
        """Features ``(B, T, D)``, style codes ``(B, D)``, templates ``(B, V, 3)`` -> vertices ``(B, T, V, 3)``."""
        return self.offsets_to_vertices(self.motion(features, style), templates)

    def clip_features(self, batch: Any) -> torch.Tensor:
        """A batch's viseme features ``(B, T, D)`` (what personalisation computes once per clip)."""
        audio, audio_lengths, _, _, frame_lengths, num_frames = self.batch_inputs(batch)
        _, text = self.speech_features(audio, audio_lengths, frame_lengths, num_frames, False)
        return self.viseme_features(text, num_frames)

    # ------------------------------------------------------------------ forward / predict
    def forward(self, batch: Any, teacher_forcing: bool = False) -> ImitatorOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch`: each clip under its own speaker's
        style code (``subject_ids``; a clip of a speaker outside training, id -1, under the default
        condition). Always autoregressive, as published (the decoder reads its own features, which have no
        ground truth to force). ``teacher_forcing`` (MemoryTalker's extra pass) does not apply."""
        audio, audio_lengths, templates, _, frame_lengths, num_frames = self.batch_inputs(batch)
        dev = audio.device
        ids = getattr(batch, "subject_ids", None)
        conditions = None if ids is None else self.own_conditions(ids.to(dev))
        style = self.style_codes(self.checked_conditions(conditions, audio.shape[0], dev))
        logits, text = self.speech_features(audio, audio_lengths, frame_lengths, num_frames, False)
        features = self.viseme_features(text, num_frames)
        return ImitatorOutput(
            vertices=self.decode(features, style, templates),
            frame_mask=lengths_to_mask(frame_lengths, num_frames),
            ctc_logits=logits,
            ctc_lengths=frame_lengths * self.text_rate,
        )

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
        conditions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Autoregressive inference (eval mode, restored afterwards) from audio, neutral templates and a
        style condition.

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``.
            templates: ``(B, V, 3)``.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).
            conditions: ``(B,)`` indices into :attr:`speakers` (None = the default condition).

        Returns:
            ``(B, T, V, 3)``; frames past a clip's length hold its template.
        """

        def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
            style = self.style_codes(self.checked_conditions(conditions, audio.shape[0], audio.device))
            _, text = self.speech_features(audio, audio_lengths, frame_lengths, t, True)
            return self.decode(self.viseme_features(text, t), style, templates.to(audio.device))

        return self.run_predict(audio, audio_lengths, templates, num_frames, decode)

"""SelfTalk (Peng et al., ACM MM'23) as the ``selftalk`` model kind; what is published and what differs:
docs/MODELS.md.

Data flow (shapes: ``B`` clips, ``T`` mesh frames, ``r T`` text frames, ``M`` CTC symbols, ``D`` width,
``H`` lip-reader width, ``V`` vertices, ``L`` lip vertices)::

    audio (B, S) -> per-clip normalisation -> backbone -> CTC logits l (B, rT, M)
    x = audio_proj(l as (B, T, r M))                          (B, T, D)  (BIWI's pairs of frames side by side)
    h = decoder layer(x, memory=x)                             full self- and cross-attention, no mask
    y = head(h) (B, T, 3V);  vertices = template + motion_scale * y
    training only, the lip reader:
    z = lip_map(y[lips]) (B, T, H) -> to r T frames -> nn.Transformer(z, z) -> f (B, rT, H)
    lip_logits = lm_head(f) (B, rT, M)        CTC against the recogniser's transcript (loss.lipread_ctc)
    lip_features = feature_proj(f) (B, rT, M) MSE against the recogniser's features (loss.lipread_feature)

The recogniser is the speech encoder itself, read without gradient: its logits are the features and its
transcript is the clip's phoneme labels (when they exist and the vocabulary is the phoneme one) or its
greedy CTC decoding. No speaker conditioning: the same audio gives the same motion for every face.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from memorytalker.errors import TopologyError
from memorytalker.models.common import KindOutput, SpeechToFace
from memorytalker.models.config import ModelConfig
from memorytalker.models.layers import interpolate_frames, lengths_to_mask
from memorytalker.models.mel import normalize_waveform
from memorytalker.topology import FaceTopology

#: Parameter groups of :meth:`SelfTalk.parameter_groups`.
GROUPS = ("asr_frontend", "asr", "ctc_head", "audio_proj", "decoder", "head", "lipreader")


@dataclass
class SelfTalkOutput(KindOutput):
    """A forward pass (:class:`~memorytalker.models.common.KindOutput`) plus the lip reader's
    ``lip_logits`` and ``lip_features`` ``(B, rT, M)`` and the recogniser's features ``recognizer``
    ``(B, rT, M)`` (detached)."""

    lip_logits: torch.Tensor | None = None
    lip_features: torch.Tensor | None = None
    recognizer: torch.Tensor | None = None


class SelfTalk(SpeechToFace):
    """Speech -> per-frame vertices in one non-autoregressive pass; a lip reader trains alongside.

    Args:
        cfg: the model config (``kind: selftalk``). topology: the face topology (its ``lips`` region is
            what the lip reader reads).
    """

    def __init__(self, cfg: ModelConfig, topology: FaceTopology) -> None:
        super().__init__(cfg, topology)
        c = cfg.selftalk
        d, v, m = c.width, topology.num_vertices, self.backbone.vocab_size
        lips = np.array(topology.lips, dtype=np.int64)
        if lips.size == 0:
            raise TopologyError(
                f"topology {topology.name!r} has no lips region: SelfTalk's lip reader reads it"
            )
        self.register_buffer("lips", torch.from_numpy(lips), persistent=False)
        self.num_vertices = v
        self.audio_proj = nn.Linear(self.text_rate * m, d)  # audio_feature_map
        self.decoder = nn.ModuleList(  # nn.TransformerDecoder's layer: post-norm, ReLU
            [
                nn.TransformerDecoderLayer(d, c.heads, c.ffn or 2 * d, c.dropout, batch_first=True)
                for _ in range(c.layers)
            ]
        )
        self.head = nn.Linear(d, 3 * v)  # vertice_map_r, zero-initialised as published
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        h = c.lip_width
        self.lip_map = nn.Linear(3 * lips.size, h)
        self.lip_reader = nn.Transformer(
            d_model=h,
            nhead=c.lip_heads,
            num_encoder_layers=c.lip_layers,
            num_decoder_layers=c.lip_layers,
            dim_feedforward=c.lip_ffn,
            dropout=c.lip_dropout,
            batch_first=True,
        )
        self.lm_head = nn.Linear(h, m)
        self.feature_proj = nn.Linear(h, m)

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by group name (:data:`GROUPS`); every parameter in exactly one group."""
        return self.module_groups(
            GROUPS,
            audio_proj=self.audio_proj,
            decoder=self.decoder,
            head=self.head,
            lipreader=[self.lip_map, self.lip_reader, self.lm_head, self.feature_proj],
        )

    def _motion(self, audio, audio_lengths, frame_lengths, num_frames, chunked):
        """Backbone logits ``(B, rT, M)`` and predicted motion ``(B, T, 3V)`` in the motion unit."""
        audio_n = normalize_waveform(audio.float(), audio_lengths)
        logits = self.text_logits(audio_n, audio_lengths, frame_lengths, num_frames, chunked)
        b = logits.shape[0]
        x = self.audio_proj(logits.reshape(b, num_frames, -1))
        pad = ~lengths_to_mask(frame_lengths, num_frames)
        for layer in self.decoder:
            x = layer(x, x, tgt_key_padding_mask=pad, memory_key_padding_mask=pad)
        return logits, self.head(x).float()

    def lip_read(self, y: torch.Tensor, frame_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The lip reader on predicted motion ``y`` ``(B, T, 3V)`` -> ``(lip_logits, lip_features)``, each
        ``(B, rT, M)``."""
        b, t, _ = y.shape
        lip = y.view(b, t, self.num_vertices, 3)[:, :, self.lips].flatten(2)
        z = self.lip_map(lip)
        r = self.text_rate
        if r > 1:
            z = interpolate_frames(z, frame_lengths, frame_lengths * r, t * r)
        pad = ~lengths_to_mask(frame_lengths * r, t * r)
        f = self.lip_reader(
            z, z, src_key_padding_mask=pad, tgt_key_padding_mask=pad, memory_key_padding_mask=pad
        )
        return self.lm_head(f), self.feature_proj(f)

    def forward(self, batch: Any, teacher_forcing: bool = False) -> SelfTalkOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch`, lip reader included.
        ``teacher_forcing`` (MemoryTalker's extra pass) does not apply and is ignored."""
        audio, audio_lengths, templates, _, frame_lengths, num_frames = self.batch_inputs(batch)
        logits, y = self._motion(audio, audio_lengths, frame_lengths, num_frames, False)
        lip_logits, lip_features = self.lip_read(y, frame_lengths)
        return SelfTalkOutput(
            vertices=self.offsets_to_vertices(y, templates),
            frame_mask=lengths_to_mask(frame_lengths, num_frames),
            ctc_logits=logits,
            ctc_lengths=frame_lengths * self.text_rate,
            lip_logits=lip_logits,
            lip_features=lip_features,
            recognizer=logits.detach(),
        )

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inference from audio and neutral templates (eval mode, restored afterwards; no lip reader).

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``. templates: ``(B, V, 3)``.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).

        Returns:
            ``(B, T, V, 3)``; frames past a clip's length hold its template.
        """

        def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
            _, y = self._motion(audio, audio_lengths, frame_lengths, t, True)
            return self.offsets_to_vertices(y, templates.to(audio.device))

        return self.run_predict(audio, audio_lengths, templates, num_frames, decode)

"""The MemoryTalker model (one class for both training stages and every ablation).

Data flow for a batch (shapes: ``B`` clips, ``S`` samples, ``T`` mesh frames, ``r T`` text frames with
``r`` = 1, or 2 for ``text_rate: double``, ``M`` slots = CTC symbols, ``D`` width, ``V`` vertices)::

    audio (B, S) -> per-clip normalisation -> backbone -> CTC logits l (B, rT, M)
    f_txt = text_proj(l) (B, rT, D)                           text features (decoder cross-attention)
    s = motion_scale                                          the motion unit (a buffer, data units)
    key route:   K = softmax(kappa l_t) (B, T, M); key_read = K @ (w * sg(Mem)) (B, T, D)
    value route: f_m = E_m((v - tau) / s) (B, T, D); V = softmax(kappa cos(sg(f_m), Mem)); value_read = V @ Mem
    style:       f_s = E_s(log-mel(audio)) (B, M); w = sigmoid(f_s) * scale(f_s)   (stage 2)
    decoder:     [f_txt_t ; key_read] -> fusion -> PPE -> aligned transformer -> tau + s head (B, T, V, 3)
    teacher:     [f_txt_t ; f_m]      -> same decoder                               (stage 1, training)

The no-memory ablation (``memory.enabled: false``) decodes ``f_txt`` alone. See docs/MODEL.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from memorytalker.errors import ConfigError
from memorytalker.models.common import SpeechToFace, fps_period
from memorytalker.models.config import ModelConfig
from memorytalker.models.decoder import MotionDecoder
from memorytalker.models.layers import lengths_to_mask
from memorytalker.models.mel import normalize_waveform
from memorytalker.models.memory import MotionMemory
from memorytalker.models.style import StyleEncoder
from memorytalker.topology import FaceTopology

#: Stable parameter-group names (:meth:`MemoryTalker.parameter_groups`); disabled parts give empty lists.
GROUPS = (
    "asr_frontend",
    "asr",
    "ctc_head",
    "text_proj",
    "motion_encoder",
    "memory",
    "fusion",
    "decoder",
    "read_skip",
    "head",
    "style",
)


@dataclass
class MemoryTalkerOutput:
    """Everything a forward pass produces; None where a route is off.

    Attributes:
        vertices: ``(B, T, V, 3)`` predicted vertices (key route / no memory).
        frame_mask: ``(B, T)`` bool, True = valid frame.
        ctc_logits: ``(B, A, M)`` CTC logits (``A = r T``); ``ctc_lengths`` ``(B,)`` valid ``A`` per clip.
        key_address: ``(B, T, M)`` ``softmax(kappa l)``.
        value_address: ``(B, T, M)`` value-route address (needs ground-truth vertices).
        motion_feat: ``(B, T, D)`` ``E_m(v - tau)`` (with gradient to ``E_m``).
        value_read: ``(B, T, D)`` memory read by the value route.
        teacher_vertices: ``(B, T, V, 3)`` teacher-forced pass (decoder fed ``f_m``).
        style_logits: ``(B, M)`` ``f_s``; style_weights: ``(B, M)`` per-sample slot weights.
        style_gain: ``(B,)`` per-sample output gain (``model.style.gain``; None when off).
        style_anchor / style_positive / style_negative: ``(B, M)`` triplet embeddings ``g(f_s)``.
    """

    vertices: torch.Tensor
    frame_mask: torch.Tensor
    ctc_logits: torch.Tensor | None = None
    ctc_lengths: torch.Tensor | None = None
    key_address: torch.Tensor | None = None
    value_address: torch.Tensor | None = None
    motion_feat: torch.Tensor | None = None
    value_read: torch.Tensor | None = None
    teacher_vertices: torch.Tensor | None = None
    style_logits: torch.Tensor | None = None
    style_weights: torch.Tensor | None = None
    style_gain: torch.Tensor | None = None
    style_anchor: torch.Tensor | None = None
    style_positive: torch.Tensor | None = None
    style_negative: torch.Tensor | None = None


class MemoryTalker(SpeechToFace):
    """Speech -> per-frame vertices, personalised by a motion memory stylised from the same audio.

    Args:
        cfg: the model config (validated here).
        topology: the face topology (``V``, fps, lips).
    """

    def __init__(self, cfg: ModelConfig, topology: FaceTopology) -> None:
        super().__init__(cfg, topology)
        d = cfg.memory.width
        v = topology.num_vertices
        self.slots = cfg.check_slots(self.backbone.vocab_size)
        self.text_proj = nn.Linear(self.slots, d)  # psi
        self.memory: MotionMemory | None = None
        self.motion_encoder: nn.Linear | None = None
        if cfg.memory.enabled:
            self.memory = MotionMemory(self.slots, d, cfg.memory.kappa)
            self.motion_encoder = nn.Linear(3 * v, d)  # E_m
        self.style: StyleEncoder | None = StyleEncoder(cfg.style, self.slots) if cfg.style.enabled else None
        dc = cfg.decoder
        self.decoder = MotionDecoder(
            fusion_in=2 * d if cfg.memory.enabled else d,
            dim=d,
            num_vertices=v,
            period=fps_period(topology, dc.period),
            layers=dc.layers,
            heads=dc.heads,
            ffn=dc.ffn,
            window=dc.window,
            dropout=dc.dropout,
            skip_in=d if dc.read_skip else 0,  # validate(): read_skip needs the memory
        )

    # ------------------------------------------------------------------ groups
    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        """Parameters by stable group name (:data:`GROUPS`); every parameter is in exactly one group."""
        groups: dict[str, list[nn.Parameter]] = {g: [] for g in GROUPS}
        groups.update(self.backbone.parameter_groups())
        groups["text_proj"] = list(self.text_proj.parameters())
        if self.memory is not None:
            groups["memory"] = list(self.memory.parameters())
            groups["motion_encoder"] = list(self.motion_encoder.parameters())
        groups["fusion"] = list(self.decoder.fusion.parameters())
        groups["decoder"] = list(self.decoder.layers.parameters())
        if self.decoder.read_skip is not None:  # its own group: stage 2 may train it beside the style encoder
            groups["read_skip"] = list(self.decoder.read_skip.parameters())
        groups["head"] = list(self.decoder.head.parameters())
        if self.style is not None:
            groups["style"] = list(self.style.parameters())
        return groups

    # ------------------------------------------------------------------ pieces
    def frame_logits(self, logits: torch.Tensor, num_frames: int) -> torch.Tensor:
        """Text-frame CTC logits ``(B, r T, M)`` -> one per mesh frame ``(B, T, M)`` (the mean of each
        frame's ``r`` text frames): what the key route addresses the memory with."""
        if self.text_rate == 1:
            return logits
        return logits.view(logits.shape[0], num_frames, self.text_rate, -1).mean(2)

    def style_logits(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> torch.Tensor:
        """``f_s`` ``(B, M)`` of raw audio ``(B, S)`` (the encoder normalises it per ``style.level``)."""
        if self.style is None:
            raise ConfigError("this model has no style encoder (model.style.enabled is false)")
        return self.style.logits(audio.float(), audio_lengths.to(audio.device))

    def output_scale(self, gain: torch.Tensor | None) -> torch.Tensor:
        """The head's output unit: ``motion_scale``, times the per-sample style gain ``(B,)``
        (:meth:`StyleEncoder.gain`; None when ``model.style.gain`` is off or there is no style encoder)."""
        return self.motion_scale if gain is None else self.motion_scale * gain

    def _decode(
        self,
        audio: torch.Tensor,
        audio_n: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        frame_lengths: torch.Tensor,
        num_frames: int,
        vertices: torch.Tensor | None,
        teacher_forcing: bool,
        chunked: bool,
    ) -> dict[str, Any]:
        r = self.text_rate
        valid = lengths_to_mask(frame_lengths, num_frames)
        logits = self.text_logits(audio_n, audio_lengths, frame_lengths, num_frames, chunked)  # (B, rT, M)
        f_txt = self.text_proj(logits)  # (B, rT, D)
        l_frame = self.frame_logits(logits, num_frames)  # (B, T, M)
        f_frame = f_txt if r == 1 else self.text_proj(l_frame)
        out: dict[str, Any] = {"frame_mask": valid, "ctc_logits": logits, "ctc_lengths": frame_lengths * r}
        style_weights = None
        if self.style is not None:
            f_s = self.style.logits(audio.float(), audio_lengths)
            style_weights = self.style.weights(f_s)
            out.update(style_logits=f_s, style_weights=style_weights, style_anchor=self.style.embed(f_s))
            out["style_gain"] = self.style.gain(f_s)
        scale = self.output_scale(out.get("style_gain"))
        if self.memory is None:
            out["vertices"] = self.decoder(f_frame, f_txt, valid, templates, scale)
            return out
        key = self.memory.key_address(l_frame)  # (B, T, M)
        key_read = self.memory.key_read(key, style_weights)  # (B, T, D)
        out["key_address"] = key
        out["vertices"] = self.decoder(torch.cat([f_frame, key_read], dim=-1), f_txt, valid, templates, scale)
        if vertices is not None:
            # E_m(m (v - tau) / s) with the frame mask m and the unit s applied to E_m's (B, T, D) product
            # instead of its (B, T, 3V) input: the same values, two fewer passes over the largest tensor
            disp = (vertices - templates.unsqueeze(1)).flatten(2)
            prod = torch.nn.functional.linear(disp, self.motion_encoder.weight)
            rows = (valid.unsqueeze(-1) / self.motion_scale).to(prod.dtype)
            f_m = torch.addcmul(self.motion_encoder.bias.to(prod.dtype), prod, rows)  # (B, T, D)
            value = self.memory.value_address(f_m)
            out.update(motion_feat=f_m, value_address=value, value_read=self.memory.value_read(value))
            if teacher_forcing:
                out["teacher_vertices"] = self.decoder(
                    torch.cat([f_frame, f_m], dim=-1), f_txt, valid, templates, scale
                )
        return out

    # ------------------------------------------------------------------ forward / predict
    def forward(self, batch: Any, teacher_forcing: bool = False) -> MemoryTalkerOutput:
        """Training/validation pass on a :class:`memorytalker.data.Batch` (or any object with its fields).

        Uses ``audio``/``audio_lengths``/``templates``/``frame_lengths``; ``vertices`` (when present) for the
        value route and the teacher-forced pass; ``positive_audio``/``negative_audio`` (when present and the
        style encoder is on) for the triplet embeddings.

        Args:
            teacher_forcing: also run the teacher-forced pass (the decoder fed ``f_m``); it needs
                ``batch.vertices`` and the memory. Training runs it when the stage's loss weighs it
                (:attr:`memorytalker.models.losses.LossWeights.teacher_forcing`).
        """
        audio, audio_lengths, templates, vertices, frame_lengths, num_frames = self.batch_inputs(batch)
        dev = audio.device
        audio_n = normalize_waveform(audio.float(), audio_lengths)
        out = self._decode(
            audio,
            audio_n,
            audio_lengths,
            templates,
            frame_lengths,
            num_frames,
            vertices,
            bool(teacher_forcing),
            False,
        )
        if self.style is not None:
            for which in ("positive", "negative"):
                extra = getattr(batch, f"{which}_audio", None)
                lengths = getattr(batch, f"{which}_lengths", None)
                if extra is not None and lengths is not None:
                    f_s = self.style_logits(extra.to(dev), lengths.to(dev))
                    out[f"style_{which}"] = self.style.embed(f_s)
        return MemoryTalkerOutput(**out)

    def predict(
        self,
        audio: torch.Tensor,
        audio_lengths: torch.Tensor,
        templates: torch.Tensor,
        num_frames: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Inference: audio and neutral templates only (no speaker id, no reference motion).

        Runs in eval mode (restored afterwards); wrap in ``torch.inference_mode()`` for speed. Any length:
        every part is linear in length; Hugging Face backbones run in windows beyond ``chunk_seconds``.

        Args:
            audio: ``(B, S)`` 16 kHz mono, zero-padded. audio_lengths: ``(B,)``.
            templates: ``(B, V, 3)``.
            num_frames: ``(B,)`` frames per clip (None = ``round(S / 16000 * fps)``).

        Returns:
            ``(B, T, V, 3)``; frames past a clip's length hold its template.
        """

        def decode(audio_lengths: torch.Tensor, frame_lengths: torch.Tensor, t: int) -> torch.Tensor:
            audio_n = normalize_waveform(audio.float(), audio_lengths)
            tpl = templates.to(audio.device).float()
            return self._decode(audio, audio_n, audio_lengths, tpl, frame_lengths, t, None, False, True)[
                "vertices"
            ]

        return self.run_predict(audio, audio_lengths, templates, num_frames, decode)

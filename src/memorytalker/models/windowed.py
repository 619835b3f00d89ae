"""Windowed inference: audio of any length in bounded memory, equal to one :meth:`MemoryTalker.predict` call.

Every layer of the model is local in time (convolutions, ``+-window``-frame attention, per-frame heads), so
a mesh frame depends only on the audio around it. Four quantities are per clip, though, and are computed
first, in streaming passes over the audio that hold no more than one chunk of features at a time:

* the waveform normalisation (mean and variance of the clip's samples, float64 sums);
* the compact encoder's per-band log-mel mean (subtracted before its convolutions);
* the style encoder's slot weights: its convolutional features are computed window by window and only
  their per-channel mean and variance over the clip are kept (Chan's parallel update, float64), then
  pooled into ``f_s`` exactly as :meth:`StyleEncoder.logits` does (with ``level: normalized`` its own
  per-band log-mel mean is a pass of its own; with ``denoise`` its noise estimate two more: the per-frame
  total power, then the quiet frames' mean power per band).

Then the mesh frames are decoded in windows of ``W`` frames. A window's decoder runs over ``W`` frames plus
``decoder.layers x decoder.window`` frames of context on each side (its receptive field), and the text
features it reads are computed over that span plus the text encoder's receptive field (its attention layers,
positional convolution, convolutions and log-mel windows); the 50 Hz features are interpolated at the
positions the whole clip gives them. Context is cropped, and the vertex head runs only on the ``W``
frames kept. Because the context covers every receptive field, a window's frames equal the whole-clip
frames up to floating-point rounding (sums in another order: measured max abs difference below 1e-6 of
the vertex units, ``tests/test_windowed.py``), not up to an approximation.

Hugging Face backbones (whose transformer attends over the whole input) keep their own windows
(``chunk_seconds`` + ``context_seconds``, as :meth:`MemoryTalker.predict` runs them): their CTC logits
``(r T, M)`` are computed for the clip first (small: ``M`` numbers per frame), then the decoder runs in
windows as above. A decoder with dense attention (``decoder.window: 0``) has no finite receptive field: such
a model, and any clip of at most ``W`` frames, runs in one :meth:`predict` call.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch

from memorytalker.models.layers import conv_out_lengths, interpolation_positions

if TYPE_CHECKING:
    from memorytalker.models.backbones.compact import CompactEncoder
    from memorytalker.models.mel import LogMel, NoiseSubtraction
    from memorytalker.models.memorytalker import MemoryTalker
    from memorytalker.models.style import StyleEncoder

#: Default window: seconds of audio (mesh frames at the model's fps) decoded per window.
DEFAULT_WINDOW_SECONDS = 30.0
#: Samples per chunk of the waveform statistics pass (about a minute of 16 kHz audio).
STATS_CHUNK_SAMPLES = 1 << 20
#: Log-mel frames per chunk of the log-mel statistics passes (60 s at 100 Hz).
MEL_CHUNK_FRAMES = 6000
#: Epsilon of :func:`memorytalker.models.mel.normalize_waveform` and of ``masked_mean_std``.
WAVE_EPS = 1e-7
STD_EPS = 1e-5


@contextmanager
def _eval(model: torch.nn.Module):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def waveform_stats(audio: torch.Tensor, eps: float = WAVE_EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mean, sqrt(var + eps))`` of ``(S,)`` samples as float32 scalars: the normalisation of
    :func:`~memorytalker.models.mel.normalize_waveform`, with float64 sums over chunks (no full-size
    temporaries)."""
    n = audio.numel()
    total = 0.0
    for a in range(0, n, STATS_CHUNK_SAMPLES):
        total += float(audio[a : a + STATS_CHUNK_SAMPLES].double().sum())
    mean = total / n
    sq = 0.0
    for a in range(0, n, STATS_CHUNK_SAMPLES):
        sq += float((audio[a : a + STATS_CHUNK_SAMPLES].double() - mean).square().sum())
    var = torch.tensor(sq / n, dtype=torch.float32, device=audio.device)
    return torch.tensor(mean, dtype=torch.float32, device=audio.device), torch.sqrt(var + eps)


def mel_frames(logmel: LogMel, source, num_samples: int, m0: int, m1: int) -> torch.Tensor:
    """Log-mel frames ``[m0, m1)`` ``(n_mels, m1 - m0)`` of a clip of ``num_samples`` samples, as
    ``logmel`` of the whole clip gives them, computed from the samples they need (``source(s0, s1)``)."""
    hop, half = logmel.hop_length, logmel.n_fft // 2
    f0 = max(0, m0 - -(-half // hop))  # frames before m0 whose window would reach past the slice start
    s0 = f0 * hop
    s1 = min(num_samples, (m1 - 1) * hop + logmel.n_fft - half)
    seg = source(s0, s1)
    db, _ = logmel(seg[None], torch.tensor([s1 - s0], device=seg.device))
    return db[0, :, m0 - f0 : m1 - f0]


def mel_band_mean(logmel: LogMel, source, num_samples: int, frames_of=None) -> torch.Tensor:
    """Per-band mean ``(1, n_mels, 1)`` over all of a clip's log-mel frames (``masked_mean_std``'s mean).
    ``frames_of(m0, m1)``: the frames to average (default :func:`mel_frames` of ``logmel``)."""
    if frames_of is None:

        def frames_of(m0: int, m1: int) -> torch.Tensor:
            return mel_frames(logmel, source, num_samples, m0, m1)

    frames = num_samples // logmel.hop_length + 1
    total = None
    for m0 in range(0, frames, MEL_CHUNK_FRAMES):
        s = frames_of(m0, min(frames, m0 + MEL_CHUNK_FRAMES)).double().sum(-1)
        total = s if total is None else total + s
    return (total / frames).float()[None, :, None]


def mel_noise_estimate(
    logmel: LogMel, source, num_samples: int, subtraction: NoiseSubtraction
) -> tuple[torch.Tensor, torch.Tensor]:
    """``subtraction.estimate`` of a whole clip, streamed: the per-frame total power (``F`` numbers) first,
    then the mean power per band of the quiet frames. ``(noise (n_mels, 1), floor ())``."""
    frames = num_samples // logmel.hop_length + 1
    chunks = [(m0, min(frames, m0 + MEL_CHUNK_FRAMES)) for m0 in range(0, frames, MEL_CHUNK_FRAMES)]

    def power(m0: int, m1: int) -> torch.Tensor:
        return 10.0 ** (mel_frames(logmel, source, num_samples, m0, m1).double() / 10.0)

    totals = torch.cat([power(m0, m1).sum(0) for m0, m1 in chunks])
    quiet = subtraction.quiet_frames(totals)
    noise = sum(power(m0, m1)[:, quiet[m0:m1]].sum(-1) for m0, m1 in chunks)
    return (noise / quiet.sum())[:, None], subtraction.floor(totals, logmel.n_mels)


class _Moments:
    """Running per-channel count, mean and sum of squared deviations (Chan et al.'s parallel update)."""

    def __init__(self) -> None:
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, x: torch.Tensor) -> None:
        """``x`` ``(C, n)``."""
        x = x.double()
        n_b = x.shape[-1]
        if n_b == 0:
            return
        mean_b = x.mean(-1)
        m2_b = (x - mean_b[:, None]).square().sum(-1)
        if self.mean is None:
            self.n, self.mean, self.m2 = n_b, mean_b, m2_b
            return
        n = self.n + n_b
        delta = mean_b - self.mean
        self.mean = self.mean + delta * (n_b / n)
        self.m2 = self.m2 + m2_b + delta.square() * (self.n * n_b / n)
        self.n = n


def style_logits(
    style: StyleEncoder, raw, normalised, num_samples: int, window_frames: int = MEL_CHUNK_FRAMES
) -> torch.Tensor:
    """``f_s`` ``(1, M)`` of a whole clip (:meth:`StyleEncoder.logits`) with its features held one window
    of ``window_frames`` log-mel frames (plus context) at a time. ``raw`` / ``normalised``: sample sources."""
    from memorytalker.models.style import DB_SCALE, NORMALIZED_WAVEFORM_LEVELS, level_offset

    cfg = style.cfg
    source = normalised if cfg.level in NORMALIZED_WAVEFORM_LEVELS else raw
    frames = num_samples // style.mel.hop_length + 1
    subtraction = cfg.noise_subtraction()
    noise = mel_noise_estimate(style.mel, source, num_samples, subtraction) if cfg.denoise else None

    def frames_of(m0: int, m1: int) -> torch.Tensor:  # the log-mel the encoder hears, (n_mels, m1 - m0)
        mel = mel_frames(style.mel, source, num_samples, m0, m1)
        return mel if noise is None else subtraction.subtract(mel, *noise)

    # band means (n_mels, 1), against (n_mels, F) frames
    offset = level_offset(cfg.level, lambda: mel_band_mean(style.mel, source, num_samples, frames_of)[0])
    strides = style.strides
    total = math.prod(strides)
    length, rf, cum = frames, 2, 1  # conv_in keeps the length; receptive half-width in log-mel frames
    for s in strides:
        length = int(conv_out_lengths(torch.tensor(length), 5, s, 2))
        rf += 4 * cum + s * cum  # two k=5 convolutions at this rate, the strided shortcut's pooling
        cum *= s
    ctx = -(-(rf + 2 * total) // total) * total  # a multiple of the total stride (aligned windows)
    step = max(1, window_frames // total)
    moments = _Moments()
    for j0 in range(0, length, step):
        j1 = min(length, j0 + step)
        ma, mb = max(0, j0 * total - ctx), min(frames, j1 * total + ctx)
        mel = frames_of(ma, mb)
        x, _ = style.features(((mel - offset) / DB_SCALE)[None], torch.tensor([mb - ma], device=mel.device))
        moments.add(x[0, :, j0 - ma // total : j1 - ma // total])
    mean = moments.mean.float()
    var = (moments.m2 / max(moments.n, 1)).float()
    return style.pooled_logits(mean[None], torch.sqrt(var + STD_EPS)[None])


class _CompactText:
    """CTC logits of text-frame ranges of a clip from the compact encoder, each computed from the audio
    it depends on: equal to the encoder run on the whole clip."""

    def __init__(self, bb: CompactEncoder, source, num_samples: int, num_text: int) -> None:
        self.bb, self.source, self.num_samples, self.num_text = bb, source, num_samples, num_text
        self.num_mel = num_samples // bb.mel.hop_length + 1
        length = torch.tensor(self.num_mel)
        for conv in bb.convs:
            length = conv_out_lengths(length, conv.kernel_size[0], conv.stride[0], conv.padding[0])
        self.num_50hz = int(length)  # A: 50 Hz frames of the whole clip
        self.mean = mel_band_mean(bb.mel, source, num_samples)
        k = bb.convs[0].kernel_size[0] // 2
        self.front_ctx = len(bb.convs) * k + 2  # 50 Hz frames
        self.text_ctx = len(bb.layers) * bb.cfg.window + bb.pos_conv.kernel_size[0] // 2 + 1

    def positions(self, h0: int, h1: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``interpolate_frames``' ``(lo, hi, frac)`` for text frames ``[h0, h1)`` of the whole clip."""
        t = torch.arange(h0, h1, dtype=torch.float64)[None, :]
        lo, hi, frac = interpolation_positions(
            t, torch.tensor([self.num_50hz]), torch.tensor([self.num_text]), self.num_50hz
        )
        return lo[0], hi[0], frac[0]

    def logits(self, g0: int, g1: int) -> torch.Tensor:
        """``(1, g1 - g0, M)`` logits of text frames ``[g0, g1)``."""
        bb = self.bb
        h0, h1 = max(0, g0 - self.text_ctx), min(self.num_text, g1 + self.text_ctx)
        lo, hi, frac = self.positions(h0, h1)
        c0, c1 = int(lo.min()), int(hi.max()) + 1
        e0, e1 = max(0, c0 - self.front_ctx), min(self.num_50hz, c1 + self.front_ctx)
        stride = bb.convs[0].stride[0]
        ma = e0 * stride
        mb = min(self.num_mel, e1 * stride + bb.convs[0].kernel_size[0])
        mel = mel_frames(bb.mel, self.source, self.num_samples, ma, mb)
        x, _ = bb.front(mel[None], torch.tensor([mb - ma], device=mel.device), self.mean)  # (1, A', D)
        dev = x.device
        lo, hi = (lo - e0).to(dev), (hi - e0).to(dev)
        frac = frac.to(dev).to(x.dtype)[:, None]
        g_lo, g_hi = x[0, lo], x[0, hi]
        text = (g_lo + (g_hi - g_lo) * frac)[None]  # (1, h1 - h0, D)
        n = h1 - h0
        out = bb.encode(text, torch.tensor([n], device=dev), n)
        return out[:, g0 - h0 : g1 - h0]


class _PrecomputedText:
    """CTC logits of a whole clip computed at once (backbones that window themselves)."""

    def __init__(self, logits: torch.Tensor) -> None:
        self.all = logits

    def logits(self, g0: int, g1: int) -> torch.Tensor:
        return self.all[:, g0:g1]


class WindowedPrediction:
    """Vertices of one clip, window by window (module docstring).

    Args:
        model: a :class:`MemoryTalker` (eval mode is set per window and restored).
        audio: ``(S,)`` 16 kHz mono samples (on the model's device).
        template: ``(V, 3)`` neutral face.
        window_frames: mesh frames per window ``W`` (>= 1).

    Attributes:
        frames: ``T`` of the clip; windowed: False when the clip runs in one :meth:`predict` call.

    Iterating yields ``(start, (n, V, 3) float32 tensor)`` for consecutive windows covering ``[0, T)``.
    Call under ``torch.inference_mode()``.
    """

    def __init__(
        self, model: MemoryTalker, audio: torch.Tensor, template: torch.Tensor, window_frames: int
    ) -> None:
        if audio.dim() != 1:
            raise ValueError(f"audio must be (S,) samples, got shape {tuple(audio.shape)}")
        model._check_templates(template[None])
        self.model, self.audio, self.template = model, audio.float(), template.float()
        self.num_samples = int(audio.numel())
        self.frames = int(model.frames_for(torch.tensor([self.num_samples]))[0])
        self.window_frames = max(1, int(window_frames))
        dec = model.cfg.decoder
        self.decoder_context = dec.layers * dec.window
        # Windows are MemoryTalker's (its banded decoder); another kind (FaceFormer: autoregressive with a
        # bounded key/value cache) runs the clip in one predict call.
        memorytalker = model.cfg.kind == "memorytalker"
        self.windowed = memorytalker and dec.window > 0 and self.frames > self.window_frames
        self._text = None
        self._style_weights = None
        self._scale = model.motion_scale

    def _raw(self, s0: int, s1: int) -> torch.Tensor:
        return self.audio[s0:s1]

    def _normalised(self, s0: int, s1: int) -> torch.Tensor:
        return (self.audio[s0:s1] - self._mean) / self._denom

    def _prepare(self) -> None:
        from memorytalker.models.backbones.compact import CompactEncoder

        m, n = self.model, self.num_samples
        self._mean, self._denom = waveform_stats(self.audio)
        if m.style is not None:
            f_s = style_logits(m.style, self._raw, self._normalised, n)
            self._style_weights = m.style.weights(f_s)
            self._scale = m.output_scale(m.style.gain(f_s))
        r = m.text_rate
        if isinstance(m.backbone, CompactEncoder):
            self._text = _CompactText(m.backbone, self._normalised, n, r * self.frames)
        else:
            audio_n = torch.empty_like(self.audio)
            for a in range(0, n, STATS_CHUNK_SAMPLES):
                audio_n[a : a + STATS_CHUNK_SAMPLES] = self._normalised(a, a + STATS_CHUNK_SAMPLES)
            lengths = torch.tensor([n], device=self.audio.device)
            frames = torch.tensor([self.frames], device=self.audio.device)
            self._text = _PrecomputedText(m.text_logits(audio_n[None], lengths, frames, self.frames, True))

    def window(self, t0: int, t1: int) -> torch.Tensor:
        """``(t1 - t0, V, 3)`` vertices of mesh frames ``[t0, t1)`` (after :meth:`_prepare`)."""
        m = self.model
        r = m.text_rate
        d0, d1 = max(0, t0 - self.decoder_context), min(self.frames, t1 + self.decoder_context)
        n = d1 - d0
        logits = self._text.logits(r * d0, r * d1)  # (1, r n, M)
        f_txt = m.text_proj(logits)
        l_frame = m.frame_logits(logits, n)
        f_frame = f_txt if r == 1 else m.text_proj(l_frame)
        valid = torch.ones(1, n, dtype=torch.bool, device=logits.device)
        if m.memory is None:
            fused = f_frame
        else:
            key_read = m.memory.key_read(m.memory.key_address(l_frame), self._style_weights)
            fused = torch.cat([f_frame, key_read], dim=-1)
        x = m.decoder.hidden(fused, f_txt, valid, start=d0)[:, t0 - d0 : t1 - d0]
        return m.decoder.vertices(x, self.template[None], self._scale)[0]

    def __iter__(self) -> Iterator[tuple[int, torch.Tensor]]:
        m = self.model
        with _eval(m):
            if not self.windowed:
                lengths = torch.tensor([self.num_samples], device=self.audio.device)
                yield 0, m.predict(self.audio[None], lengths, self.template[None])[0]
                return
            self._prepare()
        for t0 in range(0, self.frames, self.window_frames):
            with _eval(m):
                out = self.window(t0, min(self.frames, t0 + self.window_frames))
            yield t0, out


def window_frames_for(seconds: float, fps: float) -> int:
    """Mesh frames per window of ``seconds`` at ``fps`` (at least 1)."""
    return max(1, int(round(float(seconds) * float(fps))))


__all__ = [
    "DEFAULT_WINDOW_SECONDS",
    "WindowedPrediction",
    "mel_band_mean",
    "mel_frames",
    "style_logits",
    "waveform_stats",
    "window_frames_for",
]

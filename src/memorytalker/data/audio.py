"""Audio input: any file format, sample rate and channel count -> 16 kHz mono float32.

* WAV/FLAC/OGG are read with ``soundfile`` (libsndfile); every other container (mp3, m4a, webm/opus from a
  browser recorder, ...) is decoded with PyAV (FFmpeg). A file neither can read raises :class:`AudioError`
  naming the file and both causes.
* Channels are averaged; resampling is polyphase (``scipy.signal.resample_poly``) with an exact rational
  ratio, so 44.1 kHz -> 16 kHz is not approximated.
* Empty, NaN/Inf and (optionally) silent audio are refused with a clear message.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np

from memorytalker.errors import AudioError

#: Sample rate every model in this package consumes.
SAMPLE_RATE = 16000
#: Shortest recording animated (seconds), by ``memorytalker animate``, the Python API and the web server
#: alike: a few mesh frames, enough for the speech encoders' receptive fields.
MIN_SPEECH_SECONDS = 0.25
#: Largest difference, in mesh frames, allowed between a clip's vertex frames and its audio duration x fps
#: (the same rule in ``data check``, training, ``evaluate`` and ``evaluate-dir``).
FRAME_TOLERANCE = 1.0

AudioSource = str | Path | bytes | np.ndarray


def resample(audio: np.ndarray, orig_rate: int, target_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Resample ``(S,)`` or ``(S, C)`` audio along axis 0 with an exact rational polyphase filter."""
    if orig_rate <= 0 or target_rate <= 0:
        raise AudioError(f"sample rates must be positive (got {orig_rate} -> {target_rate})")
    if int(orig_rate) == int(target_rate):
        return np.asarray(audio, dtype=np.float32)
    from scipy.signal import resample_poly

    ratio = Fraction(int(target_rate), int(orig_rate))
    out = resample_poly(np.asarray(audio, dtype=np.float64), ratio.numerator, ratio.denominator, axis=0)
    return out.astype(np.float32)


def pcm_to_float(audio: np.ndarray) -> np.ndarray:
    """Integer PCM (int16, int32, uint8) -> float32 in [-1, 1); float arrays are returned as float32."""
    a = np.asarray(audio)
    if a.dtype == np.int16:
        return a.astype(np.float32) / 32768.0
    if a.dtype == np.int32:
        return (a.astype(np.float64) / 2147483648.0).astype(np.float32)
    if a.dtype == np.uint8:
        return (a.astype(np.float32) - 128.0) / 128.0
    if a.dtype.kind == "f":
        return a.astype(np.float32, copy=False)
    raise AudioError(f"unsupported audio sample type {a.dtype} (use float, int16, int32 or uint8 PCM)")


def _to_mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio)
    if audio.ndim == 1:
        return audio
    if audio.ndim == 2:
        return audio.mean(axis=1)
    raise AudioError(f"audio must be 1-D (samples) or 2-D (samples, channels), got shape {audio.shape}")


def _read_soundfile(src) -> tuple[np.ndarray, int]:
    import soundfile as sf

    data, rate = sf.read(src, dtype="float32", always_2d=True)
    return data, int(rate)


def _read_pyav(src) -> tuple[np.ndarray, int]:
    import av

    with av.open(src) as container:
        streams = [s for s in container.streams if s.type == "audio"]
        if not streams:
            raise AudioError("the file has no audio stream")
        stream = streams[0]
        resampler = av.AudioResampler(format="flt", layout="mono")
        chunks = []
        rate = None
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                rate = out.sample_rate
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            rate = out.sample_rate
            chunks.append(out.to_ndarray().reshape(-1))
    if rate is None or not chunks:
        raise AudioError("the audio stream decodes to zero samples")
    return np.concatenate(chunks)[:, None].astype(np.float32), int(rate)


def read_audio_file(source: str | Path | bytes) -> tuple[np.ndarray, int]:
    """Decode a file (path or bytes) to ``((S, C) float32, rate)`` at its native rate."""
    name = "<bytes>" if isinstance(source, bytes) else str(source)
    if not isinstance(source, bytes):
        path = Path(source)
        if not path.exists():
            raise AudioError(f"audio file not found: {path}")
        if path.is_dir():
            raise AudioError(f"expected an audio file, got a directory: {path}")
        if path.stat().st_size == 0:
            raise AudioError(f"audio file is empty (0 bytes): {path}")
    elif len(source) == 0:
        raise AudioError("audio data is empty (0 bytes)")

    def _src():
        return io.BytesIO(source) if isinstance(source, bytes) else str(source)

    try:
        return _read_soundfile(_src())
    except Exception as sf_exc:  # not a libsndfile format: try FFmpeg
        try:
            return _read_pyav(_src())
        except AudioError as exc:
            raise AudioError(f"cannot read audio {name}: {exc}") from None
        except Exception as av_exc:
            raise AudioError(
                f"cannot read audio {name}: not a readable audio file "
                f"(libsndfile: {sf_exc}; ffmpeg: {av_exc})"
            ) from None


def load_audio(
    source: AudioSource,
    sample_rate: int | None = None,
    target_rate: int = SAMPLE_RATE,
    min_duration: float = 0.0,
    max_duration: float | None = None,
    reject_silence: bool = False,
) -> np.ndarray:
    """Load audio from a path, encoded bytes or an array and return ``(S,)`` float32 mono at ``target_rate``.

    Args:
        source: file path, encoded bytes (any format), or an array ``(S,)``/``(S, C)`` (float in [-1, 1],
            or integer PCM, which is scaled: int16 / 32768, ...).
        sample_rate: required when ``source`` is an array (its rate); ignored otherwise.
        target_rate: output rate (16 kHz by default).
        min_duration: refuse shorter audio (seconds). Zero samples are always refused.
        max_duration: refuse longer audio (seconds), e.g. a web upload limit.
        reject_silence: refuse audio whose peak is below -60 dBFS (nothing to animate).
    """
    if isinstance(source, np.ndarray):
        if sample_rate is None:
            raise AudioError("sample_rate is required when audio is given as an array")
        data = pcm_to_float(source)
        rate = int(sample_rate)
        name = "audio array"
    else:
        data, rate = read_audio_file(source)
        name = "<bytes>" if isinstance(source, bytes) else str(source)
    mono = _to_mono(data).astype(np.float32)
    if mono.size == 0:
        raise AudioError(f"{name}: audio has no samples")
    if not np.all(np.isfinite(mono)):
        raise AudioError(f"{name}: audio contains NaN or Inf samples")
    duration = mono.size / rate
    if duration < min_duration:
        raise AudioError(
            f"{name}: audio is {duration:.3f} s long, shorter than the minimum of {min_duration:g} s of speech"
        )
    if max_duration is not None and duration > max_duration:
        raise AudioError(
            f"{name}: audio is {duration:.1f} s long, longer than the limit of {max_duration:g} s"
        )
    if reject_silence and float(np.max(np.abs(mono))) < 1e-3:
        raise AudioError(f"{name}: audio is silent (peak below -60 dBFS); there is no speech to animate")
    return resample(mono, rate, target_rate)


def write_wav(path: str | Path, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write mono float audio as 16-bit PCM WAV (clipped to [-1, 1])."""
    import soundfile as sf

    audio = np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0)
    sf.write(str(path), audio, int(rate), subtype="PCM_16")


def audio_duration(path: str | Path) -> float:
    """Duration in seconds of an audio file from its header (libsndfile), else its container (PyAV), else
    by decoding it."""
    import soundfile as sf

    try:
        info = sf.info(str(path))
        if info.samplerate > 0:
            return info.frames / info.samplerate
    except Exception:  # not a libsndfile format
        pass
    data, rate = read_audio_file(path)
    return data.shape[0] / rate


def frame_mismatch(seconds: float, frames: int, fps: float) -> str | None:
    """None when ``frames`` mesh frames fit ``seconds`` of audio at ``fps`` within :data:`FRAME_TOLERANCE`,
    else a description: ``"audio is 4.000 s = 120.0 frames at 30 fps but the vertices have 40 frames"``."""
    audio_frames = seconds * fps
    if abs(audio_frames - frames) <= FRAME_TOLERANCE:
        return None
    return (
        f"audio is {seconds:.3f} s = {audio_frames:.1f} frames at {fps:g} fps but the vertices have {frames} "
        f"frames (tolerance {FRAME_TOLERANCE:g} frame)"
    )


def num_frames(num_samples: int, fps: float, sample_rate: int = SAMPLE_RATE) -> int:
    """Mesh frames covered by ``num_samples`` of audio: ``round(S / sample_rate * fps)`` (at least 1)."""
    return max(1, int(round(num_samples / sample_rate * fps)))

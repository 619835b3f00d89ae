"""MP4 output: H.264 (yuv420p, ``+faststart``) with the speech muxed as AAC, through PyAV (FFmpeg).

yuv420p H.264 + AAC-LC in MP4 plays in every browser and phone. The audio is resampled to 48 kHz for
the AAC stream (the widest-supported rate) with FFmpeg's libswresample.

Length: with audio the video has exactly ``ceil(duration * fps)`` frames (``duration`` = samples /
sample rate), so the picture never stops before the sound: a longer vertex sequence is trimmed, a
shorter one holds its last frame. Without audio it has ``T`` frames.

The file is written to a temporary name next to ``out_path`` and renamed when complete: a failed job
leaves no half-written video.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from fractions import Fraction
from pathlib import Path

import numpy as np

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.render.errors import RenderError
from memorytalker.topology import FaceTopology

#: Sample rate of the AAC stream in the MP4.
AAC_RATE = 48000


def _resample_for_aac(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """``(S,)`` float32 at ``sample_rate`` -> ``AAC_RATE`` with FFmpeg's libswresample (through PyAV, which
    is loaded anyway: no scipy.signal import, which costs seconds at start-up)."""
    import av

    if int(sample_rate) == AAC_RATE:
        return audio
    resampler = av.AudioResampler(format="flt", layout="mono", rate=AAC_RATE)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(audio, np.float32)[None], format="flt", layout="mono"
    )
    frame.sample_rate = int(sample_rate)
    out = [f.to_ndarray().reshape(-1) for f in (*resampler.resample(frame), *resampler.resample(None))]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def video_frame_count(num_samples: int, sample_rate: int, fps: float) -> int:
    """``ceil(num_samples / sample_rate * fps)``: video frames covering the whole audio (at least 1)."""
    exact = Fraction(int(num_samples), int(sample_rate)) * Fraction(fps).limit_denominator(1_000_000)
    return max(1, math.ceil(exact))


def _load_audio(audio, sample_rate: int) -> tuple[np.ndarray, int]:
    from memorytalker.data.audio import load_audio

    if isinstance(audio, (str, Path)):
        return load_audio(audio), SAMPLE_RATE
    arr = np.asarray(audio)
    if arr.ndim != 1:
        raise RenderError(f"audio must be a 1-D (S,) array or a file path, got an array of shape {arr.shape}")
    return load_audio(arr, sample_rate=sample_rate, target_rate=int(sample_rate)), int(sample_rate)


class VideoWriter:
    """Streams RGB frames (and optionally mono audio) into an H.264/AAC MP4.

    Args:
        path: the ``.mp4`` to write.
        width, height: frame size (even numbers).
        fps: frame rate (may be fractional).
        audio: ``(S,)`` float32 mono samples in [-1, 1], or None.
        sample_rate: rate of ``audio``.
        crf, preset: x264 quality (lower crf = better) and speed preset.

    Use as a context manager; :meth:`write` one ``(height, width, 3)`` uint8 frame at a time.
    """

    def __init__(
        self,
        path: str | Path,
        width: int,
        height: int,
        fps: float,
        audio: np.ndarray | None = None,
        sample_rate: int = SAMPLE_RATE,
        crf: int = 20,
        preset: str = "superfast",
    ) -> None:
        import av

        if width % 2 or height % 2 or width < 16 or height < 16:
            raise RenderError(f"video size must be even and >= 16 (yuv420p), got {width}x{height}")
        if not fps > 0:
            raise RenderError(f"fps must be positive, got {fps}")
        self.path = Path(path)
        self.width, self.height = int(width), int(height)
        self.frames = 0
        try:
            self.container = av.open(
                str(self.path), mode="w", format="mp4", options={"movflags": "+faststart"}
            )
        except Exception as exc:
            raise RenderError(f"cannot create video file {self.path}: {exc}") from exc
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.width, self.stream.height = self.width, self.height
            self.stream.pix_fmt = "yuv420p"
            self.stream.options = {"crf": str(int(crf)), "preset": preset}
            self.audio_stream = None
            if audio is not None:
                self._add_audio(np.asarray(audio, dtype=np.float32), int(sample_rate))
        except RenderError:
            self.container.close()
            raise
        except Exception as exc:
            self.container.close()
            raise RenderError(f"cannot set up the H.264/AAC encoders for {self.path}: {exc}") from exc

    def _add_audio(self, audio: np.ndarray, sample_rate: int) -> None:
        import av

        if audio.ndim != 1 or audio.size == 0:
            raise RenderError(f"audio must be non-empty (S,) samples, got shape {audio.shape}")
        samples = np.clip(_resample_for_aac(audio, sample_rate), -1.0, 1.0).astype(np.float32)
        stream = self.container.add_stream("aac", rate=AAC_RATE)
        stream.layout = "mono"
        stream.bit_rate = 96_000
        self.audio_stream = stream
        chunk = 1024
        for start in range(0, samples.size, chunk):
            part = samples[start : start + chunk]
            frame = av.AudioFrame.from_ndarray(part.reshape(1, -1), format="fltp", layout="mono")
            frame.sample_rate = AAC_RATE
            frame.pts = start
            frame.time_base = Fraction(1, AAC_RATE)
            self.container.mux(stream.encode(frame))
        self.container.mux(stream.encode(None))

    def write(self, frame: np.ndarray) -> None:
        """Encode one ``(height, width, 3)`` uint8 RGB frame."""
        import av

        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise RenderError(
                f"video frame {self.frames}: expected ({self.height}, {self.width}, 3) uint8, "
                f"got {frame.shape} {frame.dtype}"
            )
        vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        vf.pts = self.frames
        try:
            self.container.mux(self.stream.encode(vf))
        except Exception as exc:
            raise RenderError(f"video frame {self.frames}: the H.264 encoder failed: {exc}") from exc
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self.container is None:
            return
        try:
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()
            self.container = None

    def abort(self) -> None:
        """Close without flushing (after an error)."""
        if self.container is not None:
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - already failing
                pass
            self.container = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    frames: Iterable[np.ndarray],
    out_path: str | Path,
    width: int,
    height: int,
    fps: float,
    audio: np.ndarray | None = None,
    sample_rate: int = SAMPLE_RATE,
    total: int | None = None,
    progress: bool = True,
    desc: str = "render",
) -> Path:
    """Encode ``frames`` to ``out_path`` atomically (temporary file, then rename), with a progress bar."""
    from tqdm.auto import tqdm

    out_path = Path(out_path)
    if out_path.suffix.lower() != ".mp4":
        raise RenderError(f"the video must be an .mp4 file, got {out_path}")
    if out_path.is_dir():
        raise RenderError(f"{out_path} is a directory; give the .mp4 file to write")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(f".{out_path.stem}.{os.getpid()}.partial.mp4")
    try:
        with VideoWriter(tmp, width, height, fps, audio=audio, sample_rate=sample_rate) as writer:
            bar = tqdm(total=total, desc=desc, unit="frame", disable=not progress, dynamic_ncols=True)
            try:
                for frame in frames:
                    writer.write(frame)
                    bar.update(1)
            finally:
                bar.close()
        os.replace(tmp, out_path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return out_path


def render_video(
    vertices: np.ndarray,
    faces: np.ndarray,
    fps: float,
    out_path: str | Path,
    audio: np.ndarray | str | Path | None = None,
    sample_rate: int = SAMPLE_RATE,
    size: int = 512,
    ground_truth: np.ndarray | None = None,
    lip_plot: bool = False,
    topology: FaceTopology | None = None,
    *,
    lip_plot_png: str | Path | None = None,
    units: str | None = None,
    camera=None,
    samples: int = 0,
    progress: bool = True,
    colours: np.ndarray | None = None,
) -> Path:
    """Render ``(T, V, 3)`` vertices to an H.264/AAC MP4 with a fixed frontal camera.

    Args:
        vertices: ``(T, V, 3)`` (or ``(T, V*3)``) vertex positions at ``fps``.
        faces: ``(F, 3)`` triangles.
        fps: mesh frame rate = video frame rate.
        out_path: the ``.mp4`` to write (parent folders are created).
        audio: ``(S,)`` float32 samples at ``sample_rate``, or an audio file path (any format; decoded to
            16 kHz mono), or None for a silent video.
        sample_rate: rate of an audio array.
        size: panel size in pixels (even; 512 by default).
        ground_truth: optional ``(T', V, 3)`` drawn to the right of the prediction.
        lip_plot: draw the lip-opening curve(s) under the video (needs ``topology``).
        topology: the :class:`FaceTopology` (lip-opening vertices; vertex count checked).
        lip_plot_png: also write the lip-opening curve(s) as a separate PNG here (needs ``topology``).
        units: vertex units for the plot axis (``"m"`` shows millimetres).
        camera: a fixed :class:`~memorytalker.render.camera.Camera` (default: framed on the first frame).
        samples: MSAA samples (0 = off).
        progress: show a progress bar.
        colours: optional ``(V, 3)`` per-vertex linear RGB (the project's face: skin, teeth, gums, eyes).

    Returns the written path. With audio the video has ``ceil(duration * fps)`` frames (trimmed or holding
    the last frame); without, ``T``.

    Raises:
        RenderError: no EGL, no triangles, bad shapes or vertex counts, NaN vertices (naming the frame),
            encoder failure. AudioError: unreadable audio.
    """
    from memorytalker.render.frames import as_sequence, fit_length, frame_layout, render_frames

    pred = as_sequence(vertices, "vertices")
    gt = None if ground_truth is None else as_sequence(ground_truth, "ground-truth vertices", pred.shape[1])
    samples_audio, rate = (None, int(sample_rate)) if audio is None else _load_audio(audio, sample_rate)
    total = pred.shape[0] if samples_audio is None else video_frame_count(samples_audio.size, rate, fps)
    if lip_plot_png is not None:
        if topology is None:
            raise RenderError("the lip-opening PNG needs the face topology (lips region): give topology=")
        from memorytalker.render.plots import save_lip_plot
        from memorytalker.topology import lip_opening

        curves = {"prediction": lip_opening(pred[fit_length(pred.shape[0], total)], topology)}
        if gt is not None:
            curves["ground truth"] = lip_opening(gt[fit_length(gt.shape[0], total)], topology)
        save_lip_plot(lip_plot_png, [(Path(out_path).stem, curves)], fps, units=units)
    width, height, _ = frame_layout(size, gt is not None, lip_plot)
    frames = render_frames(
        pred,
        faces,
        size=size,
        ground_truth=gt,
        lip_plot=lip_plot,
        topology=topology,
        fps=fps,
        num_frames=total,
        camera=camera,
        units=units,
        samples=samples,
        colours=colours,
    )
    try:
        return write_video(
            frames,
            out_path,
            width,
            height,
            fps,
            audio=samples_audio,
            sample_rate=rate,
            total=total,
            progress=progress,
        )
    finally:
        frames.close()

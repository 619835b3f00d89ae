"""Speech to files: the one animate-to-files pipeline behind ``memorytalker animate`` and the web server.

:func:`animate_to_files` decodes the audio once and predicts the vertices in windows
(:meth:`memorytalker.inference.Animator.windows`, exact: :mod:`memorytalker.models.windowed`), each checked
(finite, ``(n, V, 3)``) before it is written straight into the memory-mapped ``.npy``, so memory does not
grow with the length of the recording; video and ARKit weights are then made from that file frame by frame
(chunk by chunk). It writes into the output folder:

* ``<name>.npy``: the predicted vertices ``(T, V, 3)`` of the model's topology;
* ``<name>.csv``: on the project's face, the 52 ARKit weights per frame in Live Link Face's layout (solved
  from the vertices, :mod:`memorytalker.face.solve`);
* ``<name>.wav`` + ``<name>.glb``: glTF 2.0 with the speech beside it; on the project's face the whole
  head (skin, mouth socket, gums, teeth, eyes) with the 52 ARKit shapes as named morph targets animated by
  those weights, on any other topology PCA morph targets of the vertices;
* ``<name>.mp4``: H.264 with the speech; on the project's face the predicted skin with the mouth inside,
  teeth and eyes posed by the weights.

Each file is written under a temporary name and renamed when complete; if any step fails, the files this
call already wrote are removed, so a failed job leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from memorytalker.data.audio import MIN_SPEECH_SECONDS, SAMPLE_RATE, AudioSource, load_audio
from memorytalker.errors import MemoryTalkerError

#: Pipeline steps in order (the web page shows "step i of n").
STEPS = ("animating", "exporting", "rendering")


class AnimatorLike(Protocol):
    """What the pipeline needs of :class:`memorytalker.inference.Animator`."""

    fps: float

    @property
    def topology(self) -> Any: ...

    def animate(self, audio: Any, sample_rate: int | None = None, template: Any = None) -> np.ndarray: ...


@dataclass
class OutputOptions:
    """Which files :func:`animate_to_files` writes, and how.

    Attributes:
        video: write ``<name>.mp4`` (H.264 + the speech as AAC).
        glb: write ``<name>.glb`` (glTF 2.0, morph-target animation, the speech referenced beside it).
        csv: write ``<name>.csv`` (ARKit weights, Live Link Face layout) when the model animates the
            project's face.
        size: video size in pixels.
        progress: show a progress bar while rendering.
    """

    video: bool = True
    glb: bool = True
    csv: bool = True
    size: int = 512
    progress: bool = True


@dataclass
class AnimationFiles:
    """What :func:`animate_to_files` wrote: the files in order and the sequence's size."""

    name: str
    frames: int
    vertices: int
    fps: float
    files: list[Path] = field(default_factory=list)
    arkit: np.ndarray | None = None  # (T, 52) ARKit weights on the project's face


def check_vertices(
    vertices: np.ndarray, num_vertices: int, first_frame: int = 0, total: int | None = None
) -> np.ndarray:
    """``vertices`` as ``(T, V, 3)`` float32, or :class:`MemoryTalkerError` (wrong shape, NaN/Inf).

    ``first_frame`` / ``total``: for a window of a longer sequence, its first frame's index and the
    sequence's length (for the message)."""
    v = np.asarray(vertices)
    if v.ndim != 3 or v.shape[1:] != (num_vertices, 3) or v.shape[0] == 0:
        raise MemoryTalkerError(
            f"the model returned an array of shape {v.shape}, expected (T, {num_vertices}, 3)"
        )
    bad = ~np.isfinite(v).all(axis=(1, 2))
    if bad.any():
        frames = np.flatnonzero(bad)
        where = (
            "" if total is None else f" of the window starting at frame {first_frame} ({total} frames in all)"
        )
        raise MemoryTalkerError(
            f"the model returned NaN/Inf vertex positions in {frames.size} of {v.shape[0]} frames{where} (first: "
            f"frame {first_frame + int(frames[0])}); is the checkpoint damaged? Nothing was written"
        )
    return v.astype(np.float32, copy=False)


def _save_npy(path: Path, vertices: np.ndarray) -> Path:
    tmp = path.with_name(f".{path.name}.partial")
    try:
        with open(tmp, "wb") as fh:
            np.save(fh, vertices)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


class NpyFrames:
    """Frames of a ``(T, V, 3)`` float32 ``.npy`` read one at a time from the file (``os.pread``, no memory
    map: reading a long sequence through does not grow the process's resident memory).

    Supports ``len()``, ``shape``, ``dtype``, ``frames[i]`` (``(V, 3)``) and ``frames[a:b]`` (``(n, V, 3)``).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        with open(self.path, "rb") as fh:
            version = np.lib.format.read_magic(fh)
            read = (
                np.lib.format.read_array_header_1_0
                if version == (1, 0)
                else np.lib.format.read_array_header_2_0
            )
            shape, fortran, dtype = read(fh)
            self.offset = fh.tell()
        if fortran or len(shape) != 3 or shape[2] != 3 or dtype != np.dtype("<f4"):
            raise MemoryTalkerError(f"{self.path}: not a C-order (T, V, 3) float32 array ({shape}, {dtype})")
        self.shape, self.dtype = tuple(int(x) for x in shape), np.dtype(np.float32)
        self.frame_bytes = self.shape[1] * 3 * 4
        self._fd = os.open(self.path, os.O_RDONLY)

    def __len__(self) -> int:
        return self.shape[0]

    def _read(self, a: int, b: int) -> np.ndarray:
        data = os.pread(self._fd, (b - a) * self.frame_bytes, self.offset + a * self.frame_bytes)
        return np.frombuffer(data, dtype="<f4").reshape(b - a, self.shape[1], 3)

    def __getitem__(self, index: int | slice) -> np.ndarray:
        if isinstance(index, slice):
            a, b, step = index.indices(self.shape[0])
            if step != 1:
                raise IndexError("NpyFrames: only contiguous slices")
            return self._read(a, max(a, b))
        i = int(index)
        if i < 0:
            i += self.shape[0]
        if not 0 <= i < self.shape[0]:
            raise IndexError(f"frame {index} out of range for {self.shape[0]} frames")
        return self._read(i, i + 1)[0]

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:  # also when __init__ failed before opening the file
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def _predict_to_npy(
    animator: Any,
    wave: np.ndarray,
    template: np.ndarray,
    path: Path,
    num_v: int,
    on_window: Callable[[int, np.ndarray], None] = lambda start, part: None,
) -> int:
    """Decode ``wave`` window by window, appending each window to ``path`` (a ``(T, V, 3)`` float32
    ``.npy``) after checking it (NaN/Inf: :class:`MemoryTalkerError`, nothing left on disk) and passing it
    to ``on_window(start, part)``. Written with plain file writes (no memory map), so resident memory stays
    at one window whatever the length. Returns ``T``."""
    frames, windows = animator.windows(wave, template)
    if frames <= 0:
        raise MemoryTalkerError(
            f"the model gave {frames} frames for {wave.shape[0] / SAMPLE_RATE:.2f} s of audio"
        )
    tmp = path.with_name(f".{path.name}.partial")
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype("<f4")), "fortran_order": False,
              "shape": (frames, num_v, 3)}  # fmt: skip
    try:
        with open(tmp, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, header)
            written = 0
            for start, part in windows:
                if start != written:
                    raise MemoryTalkerError(f"windows out of order: frame {start} after {written} frames")
                part = check_vertices(part, num_v, first_frame=start, total=frames)
                fh.write(np.ascontiguousarray(part, dtype="<f4").tobytes())
                on_window(start, part)
                written += part.shape[0]
            if written != frames:
                raise MemoryTalkerError(f"the model gave {written} of {frames} frames")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return frames


def animate_to_files(
    animator: AnimatorLike,
    audio: AudioSource,
    out_dir: str | Path,
    name: str,
    *,
    sample_rate: int | None = None,
    template: Any = None,
    options: OutputOptions | None = None,
    glb_audio: str | Path | None = None,
    on_step: Callable[[str], None] = lambda step: None,
    on_file: Callable[[Path], None] = lambda path: None,
) -> AnimationFiles:
    """Animate ``audio`` and write ``out_dir/<name>.npy`` (T, V, 3), ``.glb`` and ``.mp4``.

    Args:
        animator: a loaded model (:class:`memorytalker.inference.Animator`).
        audio: a path, encoded bytes, or an ``(S,)`` / ``(S, C)`` array with ``sample_rate``.
        out_dir: output folder (created). name: output stem (unique per input: the caller's job).
        template: neutral face in the model's topology (None = its reference mesh).
        options: which files to write (:class:`OutputOptions`).
        glb_audio: a WAV in ``out_dir`` for the .glb to reference (default: the decoded speech written as
            ``<name>.wav``, 16 kHz mono).
        on_step: called with ``"animating"``, ``"exporting"``, ``"rendering"`` as each step starts.
        on_file: called with each file's path once it is complete.

    Raises:
        MemoryTalkerError (and subclasses): unreadable audio, a bad template, NaN output, render/export
            failures. Files written by this call are removed on any failure.
    """
    opts = options or OutputOptions()
    out = Path(out_dir)
    faces = np.asarray(animator.topology.faces)
    if (opts.video or opts.glb) and faces.size == 0:
        from memorytalker.errors import TopologyError

        raise TopologyError(
            f"topology {animator.topology.name!r} has no triangles: video and glTF need a mesh "
            "(write vertices only: no video, no glb)"
        )
    on_step("animating")
    wave = load_audio(audio, sample_rate=sample_rate, min_duration=MIN_SPEECH_SECONDS, reject_silence=True)
    from memorytalker.inference import load_template

    tpl = load_template(template, animator.topology)
    fps = float(animator.fps)
    num_v = int(animator.topology.num_vertices)
    out.mkdir(parents=True, exist_ok=True)
    result = AnimationFiles(name, 0, num_v, fps)

    def done(path: Path) -> None:
        result.files.append(path)
        on_file(path)

    try:
        face = getattr(animator, "face", None)
        solved: np.ndarray | None = None  # (T, 52) ARKit weights solved from the vertices (on the face)
        npy = out / f"{name}.npy"
        if hasattr(animator, "windows"):  # windows straight into the .npy on disk: memory flat in length
            arkit: list[np.ndarray] = []

            def solve(start: int, part: np.ndarray) -> None:  # the face's ARKit weights, window by window
                if face is not None:
                    arkit.append(animator.arkit_solver.solve(part, tpl))

            _predict_to_npy(animator, wave, tpl, npy, num_v, on_window=solve)
            done(npy)
            if face is None:
                vertices = np.load(npy, mmap_mode="r")  # other topologies' glTF needs the whole array
            else:
                vertices = NpyFrames(npy)  # the face's frames, read back one by one
                solved = np.concatenate(arkit)
        else:
            vertices = check_vertices(animator.animate(wave, sample_rate=SAMPLE_RATE, template=tpl), num_v)
            done(_save_npy(npy, vertices))
            if face is not None:
                solved = animator.arkit_solver.solve(vertices, tpl)
        result.frames = int(vertices.shape[0])
        scene = None
        if face is not None:
            # the written weights (.csv, .glb) go through the model's ARKit head when it has one; the video's
            # mouth interior and eyes follow the solved weights, which match its skin (the predicted vertices)
            result.arkit = animator.arkit_weights(solved)
            scene = FaceScene(face, vertices, solved, face_neutral(face, tpl, animator.topology))
        if scene is not None and opts.csv:
            from memorytalker.face.livelink import write_live_link_csv

            done(write_live_link_csv(out / f"{name}.csv", result.arkit, fps))
        if opts.glb:
            on_step("exporting")
            ref = glb_audio
            if ref is None:  # the speech beside the .glb, as the 16 kHz mono the model heard
                from memorytalker.data.audio import write_wav

                ref = out / f"{name}.wav"
                write_wav(ref, wave)
                done(ref)
            done(_export_glb(scene, result.arkit, vertices, faces, fps, out / f"{name}.glb", ref))
        if opts.video:
            on_step("rendering")
            from memorytalker.render import render_video

            frames, tris, colours = (vertices, faces, None) if scene is None else scene.render_inputs()
            done(
                render_video(
                    frames,
                    tris,
                    fps,
                    out / f"{name}.mp4",
                    audio=wave,
                    sample_rate=SAMPLE_RATE,
                    size=opts.size,
                    progress=opts.progress,
                    colours=colours,
                )
            )
    except BaseException:
        for path in result.files:
            path.unlink(missing_ok=True)
        raise
    return result


@dataclass
class FaceScene:
    """The project's face animated by a model: predicted skin ``(T, V, 3)``, ARKit weights ``(T, 52)``, and
    the ``(N, 3)`` neutral of every part (the person's: the skin's template, the rest by identity fit)."""

    face: Any
    skin: np.ndarray
    weights: np.ndarray
    neutral: np.ndarray

    def frame(self, i: int) -> np.ndarray:
        """``(N, 3)`` vertices of frame ``i``: the predicted skin, the other parts posed by the weights."""
        v = self.face.num_animated
        extras = self.neutral[v:] + np.tensordot(self.weights[i], self.face.arkit_basis[:, v:], axes=1)
        return np.concatenate([self.skin[i], extras])

    def render_inputs(self) -> tuple[Any, np.ndarray, np.ndarray]:
        """``(lazy (T, N, 3) frames, triangles of every part, per-vertex colours)`` for the renderer."""
        from memorytalker.render.frames import LazyFrames

        frames = LazyFrames(self.skin.shape[0], self.face.num_vertices, self.frame)
        return frames, self.face.faces, self.face.vertex_colours


def face_neutral(face: Any, template: np.ndarray, topology: Any) -> np.ndarray:
    """``(N, 3)`` neutral of every part of the face for a skin ``template`` ``(V, 3)``: the generic neutral
    for the topology's own reference mesh, else the identity fitted to the template (the skin exactly the
    template)."""
    if np.array_equal(template, topology.vertices):
        return face.neutral.copy()
    neutral = face.identity_neutral(face.fit_identity(template))
    neutral[: face.num_animated] = template
    return neutral


def _export_glb(
    scene: FaceScene | None,
    weights: np.ndarray | None,
    vertices: np.ndarray,
    faces: np.ndarray,
    fps: float,
    path: Path,
    audio,
) -> Path:
    """The .glb: on the face, every part animated by the ARKit ``weights`` ``(T, 52)`` (the .csv's) as
    morph targets; otherwise the vertices as PCA morph targets."""
    if scene is None:
        from memorytalker.render import export_glb

        return export_glb(vertices, faces, fps, path, audio_path=audio)
    from memorytalker.render.export import export_face_glb

    return export_face_glb(scene.face, weights, fps, path, neutral=scene.neutral, audio_path=audio)

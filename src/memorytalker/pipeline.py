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


def _predict_to_npy(
    animator: Any, wave: np.ndarray, template: np.ndarray, path: Path, num_v: int
) -> np.ndarray:
    """Decode ``wave`` window by window into ``path`` (a ``(T, V, 3)`` float32 ``.npy``, memory-mapped),
    checking every window before it is written (NaN/Inf: :class:`MemoryTalkerError`, nothing left on disk).
    Returns the finished file, memory-mapped read-only."""
    frames, windows = animator.windows(wave, template)
    if frames <= 0:
        raise MemoryTalkerError(
            f"the model gave {frames} frames for {wave.shape[0] / SAMPLE_RATE:.2f} s of audio"
        )
    tmp = path.with_name(f".{path.name}.partial")
    try:
        arr = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(frames, num_v, 3))
        for start, part in windows:
            check_vertices(part, num_v, first_frame=start, total=frames)
            arr[start : start + part.shape[0]] = part
        arr.flush()
        del arr
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return np.load(path, mmap_mode="r")


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
        if hasattr(animator, "windows"):  # windows straight into the .npy on disk: memory flat in length
            vertices = _predict_to_npy(animator, wave, tpl, out / f"{name}.npy", num_v)
            done(out / f"{name}.npy")
        else:
            vertices = check_vertices(animator.animate(wave, sample_rate=SAMPLE_RATE, template=tpl), num_v)
            done(_save_npy(out / f"{name}.npy", vertices))
        result.frames = int(vertices.shape[0])
        face = getattr(animator, "face", None)
        scene = None
        if face is not None:
            result.arkit = animator.arkit_solver.solve(vertices, tpl)
            scene = FaceScene(face, vertices, result.arkit, face_neutral(face, tpl, animator.topology))
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
            done(_export_glb(scene, vertices, faces, fps, out / f"{name}.glb", ref))
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
    scene: FaceScene | None, vertices: np.ndarray, faces: np.ndarray, fps: float, path: Path, audio
) -> Path:
    if scene is None:
        from memorytalker.render import export_glb

        return export_glb(vertices, faces, fps, path, audio_path=audio)
    from memorytalker.render.export import export_face_glb

    return export_face_glb(scene.face, scene.weights, fps, path, neutral=scene.neutral, audio_path=audio)

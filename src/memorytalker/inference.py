"""Inference API: speech in, ``(T, V, 3)`` vertices out. No speaker id, no reference motion.

::

    from memorytalker.inference import Animator, animate

    animator = Animator("runs/synthetic/animating/best.pt")     # or Animator() for the bundled model
    vertices = animator.animate("speech.wav")                   # (T, V, 3) at animator.fps
    vertices = animate(samples, sample_rate=44100, template="my_neutral_face.ply")

Audio may be a path, encoded bytes or an array, of any length, sample rate and channel count
(:func:`memorytalker.data.audio.load_audio`; unreadable, empty or silent audio is an
:class:`~memorytalker.errors.AudioError`). The template is a mesh file (.ply/.obj), a ``.npy`` or a
``(V, 3)`` array in the model's topology (another vertex count is a :class:`~memorytalker.errors.TopologyError`
naming both counts); None = the topology's reference mesh. A model of any topology (ScanTalk) animates a
template mesh file of another topology too (:meth:`Animator.template_for`).
"""

from __future__ import annotations

from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from memorytalker.data.audio import MIN_SPEECH_SECONDS, SAMPLE_RATE, AudioSource, load_audio
from memorytalker.errors import CheckpointError, TopologyError
from memorytalker.topology import FaceTopology, load_mesh

#: The bundled default model and example recording (package data).
DEFAULT_CHECKPOINT = "default.pt"
EXAMPLE_AUDIO = "example.wav"

TemplateSource = str | Path | np.ndarray | None

if TYPE_CHECKING:
    from collections.abc import Iterator

    from memorytalker.face.calibrate import ArkitCalibration
    from memorytalker.face.model import FaceModel
    from memorytalker.face.solve import ArkitSolver


def asset_path(name: str) -> Path:
    """Path of a file in ``memorytalker/assets`` (it may not exist)."""
    return Path(str(resources.files("memorytalker"))) / "assets" / name


def default_checkpoint() -> Path:
    """The bundled default model; :class:`CheckpointError` when this installation has none."""
    path = asset_path(DEFAULT_CHECKPOINT)
    if not path.is_file():
        raise CheckpointError(
            f"the default model is not bundled with this installation ({path} does not exist); pass a "
            "checkpoint (Animator(checkpoint=...), animate(..., checkpoint=...) or --checkpoint) from "
            "`memorytalker train`"
        )
    return path


def example_audio() -> Path:
    """The bundled example recording; :class:`CheckpointError`-like clear error when absent."""
    path = asset_path(EXAMPLE_AUDIO)
    if not path.is_file():
        from memorytalker.errors import AudioError

        raise AudioError(
            f"the example recording is not bundled with this installation ({path} does not exist)"
        )
    return path


def load_template(template: TemplateSource, topology: FaceTopology) -> np.ndarray:
    """A ``(V, 3)`` float32 neutral mesh in ``topology``: None = its reference mesh; a mesh file
    (.ply/.obj), a ``.npy`` file, or an array ``(V, 3)`` / ``(V*3,)``.

    Raises:
        TopologyError: unreadable file, or a vertex count other than the topology's (both named).
    """
    v = topology.num_vertices
    if template is None:
        return np.array(topology.vertices, dtype=np.float32)
    if isinstance(template, (str, Path)):
        path = Path(template)
        if path.suffix.lower() == ".npy":
            if not path.is_file():
                raise TopologyError(f"template file not found: {path}")
            try:
                array = np.load(path, allow_pickle=False)
            except Exception as exc:
                raise TopologyError(f"cannot read template {path}: {exc}") from exc
        else:
            array, _ = load_mesh(path)
        what = f"template {path}"
    else:
        array = np.asarray(template)
        what = "template array"
    array = np.asarray(array, dtype=np.float32)
    if array.ndim == 1 and array.size % 3 == 0:
        array = array.reshape(-1, 3)
    if array.ndim != 2 or array.shape[1] != 3:
        raise TopologyError(
            f"{what} has shape {array.shape}: expected ({v}, 3) for topology {topology.name!r}"
        )
    if array.shape[0] != v:
        raise TopologyError(
            f"{what} has {array.shape[0]} vertices, but the model's topology {topology.name!r} has {v}: "
            "the template must be a neutral face of the topology the model was trained on"
        )
    if not np.all(np.isfinite(array)):
        raise TopologyError(f"{what} has NaN/Inf coordinates")
    return array


class Animator:
    """A loaded model ready to animate speech.

    Args:
        checkpoint: a checkpoint from ``memorytalker train`` (None = the bundled default model).
        device: ``auto`` (CUDA when available, else the CPU), ``cpu``, ``cuda``, ``cuda:1``, ``mps``
            (:func:`memorytalker.device.resolve_device`: a device this machine lacks is a clear error).
        condition: for a speaker-conditioned model (FaceFormer's one-hot, UniTalker's identities), the
            training speaker whose style it animates in (None = the model's default condition: FaceFormer's
            first training speaker, UniTalker's common identity); an error for other models.
        head: for a model with an output head per topology (UniTalker), the topology to animate (None = its
            first head); an error for other models.

    Attributes:
        topology: the model's :class:`FaceTopology` (``faces`` for rendering, reference mesh).
        fps: output frame rate.
        model, config: the :class:`~memorytalker.models.memorytalker.MemoryTalker` and its config.
    """

    def __init__(
        self,
        checkpoint: str | Path | None = None,
        device: str = "auto",
        condition: str | None = None,
        head: str | None = None,
    ) -> None:
        from memorytalker.device import resolve_device
        from memorytalker.errors import ConfigError
        from memorytalker.models.loaders import load_model, read_checkpoint

        path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        self.checkpoint = path
        self.device = resolve_device(device)
        ckpt = read_checkpoint(path)
        self.model, self.topology, self.config = load_model(path, self.device, checkpoint=ckpt)
        self._arkit_state = ckpt.get("arkit_calibration")  # the ARKit head, if any (arkit_calibration)
        del ckpt
        self.model.eval()
        if condition is not None:
            if not getattr(self.model, "num_conditions", 0):
                raise ConfigError(
                    f"condition {condition!r}: the {self.model.cfg.kind} model of {path} takes no speaker condition"
                )
            self.model.default_condition = self.model.condition_index(condition)
        if head is not None:
            heads = getattr(self.model, "head_names", None)
            if heads is None:
                raise ConfigError(
                    f"head {head!r}: the {self.model.cfg.kind} model of {path} has one output topology "
                    f"({self.topology.name!r})"
                )
            self.topology = self.model.select_head(head)

    def template_for(self, template: TemplateSource) -> np.ndarray:
        """The ``(V, 3)`` neutral face to animate (:func:`load_template` in :attr:`topology`).

        A model of any topology (``scantalk``, :data:`~memorytalker.models.config.ANY_TOPOLOGY_KINDS`) takes
        the topology from a template *mesh file* (.ply/.obj with faces): a mesh of a topology it never saw
        becomes :attr:`topology` (its faces draw the video and the glTF; its lips/upper-face regions are
        carried over from the model's topology by nearest vertex, for the lip plots), and the model computes
        its operators. Other models keep their topology: another vertex count is a :class:`TopologyError`.
        """
        from memorytalker.models.config import ANY_TOPOLOGY_KINDS
        from memorytalker.topology.meshio import MESH_SUFFIXES

        mesh_file = isinstance(template, (str, Path)) and Path(template).suffix.lower() in MESH_SUFFIXES
        if mesh_file and self.model.cfg.kind in ANY_TOPOLOGY_KINDS:
            vertices, faces = load_mesh(template)
            topology = self.model.use_mesh(vertices, faces, name=Path(template).stem)
            if topology is not self.topology:  # what was derived from the previous topology goes with it
                self.topology = topology
                self.__dict__.pop("face", None)
                self.__dict__.pop("arkit_solver", None)
                self.__dict__.pop("arkit_calibration", None)
            return load_template(vertices, self.topology)
        return load_template(template, self.topology)

    @property
    def fps(self) -> float:
        """Output frame rate (the topology's)."""
        return float(self.topology.fps)

    @cached_property
    def face(self) -> FaceModel | None:
        """The project's face model when this model animates it (then ARKit weights, teeth and eyes are
        available), else None."""
        from memorytalker.face.solve import face_for_topology

        return face_for_topology(self.topology)

    @cached_property
    def arkit_solver(self) -> ArkitSolver | None:
        """Solves ARKit weights from this model's vertices (None when the topology is not the face)."""
        from memorytalker.face.solve import ArkitSolver

        return None if self.face is None else ArkitSolver(self.face)

    @cached_property
    def arkit_calibration(self) -> ArkitCalibration | None:
        """The checkpoint's ARKit head over the solved weights (``memorytalker calibrate-arkit``;
        :mod:`memorytalker.face.calibrate`), None when it has none or the topology is not the face."""
        from memorytalker.face.calibrate import ArkitCalibration

        if self.face is None or self._arkit_state is None:
            return None
        return ArkitCalibration.from_state(self._arkit_state, str(self.checkpoint))

    def arkit_weights(self, solved: np.ndarray) -> np.ndarray:
        """The ARKit weights written out for a whole clip: its ``(T, 52)`` solved weights through the
        checkpoint's calibration when it has one (the head looks a few frames either side, so this takes the
        whole clip), else as solved."""
        calibration = self.arkit_calibration
        return np.asarray(solved, dtype=np.float32) if calibration is None else calibration.apply(solved)

    def animate(
        self, audio: AudioSource, sample_rate: int | None = None, template: TemplateSource = None
    ) -> np.ndarray:
        """Vertices ``(T, V, 3)`` float32 for ``audio``; ``T = round(duration * fps)``.

        Args:
            audio: path, encoded bytes, or an array ``(S,)`` / ``(S, C)`` (then ``sample_rate`` is required).
            sample_rate: the array's rate (ignored for files and bytes).
            template: neutral face (see :meth:`template_for`); None = the topology's reference mesh.
        """
        wave = load_audio(
            audio, sample_rate=sample_rate, min_duration=MIN_SPEECH_SECONDS, reject_silence=True
        )
        frames, windows = self.windows(wave, self.template_for(template))
        out = np.empty((frames, self.topology.num_vertices, 3), dtype=np.float32)
        for start, part in windows:
            out[start : start + part.shape[0]] = part
        return out

    def windows(
        self, wave: np.ndarray, template: np.ndarray, window_seconds: float | None = None
    ) -> tuple[int, Iterator[tuple[int, np.ndarray]]]:
        """``(T, iterator of (start, (n, V, 3) float32 vertices))`` for decoded 16 kHz mono ``wave``
        ``(S,)`` on ``template`` ``(V, 3)``: the clip in windows of ``window_seconds`` (default
        :data:`~memorytalker.models.windowed.DEFAULT_WINDOW_SECONDS`), each equal to the frames of one
        whole-clip :meth:`MemoryTalker.predict` call (:mod:`memorytalker.models.windowed`), so memory does not
        grow with the length beyond the audio itself."""
        import torch

        from memorytalker.models.windowed import DEFAULT_WINDOW_SECONDS, WindowedPrediction, window_frames_for

        seconds = DEFAULT_WINDOW_SECONDS if window_seconds is None else float(window_seconds)
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)).to(self.device)
            tpl = torch.from_numpy(np.ascontiguousarray(template, dtype=np.float32)).to(self.device)
            run = WindowedPrediction(self.model, x, tpl, window_frames_for(seconds, self.fps))

        def parts() -> Iterator[tuple[int, np.ndarray]]:
            with torch.inference_mode():
                for start, part in run:
                    yield start, part.float().cpu().numpy()

        return run.frames, parts()


def animate(
    audio: AudioSource,
    template: TemplateSource = None,
    checkpoint: str | Path | None = None,
    sample_rate: int | None = None,
) -> np.ndarray:
    """One-call inference: ``Animator(checkpoint).animate(audio, sample_rate, template)`` -> ``(T, V, 3)``."""
    return Animator(checkpoint).animate(audio, sample_rate=sample_rate, template=template)


__all__ = ["Animator", "animate", "load_template", "default_checkpoint", "example_audio", "SAMPLE_RATE"]

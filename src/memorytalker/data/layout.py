"""Reading processed dataset folders (docs/LAYOUT.md): manifest, clip discovery, splits, loaders.

``load_dataset(root)`` reads ``ROOT/dataset.yaml``; ``load_dataset(root, layout="vocaset")`` (or
``"biwi"``, or a path to a manifest YAML) reads a folder left by the FaceFormer / CodeTalker scripts as-is,
using a manifest shipped in the package (``memorytalker/data/layouts/*.yaml``) that also carries the
standard splits.

The result is a :class:`DatasetIndex`: clips per split (:class:`ClipRecord`), per-subject templates, the
:class:`~memorytalker.topology.FaceTopology`, and loaders that return ``(T, V, 3)`` float32 vertices at the
dataset's ``fps`` (applying the ``vertex_fps / fps`` stride) and 16 kHz mono float32 audio.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from memorytalker.errors import DatasetError, MemoryTalkerError
from memorytalker.topology import FaceTopology, resolve_region

MANIFEST_NAME = "dataset.yaml"
MANIFEST_FORMAT = "memorytalker-dataset/1"
VERTICES_DIR = "vertices_npy"
WAV_DIR = "wav"
PHONEMES_DIR = "phonemes"
#: Ground-truth ARKit weights per clip, ``arkit/<clip>.npy`` ``(T, 52)`` at the vertex frame rate (optional;
#: the synthetic corpus on the project's face writes them).
ARKIT_DIR = "arkit"
TEMPLATES_NAME = "templates.pkl"
TOPOLOGY_NAME = "topology.npz"
#: Audio file extensions accepted in ``wav/`` (``.wav`` first; any format/rate/channels is decoded).
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".webm", ".opus")

_MANIFEST_KEYS = {"format", "name", "fps", "vertex_fps", "units", "num_vertices", "topology", "splits"}


# ---------------------------------------------------------------------------------------------- clip ids
def corpus_name(root: str | Path) -> str:
    """A corpus' name where none is given: its folder's name (a multi-corpus model's identities are
    ``<corpus>/<speaker>``)."""
    return Path(root).expanduser().resolve().name


def parse_clip_id(clip_id: str) -> tuple[str, int]:
    """Split ``<subject>_<sentence>`` into ``(subject, sentence number)``.

    The subject is everything before the last underscore; the sentence number is the trailing integer of
    the last token (``FaceTalk_170725_00137_TA_sentence01`` -> ``("FaceTalk_170725_00137_TA", 1)``,
    ``F2_e01`` -> ``("F2", 1)``).
    """
    if "_" not in clip_id:
        raise DatasetError(f"clip id {clip_id!r} is not <subject>_<sentence> (no underscore)")
    subject, token = clip_id.rsplit("_", 1)
    m = re.search(r"(\d+)$", token)
    if not subject or m is None:
        raise DatasetError(
            f"clip id {clip_id!r} is not <subject>_<sentence>: the last token {token!r} "
            "must end in the sentence number"
        )
    return subject, int(m.group(1))


@dataclass(frozen=True)
class ClipRecord:
    """One clip: a vertex sequence and its audio.

    Attributes:
        clip_id: ``<subject>_<sentence>`` (file stem).
        subject: speaker / subject name.
        sentence: sentence number (trailing integer of the clip id).
        vertices_path: ``vertices_npy/<clip>.npy`` ((T, V*3) or (T, V, 3) at ``vertex_fps``).
        wav_path: ``wav/<clip>.wav`` (or another audio extension).
        phonemes_path: ``phonemes/<clip>.json`` when present, else None.
    """

    clip_id: str
    subject: str
    sentence: int
    vertices_path: Path
    wav_path: Path
    phonemes_path: Path | None = None


# ---------------------------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class SplitSpec:
    """Which clips a split holds: ``subjects`` x inclusive ``sentences`` range, or explicit ``clips``."""

    name: str
    subjects: tuple[str, ...] | None = None
    sentences: tuple[int, int] | None = None
    clips: tuple[str, ...] | None = None

    def selects(self, clip_id: str, subject: str, sentence: int) -> bool:
        if self.clips is not None:
            return clip_id in self.clips
        if self.subjects is not None and subject not in self.subjects:
            return False
        if self.sentences is not None and not (self.sentences[0] <= sentence <= self.sentences[1]):
            return False
        return True

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        if self.clips is not None:
            out["clips"] = list(self.clips)
        if self.subjects is not None:
            out["subjects"] = list(self.subjects)
        if self.sentences is not None:
            out["sentences"] = list(self.sentences)
        return out


def _parse_split(name: str, spec: Any, where: str) -> SplitSpec:
    if not isinstance(spec, Mapping):
        raise DatasetError(f"{where}: split {name!r} must be a mapping with subjects/sentences or clips")
    unknown = set(spec) - {"subjects", "sentences", "clips"}
    if unknown:
        raise DatasetError(
            f"{where}: split {name!r} has unknown key(s) {sorted(unknown)} (allowed: subjects, sentences, clips)"
        )
    clips = spec.get("clips")
    if clips is not None:
        if set(spec) - {"clips"}:
            raise DatasetError(f"{where}: split {name!r}: give either clips or subjects/sentences, not both")
        if isinstance(clips, str) or not isinstance(clips, Sequence) or not clips:
            raise DatasetError(f"{where}: split {name!r}: clips must be a non-empty list of clip ids")
        return SplitSpec(name, clips=tuple(str(c) for c in clips))
    subjects = spec.get("subjects")
    if subjects is not None:
        if isinstance(subjects, str) or not isinstance(subjects, Sequence) or not subjects:
            raise DatasetError(f"{where}: split {name!r}: subjects must be a non-empty list")
        subjects = tuple(str(s) for s in subjects)
    sentences = spec.get("sentences")
    if sentences is not None:
        ok = (
            isinstance(sentences, Sequence)
            and not isinstance(sentences, str)
            and len(sentences) == 2
            and all(isinstance(s, int) and not isinstance(s, bool) for s in sentences)
            and sentences[0] <= sentences[1]
        )
        if not ok:
            raise DatasetError(
                f"{where}: split {name!r}: sentences must be an inclusive range [first, last], got {sentences!r}"
            )
        sentences = (int(sentences[0]), int(sentences[1]))
    if subjects is None and sentences is None:
        raise DatasetError(f"{where}: split {name!r} selects nothing (give subjects, sentences or clips)")
    return SplitSpec(name, subjects=subjects, sentences=sentences)


# ---------------------------------------------------------------------------------------------- manifest
@dataclass(frozen=True)
class DatasetManifest:
    """The parsed ``dataset.yaml`` (or a built-in layout). See docs/LAYOUT.md."""

    name: str
    fps: float
    vertex_fps: float
    units: str
    splits: Mapping[str, SplitSpec]
    topology: Any = None
    num_vertices: int | None = None
    source: str = ""

    @property
    def stride(self) -> int:
        """Keep every ``stride``-th stored frame (``vertex_fps / fps``)."""
        return int(round(self.vertex_fps / self.fps))

    def to_dict(self) -> dict:
        out: dict[str, Any] = {
            "format": MANIFEST_FORMAT,
            "name": self.name,
            "fps": _num(self.fps),
            "vertex_fps": _num(self.vertex_fps),
            "units": self.units,
        }
        if self.num_vertices is not None:
            out["num_vertices"] = int(self.num_vertices)
        if self.topology is not None:
            out["topology"] = self.topology
        out["splits"] = {k: v.to_dict() for k, v in self.splits.items()}
        return out


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def parse_manifest(data: Mapping, where: str, base_dir: Path | None = None) -> DatasetManifest:
    """Validate a manifest mapping; ``where`` names the file in error messages."""
    if not isinstance(data, Mapping):
        raise DatasetError(f"{where}: top level must be a mapping")
    unknown = set(data) - _MANIFEST_KEYS
    if unknown:
        raise DatasetError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_MANIFEST_KEYS)}")
    fmt = data.get("format", MANIFEST_FORMAT)
    if fmt != MANIFEST_FORMAT:
        raise DatasetError(f"{where}: format {fmt!r} is not supported (expected {MANIFEST_FORMAT!r})")
    for key in ("fps", "splits"):
        if key not in data:
            raise DatasetError(f"{where}: missing required key {key!r}")

    def _pos(key: str, default=None) -> float:
        val = data.get(key, default)
        if isinstance(val, bool) or not isinstance(val, (int, float)) or not val > 0:
            raise DatasetError(f"{where}: {key} must be a positive number, got {val!r}")
        return float(val)

    fps = _pos("fps")
    vertex_fps = _pos("vertex_fps", data.get("fps"))
    ratio = vertex_fps / fps
    if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
        raise DatasetError(
            f"{where}: vertex_fps / fps must be a whole number >= 1 (got {vertex_fps:g} / {fps:g})"
        )
    num_vertices = data.get("num_vertices")
    if num_vertices is not None and (
        isinstance(num_vertices, bool) or not isinstance(num_vertices, int) or num_vertices <= 0
    ):
        raise DatasetError(f"{where}: num_vertices must be a positive integer, got {num_vertices!r}")
    splits_raw = data["splits"]
    if isinstance(splits_raw, str):
        split_path = Path(splits_raw)
        if base_dir is not None and not split_path.is_absolute():
            split_path = base_dir / split_path
        splits_raw = _read_yaml(split_path)
        where_splits = str(split_path)
    else:
        where_splits = where
    if not isinstance(splits_raw, Mapping) or not splits_raw:
        raise DatasetError(f"{where_splits}: splits must be a non-empty mapping of split name -> spec")
    splits = {str(k): _parse_split(str(k), v, where_splits) for k, v in splits_raw.items()}
    return DatasetManifest(
        name=str(data.get("name", "dataset")),
        fps=fps,
        vertex_fps=vertex_fps,
        units=str(data.get("units", "m")),
        splits=splits,
        topology=data.get("topology"),
        num_vertices=num_vertices,
        source=where,
    )


def _read_yaml(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"file not found: {path}")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise DatasetError(f"{path}: invalid YAML ({exc})") from None


def builtin_layouts() -> list[str]:
    """Names of the layouts shipped in the package (``vocaset``, ``biwi``)."""
    files = resources.files("memorytalker.data").joinpath("layouts")
    return sorted(p.name[: -len(".yaml")] for p in files.iterdir() if p.name.endswith(".yaml"))


def load_layout(layout: str | Path) -> DatasetManifest:
    """A built-in layout by name (``"vocaset"``, ``"biwi"``) or a manifest YAML file by path."""
    text = str(layout)
    if text in builtin_layouts():
        res = resources.files("memorytalker.data").joinpath("layouts", f"{text}.yaml")
        return parse_manifest(yaml.safe_load(res.read_text()), f"built-in layout {text!r}")
    path = Path(text)
    if path.suffix.lower() in (".yaml", ".yml") or path.exists():
        return parse_manifest(_read_yaml(path), str(path), path.parent)
    raise DatasetError(
        f"unknown layout {text!r}: use one of {builtin_layouts()} or a path to a manifest YAML file"
    )


# ---------------------------------------------------------------------------------------------- templates
def read_templates(path: str | Path, num_vertices: int | None = None) -> dict[str, np.ndarray]:
    """Read ``templates.pkl`` (``{subject: (V, 3) or (V*3,)}``, latin1-compatible) as ``(V, 3)`` float32."""
    from memorytalker.safe_pickle import load_pickle

    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"templates file not found: {path}")
    data = load_pickle(path, what=f"templates {path}")
    if not isinstance(data, Mapping) or not data:
        raise DatasetError(f"{path}: expected a non-empty dict {{subject: (V, 3) array}}")
    out = {}
    for subject, arr in data.items():
        a = np.asarray(arr, dtype=np.float32)
        if a.ndim == 1 and a.size % 3 == 0:
            a = a.reshape(-1, 3)
        if a.ndim != 2 or a.shape[1] != 3:
            raise DatasetError(f"{path}: template of {subject!r} has shape {a.shape}, expected (V, 3)")
        if num_vertices is not None and a.shape[0] != num_vertices:
            raise DatasetError(
                f"{path}: template of {subject!r} has {a.shape[0]} vertices, expected {num_vertices}"
            )
        if not np.all(np.isfinite(a)):
            raise DatasetError(f"{path}: template of {subject!r} contains NaN/Inf")
        out[str(subject)] = a
    return out


def write_templates(path: str | Path, templates: Mapping[str, np.ndarray]) -> None:
    """Write ``{subject: (V, 3) float32}`` as a pickle readable with ``encoding='latin1'``."""
    with open(path, "wb") as fh:
        pickle.dump({str(k): np.asarray(v, dtype=np.float32) for k, v in templates.items()}, fh, protocol=2)


# ---------------------------------------------------------------------------------------------- index
@dataclass
class DatasetIndex:
    """A processed dataset folder: clips, splits, templates, topology and loaders.

    Build it with :func:`load_dataset`. Attributes ``root``, ``manifest``; properties ``name``, ``fps``,
    ``vertex_fps``, ``stride``, ``units``, ``split_names``, ``templates``, ``topology``.
    """

    root: Path
    manifest: DatasetManifest
    _topology: FaceTopology | None = field(default=None, repr=False)

    # -------------------------------------------------------------------- manifest facts
    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def fps(self) -> float:
        """Mesh frame rate the loaders deliver."""
        return self.manifest.fps

    @property
    def vertex_fps(self) -> float:
        """Frame rate of the stored vertex arrays."""
        return self.manifest.vertex_fps

    @property
    def stride(self) -> int:
        return self.manifest.stride

    @property
    def units(self) -> str:
        return self.manifest.units

    @property
    def split_names(self) -> list[str]:
        return list(self.manifest.splits)

    @cached_property
    def num_vertices(self) -> int | None:
        """``V`` from the topology, else the manifest, else the templates; None when nothing says."""
        if self.has_topology:
            return self.topology.num_vertices
        if self.manifest.num_vertices is not None:
            return self.manifest.num_vertices
        if (self.root / TEMPLATES_NAME).is_file():
            tpl = self.templates
            return next(iter(tpl.values())).shape[0]
        return None

    # -------------------------------------------------------------------- topology / templates
    def _topology_or_none(self) -> FaceTopology | None:
        if self._topology is not None:
            return self._topology
        spec = self.manifest.topology
        if spec is None:
            if (self.root / TOPOLOGY_NAME).is_file():
                spec = TOPOLOGY_NAME
            else:
                return None
        where = self.manifest.source
        try:
            if isinstance(spec, str):
                path = Path(spec)
                path = path if path.is_absolute() else self.root / path
                topo = FaceTopology.load(path)
            elif isinstance(spec, Mapping):
                if "mesh" not in spec or "regions" not in spec:
                    raise DatasetError(f"{where}: topology mapping needs 'mesh' and 'regions'")
                regions = {k: resolve_region(v, self.root, k) for k, v in dict(spec["regions"]).items()}
                topo = FaceTopology.from_files(
                    spec["mesh"],
                    regions,
                    fps=float(spec.get("fps", self.fps)),
                    name=spec.get("name", self.name),
                    base_dir=self.root,
                )
            else:
                raise DatasetError(f"{where}: topology must be a file name or a mapping, got {spec!r}")
        except DatasetError:
            raise
        except MemoryTalkerError as exc:
            raise DatasetError(f"dataset {self.root}: cannot build its topology: {exc}") from exc
        if abs(topo.fps - self.fps) > 1e-6:
            raise DatasetError(
                f"dataset {self.root}: topology {topo.name!r} is at {topo.fps:g} fps but the dataset "
                f"delivers {self.fps:g} fps"
            )
        self._topology = topo
        return topo

    @property
    def has_topology(self) -> bool:
        return self._topology_or_none() is not None

    @property
    def topology(self) -> FaceTopology:
        """The :class:`FaceTopology`; raises :class:`DatasetError` when the dataset has none."""
        topo = self._topology_or_none()
        if topo is None:
            raise DatasetError(
                f"dataset {self.root} has no face topology: add {TOPOLOGY_NAME} "
                "(e.g. `memorytalker prepare vocaset ... --mesh FLAME_sample.ply --regions FLAME_masks.pkl`, "
                "or memorytalker.topology.vocaset_topology(...).save(...)), a 'topology:' entry in "
                f"{MANIFEST_NAME}, or pass topology= to load_dataset"
            )
        return topo

    @cached_property
    def templates(self) -> dict[str, np.ndarray]:
        """``{subject: (V, 3) float32}`` from ``templates.pkl``."""
        topo = self._topology_or_none()
        n = topo.num_vertices if topo is not None else self.manifest.num_vertices
        return read_templates(self.root / TEMPLATES_NAME, n)

    def template(self, subject: str) -> np.ndarray:
        """``(V, 3)`` template of ``subject``; :class:`DatasetError` when it has none."""
        tpl = self.templates
        if subject not in tpl:
            raise DatasetError(
                f"dataset {self.root}: subject {subject!r} has no template in {TEMPLATES_NAME}"
            )
        return tpl[subject]

    # -------------------------------------------------------------------- clips
    @cached_property
    def _files(self) -> tuple[dict[str, Path], dict[str, Path], dict[str, Path]]:
        vdir, wdir, pdir = self.root / VERTICES_DIR, self.root / WAV_DIR, self.root / PHONEMES_DIR
        verts = {p.stem: p for p in sorted(vdir.glob("*.npy"))} if vdir.is_dir() else {}
        wavs: dict[str, Path] = {}
        if wdir.is_dir():
            for p in sorted(wdir.iterdir()):
                ext = p.suffix.lower()
                if p.is_file() and ext in AUDIO_EXTENSIONS:
                    prev = wavs.get(p.stem)
                    if prev is None or AUDIO_EXTENSIONS.index(ext) < AUDIO_EXTENSIONS.index(
                        prev.suffix.lower()
                    ):
                        wavs[p.stem] = p
        phones = {p.stem: p for p in sorted(pdir.glob("*.json"))} if pdir.is_dir() else {}
        return verts, wavs, phones

    @property
    def vertex_files(self) -> dict[str, Path]:
        """``{clip_id: vertices_npy path}`` for every vertex file found."""
        return dict(self._files[0])

    @property
    def audio_files(self) -> dict[str, Path]:
        """``{clip_id: audio path}`` for every audio file found."""
        return dict(self._files[1])

    def all_clips(self) -> list[ClipRecord]:
        """Every clip with both a vertex file and an audio file, sorted by clip id."""
        verts, wavs, phones = self._files
        out = []
        for cid in sorted(set(verts) & set(wavs)):
            subject, sentence = parse_clip_id(cid)
            out.append(ClipRecord(cid, subject, sentence, verts[cid], wavs[cid], phones.get(cid)))
        return out

    def split(self, name: str) -> SplitSpec:
        if name not in self.manifest.splits:
            raise DatasetError(
                f"dataset {self.root} has no split {name!r} (splits: {', '.join(self.split_names)})"
            )
        return self.manifest.splits[name]

    def clips(self, split: str | None = None) -> list[ClipRecord]:
        """Clips of ``split`` (all paired clips when None), sorted by clip id.

        A subject/sentence split holds the clips that exist (VOCASET lacks a few sentences); a split that
        ends up empty, or an explicit ``clips:`` list naming a clip that does not exist, is an error.
        ``memorytalker data check`` reports split subjects without any clip.
        """
        clips = self.all_clips()
        if split is None:
            return clips
        spec = self.split(split)
        selected = [c for c in clips if spec.selects(c.clip_id, c.subject, c.sentence)]
        if spec.clips is not None:
            have = {c.clip_id for c in selected}
            missing = [c for c in spec.clips if c not in have]
            if missing:
                raise DatasetError(
                    f"dataset {self.root}: split {split!r} lists {len(missing)} clip(s) without both "
                    f"vertices and audio (e.g. {missing[:5]})"
                )
        if not selected:
            raise DatasetError(
                f"dataset {self.root}: split {split!r} holds no clips ({len(clips)} paired clips found in "
                f"{VERTICES_DIR}/ and {WAV_DIR}/); run `memorytalker data check {self.root}`"
            )
        return selected

    def subjects(self, split: str | None = None) -> list[str]:
        """Sorted subjects with at least one clip in ``split`` (all clips when None)."""
        return sorted({c.subject for c in self.clips(split)})

    @property
    def train_subjects(self) -> list[str]:
        """Sorted subjects of the ``train`` split (the subject-id vocabulary); empty without one."""
        if "train" not in self.manifest.splits:
            return []
        return self.subjects("train")

    # -------------------------------------------------------------------- loaders
    def load_vertices(self, clip: ClipRecord | str) -> np.ndarray:
        """``(T, V, 3)`` float32 vertices at :attr:`fps` (stored frames ``[::stride]``)."""
        path = self._clip(clip).vertices_path
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DatasetError(f"cannot read vertices {path}: {exc}") from exc
        arr = self._shape_vertices(arr, path)
        out = np.array(arr[:: self.stride], dtype=np.float32, order="C")  # a copy: never the memmap
        bad = ~np.isfinite(out).all(axis=(1, 2))
        if bad.any():
            raise DatasetError(
                f"{path}: NaN/Inf vertex positions in {int(bad.sum())} of {out.shape[0]} frames (first: frame "
                f"{int(np.flatnonzero(bad)[0])}); `memorytalker data check` lists every such clip"
            )
        return out

    def arkit_path(self, clip: ClipRecord | str) -> Path | None:
        """``arkit/<clip>.npy`` when the dataset stores ARKit weights for the clip, else None."""
        path = self.root / ARKIT_DIR / f"{self._clip(clip).clip_id}.npy"
        return path if path.is_file() else None

    def load_arkit(self, clip: ClipRecord | str) -> np.ndarray | None:
        """``(T, 52)`` float32 ground-truth ARKit weights at :attr:`fps` (stored frames ``[::stride]``), or
        None when the clip has none. Raises DatasetError for a malformed file (shape, dtype, NaN, range)."""
        path = self.arkit_path(clip)
        return None if path is None else read_arkit(path)[:: self.stride].copy()

    def vertex_frames(self, clip: ClipRecord | str) -> int:
        """Frames of a clip at :attr:`fps`, from the vertex file's header (nothing is loaded)."""
        path = self._clip(clip).vertices_path
        try:
            arr = np.load(path, mmap_mode="r", allow_pickle=False)
        except Exception as exc:
            raise DatasetError(f"cannot read vertices {path}: {exc}") from exc
        return len(range(0, self._shape_vertices(arr, path).shape[0], self.stride))

    def check_lengths(self, clips: Sequence[ClipRecord], what: str = "") -> None:
        """Raise :class:`DatasetError` naming every clip whose vertex frames and audio duration disagree by
        more than :data:`memorytalker.data.audio.FRAME_TOLERANCE` (the rule ``data check`` reports)."""
        from memorytalker.data.audio import audio_duration, frame_mismatch

        problems = []
        for rec in clips:
            problem = frame_mismatch(audio_duration(rec.wav_path), self.vertex_frames(rec), self.fps)
            if problem is not None:
                problems.append(f"{rec.clip_id}: {problem}")
        if problems:
            shown = "; ".join(problems[:10]) + (
                f"; ... ({len(problems) - 10} more)" if len(problems) > 10 else ""
            )
            raise DatasetError(
                f"{self.root}{' ' + what if what else ''}: {len(problems)} clip(s) whose audio and vertices differ "
                f"in length: {shown}. Check the data (`memorytalker data check {self.root}`)"
            )

    def _shape_vertices(self, arr: np.ndarray, path: Path) -> np.ndarray:
        n = self.num_vertices
        if arr.dtype.kind != "f":
            raise DatasetError(f"{path}: vertices must be a float array, got dtype {arr.dtype}")
        if arr.ndim == 2:
            if arr.shape[1] % 3:
                raise DatasetError(f"{path}: shape {arr.shape} is not (T, V*3)")
            arr = arr.reshape(arr.shape[0], -1, 3)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise DatasetError(f"{path}: shape {arr.shape} is neither (T, V*3) nor (T, V, 3)")
        if arr.shape[0] == 0:
            raise DatasetError(f"{path}: no frames")
        if n is not None and arr.shape[1] != n:
            raise DatasetError(f"{path}: {arr.shape[1]} vertices per frame, expected {n}")
        return arr

    def load_audio(self, clip: ClipRecord | str) -> np.ndarray:
        """``(S,)`` float32 mono audio at 16 kHz (any stored format, rate and channel count)."""
        from memorytalker.data.audio import load_audio

        return load_audio(self._clip(clip).wav_path)

    def load_phonemes(self, clip: ClipRecord | str) -> dict | None:
        """The ``phonemes/<clip>.json`` alignment (validated), or None when the clip has none."""
        rec = self._clip(clip)
        if rec.phonemes_path is None:
            return None
        return read_phonemes(rec.phonemes_path)

    def _clip(self, clip: ClipRecord | str) -> ClipRecord:
        if isinstance(clip, ClipRecord):
            return clip
        verts, wavs, phones = self._files
        if clip not in verts or clip not in wavs:
            raise DatasetError(f"dataset {self.root}: no clip {clip!r} with both vertices and audio")
        subject, sentence = parse_clip_id(clip)
        return ClipRecord(clip, subject, sentence, verts[clip], wavs[clip], phones.get(clip))

    def __repr__(self) -> str:
        return (
            f"DatasetIndex(root={str(self.root)!r}, name={self.name!r}, fps={self.fps:g}, "
            f"vertex_fps={self.vertex_fps:g}, units={self.units!r}, splits={self.split_names})"
        )


def read_arkit(path: str | Path) -> np.ndarray:
    """Read and validate an ``arkit/<clip>.npy`` file: ``(T, 52)`` float weights in ``[0, 1]``."""
    from memorytalker.face.arkit import NUM_ARKIT

    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"cannot read ARKit weights {path}: {exc}") from exc
    if arr.dtype.kind != "f" or arr.ndim != 2 or arr.shape[1] != NUM_ARKIT or arr.shape[0] == 0:
        raise DatasetError(
            f"{path}: ARKit weights must be a (T, {NUM_ARKIT}) float array, got {arr.dtype} {arr.shape}"
        )
    if not np.isfinite(arr).all():
        raise DatasetError(f"{path}: NaN/Inf ARKit weights")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise DatasetError(f"{path}: ARKit weights outside [0, 1] (min {arr.min():.3f}, max {arr.max():.3f})")
    return arr.astype(np.float32, copy=False)


def read_phonemes(path: str | Path) -> dict:
    """Read and validate a ``phonemes/<clip>.json`` alignment (docs/LAYOUT.md)."""
    import json

    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except Exception as exc:
        raise DatasetError(f"cannot read phoneme alignment {path}: {exc}") from exc
    phones = data.get("phonemes") if isinstance(data, Mapping) else None
    if not isinstance(phones, list):
        raise DatasetError(f"{path}: expected {{'phonemes': [{{'phone', 'start', 'end'}}, ...]}}")
    for i, p in enumerate(phones):
        if not (isinstance(p, Mapping) and {"phone", "start", "end"} <= set(p)):
            raise DatasetError(f"{path}: phonemes[{i}] needs 'phone', 'start' and 'end'")
        if not (float(p["end"]) >= float(p["start"]) >= 0):
            raise DatasetError(f"{path}: phonemes[{i}] has end before start or a negative time")
    return dict(data)


def load_dataset(
    root: str | Path,
    layout: str | Path | None = None,
    topology: FaceTopology | str | Path | None = None,
) -> DatasetIndex:
    """Open a processed dataset folder.

    Args:
        root: the dataset directory (docs/LAYOUT.md).
        layout: None reads ``ROOT/dataset.yaml``; ``"vocaset"`` / ``"biwi"`` (or a manifest YAML path)
            reads a folder processed by the FaceFormer / CodeTalker scripts, which has no dataset.yaml.
        topology: a :class:`FaceTopology` or a ``topology.npz`` path overriding the dataset's own.
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset directory not found: {root}")
    if layout is None:
        manifest_path = root / MANIFEST_NAME
        if not manifest_path.is_file():
            raise DatasetError(
                f"{root} has no {MANIFEST_NAME}; for a folder processed by the FaceFormer/CodeTalker scripts "
                f"give the layout (--layout {' / '.join(builtin_layouts())}); see docs/LAYOUT.md"
            )
        manifest = parse_manifest(_read_yaml(manifest_path), str(manifest_path), root)
    else:
        manifest = load_layout(layout)
    if not (root / VERTICES_DIR).is_dir():
        raise DatasetError(f"dataset {root}: missing folder {VERTICES_DIR}/")
    if not (root / WAV_DIR).is_dir():
        raise DatasetError(f"dataset {root}: missing folder {WAV_DIR}/")
    topo = None
    if topology is not None:
        topo = topology if isinstance(topology, FaceTopology) else FaceTopology.load(topology)
        if abs(topo.fps - manifest.fps) > 1e-6:
            raise DatasetError(
                f"topology {topo.name!r} is at {topo.fps:g} fps but dataset {root} delivers {manifest.fps:g} fps"
            )
        if manifest.num_vertices is not None and topo.num_vertices != manifest.num_vertices:
            raise DatasetError(
                f"topology {topo.name!r} has {topo.num_vertices} vertices but dataset {root} has "
                f"{manifest.num_vertices}"
            )
    return DatasetIndex(root=root, manifest=manifest, _topology=topo)

"""Shared test fixtures: the real reference files (when present) and small fake datasets.

* ``shared_data``: ``../shared/data`` relative to the repository (tests skip with a reason when absent).
* ``fake_vocaset_raw``: a small distribution in the exact raw VOCASET layout (Python-2-protocol pickles
  read with latin1, a memory-mappable ``data_verts.npy``, real subject names so standard splits apply).
* ``make_dataset``: builds a tiny processed dataset (docs/LAYOUT.md) with a few vertices per frame.
* ``hf_offline``: the Hugging Face libraries told not to reach the hub (tests load models from folders).
"""

from __future__ import annotations

import json
import pickle
import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def hf_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def shared_file(*parts: str) -> Path:
    """A file under ``../shared/data``; skips the test (naming the file) when it is absent."""
    path = SHARED_DATA.joinpath(*parts)
    if not path.is_file():
        pytest.skip(f"reference file {path} is absent (../shared/data is not part of the repository)")
    return path


class _Py2Pickler(pickle._Pickler):
    """Protocol-2 pickler that writes ``bytes`` as Python-2 ``str`` (BINSTRING), as Python 2 did.

    numpy arrays pickled by Python 2 carry their data as such strings, which Python 3 can only unpickle
    with ``encoding="latin1"`` (the default ASCII fails): exactly the situation of the VOCASET and FLAME
    distribution files.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj: bytes) -> None:
        n = len(obj)
        if n < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([n]) + obj)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", n) + obj)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str


def dump_py2_pickle(path: Path, obj) -> None:
    """Write ``obj`` as the Python-2 distributions did (protocol 2, array data as py2 str: needs latin1)."""
    with open(path, "wb") as fh:
        _Py2Pickler(fh, protocol=2).dump(obj)


# ------------------------------------------------------------------------------------------ fake VOCASET
V_FLAME = 5023
TRAIN_A = "FaceTalk_170728_03272_TA"
TRAIN_B = "FaceTalk_170904_00128_TA"
VAL_S = "FaceTalk_170811_03275_TA"
TEST_S = "FaceTalk_170809_00138_TA"
RAW_RATE = 22000


@dataclass
class FakeVocaset:
    raw: Path
    #: clip id -> 60-fps row indices (frame order) of the sequences that should be converted
    good: dict[str, list[int]] = field(default_factory=dict)
    #: clip id -> audio samples (float, at RAW_RATE)
    audio: dict[str, np.ndarray] = field(default_factory=dict)
    no_audio: str = ""
    no_sequence: str = ""
    missing_frames: str = ""
    templates: dict[str, np.ndarray] = field(default_factory=dict)


def build_fake_vocaset(raw: Path, seed: int = 0) -> FakeVocaset:
    """A tiny VOCASET distribution: 4 subjects, 7 convertible sequences and 3 planted defects.

    Rows of ``data_verts.npy`` are shuffled across sequences and each frame's vertices encode its row
    (``x`` of every vertex = row / 1000), so tests can tell exactly which 60-fps frames were kept.
    """
    rng = np.random.default_rng(seed)
    raw.mkdir(parents=True, exist_ok=True)
    fake = FakeVocaset(raw=raw)
    seqs = {
        TRAIN_A: {"sentence01": 21, "sentence02": 18, "sentence03": 9},
        TRAIN_B: {"sentence01": 15, "sentence02": 12},
        VAL_S: {"sentence21": 10},
        TEST_S: {"sentence22": 11, "sentence23": 8},  # sentence23: frames planted missing
    }
    total = sum(n for s in seqs.values() for n in s.values()) + 4  # + the sequence without audio
    order = rng.permutation(total)
    verts = np.zeros((total, V_FLAME, 3), dtype=np.float32)
    verts[:, :, 1] = np.linspace(0, 1, V_FLAME, dtype=np.float32)[None]
    verts[:, :, 0] = np.arange(total, dtype=np.float32)[:, None] / 1000.0
    np.save(raw / "data_verts.npy", verts)

    cursor = 0
    index: dict[str, dict[str, dict[int, int]]] = {}
    audio: dict[str, dict[str, dict]] = {}
    for subj, sentences in seqs.items():
        index[subj], audio[subj] = {}, {}
        for sent, n in sentences.items():
            rows = [int(r) for r in order[cursor : cursor + n]]
            cursor += n
            frames = {i: r for i, r in enumerate(rows)}
            if subj == TEST_S and sent == "sentence23":
                del frames[4]
                fake.missing_frames = f"{subj}_{sent}"
            else:
                fake.good[f"{subj}_{sent}"] = rows
            # insertion order scrambled: the converter must sort by frame number
            keys = list(frames)
            rng.shuffle(keys)
            index[subj][sent] = {k: frames[k] for k in keys}
            t = np.arange(int(round(n / 60 * RAW_RATE))) / RAW_RATE
            wave = 0.3 * np.sin(2 * np.pi * 220 * t)
            if subj == TRAIN_B:  # one subject stored as float audio, the others int16 (as distributed)
                audio[subj][sent] = {"audio": wave.astype(np.float32), "sample_rate": RAW_RATE}
            else:
                audio[subj][sent] = {"audio": (wave * 32767).astype(np.int16), "sample_rate": RAW_RATE}
            fake.audio[f"{subj}_{sent}"] = wave
    # a sequence without audio, and audio without a sequence
    index[TRAIN_A]["sentence04"] = {i: int(r) for i, r in enumerate(order[cursor : cursor + 4])}
    fake.no_audio = f"{TRAIN_A}_sentence04"
    audio[TRAIN_B]["sentence05"] = {"audio": np.zeros(2200, np.int16) + 5, "sample_rate": RAW_RATE}
    fake.no_sequence = f"{TRAIN_B}_sentence05"

    templates = {s: (rng.normal(size=(V_FLAME, 3)) * 0.01).astype(np.float32) for s in seqs}
    fake.templates = templates
    dump_py2_pickle(raw / "subj_seq_to_idx.pkl", index)
    dump_py2_pickle(raw / "raw_audio_fixed.pkl", audio)
    dump_py2_pickle(raw / "templates.pkl", templates)
    return fake


@pytest.fixture(scope="session")
def fake_vocaset_raw(tmp_path_factory) -> FakeVocaset:
    return build_fake_vocaset(tmp_path_factory.mktemp("vocaset_raw"))


def write_fake_flame_files(folder: Path) -> tuple[Path, Path]:
    """A 5023-vertex stand-in for FLAME_sample.ply and a FLAME_masks.pkl-like region dict."""
    import trimesh

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    vertices = rng.normal(size=(V_FLAME, 3)) * 0.1
    faces = np.stack([np.arange(0, V_FLAME - 2), np.arange(1, V_FLAME - 1), np.arange(2, V_FLAME)], 1)
    mesh_path = folder / "FLAME_sample.ply"
    trimesh.Trimesh(vertices, faces, process=False).export(mesh_path)
    masks = {
        "lips": np.array([10, 11, 12, 12, 13], dtype=np.int64),  # one duplicate, as in FLAME's
        "forehead": np.arange(100, 110, dtype=np.int64),
        "eye_region": np.arange(105, 120, dtype=np.int64),
        "nose": np.arange(200, 210, dtype=np.int64),
    }
    masks_path = folder / "FLAME_masks.pkl"
    dump_py2_pickle(masks_path, masks)
    return mesh_path, masks_path


# ------------------------------------------------------------------------------------------ tiny dataset
def make_tiny_dataset(
    root: Path,
    clips: dict[str, int] | None = None,
    num_vertices: int = 6,
    fps: int = 30,
    vertex_fps: int = 30,
    splits: dict | None = None,
    phonemes: dict[str, list] | None = None,
    audio_rate: int = 16000,
    with_topology: bool = True,
) -> Path:
    """A processed dataset with ``clips`` ``{clip_id: frames at fps}``, random vertices and sine audio."""
    from memorytalker.topology import FaceTopology

    root.mkdir(parents=True, exist_ok=True)
    clips = clips or {
        "spk00_s01": 12,
        "spk00_s02": 9,
        "spk00_s03": 7,
        "spk01_s01": 10,
        "spk01_s02": 8,
        "spk02_s01": 11,
        "spk02_s02": 6,
    }
    splits = splits or {
        "train": {"subjects": ["spk00", "spk01"], "sentences": [1, 40]},
        "test": {"subjects": ["spk02"]},
    }
    (root / "vertices_npy").mkdir(exist_ok=True)
    (root / "wav").mkdir(exist_ok=True)
    rng = np.random.default_rng(0)
    stride = vertex_fps // fps
    subjects = sorted({c.rsplit("_", 1)[0] for c in clips})
    for i, (cid, frames) in enumerate(clips.items()):
        stored = (frames - 1) * stride + 1
        arr = rng.normal(size=(stored, num_vertices * 3)).astype(np.float32)
        arr[:, 0] = np.arange(stored)  # frame number in the first coordinate
        np.save(root / "vertices_npy" / f"{cid}.npy", arr)
        n = int(round(frames / fps * audio_rate))
        wave = 0.2 * np.sin(2 * np.pi * (200 + 10 * i) * np.arange(n) / audio_rate)
        sf.write(root / "wav" / f"{cid}.wav", wave.astype(np.float32), audio_rate, subtype="PCM_16")
    templates = {s: rng.normal(size=(num_vertices, 3)).astype(np.float32) for s in subjects}
    dump_py2_pickle(root / "templates.pkl", templates)
    manifest = {
        "format": "memorytalker-dataset/1",
        "name": "tiny",
        "fps": fps,
        "vertex_fps": vertex_fps,
        "units": "m",
        "splits": splits,
    }
    if with_topology:
        faces = np.array([[0, 1, 2], [2, 3, 4]])
        FaceTopology(
            "tiny",
            rng.normal(size=(num_vertices, 3)),
            faces,
            fps,
            {"lips": [0, 1], "upper_face": [num_vertices - 1]},
        ).save(root / "topology.npz")
        manifest["topology"] = "topology.npz"
    (root / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    if phonemes:
        (root / "phonemes").mkdir(exist_ok=True)
        for cid, phones in phonemes.items():
            (root / "phonemes" / f"{cid}.json").write_text(json.dumps({"text": "", "phonemes": phones}))
    return root


@pytest.fixture
def tiny_dataset(tmp_path) -> Path:
    return make_tiny_dataset(tmp_path / "tiny")

"""A tiny, learnable dataset in the docs/LAYOUT.md layout for the training and evaluation tests.

Audio: a random-pitch tone per phone-like segment with a random loudness envelope, plus a little noise.
Vertices: the subject's template plus a jaw-like displacement of the lip vertices proportional to the
audio envelope of that frame (and a small per-subject style gain), so a model can learn them from audio.
Phoneme alignments cover every clip.
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml

from memorytalker.data.phonemes import ARPABET
from memorytalker.topology import FaceTopology

SR = 16000


def make_learnable_dataset(
    root: Path,
    subjects: dict[str, str] | None = None,
    sentences: int = 3,
    num_vertices: int = 12,
    fps: int = 30,
    seconds: tuple[float, float] = (0.5, 0.9),
    seed: int = 0,
    inner_lips: bool = False,
    topology: str = "grid",
) -> Path:
    """Write the dataset; ``subjects`` maps subject -> split (train / val / test). ``inner_lips`` names the
    topology's inner-lip contours (a middle upper- and lower-lip vertex), for the lip-sync measures;
    ``topology`` is its topology's name."""
    subjects = subjects or {
        "spk00": "train",
        "spk01": "train",
        "spk02": "train",
        "spk03": "val",
        "spk04": "test",
    }
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for sub in ("vertices_npy", "wav", "phonemes"):
        (root / sub).mkdir(exist_ok=True)
    # reference mesh: a small grid face; lips are the bottom-middle vertices, upper face the top row
    cols = 4
    rows = num_vertices // cols
    grid = np.array(
        [[c / (cols - 1) - 0.5, 1.0 - r / (rows - 1), 0.0] for r in range(rows) for c in range(cols)]
    )
    ref = (grid * 0.1).astype(np.float32)
    lower_lip = np.arange((rows - 1) * cols + 1, rows * cols - 1)  # bottom row, middle columns
    upper_lip = lower_lip - cols
    lips = np.concatenate([upper_lip, lower_lip])
    upper_face = np.arange(0, cols)
    faces = np.array(
        [
            [r * cols + c, r * cols + c + 1, (r + 1) * cols + c]
            for r in range(rows - 1)
            for c in range(cols - 1)
        ]
    )
    regions = {"lips": lips, "upper_face": upper_face}
    if inner_lips:
        regions.update(upper_lip_inner=upper_lip[:1], lower_lip_inner=lower_lip[:1])
    FaceTopology(topology, ref, faces, fps, regions).save(root / "topology.npz")
    templates, gains = {}, {}
    for i, s in enumerate(sorted(subjects)):
        templates[s] = (ref + rng.normal(scale=0.002, size=ref.shape)).astype(np.float32)
        gains[s] = 1.0 + 0.25 * i
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh, protocol=2)
    direction = np.zeros((num_vertices, 3), dtype=np.float32)
    direction[lower_lip, 1] = -1.0  # the lower lip opens downwards, the upper lip a little upwards
    direction[upper_lip, 1] = 0.3
    for s in sorted(subjects):
        for k in range(1, sentences + 1):
            cid = f"{s}_s{k:02d}"
            dur = float(rng.uniform(*seconds))
            frames = int(round(dur * fps))
            n = int(round(frames / fps * SR))
            # phone segments of 60-140 ms, each a tone with its own loudness
            t, phones, env = 0.0, [], np.zeros(n, dtype=np.float64)
            audio = np.zeros(n, dtype=np.float64)
            while t < n / SR:
                d = float(rng.uniform(0.06, 0.14))
                a0, a1 = int(t * SR), min(n, int((t + d) * SR))
                loud = float(rng.choice([0.0, 0.3, 0.6, 1.0]))
                f0 = float(rng.uniform(150, 900))
                tt = np.arange(a1 - a0) / SR
                audio[a0:a1] = loud * 0.5 * np.sin(2 * np.pi * f0 * tt)
                env[a0:a1] = loud
                phones.append(
                    {
                        "phone": "sil" if loud == 0 else str(rng.choice(ARPABET)),
                        "start": t,
                        "end": min(t + d, n / SR),
                    }
                )
                t += d
            audio += rng.normal(scale=0.01, size=n)
            sf.write(root / "wav" / f"{cid}.wav", audio.astype(np.float32), SR, subtype="PCM_16")
            spf = SR / fps
            frame_env = np.array([env[int(i * spf) : int((i + 1) * spf)].mean() for i in range(frames)])
            verts = templates[s][None] + 0.01 * gains[s] * frame_env[:, None, None] * direction[None]
            np.save(root / "vertices_npy" / f"{cid}.npy", verts.reshape(frames, -1).astype(np.float32))
            (root / "phonemes" / f"{cid}.json").write_text(json.dumps({"text": "", "phonemes": phones}))
    splits: dict = {}
    for split in ("train", "val", "test"):
        subs = sorted(s for s, sp in subjects.items() if sp == split)
        if subs:
            splits[split] = {"subjects": subs}
    manifest = {
        "format": "memorytalker-dataset/1",
        "name": "learnable-tiny",
        "fps": fps,
        "vertex_fps": fps,
        "units": "m",
        "topology": "topology.npz",
        "splits": splits,
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    return root

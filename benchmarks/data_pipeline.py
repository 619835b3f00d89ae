"""Data-layer benchmark: `prepare vocaset` time and peak memory, `data check` time, loader throughput.

Builds a fake VOCASET distribution in the exact raw layout (data_verts.npy written chunk-wise through a
memory map, so building it does not raise the peak memory), converts it, checks it and iterates a
DataLoader over it. Peak RSS far below the size of data_verts.npy shows the conversion never loads it whole.

    .venv/bin/python benchmarks/data_pipeline.py [--clips 12] [--frames 240]
"""

from __future__ import annotations

import argparse
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

V = 5023


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build_raw(raw: Path, clips: int, frames: int, subjects: int = 4) -> int:
    raw.mkdir(parents=True)
    total = clips * frames
    verts = np.lib.format.open_memmap(
        raw / "data_verts.npy", mode="w+", dtype=np.float32, shape=(total, V, 3)
    )
    rng = np.random.default_rng(0)
    base = rng.normal(size=(V, 3)).astype(np.float32) * 0.1
    for start in range(0, total, 256):
        n = min(256, total - start)
        verts[start : start + n] = base[None] + rng.normal(size=(n, V, 3)).astype(np.float32) * 1e-3
    verts.flush()
    del verts
    names = [f"FaceTalk_17072{i}_0000{i}_TA" for i in range(subjects)]
    index, audio = {s: {} for s in names}, {s: {} for s in names}
    for c in range(clips):
        subj, sent = names[c % subjects], f"sentence{c // subjects + 1:02d}"
        index[subj][sent] = {f: c * frames + f for f in range(frames)}
        n = int(frames / 60 * 22000)
        wave = 0.3 * np.sin(2 * np.pi * 200 * np.arange(n) / 22000)
        audio[subj][sent] = {"audio": (wave * 32767).astype(np.int16), "sample_rate": 22000}
    for name, obj in (
        ("subj_seq_to_idx.pkl", index),
        ("raw_audio_fixed.pkl", audio),
        ("templates.pkl", {s: base for s in names}),
    ):
        with open(raw / name, "wb") as fh:
            pickle.dump(obj, fh, protocol=2)
    return total * V * 3 * 4


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=12)
    parser.add_argument("--frames", type=int, default=240, help="60-fps frames per clip")
    parser.add_argument("--batch-size", type=int, default=4)
    args = parser.parse_args()

    import torch

    from memorytalker.data import TalkingFaceDataset, check_dataset, collate_batch, load_dataset

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        size = build_raw(tmp / "raw", args.clips, args.frames)
        print(
            f"fake distribution: {args.clips} clips x {args.frames} frames at 60 fps, data_verts.npy "
            f"{size / 2**20:.0f} MiB (built in {time.perf_counter() - t0:.1f} s)"
        )
        # prepare in a child process so its peak RSS is its own (the build above touched the file)
        # (VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the forking parent)
        code = (
            "import sys, time; from memorytalker.data.vocaset import prepare_vocaset; "
            "import numpy, tqdm, yaml, scipy.signal, soundfile\n"
            "def hwm():\n"
            "    return [int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "r0 = hwm(); t0 = time.perf_counter()\n"
            "s = prepare_vocaset(sys.argv[1], sys.argv[2], progress=False)\n"
            "print(len(s.written), time.perf_counter() - t0, r0 / 1024, hwm() / 1024)"
        )
        res = subprocess.run(
            [sys.executable, "-c", code, str(tmp / "raw"), str(tmp / "out")],
            check=True,
            capture_output=True,
            text=True,
        )
        n_written, dt, rss_before, rss_peak = res.stdout.split()
        dt = float(dt)
        print(
            f"prepare vocaset: {dt:.2f} s ({dt / int(n_written) * 1000:.0f} ms/clip), peak RSS "
            f"{float(rss_peak):.0f} MiB (after imports: {float(rss_before):.0f} MiB) for a "
            f"{size / 2**20:.0f} MiB data_verts.npy"
        )
        t0 = time.perf_counter()
        findings = check_dataset(tmp / "out")
        dt = time.perf_counter() - t0
        print(
            f"data check: {dt:.2f} s ({dt / args.clips * 1000:.0f} ms/clip), {len(findings)} findings "
            "(the fake's subjects are not the standard split subjects)"
        )
        # a dataset.yaml whose single split selects everything, for the loader benchmark
        index = load_dataset(tmp / "out")
        (tmp / "out" / "dataset.yaml").write_text(
            (tmp / "out" / "dataset.yaml").read_text().split("splits:")[0]
            + "splits:\n  train: {sentences: [1, 99]}\n"
        )
        index = load_dataset(tmp / "out")
        for cache in (False, True):
            ds = TalkingFaceDataset(index, "train", cache=cache, triplets=True)
            loader = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, collate_fn=collate_batch)
            epochs = []
            for _ in range(2):
                t0 = time.perf_counter()
                n = sum(len(b) for b in loader)
                epochs.append(time.perf_counter() - t0)
            print(
                f"DataLoader (batch {args.batch_size}, triplets, cache={cache}): "
                f"epoch 1 {epochs[0] / n * 1000:.1f} ms/clip, epoch 2 {epochs[1] / n * 1000:.1f} ms/clip"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())

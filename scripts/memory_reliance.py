"""How much does a model's output depend on the memory read? Zero it and compare.

    .venv/bin/python scripts/memory_reliance.py CKPT [CKPT ...] --data data/synthetic --split val [--clips 10]

For each checkpoint, every clip is predicted twice: as trained, and with the (stylised) memory key read
replaced by zeros (the decoder then sees the text features only). Printed per checkpoint: the mean over
clips of the lip-vertex RMS change between the two (mm) next to the lip-vertex RMS motion of the prediction
itself (mm, displacement from the template). A ratio near 0 means the decoder ignores the memory, so the
stage-2 style weights, which only rescale memory slots, cannot change the animation.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from memorytalker.data import load_dataset
from memorytalker.training.checkpoint import load_model


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(x**2, axis=-1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--clips", type=int, default=10, help="every k-th clip so that this many are used")
    args = ap.parse_args()
    index = load_dataset(args.data)
    recs = index.clips(args.split)
    recs = recs[:: max(1, len(recs) // args.clips)][: args.clips]
    print("| checkpoint | lip change without memory [mm] | lip motion [mm] | ratio |")
    print("|---|---|---|---|")
    for ckpt in args.checkpoints:
        model, topology, _ = load_model(ckpt)
        if model.memory is None:
            print(f"| {ckpt} | (no memory) | | |")
            continue
        lips = np.asarray(topology.lips)
        read = model.memory.key_read
        changes, motions = [], []
        with torch.inference_mode():
            for rec in recs:
                audio = torch.from_numpy(index.load_audio(rec))[None]
                lengths = torch.tensor([audio.shape[1]])
                tpl = torch.from_numpy(index.template(rec.subject))[None]
                model.memory.key_read = read
                full = model.predict(audio, lengths, tpl)[0].numpy()
                model.memory.key_read = lambda address, weights=None, f=read: torch.zeros_like(
                    f(address, weights)
                )
                text_only = model.predict(audio, lengths, tpl)[0].numpy()
                changes.append(rms(full[:, lips] - text_only[:, lips]))
                motions.append(rms(full[:, lips] - tpl[0].numpy()[lips]))
        model.memory.key_read = read
        change, motion = float(np.mean(changes)) * 1e3, float(np.mean(motions)) * 1e3
        print(f"| {ckpt} | {change:.3f} | {motion:.3f} | {change / motion:.3f} |")


if __name__ == "__main__":
    main()

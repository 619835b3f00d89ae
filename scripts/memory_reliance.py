"""Does a model use its motion memory? Zero the memory read and compare; check what the memory holds.

    .venv/bin/python scripts/memory_reliance.py CKPT [CKPT ...] --data data/synthetic --split val [--clips 10]

For each checkpoint, every clip is predicted twice: as trained, and with the (stylised) memory key read
replaced by zeros (the decoder then sees the text features only). Printed per checkpoint, as means over
clips:

* lip change without memory: the lip-vertex RMS change between the two predictions (mm), next to the
  lip-vertex RMS motion of the prediction itself (mm, displacement from the template), and their ratio. A
  ratio near 0 means the decoder ignores the memory, so the stage-2 style weights, which only rescale
  memory slots, cannot change the animation.
* what the memory holds, against the motion feature ``f_m = E_m((v - tau) / s)`` of the ground truth:
  ``cos(value, f_m)`` (does the value route reconstruct the motion features: ``L_mem``),
  ``cos(key, f_m)`` (does the text-addressed read retrieve the right motion), and ``|key| / |f_m|`` (is the
  retrieved feature on the scale the decoder learned to decode in the teacher-forced pass).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
import torch.nn.functional as F

from memorytalker.data import load_dataset
from memorytalker.models.loaders import load_model
from memorytalker.models.mel import normalize_waveform


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.sum(x**2, axis=-1))))


def memory_features(model, audio: torch.Tensor, vertices: torch.Tensor, template: torch.Tensor) -> dict:
    """Unstylised key read, value read and ``f_m`` of one clip; ``audio`` ``(1, S)``, ``vertices``
    ``(1, T, V, 3)``, ``template`` ``(1, V, 3)`` -> cosines (means over frames) and the ratio of the mean
    norms of the key read and ``f_m``."""
    lengths = torch.tensor([audio.shape[1]])
    t = vertices.shape[1]
    logits = model.text_logits(normalize_waveform(audio, lengths), lengths, torch.tensor([t]), t)
    key = model.memory.key_read(model.memory.key_address(model.frame_logits(logits, t)))
    f_m = model.motion_encoder((vertices - template[:, None]).flatten(2) / model.motion_scale)
    value = model.memory.value_read(model.memory.value_address(f_m))
    return {
        "cos_value": float(F.cosine_similarity(value, f_m, dim=-1).mean()),
        "cos_key": float(F.cosine_similarity(key, f_m, dim=-1).mean()),
        "norm_ratio": float(key.norm(dim=-1).mean() / f_m.norm(dim=-1).mean().clamp(min=1e-12)),
    }


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
    print(
        "| checkpoint | lip change without memory [mm] | lip motion [mm] | ratio "
        "| cos(value, f_m) | cos(key, f_m) | \\|key\\| / \\|f_m\\| |"
    )
    print("|---|---|---|---|---|---|---|")
    for ckpt in args.checkpoints:
        model, topology, _ = load_model(ckpt)
        if model.memory is None:
            print(f"| {ckpt} | (no memory) | | | | | |")
            continue
        lips = np.asarray(topology.lips)
        read = model.memory.key_read
        changes, motions, feats = [], [], []
        with torch.inference_mode():
            for rec in recs:
                audio = torch.from_numpy(index.load_audio(rec))[None]
                lengths = torch.tensor([audio.shape[1]])
                tpl = torch.from_numpy(index.template(rec.subject))[None]
                verts = torch.from_numpy(index.load_vertices(rec))[None]
                model.memory.key_read = read
                feats.append(memory_features(model, audio, verts, tpl))
                full = model.predict(audio, lengths, tpl)[0].numpy()
                model.memory.key_read = lambda address, weights=None, f=read: torch.zeros_like(
                    f(address, weights)
                )
                text_only = model.predict(audio, lengths, tpl)[0].numpy()
                changes.append(rms(full[:, lips] - text_only[:, lips]))
                motions.append(rms(full[:, lips] - tpl[0].numpy()[lips]))
        model.memory.key_read = read
        change, motion = float(np.mean(changes)) * 1e3, float(np.mean(motions)) * 1e3
        f = {k: float(np.mean([x[k] for x in feats])) for k in feats[0]}
        print(
            f"| {ckpt} | {change:.3f} | {motion:.3f} | {change / motion:.3f} | {f['cos_value']:.3f} "
            f"| {f['cos_key']:.3f} | {f['norm_ratio']:.2f} |"
        )


if __name__ == "__main__":
    main()

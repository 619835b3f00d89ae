"""Can a stage-2 model's slot weights scale the motion at all? Sweep them by hand.

    .venv/bin/python scripts/style_oracle.py CKPT [CKPT ...] --data data/synthetic [--splits val test]

Stage 2 personalises by scaling the memory slots (``w`` per slot, from the style encoder). Here every
slot weight is replaced by one constant ``c`` (``--weights``, default 0.5 to 2), every clip of the splits is
predicted, and per checkpoint the table gives, pooled over the clips, the lip amplitude (the RMS
displacement of the lip vertices from the clip's mean lip shape, as ``scripts/style_amplitude.py``)
relative to the model's own weights' (``model``) and the lip vertex error (LVE, ×1e-5 m²). If the decoder
turns a larger read into larger motion, the amplitude grows with ``c``; if it does not, the style encoder
has no lever on the amplitude, whatever it hears. The last columns: per speaker the ``c`` with the lowest
LVE (an oracle choice), its correlation in log with the speaker's hidden amplitude (``speakers.json``),
and the LVE with every speaker at its best ``c``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from style_amplitude import lip_amplitude

from memorytalker.data import load_dataset
from memorytalker.evaluation.metrics import lve
from memorytalker.models.loaders import load_model


def sweep(ckpt: str, index, recs, weights: list[float]) -> dict:
    """``{speaker: {c or "model": [(lve, amplitude), ...]}}`` over the clips."""
    model, topology, _ = load_model(ckpt)
    if getattr(model, "style", None) is None:
        raise SystemExit(f"{ckpt}: no style encoder (a stage-2 MemoryTalker checkpoint is needed)")
    lips = np.asarray(topology.lips)
    own = model.style.weights
    out: dict = {}
    try:
        with torch.inference_mode():
            for rec in recs:
                audio = torch.from_numpy(index.load_audio(rec))[None]
                lengths = torch.tensor([audio.shape[1]])
                template = torch.from_numpy(index.template(rec.subject))[None]
                gt = index.load_vertices(rec)
                for c in [*weights, "model"]:
                    model.style.weights = own if c == "model" else (lambda f, c=c: torch.full_like(f, c))
                    pred = model.predict(audio, lengths, template)[0].numpy()[: len(gt)]
                    out.setdefault(rec.subject, {}).setdefault(c, []).append(
                        (lve(pred, gt, lips), lip_amplitude(pred, lips))
                    )
    finally:
        model.style.weights = own
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    ap.add_argument("--weights", nargs="+", type=float, default=[0.5, 0.7, 1.0, 1.5, 2.0])
    args = ap.parse_args()
    index = load_dataset(args.data)
    hidden = json.loads((Path(args.data) / "speakers.json").read_text())
    recs = [rec for split in args.splits for rec in index.clips(split)]
    cs = args.weights
    print(
        "| checkpoint | "
        + " | ".join(f"c = {c:g}: amplitude / LVE" for c in cs)
        + " | own weights: LVE | r(log best c, log hidden amplitude) | LVE at each speaker's best c |"
    )
    print("|---|" + "---|" * (len(cs) + 3))
    for ckpt in args.checkpoints:
        res = sweep(ckpt, index, recs, cs)
        pooled = {c: np.array([x for s in res.values() for x in s[c]]) for c in [*cs, "model"]}
        own_amp = pooled["model"][:, 1].mean()
        cells = [f"{pooled[c][:, 1].mean() / own_amp:.2f} / {pooled[c][:, 0].mean() * 1e5:.2f}" for c in cs]
        best, amp, errs = [], [], []
        for s, r in res.items():
            c = min(cs, key=lambda c: np.mean([x[0] for x in r[c]]))
            best.append(c)
            amp.append(hidden[s]["style"]["amplitude"])
            errs += [x[0] for x in r[c]]
        r_best = float(np.corrcoef(np.log(best), np.log(amp))[0, 1]) if len(set(best)) > 1 else float("nan")
        print(
            f"| {ckpt} | " + " | ".join(cells) + f" | {pooled['model'][:, 0].mean() * 1e5:.2f} "
            f"| {r_best:.2f} (best c: {', '.join(f'{c:g}' for c in best)}) | {np.mean(errs) * 1e5:.2f} |"
        )


if __name__ == "__main__":
    main()

"""Do the stage-2 slot weights follow the speaker? Compare them with the synthetic corpus' hidden style.

    .venv/bin/python scripts/style_weights.py --data data/synthetic LABEL=CKPT [...] [--splits val test]

The synthetic corpus draws each speaker's articulation amplitude from audible voice properties (louder and
slower voices open wider) plus an inaudible residual, and records it in ``speakers.json`` (``style.amplitude``
scales the jaw, ``style.lip_amplitude`` the lip shapes; docs/DATA.md). A model never sees these numbers.

Per checkpoint and speaker of the chosen (unseen) splits, the *effective slot weight*: the style weights
``w`` averaged with the key address, ``mean_t sum_i K[t, i] w[i]`` (the factor by which the retrieved motion
is scaled, on average), as the mean over the speaker's clips and its spread (standard deviation) across
clips. The last row gives the Pearson correlation over speakers between the log effective weight and the
log hidden amplitude: near 1 = the style encoder scales each unseen voice's motion like its true style.
A model with the output gain (``model.style.gain``) gets a second column per checkpoint, the gain that
multiplies its offsets, and the correlation of the log gain.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
from labelled import label_path

from memorytalker.data import load_dataset
from memorytalker.models.loaders import load_model
from memorytalker.models.mel import normalize_waveform


def effective_weights(model, index, recs) -> tuple[dict[str, list[float]], dict[str, list[float]] | None]:
    """Per speaker: the effective slot weight of each clip, and its output gain (None without one)."""
    out: dict[str, list[float]] = {}
    gains: dict[str, list[float]] | None = {} if model.style.gain_head is not None else None
    with torch.inference_mode():
        for rec in recs:
            audio = torch.from_numpy(index.load_audio(rec))[None]
            lengths = torch.tensor([audio.shape[1]])
            t = int(model.frames_for(lengths)[0])
            logits = model.text_logits(normalize_waveform(audio, lengths), lengths, torch.tensor([t]), t)
            key = model.memory.key_address(model.frame_logits(logits, t))[0]  # (T, M)
            f_s = model.style_logits(audio, lengths)
            w = model.style.weights(f_s)[0]  # (M,)
            out.setdefault(rec.subject, []).append(float((key @ w).mean()))
            if gains is not None:
                gains.setdefault(rec.subject, []).append(float(model.style.gain(f_s)[0]))
    return out, gains


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=label_path, help="LABEL=CHECKPOINT of stage-2 models")
    ap.add_argument("--data", required=True)
    ap.add_argument("--splits", nargs="+", default=["val", "test"])
    args = ap.parse_args()
    index = load_dataset(args.data)
    speakers = json.loads((Path(args.data) / "speakers.json").read_text())
    recs = [r for s in args.splits for r in index.clips(s)]
    subjects = sorted({r.subject for r in recs})
    labels, results = [], []
    for label, ckpt in args.runs:
        model, _, _ = load_model(ckpt)
        if model.style is None or model.memory is None:
            raise SystemExit(f"{ckpt}: not a stage-2 model (no style encoder or no memory)")
        weights, gains = effective_weights(model, index, recs)
        labels.append(f"{label}: weight (spread)")
        results.append(weights)
        if gains is not None:
            labels.append(f"{label}: gain (spread)")
            results.append(gains)
    head = " | ".join(labels)
    print(f"| speaker | split | hidden amplitude (jaw / lips) | {head} |")
    print("|---|---|---|" + "---|" * len(labels))
    split_of = {r.subject: s for s in args.splits for r in index.clips(s)}
    for s in subjects:
        st = speakers[s]["style"]
        cells = " | ".join(f"{np.mean(res[s]):.2f} ({np.std(res[s]):.2f})" for res in results)
        print(f"| {s} | {split_of[s]} | {st['amplitude']:.2f} / {st['lip_amplitude']:.2f} | {cells} |")
    amp = np.log([speakers[s]["style"]["amplitude"] for s in subjects])
    corr = []
    for res in results:
        w = np.array([np.mean(res[s]) for s in subjects])
        corr.append(f"{np.corrcoef(np.log(np.clip(w, 1e-6, None)), amp)[0, 1]:.2f}")
    print(f"| correlation (log, over speakers) | | | {' | '.join(corr)} |")


if __name__ == "__main__":
    main()

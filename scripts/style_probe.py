"""Is a speaker's hidden articulation amplitude audible through each style input? A linear probe.

    .venv/bin/python scripts/style_probe.py --data data/synthetic [--every 2]

For each style input, every clip's log-mel as the style encoder receives it is pooled to its per-band mean
and standard deviation over frames (160 numbers): ``normalized`` and ``absolute`` are the two
``model.style.level`` s (docs/MODEL.md); ``spectral`` (the waveform normalised, one offset for all bands,
so the level is removed but a static spectral tilt, the corpus' vocal effort, is kept) was tried as a third
level in stage 2 and did not help (docs/RESULTS.md), so it exists only here. A ridge regression from
them to the log of the speaker's hidden amplitude (``speakers.json``, ``style.amplitude``) is fitted on the training
speakers' clips, its penalty chosen by leave-one-speaker-out cross-validation on the training speakers
only; the score is the Pearson correlation, over the unseen validation and test speakers, between the
per-speaker mean prediction and the hidden log amplitude (the target ``scripts/style_weights.py`` scores
a stage-2 model's effective slot weights against). High here and low there means the style input carries
the information and stage 2 does not learn it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from memorytalker.data import load_dataset
from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.models.config import StyleConfig
from memorytalker.models.mel import LogMel, normalize_waveform

PENALTIES = (1.0, 10.0, 100.0, 1000.0, 10000.0)
INPUTS = ("normalized", "spectral", "absolute")


def pooled_logmel(wave: np.ndarray, level: str, logmel: LogMel) -> np.ndarray:
    """Per-band mean and std ``(2 n_mels,)`` of one clip's log-mel as the style encoder hears it."""
    audio = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    lengths = torch.tensor([audio.shape[1]])
    if level != "absolute":
        audio = normalize_waveform(audio, lengths)
    mel = logmel(audio, lengths)[0][0].double()  # (n_mels, F)
    if level == "normalized":
        mel = mel - mel.mean(-1, keepdim=True)
    elif level == "spectral":
        mel = mel - mel.mean()
    return torch.cat([mel.mean(-1), mel.std(-1)]).numpy()


def ridge(x: np.ndarray, y: np.ndarray, penalty: float) -> tuple[np.ndarray, float]:
    """Weights and intercept of a ridge regression on standardised ``x`` (the caller standardises)."""
    w = np.linalg.solve(x.T @ x + penalty * np.eye(x.shape[1]), x.T @ (y - y.mean()))
    return w, float(y.mean())


def speaker_r(pred: np.ndarray, y: np.ndarray, speakers: np.ndarray) -> float:
    """Pearson r over speakers between the mean prediction and the (per-speaker constant) target."""
    names = sorted(set(speakers))
    p = [pred[speakers == s].mean() for s in names]
    t = [y[speakers == s][0] for s in names]
    return float(np.corrcoef(p, t)[0, 1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--every", type=int, default=2, help="every k-th clip of each split")
    args = ap.parse_args()
    index = load_dataset(args.data)
    hidden = json.loads((Path(args.data) / "speakers.json").read_text())
    cfg = StyleConfig()
    logmel = LogMel(SAMPLE_RATE, cfg.n_fft, cfg.hop_length, cfg.n_mels)
    clips = [(split, rec) for split in ("train", "val", "test") for rec in index.clips(split)[:: args.every]]
    train = np.array([split == "train" for split, _ in clips])
    speakers = np.array([rec.subject for _, rec in clips])
    y = np.array([np.log(hidden[rec.subject]["style"]["amplitude"]) for _, rec in clips])
    waves = [index.load_audio(rec) for _, rec in clips]
    print("| style input | penalty (chosen on training speakers) | r over unseen speakers |")
    print("|---|---|---|")
    for level in INPUTS:
        x = np.stack([pooled_logmel(w, level, logmel) for w in waves])
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-9
        z = (x - mu) / sd
        xt, yt, st = z[train], y[train], speakers[train]
        cv = {}
        for penalty in PENALTIES:  # leave one training speaker out
            pred = np.empty_like(yt)
            for s in set(st):
                w, b = ridge(xt[st != s], yt[st != s], penalty)
                pred[st == s] = xt[st == s] @ w + b
            cv[penalty] = speaker_r(pred, yt, st)
        penalty = max(cv, key=cv.get)
        w, b = ridge(xt, yt, penalty)
        r = speaker_r(z[~train] @ w + b, y[~train], speakers[~train])
        print(f"| {level} | {penalty:g} (cross-validated r {cv[penalty]:.2f}) | {r:.2f} |", flush=True)


if __name__ == "__main__":
    main()

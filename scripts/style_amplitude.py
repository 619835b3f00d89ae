"""Does a model reproduce each unseen speaker's articulation amplitude? Per-speaker table from predictions.

    .venv/bin/python scripts/style_amplitude.py --data data/synthetic --split test "label=PRED_DIR" ...

``PRED_DIR`` holds ``<clip>.npy`` (T, V, 3) predictions (``memorytalker evaluate --pred-dir``). A clip's
*lip amplitude* is the RMS over frames and lip vertices of the displacement from the clip's own mean lip
shape (articulation only: a constant offset of the mouth does not count). Per speaker, the mean over clips;
the table gives the ground truth in mm and each model's ratio prediction / ground truth, the mean of
``|log ratio|`` over speakers (0 = every speaker's amplitude right) and the standard deviation of
``log ratio`` over speakers (0 = the speakers' amplitudes right *relative to each other*, whatever the
model's overall level: the part of the error a per-speaker style can fix).
"""

from __future__ import annotations

import argparse

import numpy as np
from labelled import label_path

from memorytalker.data import load_dataset


def lip_amplitude(vertices: np.ndarray, lips: np.ndarray) -> float:
    """RMS displacement (data units) of the lip vertices from their temporal mean; ``vertices`` (T, V, 3)."""
    lip = vertices[:, lips]
    return float(np.sqrt(np.mean(np.sum((lip - lip.mean(axis=0, keepdims=True)) ** 2, axis=-1))))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("preds", nargs="+", type=label_path, help="label=prediction folder")
    args = ap.parse_args()
    index = load_dataset(args.data)
    lips = np.asarray(index.topology.lips)
    runs = args.preds
    gt: dict[str, list[float]] = {}
    pred: dict[str, dict[str, list[float]]] = {label: {} for label, _ in runs}
    for rec in index.clips(args.split):
        gt.setdefault(rec.subject, []).append(lip_amplitude(index.load_vertices(rec), lips))
        for label, folder in runs:
            p = np.load(folder / f"{rec.clip_id}.npy")
            pred[label].setdefault(rec.subject, []).append(lip_amplitude(p, lips))
    subjects = sorted(gt)
    print("| speaker | ground truth [mm] | " + " | ".join(f"{label} (ratio)" for label, _ in runs) + " |")
    print("|---|---|" + "---|" * len(runs))
    logs: dict[str, list[float]] = {label: [] for label, _ in runs}
    for s in subjects:
        g = float(np.mean(gt[s]))
        cells = []
        for label, _ in runs:
            ratio = float(np.mean(pred[label][s])) / g
            logs[label].append(float(np.log(ratio)))
            cells.append(f"{ratio:.2f}")
        print(f"| {s} | {g * 1e3:.2f} | " + " | ".join(cells) + " |")
    print(
        "| mean abs log ratio | | "
        + " | ".join(f"{np.mean(np.abs(logs[label])):.3f}" for label, _ in runs)
        + " |"
    )
    print("| std of log ratio | | " + " | ".join(f"{np.std(logs[label]):.3f}" for label, _ in runs) + " |")


if __name__ == "__main__":
    main()

"""Markdown table of ``memorytalker evaluate`` reports, with the neutral-template baseline as first row.

    .venv/bin/python scripts/results_table.py --data data/synthetic --split test "label=report.json" ...

The baseline predicts every clip's neutral template for all frames (no motion at all): any model must beat
it, and the distance to it shows how much of the motion a model captures. The last column is the
validation LVE of the scored checkpoint (what checkpoint selection saw), when the report records it.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from labelled import label_path

from memorytalker.data import load_dataset
from memorytalker.evaluation.scoring import evaluate_predictions

#: (report key, header, multiplier): the display scales of docs/METRICS.md for data in metres.
COLUMNS = [
    ("lve", "LVE [×1e-5 m²] ↓", 1e5),
    ("lip_max", "Lip-max [mm] ↓", 1e3),
    ("fve", "FVE [mm] ↓", 1e3),
    ("fdd", "FDD [×1e-7 m²] (0 best)", 1e7),
    ("ldtw", "LDTW [mm] ↓", 1e3),
]


def template_baseline(data: str, split: str) -> dict:
    index = load_dataset(data)
    gts, preds, subjects = {}, {}, {}
    for rec in index.clips(split):
        gts[rec.clip_id] = index.load_vertices(rec)
        preds[rec.clip_id] = np.broadcast_to(index.template(rec.subject)[None], gts[rec.clip_id].shape)
        subjects[rec.clip_id] = rec.subject
    templates = {s: index.template(s) for s in set(subjects.values())}
    report = evaluate_predictions(preds, gts, subjects, index.topology, templates, index.units)
    return report["pooled"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("reports", nargs="+", type=label_path, help="label=path of a memorytalker evaluate JSON")
    args = ap.parse_args()
    rows = [("neutral template (no motion)", template_baseline(args.data, args.split), None)]
    for label, path in args.reports:
        report = json.loads(path.read_text())
        val = (report.get("checkpoint") or {}).get("val_metrics", {}).get("lve")
        rows.append((label, report["pooled"], val))
    print("| model | " + " | ".join(c[1] for c in COLUMNS) + " | val LVE [×1e-5 m²] |")
    print("|---|" + "---|" * (len(COLUMNS) + 1))
    for label, pooled, val in rows:
        cells = [f"{pooled[key] * scale:.3f}" for key, _, scale in COLUMNS]
        cells.append("" if val is None else f"{val * 1e5:.3f}")
        print(f"| {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

"""Markdown "Table 1 in one harness" (docs/RESULTS.md): each row one method, the mean of its seeds, every
number from this project's one evaluation layer.

    .venv/bin/python scripts/table1.py --data data/synthetic --split test \
        "MemoryTalker (ours)=runs/synthetic/animating,runs/synthetic_s1/animating" \
        "FaceFormer=runs/synthetic_faceformer/faceformer,runs/synthetic_faceformer_s1/faceformer" \
        "FaceFormer, one condition@default=runs/synthetic_faceformer/faceformer,..."

Per seed (a stage folder with ``best.pt``): its ``<split>_report_<conditions>.json`` (written by
``memorytalker evaluate --conditions <conditions>`` when missing; ``auto`` unless the label says
``@all`` / ``@default`` / ``@<speaker>``; ``@report:PATH`` reads a report written by another command, see
:func:`report_for`), the parameters of the model, the training time (the span of the logged
steps in ``logs/metrics.csv`` of every stage folder of the run, e.g. memorizing + animating) and the
inference speed (median of 3 ``predict`` calls on the bundled 8 s example, as audio seconds per second, on
this machine's threads). Columns: the five paper metrics, closure rate on p/b/m, rest gap in pauses, lip
amplitude ratio (docs/METRICS.md), then the costs. Cells are seed means; ``a / b`` lists the seeds for LVE.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from memorytalker.data.audio import SAMPLE_RATE, load_audio
from memorytalker.inference import example_audio
from memorytalker.models.loaders import load_model

#: (key in the report, where, header, scale).
METRICS = [
    ("lve", "pooled", "LVE [×1e-5 m²] ↓", 1e5),
    ("lip_max", "pooled", "Lip-max [mm] ↓", 1e3),
    ("fve", "pooled", "FVE [mm] ↓", 1e3),
    ("fdd", "pooled", "FDD [×1e-7 m²]", 1e7),
    ("ldtw", "pooled", "LDTW [mm] ↓", 1e3),
    ("closure_rate", "lipsync", "p/b/m closed [%] ↑", 100),
    ("rest_gap", "lipsync", "rest gap [mm]", 1e3),
    ("amplitude_ratio", "lipsync", "lip amplitude ratio (1 best)", 1),
]


def report_for(stage_dir: Path, data: str, split: str, conditions: str) -> dict:
    """The evaluation report of ``stage_dir/best.pt`` on ``split`` of ``data`` under the ``conditions``
    protocol (``memorytalker evaluate --conditions``), written once as ``<split>_report_<conditions>.json``.
    ``conditions`` = ``report:PATH`` reads a report another command wrote instead (``PATH`` relative to
    ``stage_dir``: Imitator's ``../adapted/report.json`` from ``memorytalker adapt``, ScanTalk's report on
    the remeshed corpus)."""
    if conditions.startswith("report:"):
        path = stage_dir / conditions.removeprefix("report:")
        if not path.is_file():
            raise SystemExit(
                f"{path}: no such report (scripts/table1.sh writes it: memorytalker adapt / evaluate)"
            )
        return json.loads(path.read_text())
    path = stage_dir / f"{split}_report_{conditions}.json"
    if not path.is_file():
        cmd = [sys.executable, "-m", "memorytalker", "evaluate", "--checkpoint", str(stage_dir / "best.pt")]
        cmd += [
            "--data",
            data,
            "--split",
            split,
            "--out",
            str(path),
            "--no-progress",
            "--conditions",
            conditions,
        ]
        cmd += ["--plot-clips", "0"]
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return json.loads(path.read_text())


def training_minutes(stage_dir: Path) -> float:
    """Logged-step span of every stage folder of the run (the folder above ``stage_dir``), in minutes."""
    total = 0.0
    for log in sorted(stage_dir.parent.glob("*/logs/metrics.csv")):
        times = [float(r["time"]) for r in csv.DictReader(log.open())]
        if times:
            total += max(times) - min(times)
    return total / 60


def inference_speed(model) -> float:
    wave = load_audio(example_audio())
    audio = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))[None]
    template = torch.from_numpy(np.array(model.topology.vertices, dtype=np.float32))[None]
    lengths = torch.tensor([audio.shape[1]])
    runs = []
    with torch.inference_mode():
        for _ in range(3):
            t0 = time.perf_counter()
            model.predict(audio, lengths, template)
            runs.append(time.perf_counter() - t0)
    return audio.shape[1] / SAMPLE_RATE / statistics.median(runs)


def seed_row(stage_dir: Path, data: str, split: str, conditions: str) -> dict:
    report = report_for(stage_dir, data, split, conditions)
    model, _, _ = load_model(stage_dir / "best.pt")
    values = {}
    for key, where, _, scale in METRICS:
        section = report.get(where, {})
        section = section.get("pooled", section) if where == "lipsync" else section
        values[key] = float(section[key]) * scale
    values["params"] = sum(p.numel() for p in model.parameters()) / 1e6
    values["train_min"] = training_minutes(stage_dir)
    values["speed"] = inference_speed(model)
    return values


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument(
        "rows",
        nargs="+",
        help="label[@conditions]=STAGE_DIR[,STAGE_DIR...]: one folder per seed; conditions = evaluate's "
        "--conditions protocol for speaker-conditioned kinds (default auto: the kind's published one), or "
        "report:PATH (a report another command wrote, relative to each STAGE_DIR)",
    )
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    headers = [h for _, _, h, _ in METRICS] + ["parameters [M]", "training [min]", "inference [audio s/s]"]
    print("| method | seeds | " + " | ".join(headers) + " |")
    print("|---|---|" + "---|" * len(headers))
    for row in args.rows:
        label, _, dirs = row.rpartition("=")
        label, _, conditions = label.partition("@")
        seeds = [seed_row(Path(d), args.data, args.split, conditions or "auto") for d in dirs.split(",") if d]
        keys = [k for k, *_ in METRICS] + ["params", "train_min", "speed"]
        cells = []
        for k in keys:
            vals = [s[k] for s in seeds]
            mean = statistics.fmean(vals)
            cell = (
                f"{mean:.3f}" if k not in ("closure_rate", "params", "train_min", "speed") else f"{mean:.1f}"
            )
            if k == "lve" and len(vals) > 1:
                cell += " (" + " / ".join(f"{v:.3f}" for v in vals) + ")"
            if k == "params":
                cell = f"{mean:.2f}"
            cells.append(cell)
        print(f"| {label} | {len(seeds)} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

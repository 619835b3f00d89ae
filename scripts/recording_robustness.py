"""Lip-sync of models on a dataset split as recorded and under the issue's recording conditions.

    .venv/bin/python scripts/recording_robustness.py --data data/synth72 --split test LABEL=CKPT [...] \\
        [--out robustness.json]

Each checkpoint is scored by ``memorytalker evaluate`` (``evaluate_checkpoint``) four times: as recorded, with
white noise at 15 dB SNR, in a small synthetic room (RT60 0.3 s) and 12 dB quieter (the conditions of
``scripts/real_speech_lipsync.py``, here with ground truth: every clip's noise and room are seeded by its id,
so all models hear the same audio). Per condition: LVE, P/B/M closed, the rest gap in pauses, the predicted
lip amplitude against the truth, and how far the amplitude moved from the clean one. The JSON keeps every
report's pooled metrics and lip-sync summary.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from labelled import label_path
from real_speech_lipsync import CONDITIONS

from memorytalker.data.augment import RecordingCondition
from memorytalker.evaluation.scoring import evaluate_checkpoint


def score(checkpoint: str, data: str, split: str, condition: RecordingCondition) -> dict:
    """Pooled metrics and lip-sync of one checkpoint under one condition."""
    with tempfile.TemporaryDirectory() as tmp:
        report = evaluate_checkpoint(
            checkpoint, data, split=split, out=Path(tmp) / "r.json", plot_clips=0, progress=False,
            recording=condition,
        )  # fmt: skip
    return {"pooled": report["pooled"], "lipsync": report["lipsync"]["pooled"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=label_path, help="LABEL=CHECKPOINT")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    ap.add_argument("--out", default=None, help="JSON of every score")
    args = ap.parse_args()
    results: dict[str, dict] = {}
    print(
        f"{'model':16s} {'condition':21s} {'LVE':>6s} {'P/B/M':>6s} {'rest':>7s} {'ampl.':>6s} {'vs clean':>8s}"
    )
    for label, ckpt in args.runs:
        results[label] = {}
        for name, cond in CONDITIONS.items():
            r = score(str(ckpt), args.data, args.split, cond)
            results[label][name] = r
            lip, clean = r["lipsync"], results[label]["as recorded"]["lipsync"]
            moved = lip["amplitude_ratio"] / clean["amplitude_ratio"] - 1.0
            print(
                f"{label:16s} {name:21s} {r['pooled']['lve'] * 1e5:6.3f} {lip['closure_rate']:6.1%} "
                f"{lip['rest_gap'] * 1e3:5.2f}mm {lip['amplitude_ratio']:6.3f} {moved:+8.1%}",
                flush=True,
            )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

"""How a CodeTalker checkpoint uses its motion codebook: perplexity (``exp`` of the entropy of the code
histogram) and dead codes (entries never used) over a split's clips
(:func:`memorytalker.models.codetalker.codebook_usage`).

Always for the ground truth's codes (the stage-1 encoder's, every checkpoint has it); for a stage-2
checkpoint also for the codes its predictor decodes from speech, each clip under the conditions
``evaluate`` uses (its own speaker's style; speakers outside training: ``--conditions``, by default the
kind's protocol, every training speaker's style).

    .venv/bin/python scripts/codebook_usage.py runs/synthetic_codetalker/codetalker/best.pt \\
        --data data/synthetic --split test [--max-clips N] [--conditions all|default|SPEAKER] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


def split_codes(model, index, split: str, max_clips: int | None, conditions: str) -> dict[str, torch.Tensor]:
    """``{"ground truth": codes, ["predicted": codes]}``: every valid frame's codes ``(frames, N)`` over the
    split's clips."""
    from memorytalker.evaluation.scoring import clip_conditions, corpus_name

    records = index.clips(split)[:max_clips] if max_clips else index.clips(split)
    if not records:
        raise SystemExit(f"split {split!r} of {index.root} has no clips")
    out: dict[str, list[torch.Tensor]] = {"ground truth": []}
    predicted = model.stage == "predictor"
    if predicted:
        out["predicted"] = []
    for rec in records:
        gt = torch.from_numpy(index.load_vertices(rec))[None]
        template = torch.from_numpy(index.template(rec.subject))[None]
        frames = torch.tensor([gt.shape[1]])
        out["ground truth"].append(model.motion_codes(gt, template, frames)[0])
        if predicted:
            audio = torch.from_numpy(index.load_audio(rec))[None]
            chosen = clip_conditions(model, rec.subject, conditions, corpus_name(index.root))
            cond = torch.tensor([c for _, c in chosen])
            n = len(chosen)
            codes = model.predicted_codes(
                audio.repeat(n, 1), torch.full((n,), audio.shape[1]), frames.repeat(n), cond
            )
            out["predicted"].extend(codes)
    return {k: torch.cat(v) for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", help="a codetalker checkpoint (stage 1 or 2)")
    parser.add_argument("--data", required=True, help="processed dataset folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--max-clips", type=int, default=None)
    parser.add_argument("--conditions", default="auto", help="unseen speakers: all, default or a speaker")
    parser.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    from memorytalker.data import load_dataset
    from memorytalker.models.codetalker import CodeTalker, codebook_usage
    from memorytalker.models.loaders import load_model

    model, _, cfg = load_model(args.checkpoint, "cpu")
    if not isinstance(model, CodeTalker):
        raise SystemExit(f"{args.checkpoint} is a {cfg.kind!r} model, not a codetalker one")
    index = load_dataset(args.data)
    size = cfg.codetalker.n_embed
    result = {"checkpoint": args.checkpoint, "stage": model.stage, "split": args.split, "codebook": size}
    with torch.inference_mode():
        codes = split_codes(model, index, args.split, args.max_clips, args.conditions)
    for name, c in codes.items():
        u = codebook_usage(c, size)
        result[name] = {
            "perplexity": u.perplexity,
            "dead": u.dead,
            "dead_fraction": u.dead_fraction,
            "codes": u.count,
        }
        print(
            f"{name:>12}: perplexity {u.perplexity:7.2f} of {size}; dead codes {u.dead} "
            f"({100 * u.dead_fraction:.1f} %); {u.count} codes ({c.shape[0]} frames x {c.shape[1]})"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

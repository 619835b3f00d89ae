"""Benchmark ``memorytalker synth``: wall time of a corpus generation (and per-engine synthesis speed).

Run: ``.venv/bin/python benchmarks/bench_synth.py --speakers 12 --sentences 40 --workers 2``
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    from memorytalker.synth.corpus import generate_corpus
    from memorytalker.synth.tts import synthesize_utterance

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--speakers", type=int, default=12)
    ap.add_argument("--sentences", type=int, default=40)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None, help="keep the corpus here (default: a temporary folder)")
    ap.add_argument("--engines-only", action="store_true", help="only time each engine on 5 sentences")
    args = ap.parse_args()

    text = "The boy enjoyed the noisy toy, but his mother was not amused."
    for voice in (
        "piper:joe",
        "flite:slt",
        "festival:cmu_us_slt_arctic_hts",
        "festival:kal_diphone",
        "espeak:en-us+f3",
    ):
        synthesize_utterance(text, voice)  # warm-up (model load)
        t = time.perf_counter()
        dur = sum(synthesize_utterance(text, voice, seed=i).duration for i in range(5))
        el = time.perf_counter() - t
        print(f"{voice:34s} {el / 5 * 1000:7.1f} ms/sentence  {dur / el:6.1f}x real time")
    if args.engines_only:
        return
    tmp = None
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench-synth-")) / "corpus"
    if args.out is None:
        tmp = out.parent
    try:
        t = time.perf_counter()
        summary = generate_corpus(
            out,
            args.speakers,
            args.sentences,
            seed=args.seed,
            workers=args.workers,
            overwrite=True,
            progress=True,
        )
        wall = time.perf_counter() - t
        size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
        print(json.dumps(summary, indent=1))
        print(
            f"{args.speakers} speakers x {args.sentences} sentences, {args.workers} workers: {wall:.1f} s wall "
            f"({wall / summary['clips'] * 1000:.0f} ms/clip, {summary['audio_seconds'] / wall:.1f}x real time), "
            f"{size / 2**20:.0f} MiB on disk"
        )
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

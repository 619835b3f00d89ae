"""Long recordings: time and peak memory (RSS) of ``memorytalker animate`` by length.

    .venv/bin/python benchmarks/bench_long_audio.py [--minutes 1 10 60] [--video-minutes 1 5] [--out DIR]

Each length runs in a fresh Python process (its own peak RSS from ``getrusage``) on a recording made by
repeating the bundled example (7.95 s; each repetition at a different level, -6 to +3 dB, so it is not one
clip copied) and writes what ``animate`` writes: ``.npy`` (memory-mapped, window by window), ``.csv`` and
``.glb``; ``--video-minutes`` lengths also render the ``.mp4``. Prints a Markdown table: minutes, frames,
wall seconds, seconds per minute of audio, peak RSS, and the size of the ``.npy``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

RUNNER = r"""
import json, resource, sys, time
from memorytalker.cli import main
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
rc = main(["animate", args["wav"], "--out", args["out"], *args["flags"]])
wall = time.perf_counter() - t0
print(json.dumps({"rc": rc, "wall": wall, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def make_recording(path: Path, minutes: float) -> float:
    import numpy as np

    from memorytalker.data.audio import SAMPLE_RATE, load_audio, write_wav
    from memorytalker.inference import example_audio

    clip = load_audio(example_audio())
    n = int(minutes * 60 * SAMPLE_RATE)
    reps = -(-n // clip.shape[0])
    gains = 10 ** (np.random.default_rng(0).uniform(-6, 3, reps) / 20)
    out = np.concatenate([clip * g for g in gains])[:n].astype(np.float32)
    write_wav(path, out)
    return n / SAMPLE_RATE


def run(minutes: float, video: bool, work: Path) -> dict:
    wav = work / f"speech_{minutes:g}min.wav"
    make_recording(wav, minutes)
    out = work / f"out_{minutes:g}min_{'video' if video else 'novideo'}"
    flags = [] if video else ["--no-video"]
    res = subprocess.run(
        [sys.executable, "-c", RUNNER, json.dumps({"wav": str(wav), "out": str(out), "flags": flags})],
        capture_output=True,
        text=True,
    )
    if res.returncode != 0:
        raise SystemExit(f"{minutes} min failed:\n{res.stderr[-2000:]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    npy = out / f"{wav.stem}.npy"
    info.update(minutes=minutes, video=video, npy_mb=npy.stat().st_size / 2**20)
    import numpy as np

    info["frames"] = int(np.load(npy, mmap_mode="r").shape[0])
    for f in out.iterdir():
        f.unlink()
    out.rmdir()
    wav.unlink()
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, nargs="*", default=[1, 10, 60])
    ap.add_argument("--video-minutes", type=float, nargs="*", default=[1])
    ap.add_argument("--out", default=None, help="work folder (default: a temporary one; files are removed)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.out or tmp)
        work.mkdir(parents=True, exist_ok=True)
        rows = [run(m, True, work) for m in args.video_minutes] + [run(m, False, work) for m in args.minutes]
    print("| audio | files | frames | wall s | s per audio min | peak RSS MB | .npy MB |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        files = ".npy .csv .glb .mp4" if r["video"] else ".npy .csv .glb"
        print(
            f"| {r['minutes']:g} min | {files} | {r['frames']} | {r['wall']:.1f} | {r['wall'] / r['minutes']:.1f} "
            f"| {r['peak_mb']:.0f} | {r['npy_mb']:.0f} |"
        )


if __name__ == "__main__":
    main()

"""Latency of the web server: a real uvicorn server, an HTTP client, the real model, renderer and exporter.

    .venv/bin/python benchmarks/serve.py [--seconds 10] [--runs 3] [--checkpoint CKPT]

Reports, per upload of a ``--seconds`` speech-like WAV (and of the same speech as WebM/Opus, what the
browser's recorder sends): the POST answer time (upload read, container probe, decode, resample, queue),
the time until the 3D face (.glb) can be shown, and the time until the MP4 is ready; plus the answer time
of refused uploads (not audio, too long), which must stay short whatever the file holds.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the uploaded speech")
    parser.add_argument("--runs", type=int, default=3, help="uploads per format")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the embedded model)")
    args = parser.parse_args()

    import httpx
    import torch
    from test_serve import speech_like, wav_bytes, webm_opus_bytes

    from memorytalker.serve import ServeSettings, create_app
    from memorytalker.serve.app import load_animator, serve_in_thread

    t0 = time.perf_counter()
    animator = load_animator(args.checkpoint)
    print(
        f"model loaded in {time.perf_counter() - t0:.2f} s ({args.checkpoint or 'embedded default'}); "
        f"torch threads {torch.get_num_threads()}"
    )
    settings = ServeSettings(max_seconds=max(60.0, args.seconds + 1))
    app = create_app(settings, animator=animator)
    with serve_in_thread(app) as base:
        speech16 = speech_like(args.seconds)
        uploads = {
            "wav 16 kHz": ("speech.wav", wav_bytes(speech16)),
            "webm/opus 48 kHz": ("recording.webm", webm_opus_bytes(speech_like(args.seconds, rate=48000))),
        }
        rows = []
        with httpx.Client(base_url=base, timeout=300) as client:
            for label, (name, data) in uploads.items():
                posts, faces, dones = [], [], []
                for _ in range(args.runs):
                    start = time.perf_counter()
                    r = client.post("/api/jobs", files={"audio": (name, data)})
                    r.raise_for_status()
                    posts.append(time.perf_counter() - start)
                    url = r.json()["status_url"]
                    face = None
                    while True:
                        status = client.get(url).json()
                        if face is None and "glb" in status["files"]:
                            face = time.perf_counter() - start
                        if status["status"] in ("done", "failed"):
                            break
                        time.sleep(0.02)
                    if status["status"] != "done":
                        raise SystemExit(f"job failed: {status['error']}")
                    faces.append(face)
                    dones.append(time.perf_counter() - start)
                rows.append((label, len(data), posts, faces, dones, status["frames"]))

            refused = []
            long_wav = wav_bytes(speech_like(settings.max_seconds + 60))
            long_webm = webm_opus_bytes(speech_like(settings.max_seconds + 60, rate=48000))
            for label, name, data in (
                ("not audio (1 MB of text)", "notes.txt", b"not speech at all\n" * 58_000),
                (f"too long ({settings.max_seconds + 60:g} s wav)", "long.wav", long_wav),
                (f"too long ({settings.max_seconds + 60:g} s webm)", "long.webm", long_webm),
            ):
                start = time.perf_counter()
                r = client.post("/api/jobs", files={"audio": (name, data)})
                refused.append((label, r.status_code, time.perf_counter() - start, len(data)))

    def med(xs):
        return f"{statistics.median(xs):.2f} s"

    print(f"\n{args.seconds:g} s of speech, {args.runs} runs each, median:")
    print("| upload | bytes | frames | POST answered | 3D face ready | MP4 ready |")
    print("|---|---|---|---|---|---|")
    for label, size, posts, faces, dones, frames in rows:
        print(f"| {label} | {size:,} | {frames} | {med(posts)} | {med(faces)} | {med(dones)} |")
    print("\n| refused upload | status | answered in | bytes |")
    print("|---|---|---|---|")
    for label, status, seconds, size in refused:
        print(f"| {label} | {status} | {seconds:.2f} s | {size:,} |")


if __name__ == "__main__":
    main()

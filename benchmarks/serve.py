"""Latency of the web server: a real uvicorn server, an HTTP client, the real model, renderer and exporter.

    .venv/bin/python benchmarks/serve.py [--seconds 10] [--runs 3] [--checkpoint CKPT]
    .venv/bin/python benchmarks/serve.py --load [--concurrent 20] [--slow 50]

Reports, per upload of a ``--seconds`` speech-like WAV (and of the same speech as WebM/Opus, what the
browser's recorder sends): the POST answer time (upload read, container probe, decode, resample, queue),
the time until the 3D face (.glb) can be shown, and the time until the MP4 is ready; plus the answer time
of refused uploads (not audio, too long), which must stay short whatever the file holds.

``--load`` starts ``memorytalker serve`` as its own process on loopback and reports its resident memory
(VmRSS and the peak VmHWM from /proc) at rest, after ``--concurrent`` simultaneous maximum-size uploads
(19.9 MB each, the default 20 MB limit), and while ``--slow`` clients send a request head and a few bytes of
body and then stall; then whether it still serves a normal upload. Bounded in count and in time: every
client gives up after ``--client-timeout`` seconds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def _memory(pid: int) -> tuple[float, float]:
    """``(VmRSS, VmHWM)`` of process ``pid`` in MB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields["VmRSS"], fields["VmHWM"]


def _multipart(data: bytes, name: str) -> tuple[bytes, str]:
    boundary = "memorytalkerbenchboundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="audio"; filename="{name}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def load_test(args) -> None:
    import socket
    import subprocess
    import threading

    import httpx
    from test_serve import speech_like, wav_bytes

    port = 18000 + (os.getpid() % 1000)
    cmd = [sys.executable, "-m", "memorytalker", "serve", "--port", str(port), "--upload-seconds", "10"]
    if args.checkpoint:
        cmd += ["--checkpoint", args.checkpoint]
    server = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                httpx.get(base + "/api/info", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit("the server did not start") from None
                time.sleep(0.2)
        rows = [("at rest", *_memory(server.pid), "")]
        # a max-size upload: 19.9 MB of audio bytes (a long WAV; the server refuses it as too long)
        big = wav_bytes(speech_like(19_900_000 / 2 / 16000))[:19_900_000]
        body, ctype = _multipart(big, "big.wav")
        statuses: list[int] = []

        def post() -> None:
            try:
                r = httpx.post(base + "/api/jobs", content=body, headers={"content-type": ctype},
                               timeout=args.client_timeout)  # fmt: skip
                statuses.append(r.status_code)
            except httpx.HTTPError as exc:
                statuses.append(type(exc).__name__)

        threads = [threading.Thread(target=post) for _ in range(args.concurrent)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.client_timeout + 5)
        counts = {str(k): statuses.count(k) for k in sorted(set(statuses), key=str)}
        rows.append((f"{args.concurrent} concurrent 19.9 MB uploads", *_memory(server.pid), str(counts)))
        # slow clients: a request head promising 19.9 MB and 10 bytes of it, then nothing
        socks = []
        for _ in range(args.slow):
            sk = socket.create_connection(("127.0.0.1", port), timeout=args.client_timeout)
            sk.sendall(
                f"POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body[:10]
            )
            socks.append(sk)
        time.sleep(2.0)
        answered = 0
        for sk in socks:
            sk.settimeout(0.2)
            try:
                answered += bool(sk.recv(64))
            except OSError:
                pass
        rows.append(
            (f"{args.slow} slow clients (2 s in)", *_memory(server.pid), f"{answered} answered at once")
        )
        time.sleep(10.0)  # past --upload-seconds: the held ones are answered 408 and released
        rows.append((f"{args.slow} slow clients (12 s in)", *_memory(server.pid), ""))
        for sk in socks:
            sk.close()
        r = httpx.post(
            base + "/api/jobs", files={"audio": ("ok.wav", wav_bytes(speech_like(3.0)))}, timeout=60
        )
        rows.append(("then a normal 3 s upload", *_memory(server.pid), f"HTTP {r.status_code}"))
    finally:
        server.terminate()
        server.wait(30)
    print("| moment | server VmRSS | peak VmHWM | answers |")
    print("|---|---|---|---|")
    for label, rss, hwm, note in rows:
        print(f"| {label} | {rss:.0f} MB | {hwm:.0f} MB | {note} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--load", action="store_true", help="the resource test (see above)")
    parser.add_argument("--concurrent", type=int, default=20, help="simultaneous max-size uploads")
    parser.add_argument("--slow", type=int, default=50, help="clients that stall mid-upload")
    parser.add_argument("--client-timeout", type=float, default=60.0, help="seconds a client waits at most")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the uploaded speech")
    parser.add_argument("--runs", type=int, default=3, help="uploads per format")
    parser.add_argument("--checkpoint", default=None, help="model checkpoint (default: the embedded model)")
    args = parser.parse_args()
    if args.load:
        load_test(args)
        return

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

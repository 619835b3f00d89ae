"""``memorytalker serve``: a local web page to upload or record speech and watch the animated face."""

from __future__ import annotations

import argparse

NAME = "serve"
HELP = "local web page: upload or record speech, watch the animated 3D face, download the MP4"
DESCRIPTION = (
    "Start a local web server (FastAPI + uvicorn) with a page where you upload a recording or record speech\n"
    "in the browser, then watch the animated 3D face (three.js, WebGL) in sync with the audio and download\n"
    "the MP4 / .glb / .npy. Everything runs on this machine; nothing is downloaded. See docs/SERVE.md.\n"
    "  memorytalker serve                       # http://127.0.0.1:8000, embedded default model\n"
    "  memorytalker serve --checkpoint runs/synthetic/animating/best.pt --max-seconds 30"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from memorytalker.commands._common import add_checkpoint_argument, add_device_argument

    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: local only)"
    )
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    add_checkpoint_argument(parser)
    add_device_argument(parser)
    parser.add_argument(
        "--max-seconds", type=float, default=60.0, help="longest recording accepted, in seconds (default 60)"
    )
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=20_000_000,
        help="largest upload accepted, in bytes (default 20000000)",
    )
    parser.add_argument(
        "--upload-seconds",
        type=float,
        default=60.0,
        help="longest time an upload may take to arrive, in seconds (default 60; slower: HTTP 408)",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="animations generated at the same time (default 1)"
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        default=4,
        help="uploads that may wait for a worker before 'busy' (default 4)",
    )
    parser.add_argument(
        "--output-dir",
        default=None,
        help="keep the results in this folder (default: a temporary folder removed when the server stops)",
    )


def main(args: argparse.Namespace) -> int:
    import logging

    from memorytalker.serve.jobs import ServeSettings

    settings = ServeSettings(
        host=args.host,
        port=args.port,
        checkpoint=args.checkpoint,
        max_seconds=args.max_seconds,
        max_bytes=args.max_bytes,
        upload_seconds=args.upload_seconds,
        workers=args.workers,
        max_queued=args.max_queued,
        output_dir=args.output_dir,
        device=args.device,
    )
    settings.validate()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s: %(name)s: %(message)s")
    import uvicorn

    from memorytalker.serve.app import create_app, load_animator

    print(f"loading the model ({settings.checkpoint or 'embedded default'}) ...", flush=True)
    animator = load_animator(settings.checkpoint, settings.device)
    app = create_app(settings, animator=animator)
    print(f"memorytalker: open http://{_url_host(settings.host)}:{settings.port}/ in a browser", flush=True)
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="info")
    return 0


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host

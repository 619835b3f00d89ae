"""Figure and numbers for docs/MODEL_CARD.md: the embedded default model on the bundled example.

    .venv/bin/python scripts/model_figures.py [--checkpoint CKPT] [--out docs/img/default_example.png]
    .venv/bin/python scripts/model_figures.py --checkpoint "LABEL=CKPT" --checkpoint "LABEL2=CKPT2" ... \
        --out docs/img/table1_frames.png --width 810     # one labelled row per model (docs/RESULTS.md)

Re-synthesises the example sentence with the voice that made ``example.wav`` (same TTS, same seed, so the
phone timings are the example's), animates it, prints the inner-lip midline gap at every P/B/M and the
closure rate / rest gap (memorytalker.evaluation.lipsync), and renders three frames with the project's
renderer (teeth, mouth socket, eyes): the open vowel of "father", the "b" of "every b", and the pause
after "Hello!". Each panel is labelled with its phone and measured gap.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))


def model_row(checkpoint: str | None, audio: np.ndarray, phones: list[dict]) -> np.ndarray:
    """The three labelled panels of one model on the example, as an ``(H, W, 3)`` image; prints its gaps."""
    from PIL import Image, ImageDraw

    from memorytalker.evaluation.lipsync import inner_lip_gap, lipsync_clip
    from memorytalker.inference import Animator
    from memorytalker.pipeline import FaceScene, face_neutral
    from memorytalker.render.gl import render_image

    animator = Animator(checkpoint)
    verts = animator.animate(audio, sample_rate=16000)
    fps = animator.fps
    gap_mm = inner_lip_gap(verts, animator.topology) * 1000.0
    result = lipsync_clip(verts, None, animator.topology, phones, fps, "m")
    print(f"{checkpoint or 'embedded default'}: {len(verts)} frames; lip-sync: {result}")
    for p in phones:
        if p["phone"] in {"P", "B", "M"}:
            a, b = int(p["start"] * fps) - 1, int(np.ceil(p["end"] * fps)) + 1
            print(f"  {p['phone']} at {p['start']:.2f} s: min gap {gap_mm[max(0, a) : b + 1].min():.2f} mm")

    def pick(phone: str, nth: int = 0, after: float = 0.0) -> tuple[str, int]:
        hits = [p for p in phones if p["phone"] == phone and p["start"] >= after]
        p = hits[nth]
        return phone, min(int(round((p["start"] + p["end"]) / 2 * fps)), len(verts) - 1)

    tpl = np.asarray(animator.topology.vertices, dtype=np.float32)
    face = animator.face
    arkit = animator.arkit_solver.solve(verts, tpl)
    scene = FaceScene(face, verts, arkit, face_neutral(face, tpl, animator.topology))
    panels = []
    for label, (phone, k) in (
        ('"father" (AA)', pick("AA", after=7.0)),
        ('"b" (B)', pick("B")),
        ("pause after Hello!", pick("sil", after=0.3)),
    ):
        b, e = max(0, k - 1), min(len(verts), k + 2)  # the bilabial: its most closed frame of the phone
        if phone == "B":
            k = b + int(np.argmin(gap_mm[b:e]))
        img = Image.fromarray(render_image(scene.frame(k), face.faces, size=360, colours=face.vertex_colours))
        ImageDraw.Draw(img).text(
            (8, 8), f"{label}  t={k / fps:.2f}s  gap {gap_mm[k]:.1f} mm", fill=(20, 20, 20)
        )
        panels.append(np.asarray(img))
    return np.concatenate(panels, axis=1)


def main() -> None:
    from build_default_model import EXAMPLE_TEXT, EXAMPLE_VOICE
    from PIL import Image, ImageDraw

    from memorytalker.data.audio import load_audio
    from memorytalker.inference import example_audio
    from memorytalker.synth.tts import synthesize

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--checkpoint",
        action="append",
        default=None,
        help="[LABEL=]CKPT; repeat for one labelled row per model (default: the embedded model)",
    )
    ap.add_argument("--out", default=str(ROOT / "docs/img/default_example.png"))
    ap.add_argument("--width", type=int, default=None, help="scale the figure to this width (pixels)")
    args = ap.parse_args()

    audio, phones = synthesize(EXAMPLE_TEXT, EXAMPLE_VOICE, seed=0)
    shipped = load_audio(example_audio())
    if shipped.shape != audio.shape or not np.allclose(shipped, audio, atol=1e-3):
        raise SystemExit("the re-synthesised example differs from example.wav: timings would not match")
    rows = []
    for spec in args.checkpoint or [None]:
        label, _, path = spec.rpartition("=") if spec else ("", "", None)
        row = model_row(path, audio, phones)
        if len(args.checkpoint or []) > 1:  # a caption strip above each model's row
            strip = Image.new("RGB", (row.shape[1], 34), "white")
            ImageDraw.Draw(strip).text((10, 6), label or path, fill=(0, 0, 0), font_size=22)
            row = np.concatenate([np.asarray(strip), row], axis=0)
        rows.append(row)
    figure = Image.fromarray(np.concatenate(rows, axis=0))
    if args.width:
        figure = figure.resize((args.width, round(figure.height * args.width / figure.width)), Image.LANCZOS)
        figure = figure.quantize(128)  # a docs figure: 128 colours keep the file small
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    figure.save(args.out, optimize=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

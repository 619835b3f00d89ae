"""Figures for docs/DATA.md: the procedural face, a lip-opening plot against the phoneme timeline, and
the corpus on the project's face.

``python scripts/synth_figures.py --out docs/img`` writes ``synth_face.png`` and ``synth_lips.png``
(matplotlib only: a small painter's-algorithm renderer, no GL needed) and ``synth_ict_frames.png`` (two
speakers of the default corpus at an open vowel, a bilabial and a pause, rendered with the project's
renderer: teeth, mouth socket and eyes).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def draw_mesh(
    ax, vertices: np.ndarray, faces: np.ndarray, yaw_deg: float = 0.0, pitch_deg: float = 0.0
) -> None:
    """Draw ``(V, 3)`` vertices as a shaded orthographic view on a matplotlib axis (back faces dark)."""
    from matplotlib.collections import PolyCollection

    a, e = np.radians(yaw_deg), np.radians(pitch_deg)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    p = vertices @ ry.T @ rx.T
    tri = p[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    n /= np.linalg.norm(n, axis=1, keepdims=True) + 1e-12
    light = np.array([0.35, 0.45, 0.82])
    light /= np.linalg.norm(light)
    front = n[:, 2] > 0
    shade = np.where(front, np.clip(n @ light, 0, 1) * 0.75 + 0.2, 0.12)
    order = np.argsort(tri[:, :, 2].mean(axis=1))
    colors = np.stack([shade * 0.96, shade * 0.80, shade * 0.70], axis=1)[order]
    ax.add_collection(PolyCollection(tri[order][:, :, :2], facecolors=colors, edgecolors="none"))
    ax.set_xlim(p[:, 0].min(), p[:, 0].max())
    ax.set_ylim(p[:, 1].min(), p[:, 1].max())
    ax.set_aspect("equal")
    ax.axis("off")


def face_figure(path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memorytalker.synth.articulation import FIELDS, animate, build_rig
    from memorytalker.synth.head import HeadShape, make_head

    v, f, r = make_head()
    rig = build_rig(v, f, r)
    poses = np.zeros((4, len(FIELDS)))
    poses[1, [0, 1, 2]] = 0.2  # "AA": jaw open
    poses[2, [3, 4]] = 1.0  # "UW": rounded
    poses[2, 0] = 0.06
    poses[3, [7, 8]] = 1.0  # brows up, eyes closed
    frames = animate(rig, poses)
    other = make_head(HeadShape.random(np.random.default_rng(5)))[0]
    fig, axes = plt.subplots(1, 6, figsize=(18, 3.6))
    draw_mesh(axes[0], v, f)
    draw_mesh(axes[1], v, f, yaw_deg=55)
    draw_mesh(axes[2], other, f, yaw_deg=20)
    for ax, k in zip(axes[3:], (1, 2, 3), strict=True):
        draw_mesh(ax, frames[k], f, yaw_deg=15)
    for ax, title in zip(
        axes,
        ("neutral", "profile", "another speaker", "jaw open (AA)", "rounded (UW)", "brow raise + blink"),
        strict=True,
    ):
        ax.set_title(title, fontsize=10)
    fig.savefig(path, dpi=70, bbox_inches="tight")
    plt.close(fig)


def lips_figure(path: Path, voice: str = "piper:joe") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from memorytalker.data.audio import SAMPLE_RATE
    from memorytalker.data.phonemes import SILENCE
    from memorytalker.synth.articulation import BILABIALS, OPEN_VOWELS, build_rig
    from memorytalker.synth.corpus import SpeakerPlan, make_clip
    from memorytalker.synth.head import head_topology, make_head
    from memorytalker.synth.style import make_style
    from memorytalker.synth.voices import VoiceSpec
    from memorytalker.topology import inner_lip_gap

    v, f, r = make_head()
    rig = build_rig(v, f, r)
    spec = VoiceSpec.parse(voice)
    topo = head_topology()
    style = make_style(spec, np.random.default_rng(0))
    plan = SpeakerPlan("demo", 0, spec, style, v, rig, {}, "train", topo)
    text = "Mom bought a bamboo broom and a bulb for the lamp."
    audio, verts, align, _, _ = make_clip(plan, 1, 0, text, seed=0)
    o = inner_lip_gap(verts, topo) * 1000
    t = np.arange(len(o)) / 30.0
    fig, (a0, a1) = plt.subplots(2, 1, figsize=(12, 4.2), sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    ts = np.arange(len(audio)) / SAMPLE_RATE
    a0.plot(ts, audio, lw=0.4, color="0.3")
    a0.set_yticks([])
    a0.set_title(f"{text}  ({voice})", fontsize=10)
    a1.plot(t, o, "o-", ms=2.5, lw=1.2, color="C0", label="inner lip gap (mm)")
    for p in align["phonemes"]:
        if p["phone"] == SILENCE:
            continue
        color = "C3" if p["phone"] in BILABIALS else ("C2" if p["phone"] in OPEN_VOWELS else "0.85")
        a1.axvspan(p["start"], p["end"], color=color, alpha=0.25 if color != "0.85" else 0.15, lw=0)
        a1.text((p["start"] + p["end"]) / 2, o.max() * 1.04, p["phone"], ha="center", fontsize=7)
    a1.set_xlabel("time (s)")
    a1.set_ylabel("inner lip gap (mm)")
    a1.set_ylim(-1, o.max() * 1.12)
    a1.text(0.01, 0.9, "red: p/b/m (lips closed)   green: open vowels", transform=a1.transAxes, fontsize=8)
    fig.savefig(path, dpi=80, bbox_inches="tight")
    plt.close(fig)


def ict_frames_figure(path: Path, speakers: tuple[int, ...] = (1, 2), seed: int = 0) -> None:
    from PIL import Image

    from memorytalker.face import FaceModel
    from memorytalker.pipeline import FaceScene
    from memorytalker.render.gl import render_image
    from memorytalker.synth.articulation import BILABIALS, OPEN_VOWELS
    from memorytalker.synth.corpus import make_clip, plan_speakers

    face = FaceModel.load()
    plans = plan_speakers(max(speakers) + 1, seed)
    text = "Mom bought a bamboo broom and a bulb for the lamp."
    rows = []
    for i in speakers:
        plan = plans[i]
        _, verts, align, _, weights = make_clip(plan, 1, 0, text, seed)
        scene = FaceScene(face, verts, weights, face.identity_neutral(plan.face_rig.identity))
        phones = align["phonemes"]
        frames = []
        for want, nth in ((OPEN_VOWELS, 0), (BILABIALS, 1), ({"sil"}, 0)):
            p = [x for x in phones if x["phone"] in want][nth]
            k = min(int(round((p["start"] + p["end"]) / 2 * 30)), len(verts) - 1)
            frames.append(render_image(scene.frame(k), face.faces, size=320, colours=face.vertex_colours))
        rows.append(np.concatenate(frames, axis=1))
    Image.fromarray(np.concatenate(rows, axis=0)).save(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="docs/img")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    face_figure(out / "synth_face.png")
    lips_figure(out / "synth_lips.png")
    ict_frames_figure(out / "synth_ict_frames.png")
    print(f"wrote {out / 'synth_face.png'}, {out / 'synth_lips.png'} and {out / 'synth_ict_frames.png'}")


if __name__ == "__main__":
    main()

"""Teacher-forced vs free-running error of an autoregressive kind (CodeTalker, FaceFormer with
``training: teacher_forcing``): the LVE of the training forward pass, whose every frame reads the ground
truth's previous frame, against the LVE of ``predict``, which reads its own previous output, on the same
clips (docs/RESULTS.md "Table 1 in one harness"). A large gap is exposure bias: the model learned to copy the
previous frame instead of listening.

    .venv/bin/python scripts/exposure_bias.py runs/synthetic_codetalker/codetalker/best.pt \
        --data data/synthetic --split val --max-clips 8
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch

from memorytalker.data import load_dataset
from memorytalker.evaluation.metrics import lve
from memorytalker.models.loaders import load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="val")
    ap.add_argument("--max-clips", type=int, default=8)
    args = ap.parse_args()
    model, topology, _ = load_model(args.checkpoint)
    model.eval()
    index = load_dataset(args.data)
    forced, free = [], []
    for clip in index.clips(args.split)[: args.max_clips]:
        audio = torch.from_numpy(index.load_audio(clip))[None]
        truth = torch.from_numpy(index.load_vertices(clip)).float()[None]
        template = torch.from_numpy(index.template(clip.subject)).float()[None]
        n = torch.tensor([audio.shape[1]])
        frames = torch.tensor([truth.shape[1]])
        own_id = getattr(model, "training_condition", lambda *_: None)(clip.subject, "")
        ids = torch.tensor([-1 if own_id is None else own_id])  # -1: a speaker outside training
        batch = SimpleNamespace(
            audio=audio,
            audio_lengths=n,
            templates=template,
            vertices=truth,
            frame_lengths=frames,
            subject_ids=ids,
        )
        with torch.no_grad():
            teacher = model(batch).vertices[0].numpy()
            own = model.predict(audio, n, template, num_frames=frames, **model.predict_options(batch))[
                0
            ].numpy()
        forced.append(lve(teacher, truth[0].numpy(), topology.lips))
        free.append(lve(own, truth[0].numpy(), topology.lips))
    print(
        f"{args.checkpoint}: {len(forced)} clips of split {args.split!r}: LVE teacher-forced "
        f"{np.mean(forced) * 1e5:.3f}, free-running (predict) {np.mean(free) * 1e5:.3f} [x1e-5 m^2]"
    )


if __name__ == "__main__":
    main()

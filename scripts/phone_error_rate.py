"""Phone error rate (PER) of speech encoders: a trained model's own CTC head, or a linear CTC probe per
layer of a pretrained Whisper encoder (which layer recognises phonemes best).

References: the synthetic corpus' phone timings (a split's clips) and, for real speech, pocketsphinx forced
alignments of the transcripts in ``scripts/real_transcripts.json`` (the recordings in
``../shared/data/speech`` are not part of this repository). PER as in memorytalker.evaluation.phones.

    # the CTC head of trained models (MemoryTalker checkpoints; the default model when none is given)
    .venv/bin/python scripts/phone_error_rate.py heads [-c CKPT ...] [--data data/synthetic --split test]
    # a linear CTC probe on each layer of a Whisper encoder (trained on --train-clips clips of the train split)
    .venv/bin/python scripts/phone_error_rate.py probe ct2:tiny.en [--train-clips 240] [--epochs 40]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))  # real_speech_lipsync.real_recordings


def real_clips(speech: Path) -> list[tuple[str, np.ndarray, list[int]]]:
    """The real recordings found under ``speech``: (name, 16 kHz wave, reference phone ids)."""
    from real_speech_lipsync import real_recordings

    from memorytalker.evaluation.phones import reference_ids

    return [(name, wave, reference_ids(phones)) for name, wave, phones in real_recordings(speech)]


def corpus_clips(root: str, split: str, limit: int | None) -> list[tuple[str, np.ndarray, list[int]]]:
    from memorytalker.data import load_dataset
    from memorytalker.evaluation.phones import reference_ids

    index = load_dataset(root)
    recs = index.clips(split)[:limit] if limit else index.clips(split)
    return [(r.clip_id, index.load_audio(r), reference_ids(index.load_phonemes(r))) for r in recs]


# ------------------------------------------------------------------------------------------- heads
def head_hypothesis(model, wave: np.ndarray) -> list[int]:
    from memorytalker.evaluation.phones import ctc_greedy
    from memorytalker.models.mel import normalize_waveform

    audio = torch.from_numpy(wave)[None]
    lengths = torch.tensor([audio.shape[1]])
    frames = model.frames_for(lengths)
    with torch.inference_mode():
        logits = model.text_logits(normalize_waveform(audio, lengths), lengths, frames, int(frames[0]), True)
    return ctc_greedy(logits[0], int(frames[0]) * model.text_rate)


def heads(args) -> dict:
    from memorytalker.evaluation.phones import phone_error_rate
    from memorytalker.inference import default_checkpoint
    from memorytalker.models.loaders import load_model

    sets = {f"synthetic {args.split}": corpus_clips(args.data, args.split, args.clips)}
    sets["real"] = real_clips(Path(args.speech))
    result = {}
    for ckpt in args.checkpoint or [str(default_checkpoint())]:
        model, _, cfg = load_model(ckpt, "cpu")
        row = {
            "backbone": f"{cfg.backbone.kind} {cfg.backbone.name_or_path if cfg.backbone.kind != 'compact' else ''}".strip()
        }
        for name, clips in sets.items():
            t0 = time.perf_counter()
            per = phone_error_rate((ref, head_hypothesis(model, w)) for _, w, ref in clips)
            row[name] = {"per": per.rate, "phones": per.reference_phones, "clips": per.clips}
            print(f"{ckpt}: {name}: PER {per.rate:.3f} ({per.errors} / {per.reference_phones} phones, "
                  f"{per.clips} clips, {time.perf_counter() - t0:.1f} s)")  # fmt: skip
        result[ckpt] = row
    return result


# ------------------------------------------------------------------------------------------- probe
def probe(args) -> dict:
    from memorytalker.evaluation.phones import ctc_greedy, phone_error_rate
    from memorytalker.models.backbones.whisper import WhisperCTC
    from memorytalker.models.config import BackboneConfig
    from memorytalker.models.mel import normalize_waveform

    torch.manual_seed(0)
    enc = WhisperCTC(BackboneConfig(kind="whisper", name_or_path=args.encoder, width=64, layers=1)).eval()

    def layer_feats(clips):
        out = []
        for _, w, ref in clips:
            a = torch.from_numpy(w)[None]
            hs = enc.layer_outputs(normalize_waveform(a, torch.tensor([a.shape[1]])))
            out.append(([h[0].float() for h in hs], ref))
        return out

    t0 = time.perf_counter()
    train = layer_feats(corpus_clips(args.data, "train", args.train_clips))
    tests = {f"synthetic {args.split}": layer_feats(corpus_clips(args.data, args.split, args.clips))}
    tests["real"] = layer_feats(real_clips(Path(args.speech)))
    print(f"{args.encoder}: features of {len(train)} + {sum(map(len, tests.values()))} clips in "
          f"{time.perf_counter() - t0:.1f} s")  # fmt: skip
    n_layers = len(train[0][0])
    ctc = torch.nn.CTCLoss(blank=0, zero_infinity=True)
    result = {"encoder": args.encoder, "train_clips": len(train), "epochs": args.epochs, "layers": {}}
    for layer in range(n_layers):
        d = train[0][0][layer].shape[-1]
        head = torch.nn.Sequential(torch.nn.LayerNorm(d), torch.nn.Linear(d, 40))
        opt = torch.optim.Adam(head.parameters(), lr=args.lr)
        rng = np.random.default_rng(0)
        for _ in range(args.epochs):
            for start in range(0, len(train), 16):
                order = rng.permutation(len(train))[start : start + 16]
                xs = [train[i][0][layer] for i in order]
                ys = [torch.tensor(train[i][1]) for i in order]
                x = torch.nn.utils.rnn.pad_sequence(xs, batch_first=True)
                logp = head(x).log_softmax(-1).transpose(0, 1)  # (A, B, 40)
                loss = ctc(
                    logp,
                    torch.cat(ys),
                    torch.tensor([len(v) for v in xs]),
                    torch.tensor([len(v) for v in ys]),
                )
                opt.zero_grad()
                loss.backward()
                opt.step()
        row = {}
        with torch.no_grad():
            for name, clips in tests.items():
                per = phone_error_rate((ref, ctc_greedy(head(f[layer]))) for f, ref in clips)
                row[name] = per.rate
        label = "embeddings" if layer == 0 else f"layer {layer}"
        print(f"{args.encoder} {label:10s}: " + ", ".join(f"{k} PER {v:.3f}" for k, v in row.items()))
        result["layers"][label] = row
    return result


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    for name in ("heads", "probe"):
        p = sub.add_parser(name)
        p.add_argument("--data", default="data/synthetic")
        p.add_argument("--split", default="test")
        p.add_argument("--clips", type=int, default=None, help="first N clips of --split (default all)")
        p.add_argument("--speech", default=str(ROOT.parent / "shared" / "data" / "speech"))
        p.add_argument("--out", default=None)
        if name == "heads":
            p.add_argument(
                "--checkpoint", "-c", action="append", help="repeatable; default: the default model"
            )
        else:
            p.add_argument(
                "encoder", help="ct2:tiny.en, ct2:base, a Hugging Face id or a save_pretrained folder"
            )
            p.add_argument("--train-clips", type=int, default=240)
            p.add_argument("--epochs", type=int, default=40)
            p.add_argument("--lr", type=float, default=3e-3)
    args = ap.parse_args(argv)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    result = heads(args) if args.mode == "heads" else probe(args)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

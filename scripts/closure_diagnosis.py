"""Why does a MemoryTalker model not close the lips on P/B/M? Each hypothesis of the "lips that close" issue,
measured on a split's bilabials (docs/RESULTS.md, "Why the paper's objective does not close the lips").

    .venv/bin/python scripts/closure_diagnosis.py CKPT [CKPT ...] --data data/synthetic --split test

Per checkpoint (a MemoryTalker stage; the embedded default with ``default``), over every clip of the split
with phone timings, at every P/B/M phone (its frames ±1, as the closure rate of docs/METRICS.md counts it):

1. **Does the CTC head hear the bilabial?** ``heard``: the share of bilabials where P, B or M is the most
   probable non-blank symbol on at least one of their frames; ``P(bilabial)``: the largest summed posterior
   of P, B and M over those frames (mean over bilabials); ``blank frames``: the share of all speech frames
   whose most probable symbol is blank (CTC's spiky posteriors).
2. **Where does the key address land?** ``softmax(kappa l)`` over the slots: ``address on blank``: its
   weight on the blank slot and ``address on P/B/M`` its summed weight on the P, B, M slots, each averaged
   over a bilabial's frames (mean over bilabials). Frames addressed to blank read the same slot whatever
   the phone.
3. **Does the teacher-forced route close?** The decoder fed the ground truth's motion feature ``f_m``
   instead of the memory read: its closure rate next to the key route's. If it closes, the decoder and the
   motion unit can express a closure, and the loss of it happens before the decoder.
4. **Does the objective pay for hedging?** The ground truth's gap averaged over a centred window of ``w``
   frames (what a model that knows the phone but not its exact timing minimises a squared error with):
   the closure rate and the mean bilabial minimum gap of that blurred truth for w = 3, 5, 7, 9, next to
   the model's own. A model whose bilabial minima match the truth blurred over ``w`` frames hedges over
   about that much timing.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import numpy as np
import torch

from memorytalker.data import load_dataset
from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.evaluation.lipsync import (
    BILABIALS,
    LipSyncConfig,
    as_phones,
    closure_rate,
    interval_frames,
    length_in_units,
)
from memorytalker.inference import default_checkpoint
from memorytalker.models.loaders import load_model
from memorytalker.topology.lips import inner_lip_gap

#: the closure threshold (mm) and the frames added on each side of a bilabial, as `evaluate` counts them
LIPSYNC = LipSyncConfig()
BLUR_WINDOWS = (3, 5, 7, 9)
BILABIAL_IDS = [CTC_VOCAB.index(p) for p in BILABIALS]


def blur(gap: np.ndarray, w: int) -> np.ndarray:
    """``(T,)`` gap averaged over a centred window of ``w`` frames (edges repeat the end values)."""
    padded = np.pad(gap, w // 2, mode="edge")
    return np.convolve(padded, np.ones(w) / w, mode="valid")


def bilabial_frames(phones: list, fps: float, n: int, tolerance: int) -> list[tuple[int, int]]:
    """``(lo, hi)`` inclusive frame range of each P/B/M phone ±``tolerance``, clipped to ``n`` frames."""
    out = []
    for p in phones:
        if p.phone in BILABIALS:
            first, last = interval_frames(p.start, p.end, fps)
            out.append((max(first - tolerance, 0), min(last + tolerance, n - 1)))
    return out


def diagnose(ckpt: str, data: str, split: str) -> dict:
    """The four measurements of the module docstring for one checkpoint, pooled over the split."""
    model, topology, _ = load_model(ckpt)
    if getattr(model, "memory", None) is None:
        raise SystemExit(f"{ckpt}: not a MemoryTalker model with a memory (kind or stage without one)")
    index = load_dataset(data)
    unit = length_in_units(1.0, index.units)  # 1 mm in the data's units
    threshold, tolerance = LIPSYNC.closure_mm * unit, LIPSYNC.tolerance_frames
    fps = float(index.fps)
    rows: dict[str, list] = {
        k: [] for k in ("heard", "p_bil", "addr_blank", "addr_bil", "key", "teacher", "gt")
    }
    blurred: dict[int, list] = {w: [] for w in BLUR_WINDOWS}
    blank_frames, speech_frames = 0, 0
    with torch.inference_mode():
        for rec in index.clips(split):
            alignment = index.load_phonemes(rec)
            if alignment is None:
                continue
            phones = as_phones(alignment)
            audio = torch.from_numpy(index.load_audio(rec))[None]
            verts = torch.from_numpy(index.load_vertices(rec))[None]
            n = verts.shape[1]
            batch = SimpleNamespace(
                audio=audio,
                audio_lengths=torch.tensor([audio.shape[1]]),
                templates=torch.from_numpy(index.template(rec.subject))[None],
                vertices=verts,
                frame_lengths=torch.tensor([n]),
            )
            out = model(batch, teacher_forcing=True)
            post = model.frame_logits(out.ctc_logits, n)[0].softmax(-1).numpy()  # (T, M)
            address = out.key_address[0].numpy()  # (T, M)
            gaps = {
                "key": inner_lip_gap(out.vertices[0].numpy(), topology),
                "teacher": inner_lip_gap(out.teacher_vertices[0].numpy(), topology),
                "gt": inner_lip_gap(verts[0].numpy(), topology),
            }
            for what, gap in gaps.items():
                rows[what].extend(closure_rate(gap, alignment, fps, threshold, tolerance).minima / unit)
            for w in BLUR_WINDOWS:
                blurred[w].extend(
                    closure_rate(blur(gaps["gt"], w), alignment, fps, threshold, tolerance).minima / unit
                )
            for lo, hi in bilabial_frames(phones, fps, n, tolerance):
                p = post[lo : hi + 1]
                rows["heard"].append(bool(np.isin(p[:, 1:].argmax(-1) + 1, BILABIAL_IDS).any()))
                rows["p_bil"].append(float(p[:, BILABIAL_IDS].sum(-1).max()))
                rows["addr_blank"].append(float(address[lo : hi + 1, 0].mean()))
                rows["addr_bil"].append(float(address[lo : hi + 1][:, BILABIAL_IDS].sum(-1).mean()))
            speech = np.zeros(n, dtype=bool)
            for p in phones:
                if p.phone != "sil":
                    first, last = interval_frames(p.start, p.end, fps)
                    speech[max(first, 0) : last + 1] = True
            blank_frames += int((post[speech].argmax(-1) == 0).sum())
            speech_frames += int(speech.sum())

    def closed(minima: list) -> float:
        return float(np.mean(np.asarray(minima) <= LIPSYNC.closure_mm))

    result = {
        "bilabials": len(rows["gt"]),
        "heard": float(np.mean(rows["heard"])),
        "p_bilabial": float(np.mean(rows["p_bil"])),
        "blank_frames": blank_frames / max(speech_frames, 1),
        "address_blank": float(np.mean(rows["addr_blank"])),
        "address_bilabial": float(np.mean(rows["addr_bil"])),
    }
    for what in ("key", "teacher", "gt"):
        result[f"{what}_closed"] = closed(rows[what])
        result[f"{what}_min_mm"] = float(np.mean(rows[what]))
    for w in BLUR_WINDOWS:
        result[f"blur{w}_closed"] = closed(blurred[w])
        result[f"blur{w}_min_mm"] = float(np.mean(blurred[w]))
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "checkpoints", nargs="+", help="stage checkpoints (best.pt); 'default' = the embedded model"
    )
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", default="test")
    args = ap.parse_args()
    results = []
    for ckpt in args.checkpoints:
        path = str(default_checkpoint()) if ckpt == "default" else ckpt
        results.append((ckpt, diagnose(path, args.data, args.split)))
        print(f"{ckpt}: {results[-1][1]}", flush=True)
    print()
    print(
        "| checkpoint | bilabials | 1. heard | P(bilabial) | blank frames | 2. address on blank | address on P/B/M "
        "| 3. closed: key route | teacher-forced | 4. mean min gap [mm]: key | teacher | truth | "
        + " | ".join(f"truth blurred {w}" for w in BLUR_WINDOWS)
        + " |"
    )
    print("|---" * (12 + len(BLUR_WINDOWS)) + "|")
    for ckpt, r in results:
        blurred = " | ".join(
            f"{r[f'blur{w}_min_mm']:.2f} ({100 * r[f'blur{w}_closed']:.0f} %)" for w in BLUR_WINDOWS
        )
        print(
            f"| {ckpt} | {r['bilabials']} | {100 * r['heard']:.0f} % | {r['p_bilabial']:.2f} "
            f"| {100 * r['blank_frames']:.0f} % | {r['address_blank']:.2f} | {r['address_bilabial']:.2f} "
            f"| {100 * r['key_closed']:.0f} % | {100 * r['teacher_closed']:.0f} % | {r['key_min_mm']:.2f} "
            f"| {r['teacher_min_mm']:.2f} | {r['gt_min_mm']:.2f} | {blurred} |"
        )


if __name__ == "__main__":
    main()

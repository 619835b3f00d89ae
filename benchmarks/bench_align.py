"""Forced-alignment accuracy: pocketsphinx phone boundaries against the TTS engines' own timings.

Each voice speaks the first ``--sentences`` sentences of the project's sentence pool
(:func:`memorytalker.synth.sentences.sentence_pool`); :class:`memorytalker.data.align.Aligner` aligns the
sentence to the audio and :func:`memorytalker.data.align.boundary_errors` compares the start and end of
every matched non-silence phone with the engine's timing. Prints per voice: clips aligned, boundaries
compared, mean / median absolute error, share within 20 and 40 ms, mean fit, seconds per clip, and each
clip that failed with its reason.

    .venv/bin/python benchmarks/bench_align.py [--voices flite:slt piper:joe ...] [--sentences 20]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from memorytalker.data.align import Aligner, AlignmentError, boundary_errors
from memorytalker.synth.sentences import sentence_pool
from memorytalker.synth.tts import engine_available, synthesize_utterance

DEFAULT_VOICES = [
    "flite:slt",
    "flite:rms",
    "flite:awb",
    "flite:kal16",
    "festival:kal_diphone",
    "festival:cmu_us_slt_arctic_hts",
    "piper:joe",
    "espeak:en-us+m1",
    "espeak:en-us+f3",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voices", nargs="+", default=DEFAULT_VOICES)
    ap.add_argument("--sentences", type=int, default=20)
    args = ap.parse_args()
    aligner = Aligner()
    sentences = sentence_pool()[: args.sentences]
    print(aligner.source)
    for voice in args.voices:
        if not engine_available(voice.split(":")[0]):
            print(f"{voice}: engine not installed, skipped")
            continue
        errors, fits, failures, seconds = [], [], [], 0.0
        for text in sentences:
            utt = synthesize_utterance(text, voice)
            t0 = time.perf_counter()
            try:
                result = aligner.align(utt.audio, text, sample_rate=16000)
            except AlignmentError as exc:
                failures.append((text, str(exc)))
                continue
            seconds += time.perf_counter() - t0
            errors.append(boundary_errors(utt.phonemes, result["phonemes"]))
            fits.append(result["fit"])
        if not errors:
            print(f"{voice}: 0/{len(sentences)} aligned")
        else:
            e = np.concatenate(errors) * 1000
            print(
                f"{voice}: {len(errors)}/{len(sentences)} aligned, {e.size} boundaries, mean {e.mean():.1f} ms, "
                f"median {np.median(e):.1f} ms, <=20 ms {np.mean(e <= 20):.0%}, <=40 ms {np.mean(e <= 40):.0%}, "
                f"fit {np.mean(fits):.1f}, {seconds / len(errors):.2f} s/clip"
            )
        for text, reason in failures:
            print(f"    failed: {text!r}: {reason}")


if __name__ == "__main__":
    main()

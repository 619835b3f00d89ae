"""``memorytalker align AUDIO... (--text TEXT | --transcripts FILE) --out DIR``: phone timings by forced
alignment (pocketsphinx; docs/ALIGN.md)."""

from __future__ import annotations

import argparse
from pathlib import Path

NAME = "align"
HELP = "phone timings of recordings by forced alignment of their transcripts (pocketsphinx, offline)"
DESCRIPTION = (
    "Align the transcript of each recording to its audio and write DIR/<name>.json, a phoneme alignment in "
    "the format of the synthetic corpus's phonemes/<clip>.json (docs/LAYOUT.md): ARPAbet phones and 'sil' "
    "covering the whole clip, with word times. Each recording's transcript is --text (one recording "
    "only), else its entry in --transcripts FILE (TSV 'audio_path<TAB>text' lines, or a .json/.yaml "
    "mapping; paths relative to the file's folder, or bare file names; without AUDIO every entry is "
    "aligned), else <audio stem>.txt beside the recording. <name> is the file stem, with folder names in "
    "front where stems clash (x/a.wav -> x__a). Clips that cannot be aligned (words missing from cmudict, "
    "digits, wrong transcript, speech the model cannot fit) are listed with the reason, on the console and "
    "in DIR/align_summary.json. Exit code 0 when all aligned, 1 when some failed. Needs the optional extra: "
    'pip install "memorytalker[align]". See docs/ALIGN.md.'
)

SUMMARY_NAME = "align_summary"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("audio", nargs="*", help="recordings (any format); optional with --transcripts")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--text", default=None, help="the transcript of the one AUDIO")
    source.add_argument(
        "--transcripts",
        default=None,
        help="TSV (audio_path<TAB>text per line) or .json/.yaml mapping {audio_path: text}",
    )
    parser.add_argument("--out", "-o", required=True, help="output folder")
    parser.add_argument(
        "--dict",
        default=None,
        help="extra pronunciations for words missing from cmudict: 'word PH PH ...' per line (ARPAbet)",
    )
    parser.add_argument(
        "--min-fit",
        type=float,
        default=None,
        help="lowest accepted mean acoustic score per frame (default -40; docs/ALIGN.md)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace results already in --out")


def _match_transcripts(
    table: dict[str, str], base: Path, sources: list[Path], listing: Path
) -> dict[Path, str | None]:
    """Each source's transcript from ``table``: by path (relative to ``base``), else by unique file name,
    else by unique stem; None when absent."""
    from memorytalker.errors import MemoryTalkerError

    by_path: dict[Path, str] = {}
    by_name: dict[str, list[str]] = {}
    by_stem: dict[str, list[str]] = {}
    for key in table:
        p = Path(key).expanduser()
        real = (p if p.is_absolute() else base / p).resolve()
        if real in by_path:
            raise MemoryTalkerError(f"{listing}: {key!r} names the same recording as another entry")
        by_path[real] = key
        by_name.setdefault(p.name, []).append(key)
        by_stem.setdefault(p.stem, []).append(key)
    out: dict[Path, str | None] = {}
    for src in sources:
        key = by_path.get(src.resolve())
        if key is None:
            for index, k in ((by_name, src.name), (by_stem, src.stem)):
                hits = index.get(k, [])
                if len(hits) > 1:
                    raise MemoryTalkerError(
                        f"{listing}: {src} matches several entries ({', '.join(hits)}); write its path"
                    )
                if hits:
                    key = hits[0]
                    break
        out[src] = table[key] if key is not None else None
    return out


def main(args: argparse.Namespace) -> int:
    import json

    from memorytalker.commands.animate import output_names
    from memorytalker.data.align import (
        AlignConfig,
        Aligner,
        AlignmentError,
        read_pronunciations,
        read_transcripts,
    )
    from memorytalker.errors import AudioError, MemoryTalkerError

    # ---- what to align, and with which transcript (usage errors: exit code 2 through cli.py)
    table: dict[str, str] | None = None
    listing = Path(args.transcripts) if args.transcripts else None
    if listing is not None:
        table = read_transcripts(listing)
    if args.audio:
        sources = [Path(a) for a in args.audio]
    elif table is not None:
        sources = [
            (Path(k).expanduser() if Path(k).expanduser().is_absolute() else listing.parent / k)
            for k in table
        ]
    else:
        raise MemoryTalkerError("give the recordings to align (AUDIO ...) or a --transcripts file")
    if not sources:
        raise MemoryTalkerError(f"{listing} lists no recordings")
    if args.text is not None and len(sources) != 1:
        raise MemoryTalkerError(
            f"--text is the transcript of one recording, but {len(sources)} are given; use --transcripts FILE "
            "or <audio stem>.txt files for several"
        )
    for src in sources:
        if src.is_dir():
            raise AudioError(f"{src} is a folder, not an audio file; give the recordings in it")
    names = output_names(sources)
    clash = [s for s, n in zip(sources, names) if n.lower() == SUMMARY_NAME]
    if clash:
        raise MemoryTalkerError(
            f"{clash[0]}: the name {SUMMARY_NAME!r} is reserved for the summary; rename it"
        )
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise MemoryTalkerError(f"--out {out_dir} is an existing file; give a folder for the results")
    outputs = [out_dir / f"{n}.json" for n in names]
    summary_path = out_dir / f"{SUMMARY_NAME}.json"
    protected = {p.resolve() for p in sources}
    protected |= {Path(p).resolve() for p in (args.transcripts, args.dict) if p}
    for out in [*outputs, summary_path]:
        if out.resolve() in protected:
            raise MemoryTalkerError(
                f"writing {out} would overwrite an input file; choose another --out folder"
            )
    existing = [p for p in [*outputs, summary_path] if p.exists()]
    if existing and not args.overwrite:
        raise MemoryTalkerError(
            f"{len(existing)} result(s) already in {out_dir} ({', '.join(p.name for p in existing[:5])}"
            f"{', ...' if len(existing) > 5 else ''}); pass --overwrite to replace them"
        )
    if args.text is not None:
        transcripts: dict[Path, str | None] = {sources[0]: args.text}
    elif table is not None:
        transcripts = _match_transcripts(table, listing.parent, sources, listing)
    else:
        transcripts = {s: None for s in sources}
    config = AlignConfig() if args.min_fit is None else AlignConfig(min_fit=args.min_fit)
    pronunciations = read_pronunciations(args.dict) if args.dict else None
    aligner = Aligner(config, extra_pronunciations=pronunciations)

    # ---- align every clip; a clip that fails is listed with its reason, never dropped
    out_dir.mkdir(parents=True, exist_ok=True)
    aligned, failed = [], []
    for src, out in zip(sources, outputs):
        text = transcripts[src]
        sidecar = src.with_suffix(".txt")
        try:
            if not src.is_file():
                raise AudioError(f"audio file not found: {src}")
            if text is None:
                if not sidecar.is_file():
                    where = f"no entry in {listing} and " if listing is not None else ""
                    raise AlignmentError(f"no transcript: {where}no {sidecar.name} beside it")
                try:
                    text = sidecar.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise AlignmentError(f"cannot read the transcript {sidecar}: {exc}") from None
            result = aligner.align(src, text)
        except (AlignmentError, AudioError) as exc:
            failed.append({"audio": str(src), "reason": str(exc)})
            print(f"FAILED {src}: {exc}")
            continue
        result = {"audio": str(src), **result}
        out.write_text(json.dumps(result, ensure_ascii=False))
        aligned.append(
            {
                "audio": str(src),
                "output": str(out),
                "words": len(result["words"]),
                "duration": result["duration"],
                "fit": result["fit"],
            }
        )
        n_words, seconds, fit = len(result["words"]), result["duration"], result["fit"]
        print(f"ok     {src} -> {out} ({n_words} words, {seconds:.2f} s, fit {fit:.1f})")
    summary = {"source": aligner.source, "aligned": aligned, "failed": failed}
    summary_path.write_text(json.dumps(summary, ensure_ascii=False, indent=1))
    print(
        f"aligned {len(aligned)} of {len(sources)} recording(s) into {out_dir}"
        + (f"; {len(failed)} failed (listed above and in {summary_path})" if failed else "")
    )
    return 1 if failed else 0

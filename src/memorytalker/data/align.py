"""Phone timings for real recordings by forced alignment of a transcript (pocketsphinx, offline).

The synthetic corpus knows its phone timings; a real recording does not. :class:`Aligner` fits a known
transcript to the audio with pocketsphinx 5.1.1 (``pip install "memorytalker[align]"``), whose wheel ships
an English acoustic model and the CMU pronouncing dictionary, so nothing is downloaded. The result is the
project's phoneme alignment, the same dict the synthetic corpus writes to ``phonemes/<clip>.json`` and
:func:`memorytalker.data.layout.read_phonemes` validates::

    {"text": "...", "phonemes": [{"phone": "P", "start": 0.2, "end": 0.26}, ...],
     "words": [{"word": "please", "start": 0.2, "end": 0.57}, ...], "duration": 2.48, "fit": -11.2,
     "source": "pocketsphinx 5.1.1 forced alignment (...)"}

``text`` is the transcript as given (whitespace collapsed); ``words`` are its dictionary words, lower case
and without punctuation, in order.

``phonemes`` covers ``[0, duration]`` without gaps: the 39 ARPAbet phones without stress
(:data:`memorytalker.data.phonemes.ARPABET`) and :data:`~memorytalker.data.phonemes.SILENCE` for pauses,
breaths and noise. Times are multiples of the decoder's 10 ms frame (the last phone ends at the clip's
duration). ``fit`` is the alignment's mean acoustic score per frame (:class:`AlignConfig`). Against the
TTS engines' own timings the boundaries are off by 11-13 ms on average (docs/ALIGN.md; measured with
:func:`boundary_errors`).

Failures are :class:`AlignmentError` with the reason: transcript words missing from the dictionary (all of
them named; add pronunciations with ``extra_pronunciations``), digits in the transcript (write numbers as
words), an empty transcript, silent audio, or audio the decoder cannot fit the transcript to (wrong text,
very quiet, noisy or robotic speech).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from pathlib import Path

import numpy as np

from memorytalker.data.audio import AudioSource, load_audio
from memorytalker.data.phonemes import ARPABET, SILENCE, normalize_phone
from memorytalker.errors import MemoryTalkerError

INSTALL_HINT = 'pip install "memorytalker[align]"  (pocketsphinx==5.1.1)'


class AlignmentError(MemoryTalkerError, RuntimeError):
    """A transcript could not be aligned to its audio; the message says why."""


class AlignerNotInstalledError(MemoryTalkerError, RuntimeError):
    """pocketsphinx (the optional ``align`` extra) is not installed."""


@dataclass(frozen=True)
class AlignConfig:
    """Settings of the forced aligner.

    Attributes:
        peak: audio is scaled to this peak amplitude before 16-bit quantisation, so a quiet recording keeps
            its resolution (the decoder normalises the level itself; only digital silence is refused).
        beam, word_beam: pocketsphinx's pruning beams (``-beam``/``-pbeam`` and ``-wbeam``). Much wider than
            its recognition defaults (1e-48, 7e-29): a forced alignment searches one sentence, so a wide beam
            costs little (~10 % time) and keeps the decoder from losing the path on unusual voices; whether
            the result fits is judged by ``min_fit`` instead.
        min_fit: the lowest accepted fit, the mean acoustic score per 10 ms frame of the alignment
            (pocketsphinx log units, 0 = every frame explained by the best-scoring model state). Measured
            (docs/ALIGN.md): TTS voices -9 to -17, the real recordings -11 to -27, espeak -25 to -44; a wrong
            transcript -47 or lower.
        decimals: rounding of the times written (seconds).
    """

    peak: float = 0.5
    beam: float = 1e-100
    word_beam: float = 1e-80
    min_fit: float = -40.0
    decimals: int = 5


# ---------------------------------------------------------------------------------------------- transcript
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})
_TOKEN = re.compile(r"'?[^\W_]+(?:['\-][^\W_]+)*'?")


def transcript_tokens(text: str) -> list[str]:
    """Lower-case words of a transcript: punctuation dropped, apostrophes and inner hyphens kept.

    ``"Hello, it's a well-known fact!"`` -> ``["hello", "it's", "a", "well-known", "fact"]``. Digits are
    refused (:class:`AlignmentError`): how a number is read ("1984", "3.5") is not guessed.
    """
    text = unicodedata.normalize("NFKC", str(text)).translate(_APOSTROPHES).lower()
    tokens = _TOKEN.findall(text)
    numbers = [t for t in tokens if any(c.isdigit() for c in t)]
    if numbers:
        raise AlignmentError(
            f"the transcript contains numbers ({', '.join(repr(n) for n in numbers)}): write them as the "
            "speaker says them, in words (e.g. 'nineteen eighty four')"
        )
    if not tokens:
        raise AlignmentError(f"the transcript is empty (no words in {text.strip()[:80]!r})")
    return tokens


def _pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise AlignerNotInstalledError(
            f"forced alignment needs pocketsphinx, which is not installed: {INSTALL_HINT}"
        ) from None
    return pocketsphinx


def _base_word(name: str) -> str:
    """``"read(2)"`` -> ``"read"`` (pocketsphinx names alternative pronunciations this way)."""
    return re.sub(r"\(\d+\)$", "", name)


def _is_filler(name: str) -> bool:
    return name.startswith(("<", "[", "+")) or name.upper() == "SIL"


def _merge(
    phones: list[tuple[str, float, float]], total: float, frame: float
) -> list[tuple[str, float, float]]:
    """Clip to ``[0, total]``, drop empty segments, merge adjacent silences, fill gaps with silence.

    The decoder's last frame ends up to one ``frame`` (seconds) before ``total``: the last phone is
    extended over such a remainder instead of adding a silence shorter than a frame.
    """
    out: list[list] = []
    t = 0.0
    for ph, s, e in phones:
        s, e = max(t, min(s, total)), max(0.0, min(e, total))
        if e <= s:
            continue
        if s > t:
            out.append([SILENCE, t, s])
        if out and ph == SILENCE and out[-1][0] == SILENCE:
            out[-1][2] = e
        else:
            out.append([ph, s, e])
        t = e
    if total > t:
        if out and (out[-1][0] == SILENCE or total - t < frame):
            out[-1][2] = total
        else:
            out.append([SILENCE, t, total])
    return [(p, float(s), float(e)) for p, s, e in out]


# ---------------------------------------------------------------------------------------------- aligner
class Aligner:
    """A pocketsphinx forced aligner, loaded once and reused for many clips.

    Args:
        config: :class:`AlignConfig`.
        extra_pronunciations: ``{word: "ARPABET PHONES"}`` for words missing from cmudict (names, jargon);
            stress digits are allowed and dropped.

    Raises:
        AlignerNotInstalledError: pocketsphinx is missing (the message says what to install).
    """

    def __init__(
        self, config: AlignConfig | None = None, extra_pronunciations: Mapping[str, str] | None = None
    ):
        ps = _pocketsphinx()
        from importlib.metadata import version

        self.config = config or AlignConfig()
        cfg = self.config
        self._decoder = ps.Decoder(
            bestpath=False, loglevel="FATAL", beam=cfg.beam, pbeam=cfg.beam, wbeam=cfg.word_beam, maxhmmpf=-1
        )
        self.sample_rate = int(float(self._decoder.config["samprate"]))
        self.frame_rate = int(self._decoder.config["frate"])
        self.source = (
            f"pocketsphinx {version('pocketsphinx')} forced alignment "
            "(en-us acoustic model, cmudict-en-us; 10 ms frames)"
        )
        for word, pron in (extra_pronunciations or {}).items():
            self.add_pronunciation(word, pron)

    def add_pronunciation(self, word: str, phones: str | Sequence[str]) -> None:
        """Add a pronunciation of ``word``: ARPAbet phones, e.g. ``"M AA0 L IY1 AH0"`` (stress dropped).

        A word the dictionary already has keeps its pronunciations; this one becomes an alternative
        (the aligner picks whichever fits the audio best).
        """
        parts = phones.split() if isinstance(phones, str) else list(phones)
        try:
            arpa = [normalize_phone(p) for p in parts]
        except ValueError as exc:
            raise AlignmentError(f"pronunciation of {word!r}: {exc}") from None
        if not arpa or SILENCE in arpa:
            raise AlignmentError(
                f"pronunciation of {word!r} must be ARPAbet phones ({' '.join(ARPABET)}), got {phones!r}"
            )
        key = word.strip().lower()
        if not key or any(c.isspace() or c in "()" for c in key):
            raise AlignmentError(f"a pronunciation needs a single word, got {word!r}")
        pron = " ".join(arpa)
        # a word cmudict already has gets the new pronunciation as an alternative, "word(2)", "word(3)", ...
        name, n = key, 1
        while (known := self._decoder.lookup_word(name)) is not None:
            if known.split() == arpa:
                return
            n += 1
            name = f"{key}({n})"
        try:
            self._decoder.add_word(name, pron, True)
        except RuntimeError as exc:
            raise AlignmentError(f"pocketsphinx could not add {word!r} /{pron}/: {exc}") from None

    def in_dictionary(self, word: str) -> bool:
        return self._decoder.lookup_word(word) is not None

    def dictionary_words(self, text: str) -> list[str]:
        """Transcript -> dictionary words. Raises :class:`AlignmentError` naming every unknown word.

        A token is looked up as written, then without surrounding apostrophes (quotes), then a hyphenated
        token as its parts (``"well-known"`` -> ``well known`` when cmudict lacks the compound).
        """
        words: list[str] = []
        missing: list[str] = []
        for token in transcript_tokens(text):
            for cand in (token, token.strip("'")):
                if cand and self.in_dictionary(cand):
                    words.append(cand)
                    break
            else:
                parts = [p.strip("'") for p in token.split("-")]
                if len(parts) > 1 and all(p and self.in_dictionary(p) for p in parts):
                    words.extend(parts)
                else:
                    bad = (
                        [p for p in parts if not (p and self.in_dictionary(p))] if len(parts) > 1 else [token]
                    )
                    missing.extend(b for b in bad if b not in missing)
        if missing:
            raise AlignmentError(
                f"{len(missing)} word(s) of the transcript are not in the pronouncing dictionary (cmudict): "
                f"{', '.join(missing)}; fix the spelling or give their pronunciations (--dict FILE)"
            )
        return words

    def _decode(self, pcm: bytes) -> None:
        d = self._decoder
        d.start_utt()
        d.process_raw(pcm, full_utt=True)
        d.end_utt()

    def align(self, audio: AudioSource, text: str, sample_rate: int | None = None) -> dict:
        """Align ``text`` to ``audio`` (a path in any format, encoded bytes, or ``(S,)`` array with
        ``sample_rate``). Returns the phoneme alignment dict (module docstring)."""
        words = self.dictionary_words(text)
        samples = load_audio(audio, sample_rate=sample_rate, target_rate=self.sample_rate)
        duration = samples.shape[0] / self.sample_rate
        peak = float(np.max(np.abs(samples)))
        if peak == 0.0:
            raise AlignmentError("the audio is digital silence: there is no speech to align")
        pcm = (np.clip(samples * (self.config.peak / peak), -1.0, 1.0) * 32767).astype("<i2").tobytes()
        d = self._decoder
        try:
            d.set_align_text(" ".join(words))
        except RuntimeError as exc:
            raise AlignmentError(f"pocketsphinx refused the transcript: {exc}") from None
        self._decode(pcm)
        # (hyp() is read after the first pass only: pocketsphinx 5.1.1 crashes on it after the second)
        if d.hyp() is None:
            raise AlignmentError(
                "the decoder found no way to fit the transcript to the audio (wrong transcript, or speech "
                "that is too quiet, noisy, fast or robotic for the acoustic model)"
            )
        try:
            d.set_alignment()
        except RuntimeError as exc:
            raise AlignmentError(f"phone-level alignment failed: {exc}") from None
        self._decode(pcm)
        alignment = d.get_alignment()
        if alignment is None:
            raise AlignmentError("phone-level alignment produced no result")
        return self._result(alignment, words, text, duration)

    def _result(self, alignment, words: list[str], text: str, duration: float) -> dict:
        fr = float(self.frame_rate)
        entries = list(alignment.phones())
        frames = sum(p.duration for p in entries)
        fit = sum(p.score for p in entries) / max(frames, 1)
        if fit < self.config.min_fit:
            raise AlignmentError(
                f"the transcript does not fit the audio (fit {fit:.1f} per frame, below the minimum "
                f"{self.config.min_fit:g}): a wrong or incomplete transcript, or speech too noisy or robotic "
                "for the acoustic model"
            )
        phones: list[tuple[str, float, float]] = []
        word_spans: list[tuple[str, float, float]] = []
        for w in alignment.words():
            start, end = w.start / fr, (w.start + w.duration) / fr
            if _is_filler(w.name):
                phones.append((SILENCE, start, end))
                continue
            word_spans.append((_base_word(w.name), start, end))
            for p in w:
                try:
                    ph = SILENCE if _is_filler(p.name) else normalize_phone(p.name)
                except ValueError as exc:
                    raise AlignmentError(f"pocketsphinx returned an unexpected phone: {exc}") from None
                phones.append((ph, p.start / fr, (p.start + p.duration) / fr))
        got = [w for w, _, _ in word_spans]
        if got != words:
            raise AlignmentError(f"the alignment has the words {got} instead of the transcript's {words}")
        nd = self.config.decimals
        return {
            "text": " ".join(str(text).split()),
            "phonemes": [
                {"phone": p, "start": round(s, nd), "end": round(e, nd)}
                for p, s, e in _merge(phones, duration, 1.0 / fr)
            ],
            "words": [
                {"word": w, "start": round(s, nd), "end": round(min(e, duration), nd)}
                for w, s, e in word_spans
            ],
            "duration": round(duration, nd),
            "fit": round(fit, 2),
            "source": self.source,
        }


def align(audio: AudioSource, text: str, sample_rate: int | None = None, **kwargs) -> dict:
    """One-off :meth:`Aligner.align` (loads the model each call; use :class:`Aligner` for many clips)."""
    return Aligner(**kwargs).align(audio, text, sample_rate=sample_rate)


# ---------------------------------------------------------------------------------------------- accuracy
def boundary_errors(reference: Sequence[Mapping], predicted: Sequence[Mapping]) -> np.ndarray:
    """Absolute boundary errors (seconds) between two phone sequences of the same speech.

    The non-silence phones of both are matched in order (longest matching blocks, so a dictionary
    pronunciation that differs from the reference's in a few phones only loses those); for every matched
    phone its start and its end are compared. Returns ``(N,)`` float64, ``N`` = 2 x matched phones.
    """
    ref = [p for p in reference if p["phone"] != SILENCE]
    hyp = [p for p in predicted if p["phone"] != SILENCE]
    matcher = SequenceMatcher(a=[p["phone"] for p in ref], b=[p["phone"] for p in hyp], autojunk=False)
    errs: list[float] = []
    for block in matcher.get_matching_blocks():
        for k in range(block.size):
            r, h = ref[block.a + k], hyp[block.b + k]
            errs.append(abs(float(r["start"]) - float(h["start"])))
            errs.append(abs(float(r["end"]) - float(h["end"])))
    return np.asarray(errs, dtype=np.float64)


# ---------------------------------------------------------------------------------------------- files
def read_pronunciations(path: str | Path) -> dict[str, str]:
    """Read extra pronunciations in cmudict format: ``word PH PH ...`` per line (stress digits allowed;
    blank lines and lines starting with ``#`` or ``;;;`` ignored). A word given twice is an error."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise AlignmentError(f"cannot read the pronunciation file {path}: {exc}") from None
    out: dict[str, str] = {}
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(("#", ";;;")):
            continue
        parts = line.split()
        if len(parts) < 2:
            raise AlignmentError(f"{path}:{n}: expected 'word PHONE PHONE ...', got {line!r}")
        word = parts[0].lower()
        if word in out:
            raise AlignmentError(f"{path}:{n}: {word!r} is given twice")
        out[word] = " ".join(parts[1:])
    return out


def read_transcripts(path: str | Path) -> dict[str, str]:
    """Read a transcripts file: ``{audio: text}``, keys as written in the file.

    Formats: ``.json`` / ``.yaml`` / ``.yml``, a mapping of audio paths to texts; anything else is TSV,
    one ``audio_path<TAB>text`` per line (blank lines and lines starting with ``#`` ignored). An audio
    listed twice is an error.
    """
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AlignmentError(f"cannot read the transcripts file {path}: {exc}") from None
    out: dict[str, str] = {}
    if path.suffix.lower() in {".json", ".yaml", ".yml"}:
        import json

        import yaml

        try:
            data = json.loads(raw) if path.suffix.lower() == ".json" else yaml.safe_load(raw)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise AlignmentError(f"cannot parse the transcripts file {path}: {exc}") from None
        if not isinstance(data, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()
        ):
            raise AlignmentError(f"{path}: expected a mapping of audio paths to transcript texts")
        return dict(data)
    for n, line in enumerate(raw.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if "\t" not in line:
            raise AlignmentError(f"{path}:{n}: expected 'audio_path<TAB>text', found no tab in {line[:60]!r}")
        audio, text = line.split("\t", 1)
        audio = audio.strip()
        if audio in out:
            raise AlignmentError(f"{path}:{n}: {audio!r} is listed twice")
        out[audio] = text.strip()
    return out

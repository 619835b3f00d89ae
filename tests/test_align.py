"""Forced alignment (`memorytalker align`, memorytalker.data.align): format, accuracy, failures, command."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import shared_file

from memorytalker.data.align import (
    AlignConfig,
    AlignerNotInstalledError,
    AlignmentError,
    boundary_errors,
    read_pronunciations,
    read_transcripts,
    transcript_tokens,
)
from memorytalker.data.layout import read_phonemes
from memorytalker.data.phonemes import ARPABET, SILENCE

#: Transcripts of the real recordings in ../shared/data/speech, for reuse (lip-sync metrics on real speech).
#: Nobody could listen: each was read from Whisper base (faster-whisper, int8) and pocketsphinx's own
#: recognition, and where they differed the variant with the better forced-alignment fit was kept
#: ("helpings" not "hours", "write. It turns out" as pocketsphinx heard it; Whisper drops the "It").
#: The SelfTalk clip starts and ends mid-sentence ("A full time" is "... full time" cut at its start).
REAL_TRANSCRIPTS = {
    "voca_test_sentence.wav": "Severe myopia contributed to Ron's inferiority complex.",
    "faceformer_test.wav": (
        "Today, like millions of other families across America, Michelle, Malia, Sasha and I will sit down "
        "to share a Thanksgiving filled with family and friends, and a few helpings of food and football too."
    ),
    "selftalk_test.wav": (
        "A full time, over a decade ago, I was unprepared for the amount of grants I'd have to write. It turns "
        "out that a lot of being a professional artist is fundraising for your own salary. So I got good at "
        "grants. I got so good at grants, I started writing grants for other people. In one year alone, "
        "through writing grants for folks, running people's fundraising campaigns"
    ),
}
#: Fit of those transcripts as measured (AlignConfig.min_fit is -40).
REAL_FITS = {"voca_test_sentence.wav": -11.1, "faceformer_test.wav": -17.2, "selftalk_test.wav": -26.4}

#: The sentence of the bundled example recording (scripts/build_default_model.py EXAMPLE_TEXT).
EXAMPLE_TEXT = (
    "Hello! This face moves from speech alone. Watch my lips press together on every b, p and m, "
    "then open wide when I say father."
)


def _has_pocketsphinx() -> bool:
    import importlib.util

    return importlib.util.find_spec("pocketsphinx") is not None


needs_ps = pytest.mark.skipif(
    not _has_pocketsphinx(), reason='pocketsphinx missing: pip install "memorytalker[align]"'
)


@pytest.fixture(scope="module")
def aligner():
    if not _has_pocketsphinx():
        pytest.skip('pocketsphinx missing: pip install "memorytalker[align]"')
    from memorytalker.data.align import Aligner

    return Aligner()


def _flite(text: str, voice: str = "flite:slt"):
    from memorytalker.synth.tts import engine_available, synthesize_utterance

    if not engine_available("flite"):
        pytest.skip("flite is not installed (apt-get install flite)")
    return synthesize_utterance(text, voice)


def _check_covering(result: dict, tmp_path: Path) -> list[dict]:
    """The result validates as phonemes/<clip>.json and its phones tile [0, duration] exactly."""
    path = tmp_path / "clip.json"
    path.write_text(json.dumps(result))
    data = read_phonemes(path)
    phones = data["phonemes"]
    assert phones[0]["start"] == 0.0
    assert phones[-1]["end"] == pytest.approx(data["duration"], abs=1e-5)
    for a, b in zip(phones, phones[1:]):
        assert a["end"] == b["start"]
        assert not (a["phone"] == SILENCE and b["phone"] == SILENCE)  # adjacent pauses are merged
    assert all(p["end"] > p["start"] for p in phones)
    assert {p["phone"] for p in phones} <= set(ARPABET) | {SILENCE}
    assert data["source"].startswith("pocketsphinx 5.1.1")
    return phones


# ---------------------------------------------------------------------------------------------- pure parts
def test_transcript_tokens_normalises_case_punctuation_and_apostrophes():
    assert transcript_tokens("Hello, it\u2019s a WELL-known fact!  'Really'?") == [
        "hello",
        "it's",
        "a",
        "well-known",
        "fact",
        "'really'",
    ]


@pytest.mark.parametrize("text", ["", "   ", "?! -- ..."])
def test_empty_transcript_is_refused(text):
    with pytest.raises(AlignmentError, match="transcript is empty"):
        transcript_tokens(text)


def test_numbers_are_refused_not_guessed():
    with pytest.raises(AlignmentError, match=r"numbers \('3', '1984'\).*in words"):
        transcript_tokens("I had 3 cats in 1984")


def test_boundary_errors_against_hand_computed_values():
    ref = [
        {"phone": "sil", "start": 0.0, "end": 0.1},
        {"phone": "M", "start": 0.1, "end": 0.2},
        {"phone": "AA", "start": 0.2, "end": 0.4},
        {"phone": "P", "start": 0.4, "end": 0.5},
    ]
    hyp = [
        {"phone": "sil", "start": 0.0, "end": 0.12},
        {"phone": "M", "start": 0.12, "end": 0.19},
        {"phone": "AH", "start": 0.19, "end": 0.41},  # differs from the reference: not compared
        {"phone": "P", "start": 0.41, "end": 0.5},
    ]
    np.testing.assert_allclose(boundary_errors(ref, hyp), [0.02, 0.01, 0.01, 0.0], atol=1e-12)


def test_merge_fills_gaps_and_covers_the_clip():
    from memorytalker.data.align import _merge

    phones = [("sil", 0.0, 0.2), ("P", 0.2, 0.3), ("AA", 0.31, 0.5)]
    # a gap becomes silence; a remainder shorter than one frame extends the last phone
    assert _merge(phones, 0.505, 0.01) == [
        ("sil", 0.0, 0.2),
        ("P", 0.2, 0.3),
        ("sil", 0.3, 0.31),
        ("AA", 0.31, 0.505),
    ]
    # a longer tail becomes silence, merged with a final silence; times past the clip are clipped
    assert _merge(phones, 0.6, 0.01)[-1] == ("sil", 0.5, 0.6)
    assert _merge([*phones, ("sil", 0.5, 0.7)], 0.6, 0.01)[-1] == ("sil", 0.5, 0.6)
    assert _merge([("sil", 0.0, 0.1), ("sil", 0.1, 0.2), ("M", 0.2, 0.3)], 0.3, 0.01) == [
        ("sil", 0.0, 0.2),
        ("M", 0.2, 0.3),
    ]


def test_missing_pocketsphinx_says_what_to_install(monkeypatch):
    from memorytalker.data.align import Aligner

    monkeypatch.setitem(sys.modules, "pocketsphinx", None)  # import pocketsphinx -> ImportError
    with pytest.raises(AlignerNotInstalledError, match=r'pip install "memorytalker\[align\]"'):
        Aligner()


def test_transcript_and_pronunciation_files(tmp_path):
    tsv = tmp_path / "t.tsv"
    tsv.write_text("# comment\n\na.wav\tHello there.\nsub/b.flac\t  Good  day \n")
    assert read_transcripts(tsv) == {"a.wav": "Hello there.", "sub/b.flac": "Good  day"}
    (tmp_path / "t.yaml").write_text("a.wav: Hello there.\n")
    assert read_transcripts(tmp_path / "t.yaml") == {"a.wav": "Hello there."}
    (tmp_path / "t.json").write_text(json.dumps({"a.wav": 3}))
    with pytest.raises(AlignmentError, match="mapping of audio paths to transcript texts"):
        read_transcripts(tmp_path / "t.json")
    tsv.write_text("a.wav Hello\n")
    with pytest.raises(AlignmentError, match=r"t.tsv:1: .*no tab"):
        read_transcripts(tsv)
    tsv.write_text("a.wav\tone\na.wav\ttwo\n")
    with pytest.raises(AlignmentError, match="listed twice"):
        read_transcripts(tsv)
    d = tmp_path / "extra.dict"
    d.write_text(";;; names\nZorblat Z AO1 R B L AE0 T\n")
    assert read_pronunciations(d) == {"zorblat": "Z AO1 R B L AE0 T"}


# ---------------------------------------------------------------------------------------------- aligner
def test_tts_timings_are_recovered_within_a_few_frames(aligner, tmp_path):
    """flite's own phone timings are the ground truth: mean boundary error ~11 ms (docs/ALIGN.md)."""
    sentences = [
        "Please pass the peppered beef and the fresh green peas.",
        "My brother thought the weather would be rather smooth this month.",
        "Put the good books back on the wooden shelf by the window.",
    ]
    errors = []
    for text in sentences:
        utt = _flite(text)
        result = aligner.align(utt.audio, text, sample_rate=16000)
        phones = _check_covering(result, tmp_path)
        assert result["duration"] == pytest.approx(utt.duration, abs=1e-4)
        assert [w["word"] for w in result["words"]] == transcript_tokens(text)
        assert result["fit"] > AlignConfig().min_fit
        err = boundary_errors(utt.phonemes, phones)
        assert err.size >= 1.6 * len([p for p in utt.phonemes if p["phone"] != SILENCE])  # most compared
        errors.append(err)
    err = np.concatenate(errors)
    assert err.mean() < 0.025  # measured 11 ms
    assert np.mean(err <= 0.040) > 0.9  # measured 98 %


def test_bundled_example_aligns_with_its_sentence(aligner, tmp_path):
    from memorytalker.inference import example_audio

    result = aligner.align(example_audio(), EXAMPLE_TEXT)  # a file path: load_audio decodes it
    phones = _check_covering(result, tmp_path)
    assert [w["word"] for w in result["words"]][-3:] == ["i", "say", "father"]
    # "... every b, p and m ...": the letter names are aligned in order inside their words
    words = {w["word"]: w for w in result["words"]}
    for letter, phone in (("b", "B"), ("p", "P"), ("m", "M")):
        w = words[letter]
        inside = [p["phone"] for p in phones if w["start"] <= p["start"] < w["end"]]
        assert phone in inside
    assert words["b"]["start"] < words["p"]["start"] < words["m"]["start"]


def test_alternative_pronunciations_are_chosen(aligner):
    # cmudict: read R EH D / R IY D; flite says "to read books" with R IY D
    utt = _flite("I like to read books about the sea")
    result = aligner.align(utt.audio, utt.text, sample_rate=16000)
    w = next(w for w in result["words"] if w["word"] == "read")
    inside = [p["phone"] for p in result["phonemes"] if w["start"] <= p["start"] < w["end"]]
    assert inside == ["R", "IY", "D"]


def test_words_missing_from_the_dictionary_are_named(aligner):
    utt = _flite("the cat sat on the mat")
    with pytest.raises(
        AlignmentError, match=r"2 word\(s\).*not in the pronouncing dictionary.*zorblat, qwxv"
    ):
        aligner.align(utt.audio, "the zorblat sat on the qwxv zorblat", sample_rate=16000)


def test_extra_pronunciations_fill_the_dictionary():
    if not _has_pocketsphinx():
        pytest.skip('pocketsphinx missing: pip install "memorytalker[align]"')
    from memorytalker.data.align import Aligner

    utt = _flite("the zorblat sat on the mat")
    own = Aligner(extra_pronunciations={"zorblat": "Z AO1 R B L AE0 T", "mat": "M AA1 T"})
    result = own.align(utt.audio, utt.text, sample_rate=16000)
    assert [w["word"] for w in result["words"]] == ["the", "zorblat", "sat", "on", "the", "mat"]
    zorblat = result["words"][1]
    inside = [p["phone"] for p in result["phonemes"] if zorblat["start"] <= p["start"] < zorblat["end"]]
    assert inside == ["Z", "AO", "R", "B", "L", "AE", "T"]
    # a word cmudict has keeps its own pronunciation and gets the new one as an alternative
    assert own.in_dictionary("mat") and own.in_dictionary("mat(2)")
    with pytest.raises(AlignmentError, match="unknown phoneme 'QQ'"):
        own.add_pronunciation("zorb", "Z QQ B")


def test_wrong_transcript_and_non_speech_fail_with_a_reason(aligner):
    utt = _flite("Please pass the peppered beef and the fresh green peas.")
    with pytest.raises(AlignmentError, match="does not fit|no way to fit"):
        aligner.align(utt.audio, "my brother thought the weather would be rather smooth", sample_rate=16000)
    with pytest.raises(AlignmentError, match="does not fit|no way to fit"):
        aligner.align(utt.audio, "hello there", sample_rate=16000)
    noise = np.random.default_rng(0).standard_normal(32000).astype(np.float32) * 0.1
    with pytest.raises(AlignmentError, match="does not fit|no way to fit"):
        aligner.align(noise, utt.text, sample_rate=16000)
    with pytest.raises(AlignmentError, match="digital silence"):
        aligner.align(np.zeros(16000, np.float32), utt.text, sample_rate=16000)


def test_quiet_recording_still_aligns(aligner):
    utt = _flite("Please pass the peppered beef and the fresh green peas.")
    loud = aligner.align(utt.audio, utt.text, sample_rate=16000)
    quiet = aligner.align(utt.audio * 1e-3, utt.text, sample_rate=16000)  # -60 dB
    assert [p["phone"] for p in quiet["phonemes"]] == [p["phone"] for p in loud["phonemes"]]
    err = boundary_errors(loud["phonemes"], quiet["phonemes"])
    assert np.median(err) == 0.0 and err.max() <= 0.05  # flite's digital-zero lead-in is no longer exact zero


@needs_ps
@pytest.mark.parametrize("name", sorted(REAL_TRANSCRIPTS))
def test_real_recordings_align(aligner, name, tmp_path):
    path = shared_file("speech", name)
    result = aligner.align(path, REAL_TRANSCRIPTS[name])
    phones = _check_covering(result, tmp_path)
    assert [w["word"] for w in result["words"]] == aligner.dictionary_words(REAL_TRANSCRIPTS[name])
    assert result["fit"] == pytest.approx(REAL_FITS[name], abs=1.0)
    assert result["duration"] == pytest.approx(sf.info(str(path)).duration, abs=1e-3)
    bilabials = [p for p in phones if p["phone"] in {"P", "B", "M"}]
    assert bilabials and all(0.02 <= p["end"] - p["start"] <= 0.5 for p in bilabials)
    words = result["words"]
    assert all(a["end"] <= b["start"] for a, b in zip(words, words[1:]))


# ---------------------------------------------------------------------------------------------- command
def _write(path: Path, utt) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, utt.audio, 16000, subtype="PCM_16")
    return path


def test_command_writes_results_and_lists_failures(tmp_path, capsys):
    if not _has_pocketsphinx():
        pytest.skip('pocketsphinx missing: pip install "memorytalker[align]"')
    from memorytalker.cli import main

    a = _write(tmp_path / "x" / "clip.wav", _flite("the cat sat on the mat"))
    b = _write(tmp_path / "y" / "clip.wav", _flite("a big map of the sea"))  # same stem as a
    c = _write(tmp_path / "side.wav", _flite("good books are wooden"))
    d = _write(tmp_path / "oov.wav", _flite("the cat sat on the mat"))
    e = _write(tmp_path / "none.wav", _flite("the cat sat on the mat"))
    (tmp_path / "side.txt").write_text("Good books are wooden.\n")  # beside the audio: used, not listed
    (tmp_path / "list.tsv").write_text(
        "x/clip.wav\tThe cat sat on the mat.\ny/clip.wav\tA big map of the sea.\noov.wav\tThe zorblat sat.\n"
    )
    out = tmp_path / "out"
    audio = [str(p) for p in (a, b, c, d, e)]
    rc = main(["align", *audio, "--transcripts", str(tmp_path / "list.tsv"), "--out", str(out)])
    printed = capsys.readouterr().out
    assert rc == 1
    written = sorted(p.name for p in out.iterdir())
    assert written == ["align_summary.json", "side.json", "x__clip.json", "y__clip.json"]
    for name, text in (("x__clip", "The cat sat on the mat."), ("side", "Good books are wooden.")):
        data = read_phonemes(out / f"{name}.json")
        assert data["text"] == text
    summary = json.loads((out / "align_summary.json").read_text())
    assert [Path(f["audio"]).name for f in summary["failed"]] == ["oov.wav", "none.wav"]
    assert "zorblat" in summary["failed"][0]["reason"]
    assert "no transcript" in summary["failed"][1]["reason"] and "none.txt" in summary["failed"][1]["reason"]
    assert "FAILED" in printed and "zorblat" in printed and "aligned 3 of 5" in printed
    # results are never overwritten silently
    assert main(["align", str(c), "--out", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["align", str(c), "--out", str(out), "--overwrite"]) == 0


def test_command_text_for_one_file_and_usage_errors(tmp_path, capsys):
    if not _has_pocketsphinx():
        pytest.skip('pocketsphinx missing: pip install "memorytalker[align]"')
    from memorytalker.cli import main

    a = _write(tmp_path / "a.wav", _flite("the cat sat on the mat"))
    b = _write(tmp_path / "b.wav", _flite("a big map of the sea"))
    assert main(["align", str(a), "--text", "the cat sat on the mat", "--out", str(tmp_path / "o1")]) == 0
    assert read_phonemes(tmp_path / "o1" / "a.json")["words"][1]["word"] == "cat"
    assert main(["align", str(a), str(b), "--text", "the cat", "--out", str(tmp_path / "o2")]) == 2
    assert "one recording" in capsys.readouterr().err
    assert main(["align", "--out", str(tmp_path / "o3")]) == 2
    # a transcripts file alone aligns every entry; paths are relative to the file
    (tmp_path / "t.yaml").write_text("a.wav: the cat sat on the mat\nb.wav: a big map of the sea\n")
    assert main(["align", "--transcripts", str(tmp_path / "t.yaml"), "--out", str(tmp_path / "o4")]) == 0
    assert {p.name for p in (tmp_path / "o4").iterdir()} == {"a.json", "b.json", "align_summary.json"}

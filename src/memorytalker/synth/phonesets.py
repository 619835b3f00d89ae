"""Mapping the synthesizers' phone sets to ARPAbet (:data:`memorytalker.data.phonemes.ARPABET`).

* flite and festival (``radio``/CMU phone set): lower-case ARPAbet plus a few extras (``ax`` -> ``AH``,
  ``axr`` -> ``ER``, ``pau`` -> silence); :func:`cmu_to_arpabet`.
* espeak-ng and Piper (whose phonemizer is espeak-ng): IPA strings, tokenised greedily (longest match
  first) so that diphthongs and affricates (``aɪ``, ``tʃ``) become one ARPAbet phone and length marks
  (``ː``) and stress marks (``ˈ ˌ``) attach to the phone before / after them; :func:`ipa_to_arpabet`.

An unknown symbol raises :class:`PhoneSetError` naming it: labels are never guessed silently.
"""

from __future__ import annotations

from memorytalker.data.phonemes import ARPABET, SILENCE
from memorytalker.errors import MemoryTalkerError


class PhoneSetError(MemoryTalkerError, ValueError):
    """A synthesizer reported a phone symbol that has no ARPAbet mapping."""


_CMU_EXTRA = {
    "ax": "AH",
    "axr": "ER",
    "ix": "IH",
    "ux": "UW",
    "dx": "D",
    "el": "L",
    "em": "M",
    "en": "N",
    "nx": "N",
    "hv": "HH",
    "pau": SILENCE,
    "h#": SILENCE,
    "sil": SILENCE,
    "ssil": SILENCE,
    "#": SILENCE,
}
_ARPA_SET = set(ARPABET)


def cmu_to_arpabet(phone: str) -> str:
    """One flite / festival phone (``"ax"``, ``"pau"``, ``"aa1"``) -> ARPAbet or ``"sil"``."""
    p = phone.strip().lower().rstrip("012")
    if p in _CMU_EXTRA:
        return _CMU_EXTRA[p]
    if p.upper() in _ARPA_SET:
        return p.upper()
    raise PhoneSetError(f"unknown CMU/radio phone {phone!r} (no ARPAbet mapping)")


# IPA (as written by espeak-ng for English) -> ARPAbet. Multi-character keys are matched first.
_IPA: dict[str, tuple[str, ...]] = {
    # diphthongs and r-coloured vowels
    "aɪə": ("AY", "ER"),
    "aʊə": ("AW", "ER"),
    "aɪ": ("AY",),
    "aʊ": ("AW",),
    "eɪ": ("EY",),
    "oʊ": ("OW",),
    "əʊ": ("OW",),
    "ɔɪ": ("OY",),
    "ɪə": ("IH", "ER"),
    "eə": ("EH", "ER"),
    "ʊə": ("UH", "ER"),
    "ɑːɹ": ("AA", "R"),
    "ʌʉ": ("OW",),
    "ʉː": ("UW",),
    "ʉ": ("UW",),
    "æʊ": ("AW",),
    "əɪ": ("AY",),
    "ɑə": ("AA", "R"),
    "oə": ("AO", "R"),
    "ɔə": ("AO", "R"),
    "aa": ("AA",),
    "aː": ("AA",),
    "eː": ("EY",),
    "ɔːɹ": ("AO", "R"),
    "oːɹ": ("AO", "R"),
    "ɛɹ": ("EH", "R"),
    "ɜː": ("ER",),
    "ɝ": ("ER",),
    "ɚ": ("ER",),
    "ɜ": ("ER",),
    # monophthongs
    "ɑː": ("AA",),
    "ɑ": ("AA",),
    "ɒ": ("AA",),
    "ɐ": ("AH",),
    "a": ("AE",),
    "æ": ("AE",),
    "ʌ": ("AH",),
    "ə": ("AH",),
    "ᵊ": ("AH",),
    "ɔː": ("AO",),
    "ɔ": ("AO",),
    "o": ("OW",),
    "oː": ("AO",),
    "ɛ": ("EH",),
    "e": ("EH",),
    "ɪ": ("IH",),
    "ᵻ": ("IH",),
    "ɨ": ("IH",),
    "iː": ("IY",),
    "i": ("IY",),
    "ʊ": ("UH",),
    "uː": ("UW",),
    "u": ("UW",),
    # consonants
    "tʃ": ("CH",),
    "dʒ": ("JH",),
    "p": ("P",),
    "b": ("B",),
    "t": ("T",),
    "d": ("D",),
    "ɾ": ("D",),
    "k": ("K",),
    "g": ("G",),
    "ɡ": ("G",),
    "f": ("F",),
    "v": ("V",),
    "θ": ("TH",),
    "ð": ("DH",),
    "s": ("S",),
    "z": ("Z",),
    "ʃ": ("SH",),
    "ʒ": ("ZH",),
    "h": ("HH",),
    "x": ("HH",),
    "m": ("M",),
    "n": ("N",),
    "ŋ": ("NG",),
    "l": ("L",),
    "ɫ": ("L",),
    "ɹ": ("R",),
    "r": ("R",),
    "ɾ̃": ("N",),
    "w": ("W",),
    "ʍ": ("W",),
    "j": ("Y",),
    "ʔ": (SILENCE,),
    "n̩": ("N",),
    "l̩": ("L",),
    "m̩": ("M",),
}
_IPA_MAXLEN = max(len(k) for k in _IPA)
#: Marks that carry no phone of their own (stress, length, syllabicity, ties, word boundaries).
IPA_MODIFIERS = frozenset("ˈˌːˑ̩̃͡‿-ʲʰʷ̪̥̯")
#: Piper / espeak symbols meaning "pause here".
IPA_PAUSES = frozenset(" ,.;:!?—…_^$\"'()")


def ipa_to_arpabet(ipa: str) -> list[str]:
    """An IPA string (espeak-ng's English output) -> ARPAbet phones (``"ðəbˈɔɪ"`` -> DH AH B OY).

    Stress and length marks are dropped, pauses and punctuation are ignored. Raises
    :class:`PhoneSetError` on a symbol with no mapping.
    """
    out: list[str] = []
    i = 0
    text = ipa.strip()
    while i < len(text):
        ch = text[i]
        if ch in IPA_MODIFIERS or ch in IPA_PAUSES or ch.isspace():
            i += 1
            continue
        for n in range(min(_IPA_MAXLEN, len(text) - i), 0, -1):
            key = text[i : i + n]
            if key in _IPA:
                out.extend(p for p in _IPA[key] if p != SILENCE)
                i += n
                break
        else:
            raise PhoneSetError(f"unknown IPA symbol {ch!r} (U+{ord(ch):04X}) in {ipa!r}")
    return out

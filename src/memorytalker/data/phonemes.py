"""The phoneme inventory shared by the synthetic corpus (labels) and the built-in CTC encoder (vocabulary).

Labels are the 39 ARPAbet phonemes without stress (CMUdict convention). Alignments stored next to clips
(``phonemes/<clip>.json``) may also contain the silence symbol :data:`SILENCE`; it is kept for timing
but is not a CTC target. CTC vocabulary index 0 is the blank.
"""

from __future__ import annotations

from collections.abc import Iterable

ARPABET: tuple[str, ...] = (
    "AA", "AE", "AH", "AO", "AW", "AY", "B", "CH", "D", "DH", "EH", "ER", "EY", "F", "G", "HH", "IH",
    "IY", "JH", "K", "L", "M", "N", "NG", "OW", "OY", "P", "R", "S", "SH", "T", "TH", "UH", "UW", "V",
    "W", "Y", "Z", "ZH",
)  # fmt: skip
SILENCE = "sil"
BLANK = "<blank>"
#: CTC vocabulary: blank first, then the 39 phonemes (size 40).
CTC_VOCAB: tuple[str, ...] = (BLANK, *ARPABET)
_INDEX = {p: i for i, p in enumerate(CTC_VOCAB)}


def normalize_phone(phone: str) -> str:
    """Upper-case ARPAbet without stress digits (``"ah0"`` -> ``"AH"``); silences map to :data:`SILENCE`."""
    p = phone.strip()
    if p.lower() in {"sil", "sp", "pau", "spn", "h#", "_", ""}:
        return SILENCE
    p = p.upper().rstrip("012")
    if p not in _INDEX or p == BLANK:
        raise ValueError(f"unknown phoneme {phone!r} (expected ARPAbet: {', '.join(ARPABET)})")
    return p


def phones_to_ids(phones: Iterable[str]) -> list[int]:
    """CTC target ids for a phone sequence; silences are dropped."""
    out = []
    for ph in phones:
        p = normalize_phone(ph)
        if p != SILENCE:
            out.append(_INDEX[p])
    return out

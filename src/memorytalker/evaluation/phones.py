"""Phoneme recognition of a CTC head: greedy decoding, edit distance and the phone error rate (PER).

PER = (substitutions + deletions + insertions) / reference phones, summed over clips (docs/METRICS.md).
References are ARPAbet phone sequences without silence (the corpus' timings or a forced alignment of a
transcript, :mod:`memorytalker.data.align`); hypotheses are the CTC head's greedy path: the argmax per
frame, repeats collapsed, blanks (id 0, also silence) dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from memorytalker.data.phonemes import phones_to_ids

BLANK_ID = 0


def ctc_greedy(logits: np.ndarray | torch.Tensor, length: int | None = None) -> list[int]:
    """CTC logits ``(T, M)`` (first ``length`` frames) -> the greedy symbol sequence (no blanks)."""
    x = logits.detach().cpu().numpy() if isinstance(logits, torch.Tensor) else np.asarray(logits)
    if x.ndim != 2:
        raise ValueError(f"ctc_greedy expects (T, M) logits, got shape {x.shape}")
    best = x[: x.shape[0] if length is None else int(length)].argmax(axis=1)
    out, prev = [], None
    for s in best.tolist():
        if s != prev and s != BLANK_ID:
            out.append(int(s))
        prev = s
    return out


def edit_distance(reference: Sequence, hypothesis: Sequence) -> int:
    """Levenshtein distance (unit costs) between two sequences."""
    prev = list(range(len(hypothesis) + 1))
    for i, r in enumerate(reference, 1):
        cur = [i] + [0] * len(hypothesis)
        for j, h in enumerate(hypothesis, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1]


def reference_ids(alignment: Mapping | Iterable[Mapping]) -> list[int]:
    """Phone timings (``{"phonemes": [...]}`` or the list itself) -> CTC ids of the non-silent phones."""
    phones = alignment["phonemes"] if isinstance(alignment, Mapping) else alignment
    return phones_to_ids(p["phone"] for p in phones)  # silences dropped


@dataclass(frozen=True)
class PhoneErrorRate:
    """Edit errors over ``reference_phones`` reference phones of ``clips`` clips (``rate`` = their ratio)."""

    errors: int
    reference_phones: int
    clips: int

    @property
    def rate(self) -> float | None:
        return self.errors / self.reference_phones if self.reference_phones else None


def phone_error_rate(pairs: Iterable[tuple[Sequence[int], Sequence[int]]]) -> PhoneErrorRate:
    """Pooled PER of ``(reference, hypothesis)`` id sequences."""
    errors = ref = clips = 0
    for r, h in pairs:
        errors += edit_distance(r, h)
        ref += len(r)
        clips += 1
    return PhoneErrorRate(errors, ref, clips)

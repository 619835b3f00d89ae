"""Phone recognition measures (memorytalker.evaluation.phones) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.evaluation.phones import ctc_greedy, edit_distance, phone_error_rate, reference_ids


def one_hot(path: list[int], m: int = 40) -> np.ndarray:
    x = np.zeros((len(path), m), np.float32)
    x[np.arange(len(path)), path] = 1.0
    return x


def test_greedy_collapses_repeats_and_drops_blanks():
    # blank, A A, blank, A, B B, blank  ->  A A B (a blank separates the two A's)
    assert ctc_greedy(one_hot([0, 5, 5, 0, 5, 7, 7, 0])) == [5, 5, 7]
    assert ctc_greedy(one_hot([0, 0, 0])) == []
    assert ctc_greedy(one_hot([3, 3, 4, 4]), length=2) == [3]
    with pytest.raises(ValueError, match=r"\(T, M\)"):
        ctc_greedy(np.zeros(5))


@pytest.mark.parametrize(
    "ref, hyp, d",
    [("kitten", "sitting", 3), ("", "abc", 3), ("abc", "", 3), ("abc", "abc", 0), ("flaw", "lawn", 2)],
)
def test_edit_distance(ref, hyp, d):
    assert edit_distance(list(ref), list(hyp)) == d


def naive_levenshtein(a: tuple, b: tuple) -> int:
    from functools import lru_cache

    @lru_cache(None)
    def lev(i: int, j: int) -> int:
        if i == 0 or j == 0:
            return i + j
        return min(lev(i - 1, j) + 1, lev(i, j - 1) + 1, lev(i - 1, j - 1) + (a[i - 1] != b[j - 1]))

    return lev(len(a), len(b))


def test_edit_distance_against_a_naive_recursion():
    rng = np.random.default_rng(0)
    for _ in range(30):
        a = tuple(rng.integers(0, 4, rng.integers(0, 7)).tolist())
        b = tuple(rng.integers(0, 4, rng.integers(0, 7)).tolist())
        assert edit_distance(a, b) == naive_levenshtein(a, b)


def test_reference_ids_drop_silence_and_stress():
    timings = {
        "phonemes": [{"phone": "sil"}, {"phone": "hh"}, {"phone": "AH0"}, {"phone": "sp"}, {"phone": "L"}]
    }
    assert [CTC_VOCAB[i] for i in reference_ids(timings)] == ["HH", "AH", "L"]
    assert reference_ids(timings["phonemes"]) == reference_ids(timings)


def test_pooled_rate():
    per = phone_error_rate([([1, 2, 3, 4], [1, 2, 4]), ([5, 6], [5, 6, 7, 8])])
    assert (per.errors, per.reference_phones, per.clips) == (3, 6, 2)
    assert per.rate == pytest.approx(0.5)
    assert phone_error_rate([]).rate is None

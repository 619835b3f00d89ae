"""Lip-sync measures (memorytalker.evaluation.lipsync): hand-made sequences with known answers, naive loop
references, and the procedural head with its lips opened and closed by moving vertices."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter1d
from scipy.signal import find_peaks

from memorytalker.evaluation.lipsync import (
    LipSyncConfig,
    LipSyncResult,
    as_phones,
    closure_rate,
    interval_frames,
    length_in_units,
    lip_amplitude,
    lip_amplitude_ratio,
    lipsync_clip,
    lipsync_units,
    mtm,
    pause_intervals,
    reduce_lipsync,
    rest_gap,
    speech_envelope,
    speech_lip_correlation,
)
from memorytalker.evaluation.metrics import MetricError
from memorytalker.topology import inner_lip_gap

FPS = 30.0
OPEN = 0.005  # 5 mm, metres
MM = 0.001


def ph(phone: str, start: float, end: float) -> dict:
    return {"phone": phone, "start": start, "end": end}


# Three bilabials, each 0.1 s, separated by open vowels; frames by instant t/30: P -> 6..8, B -> 24..26, M -> 42..44
BILABIAL_PHONES = [
    ph("sil", 0.0, 0.1),
    ph("AA", 0.1, 0.2),
    ph("P", 0.2, 0.3),
    ph("AA", 0.3, 0.8),
    ph("B", 0.8, 0.9),
    ph("IY", 0.9, 1.4),
    ph("M", 1.4, 1.5),
    ph("AA", 1.5, 2.0),
]


def gap_closing_at(frames: list[range], t: int = 60, value: float = 0.0) -> np.ndarray:
    g = np.full(t, OPEN)
    for r in frames:
        g[list(r)] = value
    return g


# ---------------------------------------------------------------------------------------------- frames
def test_interval_frames_instants_and_short_phones():
    assert interval_frames(0.2, 0.3, FPS) == (6, 8)  # 0.2*30 = 6.000000000000001: still frame 6
    assert interval_frames(0.1, 0.2, FPS) == (3, 5)  # the end instant 0.2 s (frame 6) is excluded
    assert interval_frames(0.0, 1 / FPS, FPS) == (0, 0)
    assert interval_frames(0.101, 0.102, FPS) == (3, 3)  # 3.045 frames -> 3


def test_interval_frames_midpoint_rule():
    # [0.105, 0.12) is frames 3.15 .. 3.6: no instant; its midpoint 3.375 frames is nearest frame 3
    first, last = interval_frames(0.105, 0.12, FPS)
    assert (first, last) == (3, 3)


# ---------------------------------------------------------------------------------------------- closures
def test_closing_exactly_at_each_bilabial_gives_rate_one():
    g = gap_closing_at([range(6, 9), range(24, 27), range(42, 45)])
    c = closure_rate(g, BILABIAL_PHONES, FPS, threshold=MM)
    assert (c.count, c.closed, c.rate) == (3, 3, 1.0)
    assert c.minima.tolist() == [0.0, 0.0, 0.0]
    assert c.mean_min == 0.0


def test_one_bilabial_left_open_gives_two_thirds_and_its_minimum():
    g = gap_closing_at([range(6, 9), range(42, 45)])
    g[24:27] = 0.003  # B only reaches 3 mm
    c = closure_rate(g, BILABIAL_PHONES, FPS, threshold=MM)
    assert c.closed == 2 and c.rate == pytest.approx(2 / 3)
    assert c.minima.tolist() == pytest.approx([0.0, 0.003, 0.0])
    assert c.mean_min == pytest.approx(0.001)


def test_plus_minus_one_frame_tolerance():
    # P covers frames 6..8. A closure only at frame 9 (one after) or 5 (one before) counts; 10 or 4 does not.
    for frame, closed in ((5, True), (9, True), (4, False), (10, False)):
        g = np.full(60, OPEN)
        g[frame] = 0.0
        c = closure_rate(g, [ph("P", 0.2, 0.3)], FPS, threshold=MM)
        assert c.closed == int(closed), frame
        strict = closure_rate(g, [ph("P", 0.2, 0.3)], FPS, threshold=MM, tolerance=0)
        assert strict.closed == 0
    # the threshold is inclusive: a minimum of exactly 1 mm is closed, 1.01 mm is not
    g = np.full(60, OPEN)
    g[7] = MM
    assert closure_rate(g, [ph("B", 0.2, 0.3)], FPS, MM).closed == 1
    g[7] = 1.01 * MM
    assert closure_rate(g, [ph("B", 0.2, 0.3)], FPS, MM).closed == 0


def test_threshold_units_are_explicit_and_the_rate_does_not_depend_on_them():
    assert length_in_units(1.0, "m") == pytest.approx(0.001)
    assert length_in_units(1.0, "mm") == 1.0
    assert length_in_units(1.0, "cm") == pytest.approx(0.1)
    with pytest.raises(MetricError, match="known units"):
        length_in_units(1.0, "inch")
    g = gap_closing_at([range(6, 9), range(42, 45)], value=0.0008)
    in_m = closure_rate(g, BILABIAL_PHONES, FPS, length_in_units(1.0, "m"))
    in_mm = closure_rate(g * 1000, BILABIAL_PHONES, FPS, length_in_units(1.0, "mm"))
    assert in_m.closed == in_mm.closed == 2
    np.testing.assert_allclose(in_mm.minima, in_m.minima * 1000)


def test_no_bilabials_gives_none_not_nan_and_bad_timings_fail():
    c = closure_rate(np.zeros(30), [ph("AA", 0.0, 0.5)], FPS, MM)
    assert c.count == 0 and c.rate is None and c.mean_min is None
    with pytest.raises(MetricError, match="no frame within the clip"):
        closure_rate(np.zeros(30), [ph("M", 2.0, 2.1)], FPS, MM)  # 1 s clip, bilabial at 2 s
    with pytest.raises(MetricError, match="end"):
        closure_rate(np.zeros(30), [ph("M", 0.5, 0.4)], FPS, MM)
    with pytest.raises(MetricError, match="unknown phoneme"):
        closure_rate(np.zeros(30), [ph("QQ", 0.1, 0.2)], FPS, MM)
    with pytest.raises(MetricError, match="NaN"):
        closure_rate(np.array([0.0, np.nan]), [ph("M", 0.0, 0.05)], FPS, MM)
    # stress digits and lower case are normalised; a whole alignment dict is accepted
    assert [
        p.phone for p in as_phones({"phonemes": [ph("m", 0, 0.1), ph("AH0", 0.1, 0.2), ph("pau", 0.2, 1)]})
    ] == [
        "M",
        "AH",
        "sil",
    ]


def _naive_closures(gap, phones, fps, threshold, tol=1):
    """Loop reference: frames whose instant t/fps lies in [start, end), else the frame nearest the middle."""
    minima = []
    for p in phones:
        if p["phone"] not in ("P", "B", "M"):
            continue
        inside = [t for t in range(len(gap)) if p["start"] <= t / fps < p["end"]]
        if not inside:
            inside = [int(math.floor((p["start"] + p["end"]) / 2 * fps + 0.5))]
        window = [t for t in range(min(inside) - tol, max(inside) + tol + 1) if 0 <= t < len(gap)]
        minima.append(min(gap[t] for t in window))
    return minima, sum(m <= threshold for m in minima)


def _random_phones(rng, total_ms: int, with_gaps: bool) -> list[dict]:
    """Phones on a 1 ms grid (integer milliseconds, so a grid reference is exact)."""
    out, t = [], int(rng.integers(0, 60))
    names = ["P", "B", "M", "AA", "IY", "S", "sil"]
    while t < total_ms - 10:
        d = int(rng.integers(5, 260))
        name = names[int(rng.integers(0, len(names)))]
        out.append(
            {
                "phone": name,
                "start": t / 1000,
                "end": min(t + d, total_ms) / 1000,
                "ms": (t, min(t + d, total_ms)),
            }
        )
        t += d + (int(rng.integers(0, 250)) if with_gaps and rng.random() < 0.3 else 0)
    return out


def test_closures_match_a_naive_loop_on_random_sequences():
    rng = np.random.default_rng(0)
    for trial in range(30):
        fps = [30.0, 25.0, 60.0][trial % 3]
        t = int(rng.integers(20, 120))
        gap = rng.uniform(-0.0005, 0.004, size=t)
        phones = _random_phones(rng, int(t / fps * 1000), with_gaps=True)
        for tol in (0, 1, 2):
            c = closure_rate(gap, phones, fps, MM, tolerance=tol)
            minima, closed = _naive_closures(gap, phones, fps, MM, tol)
            assert c.minima.tolist() == minima and c.closed == closed


# ---------------------------------------------------------------------------------------------- rest gap
def test_a_pause_of_019_s_does_not_count_and_02_s_does():
    g = np.full(60, OPEN)
    g[9:15] = 0.002  # frames 9..14 = instants 0.3 .. 0.4667 s
    short = [ph("AA", 0.0, 0.3), ph("sil", 0.3, 0.49), ph("AA", 0.49, 2.0)]
    exact = [ph("AA", 0.0, 0.3), ph("sil", 0.3, 0.5), ph("AA", 0.5, 2.0)]
    assert rest_gap(g, short, FPS) is None
    assert rest_gap(g, exact, FPS) == pytest.approx(0.002)
    assert pause_intervals(exact) == [(0.3, 0.5)]
    assert rest_gap(g, short, FPS, min_pause_s=0.19) == pytest.approx(0.002)


def test_rest_gap_is_the_median_over_all_pause_frames_and_counts_gaps_between_words():
    g = np.full(90, OPEN)
    g[9:15] = [0.001, 0.002, 0.003, 0.004, 0.005, 0.006]  # sil 0.3 - 0.5 s
    g[45:54] = 0.0  # an unaligned gap between words, 1.5 - 1.8 s: frames 45..53
    phones = [ph("AA", 0.0, 0.3), ph("sil", 0.3, 0.5), ph("AA", 0.5, 1.5), ph("IY", 1.8, 3.0)]
    assert pause_intervals(phones) == [(0.3, 0.5), (1.5, 1.8)]
    assert rest_gap(g, phones, FPS) == pytest.approx(
        float(np.median(g[list(range(9, 15)) + list(range(45, 54))]))
    )
    # a 0.1 s sil and an adjacent 0.1 s unaligned gap merge into one 0.2 s pause
    merged = [ph("AA", 0.0, 0.3), ph("sil", 0.3, 0.4), ph("AA", 0.5, 2.0)]
    assert pause_intervals(merged) == [(0.3, 0.5)]
    # time before the first and after the last phone is not a pause
    assert pause_intervals([ph("AA", 0.5, 1.0)]) == []


def _naive_rest(gap, phones, fps, min_ms=200):
    """Grid reference in whole milliseconds: a quiet cell is in a sil phone, or between the first phone's
    start and the last phone's end with no phone on it; runs of >= min_ms quiet cells are pauses."""
    first = min(p["ms"][0] for p in phones)
    last = max(p["ms"][1] for p in phones)
    total = last + 10
    quiet = np.zeros(total, bool)
    covered = np.zeros(total, bool)
    for p in phones:
        s, e = p["ms"]
        covered[s:e] = True
        if p["phone"] == "sil":
            quiet[s:e] = True
    quiet |= ~covered & (np.arange(total) >= first) & (np.arange(total) < last)
    in_pause = np.zeros(total, bool)
    c = 0
    while c < total:
        if quiet[c]:
            e = c
            while e < total and quiet[e]:
                e += 1
            if e - c >= min_ms:
                in_pause[c:e] = True
            c = e
        else:
            c += 1
    vals = []
    for t in range(len(gap)):
        cell = (1000 * t) // int(fps)  # exact: fps is an integer here
        if cell < total and in_pause[cell]:
            vals.append(gap[t])
    return float(np.median(vals)) if vals else None


def test_rest_gap_matches_a_naive_millisecond_grid():
    rng = np.random.default_rng(1)
    seen = 0
    for trial in range(40):
        fps = [30.0, 25.0, 60.0][trial % 3]
        t = int(rng.integers(30, 150))
        gap = rng.uniform(0.0, 0.004, size=t)
        phones = _random_phones(rng, int(t / fps * 1000), with_gaps=True)
        got, want = rest_gap(gap, phones, fps), _naive_rest(gap, phones, fps)
        if want is None:
            assert got is None
        else:
            seen += 1
            assert got == pytest.approx(want)
    assert seen >= 10  # the random clips do contain pauses


# ---------------------------------------------------------------------------------------------- amplitude
def test_amplitude_ratio_of_a_scaled_copy_is_the_scale():
    rng = np.random.default_rng(2)
    gt = rng.uniform(0, 0.01, 80)
    pred = 0.003 + 0.4 * (gt - gt.mean())  # scaled and shifted: the offset does not matter
    assert lip_amplitude_ratio(pred, gt) == pytest.approx(0.4)
    assert lip_amplitude_ratio(np.concatenate([2.5 * gt, np.full(20, 9.0)]), gt) == pytest.approx(
        2.5
    )  # truncated
    naive = math.sqrt(sum((x - sum(gt) / len(gt)) ** 2 for x in gt) / len(gt))
    assert lip_amplitude(gt) == pytest.approx(naive)
    assert lip_amplitude(np.full(10, 0.1)) == 0.0
    with pytest.raises(MetricError, match="constant"):
        lip_amplitude_ratio(gt, np.full(80, 0.1))


# ---------------------------------------------------------------------------------------------- MTM
def _smooth_signal(t: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = np.arange(t)
    return (
        0.004
        + 0.003 * np.sin(2 * np.pi * x / 17.0 + rng.uniform(0, 6))
        + 0.001 * np.sin(2 * np.pi * x / 41.0)
    )


def test_mtm_of_a_shifted_copy_is_the_shift():
    gt = _smooth_signal(150, 0)
    for k in (0, 1, 2, 3):
        pred = np.concatenate([np.full(k, gt[0]), gt[: len(gt) - k]])  # delayed by k frames
        r = mtm(pred, gt, FPS)
        assert r.matches >= 10
        assert r.frames == pytest.approx(k)
        assert r.ms == pytest.approx(k * 1000 / FPS)
    r = mtm(gt, gt, 25.0)
    assert r.frames == 0.0 and set(r.offsets.tolist()) == {0}


def test_mtm_without_extrema_is_none():
    r = mtm(np.linspace(0, 1, 40), np.linspace(0, 2, 40), FPS)
    assert r.frames is None and r.ms is None and r.matches == 0


def _naive_mtm(pred, gt, sigma=2.0, prominence=None):
    """Straight loops after the published procedure: padded DTW over derivative distances, path traced
    from the end preferring diagonal, then (i-1, j), then (i, j-1); offsets of matched same-type extrema."""
    g, p = gaussian_filter1d(gt, sigma), gaussian_filter1d(pred, sigma)
    dg = [0.0] + [g[i] - g[i - 1] for i in range(1, len(g))]
    dp = [0.0] + [p[j] - p[j - 1] for j in range(1, len(p))]
    n, m = len(dg), len(dp)
    acc = [[math.inf] * (m + 1) for _ in range(n + 1)]
    acc[0][0] = 0.0
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            acc[i][j] = abs(dg[i - 1] - dp[j - 1]) + min(acc[i - 1][j], acc[i][j - 1], acc[i - 1][j - 1])
    path, i, j = [], n, m
    while i > 0 and j > 0:
        path.append((i - 1, j - 1))
        steps = [acc[i - 1][j - 1], acc[i - 1][j], acc[i][j - 1]]
        k = steps.index(min(steps))
        i, j = (i - 1, j - 1) if k == 0 else (i - 1, j) if k == 1 else (i, j - 1)
    path.reverse()
    kinds_g = {int(x): "max" for x in find_peaks(g, prominence=prominence)[0]}
    kinds_g.update({int(x): "min" for x in find_peaks(-g, prominence=prominence)[0]})
    kinds_p = {int(x): "max" for x in find_peaks(p, prominence=prominence)[0]}
    kinds_p.update({int(x): "min" for x in find_peaks(-p, prominence=prominence)[0]})
    order = sorted(kinds_g)
    out = []
    for ig, ip in path:
        if ig in kinds_g and ip in kinds_p and kinds_g[ig] == kinds_p[ip]:
            pos = order.index(ig)
            left = order[pos - 1] if pos > 0 else 0
            right = order[pos + 1] if pos < len(order) - 1 else len(g) - 1
            if left <= ip <= right:
                out.append(abs(ig - ip))
    return out


def test_mtm_matches_a_naive_loop_implementation():
    rng = np.random.default_rng(3)
    matched = 0
    for trial in range(12):
        tg = int(rng.integers(60, 120))
        tp = tg + int(rng.integers(-6, 7))
        gt = gaussian_filter1d(rng.normal(size=tg), 2.0) * 1e-2
        speed = np.cumsum(rng.uniform(0.6, 1.4, size=tp))  # the prediction: a time-warped, noisy copy
        warp = (speed - speed[0]) / (speed[-1] - speed[0]) * (tg - 1)
        pred = np.interp(warp, np.arange(tg), gt) + rng.normal(size=tp) * 3e-4
        prom = None if trial % 2 == 0 else 1e-3
        r = mtm(pred, gt, FPS, prominence=prom)
        want = _naive_mtm(pred, gt, prominence=prom)
        assert r.offsets.tolist() == want
        assert r.frames == pytest.approx(np.mean(want))
        matched += len(want)
    assert matched >= 60  # many matched extrema, with offsets of several sizes


# ---------------------------------------------------------------------------------------------- speech
def _naive_envelope(audio, fps, n, sr=16000, window_s=None):
    w = max(1, round((1 / fps if window_s is None else window_s) * sr))
    out = []
    for t in range(n):
        if t / fps >= len(audio) / sr:
            break
        c = round(t * sr / fps)
        acc = 0.0
        for k in range(w):
            s = c - w // 2 + k
            if 0 <= s < len(audio):
                acc += audio[s] ** 2
        out.append(math.sqrt(acc / w))
    return np.array(out)


def test_speech_envelope_matches_a_naive_loop():
    rng = np.random.default_rng(4)
    audio = rng.normal(size=16000 // 2 + 123)
    for fps, window in ((30.0, None), (25.0, 0.025), (60.0, None)):
        env = speech_envelope(audio, fps, 100, window_s=window)
        np.testing.assert_allclose(
            env, _naive_envelope(audio, fps, 100, window_s=window), rtol=1e-9, atol=1e-12
        )
    # frames past the end of the audio get no value; num_frames caps the count
    assert speech_envelope(audio, FPS).shape == (math.ceil(len(audio) * FPS / 16000),)
    assert speech_envelope(audio, FPS, 5).shape == (5,)


def test_an_envelope_shaped_gap_correlates_with_the_speech():
    sr, seconds = 16000, 2.0
    n = int(sr * seconds)
    time = np.arange(n) / sr
    loudness = 0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * time) ** 2  # syllable-rate modulation
    audio = loudness * np.sin(2 * np.pi * 220 * time)
    frames = int(seconds * FPS)
    gap = 0.008 * (0.5 + 0.5 * np.sin(2 * np.pi * 2.3 * np.arange(frames) / FPS) ** 2)
    assert speech_lip_correlation(audio, gap, FPS) > 0.99
    assert speech_lip_correlation(audio, -gap, FPS) < -0.99
    exact = 3.0 * speech_envelope(audio, FPS, frames) + 0.001
    assert speech_lip_correlation(audio, exact, FPS) == pytest.approx(1.0)
    assert speech_lip_correlation(audio, np.full(frames, 0.002), FPS) is None  # a frozen mouth: undefined
    assert speech_lip_correlation(np.zeros(n), gap, FPS) is None


# ---------------------------------------------------------------------------------------------- clip level
@pytest.fixture(scope="module")
def head():
    from memorytalker.synth.head import head_topology

    return head_topology()


def _animate(head, opening: np.ndarray) -> np.ndarray:
    """``(T, V, 3)``: the head's reference mesh with its lower inner lip moved down by ``opening`` (m)."""
    inner, axes = head.inner_lips, head.axes
    v = np.repeat(np.asarray(head.vertices, dtype=np.float64)[None], len(opening), axis=0)
    v[:, inner.lower, axes.up] -= axes.up_sign * opening[:, None]
    return v


def test_lipsync_clip_on_the_procedural_head(head):
    rest = float(inner_lip_gap(np.asarray(head.vertices)[None], head)[0])
    t = 60
    gt_open = 0.006 + 0.004 * np.sin(np.arange(t) / 3.0)
    for r in (range(6, 9), range(24, 27), range(42, 45)):
        gt_open[list(r)] = -rest  # the lips meet exactly (gap 0) at every bilabial
    gt_open[3:9] = np.minimum(gt_open[3:9], 0.0)  # ... and rest closed through the leading pause
    pred_open = gt_open.copy()
    pred_open[24:27] = 0.003  # the prediction leaves B open (3 mm + the rest gap)
    phones = [ph("sil", 0.0, 0.2)] + BILABIAL_PHONES[2:]
    pred, gt = _animate(head, pred_open), _animate(head, gt_open)
    np.testing.assert_allclose(inner_lip_gap(pred, head), rest + pred_open, atol=1e-12)

    sr = 16000
    time = np.arange(2 * sr) / sr
    loudness = np.interp(time, np.arange(t) / FPS, gt_open - gt_open.min())  # speech as loud as the lips open
    audio = np.sin(2 * np.pi * 200 * time) * loudness
    res = lipsync_clip(pred, gt, head, phones, FPS, "m", audio=audio)
    assert (res.bilabials, res.closed, res.gt_closed) == (3, 2, 3)
    assert res.closure_rate == pytest.approx(2 / 3) and res.gt_closure_rate == 1.0
    assert res.bilabial_min_gaps[1] == pytest.approx(rest + 0.003)
    assert res.pauses == 1 and res.pause_frames == 6  # sil 0.0 - 0.2 s: frames 0..5
    assert res.gt_rest_gap == pytest.approx(float(np.median(rest + gt_open[:6])))
    assert res.amplitude_ratio == pytest.approx(lip_amplitude(pred_open) / lip_amplitude(gt_open))
    assert res.mtm_frames is not None and res.mtm_matches > 0
    assert res.gt_speech_lip_corr > 0.9 and res.speech_lip_corr is not None
    payload = json.loads(json.dumps(res.to_dict()))
    assert set(payload) <= set(lipsync_units("m"))
    assert payload["bilabial_min_gaps"] == pytest.approx(list(res.bilabial_min_gaps))

    # the same clip in millimetres: lengths scale by 1000, rates, ratios, MTM and correlations do not
    in_mm = lipsync_clip(
        pred * 1000, gt * 1000, head, phones, FPS, "mm", audio=audio
    )  # same indices and axes
    assert (in_mm.closed, in_mm.gt_closed) == (res.closed, res.gt_closed)
    assert in_mm.gt_rest_gap == pytest.approx(res.gt_rest_gap * 1000)
    assert in_mm.amplitude_ratio == pytest.approx(res.amplitude_ratio)
    assert in_mm.mtm_frames == pytest.approx(res.mtm_frames)
    assert in_mm.speech_lip_corr == pytest.approx(res.speech_lip_corr)

    # without ground truth or audio, their fields are None
    alone = lipsync_clip(pred, None, head, phones, FPS, "m")
    assert alone.closed == 2 and alone.gt_frames is None and alone.amplitude_ratio is None
    assert alone.mtm_frames is None and alone.speech_lip_corr is None and alone.gt_closure_rate is None
    with pytest.raises(MetricError, match="known units"):
        lipsync_clip(pred, gt, head, phones, FPS, "furlong")
    with pytest.raises(MetricError, match="vertices per frame"):
        lipsync_clip(pred[:, :-1], gt, head, phones, FPS, "m")


def test_lipsync_config_changes_the_threshold(head):
    t = 30
    opening = np.full(t, 0.004)
    opening[6:9] = 0.0015  # 1.5 mm (+ the rest gap, ~0)
    v = _animate(head, opening)
    phones = [ph("P", 0.2, 0.3)]
    assert lipsync_clip(v, None, head, phones, FPS, "m").closed == 0
    assert lipsync_clip(v, None, head, phones, FPS, "m", config=LipSyncConfig(closure_mm=2.0)).closed == 1


# ---------------------------------------------------------------------------------------------- reduction
def _record(**kw) -> LipSyncResult:
    base = {f.name: None for f in dataclasses.fields(LipSyncResult)}
    base.update(
        frames=60, bilabials=0, closed=0, bilabial_min_gaps=(), pauses=0, pause_frames=0, rest_closed_frames=0,
        lip_amplitude=0.001,
    )  # fmt: skip
    base.update(kw)
    return LipSyncResult(**base)


def test_reduction_pools_phones_and_frames_and_takes_medians_and_means_over_clips():
    a = _record(
        bilabials=1, closed=1, bilabial_min_gaps=(0.0,), gt_frames=60, gt_closed=1, gt_bilabial_min_gaps=(0.0,),
        pause_frames=10, rest_closed_frames=5, rest_gap=0.002, amplitude_ratio=0.5, mtm_frames=1.0, mtm_ms=33.3,
        speech_lip_corr=0.2,
    )  # fmt: skip
    b = _record(
        bilabials=3, closed=1, bilabial_min_gaps=(0.0, 0.004, 0.002), gt_frames=60, gt_closed=3,
        gt_bilabial_min_gaps=(0.0, 0.0, 0.0), pause_frames=30, rest_closed_frames=3, rest_gap=0.004,
        amplitude_ratio=0.6, mtm_frames=3.0, mtm_ms=100.0, speech_lip_corr=0.4,
    )  # fmt: skip
    c = _record(rest_gap=None, amplitude_ratio=None, mtm_frames=None, speech_lip_corr=None)  # no GT, no pause
    d = _record(gt_frames=60, gt_closed=0, gt_bilabial_min_gaps=(), amplitude_ratio=0.9, rest_gap=0.001)
    s = reduce_lipsync([a, b, c, d])
    assert s.clips == 4 and s.bilabials == 4 and s.closed == 2
    assert s.closure_rate == 0.5  # pooled over phones (2 of 4), not the mean of per-clip rates (0.67)
    assert s.mean_bilabial_min_gap == pytest.approx(0.0015)
    assert s.gt_bilabials == 4 and s.gt_closure_rate == 1.0
    assert s.rest_clips == 3 and s.rest_gap == pytest.approx(0.002)  # median of 0.002, 0.004, 0.001
    assert s.rest_closed_fraction == pytest.approx(8 / 40)
    assert s.amplitude_clips == 3 and s.amplitude_ratio == pytest.approx(0.6)  # median over clips
    assert s.mtm_clips == 2 and s.mtm_frames == pytest.approx(2.0) and s.mtm_ms == pytest.approx(66.65)
    assert s.corr_clips == 2 and s.speech_lip_corr == pytest.approx(0.3)
    assert s.gt_rest_gap is None and s.gt_rest_closed_fraction is None and s.gt_speech_lip_corr is None
    json.dumps(s.to_dict())
    assert set(s.to_dict()) <= set(lipsync_units("m"))
    assert lipsync_units("mm")["rest_gap"] == "mm" and lipsync_units("m")["gt_closure_rate"] == "1"
    with pytest.raises(MetricError, match="nothing to reduce"):
        reduce_lipsync([])

"""Dataset-level reducers, display scales and the report layer (memorytalker.evaluation)."""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import pytest

from memorytalker.evaluation.metrics import ClipMetrics, MetricError, fdd, fve, ldtw, lip_max, lve
from memorytalker.evaluation.report import (
    DEFINITIONS_VERSION,
    ClipResult,
    build_report,
    clip_means,
    display_scales,
    evaluate_clip,
    format_report,
    per_subject,
    reduce_results,
)
from memorytalker.evaluation.scoring import evaluate_predictions
from memorytalker.topology import FaceTopology

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

V = 16
LIPS = np.array([10, 11, 12, 13])
UPPER = np.array([0, 1, 2, 3])


def topology() -> FaceTopology:
    rng = np.random.default_rng(0)
    return FaceTopology(
        "toy", rng.normal(size=(V, 3)), np.zeros((0, 3)), 30, {"lips": LIPS, "upper_face": UPPER}
    )


def make_clips(seed: int = 0):
    """Three clips of unequal length (3, 10, 6 frames), two subjects."""
    rng = np.random.default_rng(seed)
    clips = {}
    for cid, t in (("a_s01", 3), ("a_s02", 10), ("b_s01", 6)):
        tpl = rng.normal(size=(V, 3))
        gt = tpl + rng.normal(scale=0.01, size=(t, V, 3))
        pred = tpl + rng.normal(scale=0.01 * (1 + t / 5), size=(t, V, 3))
        clips[cid] = (cid.split("_")[0], pred, gt, tpl)
    return clips


def results_of(clips):
    return [evaluate_clip(cid, s, p, g, tpl, LIPS, UPPER) for cid, (s, p, g, tpl) in clips.items()]


def test_pooling_is_frame_weighted():
    clips = make_clips()
    res = results_of(clips)
    pooled = reduce_results(res)
    # reference: per-frame values of all clips concatenated, then one mean
    lip_frames, face_frames = [], []
    for _, p, g, _ in clips.values():
        d = np.linalg.norm(p - g, axis=-1)  # (T, V)
        lip_frames.append(d[:, LIPS].max(axis=1))
        face_frames.append(d.mean(axis=1))
    lip_all, face_all = np.concatenate(lip_frames), np.concatenate(face_frames)
    assert pooled.frames == len(lip_all) == 19 and pooled.clips == 3
    assert pooled.lve == pytest.approx(np.mean(lip_all**2), rel=1e-9)
    assert pooled.lip_max == pytest.approx(np.mean(lip_all), rel=1e-9)
    assert pooled.fve == pytest.approx(np.mean(face_all), rel=1e-9)
    fdds = [fdd(p, g, tpl, UPPER) for _, p, g, tpl in clips.values()]
    assert pooled.fdd == pytest.approx(np.mean(fdds), rel=1e-9)
    assert pooled.fdd_abs == pytest.approx(np.mean(np.abs(fdds)), rel=1e-9)
    assert pooled.ldtw == pytest.approx(
        np.mean([ldtw(p, g, LIPS) for _, p, g, _ in clips.values()]), rel=1e-9
    )
    # the per-clip (sequence-weighted) mean differs when lengths and errors differ
    means = clip_means(res)
    assert means.lve == pytest.approx(np.mean([lve(p, g, LIPS) for _, p, g, _ in clips.values()]), rel=1e-9)
    assert means.fve == pytest.approx(np.mean([fve(p, g) for _, p, g, _ in clips.values()]), rel=1e-9)
    assert not math.isclose(means.lve, pooled.lve, rel_tol=1e-3)
    assert means.fdd == pooled.fdd and means.ldtw == pooled.ldtw


def test_fdd_signed_and_absolute():
    def r(cid, value):
        return ClipResult(cid, "s", ClipMetrics(0.0, 0.0, 0.0, value, 0.0, 5, 5, 5))

    pooled = reduce_results([r("s_1", 2.0), r("s_2", -1.0)])
    assert pooled.fdd == pytest.approx(0.5) and pooled.fdd_abs == pytest.approx(1.5)


def test_per_subject():
    clips = make_clips(1)
    res = results_of(clips)
    subj = per_subject(res)
    assert list(subj) == ["a", "b"]
    assert subj["a"].clips == 2 and subj["a"].frames == 13
    assert subj["a"] == reduce_results([x for x in res if x.subject == "a"])
    p, g = clips["b_s01"][1], clips["b_s01"][2]
    assert subj["b"].lip_max == pytest.approx(lip_max(p, g, LIPS), rel=1e-12)


def test_reducer_errors():
    with pytest.raises(MetricError, match="no clips"):
        reduce_results([])
    r = ClipResult("x_1", "x", ClipMetrics(0.0, 0.0, 0.0, 0.0, 0.0, 1, 1, 1))
    with pytest.raises(MetricError, match="more than once"):
        reduce_results([r, r])


def test_display_scales_follow_units():
    m = display_scales("m")
    assert m["lve"].label == "LVE [×1e-5 m²]" and m["lve"].apply(2.5e-5) == pytest.approx(2.5)
    assert m["fve"].label == "FVE [mm]" and m["fve"].apply(0.001) == pytest.approx(1.0)
    assert m["fdd"].label == "FDD [×1e-7 m²]"
    assert m["ldtw"].label == "LDTW [mm]" and m["lip_max"].label == "Lip-max [mm]"
    mm = display_scales("mm")
    assert mm["lve"].label == "LVE [×1e-4 mm²]" and mm["lve"].apply(3e-4) == pytest.approx(3.0)
    assert mm["fve"].scale == 1.0 and mm["fdd"].label == "FDD [×1e-5 mm²]"
    other = display_scales("cm")
    assert other["lve"].label == "LVE [cm²]" and other["fve"].scale == 1.0
    with pytest.raises(MetricError, match="units"):
        display_scales("")


def test_report_and_table():
    res = results_of(make_clips(2))
    topo = topology()
    report = build_report(res, "m", topo, extra={"note": 1})
    json.dumps(report)  # JSON-ready
    assert report["definitions"] == DEFINITIONS_VERSION
    assert (
        report["units"] == "m"
        and report["metric_units"]["lve"] == "m^2"
        and report["metric_units"]["fve"] == "m"
    )
    assert report["regions"] == {"topology": "toy", "num_vertices": V, "lips": 4, "upper_face": 4}
    assert set(report["per_clip"]) == {"a_s01", "a_s02", "b_s01"}
    assert report["per_clip"]["a_s02"]["frames"] == 10
    assert report["pooled"]["lve"] == reduce_results(res).lve  # raw, unscaled
    assert report["note"] == 1
    text = format_report(report)
    assert "LVE [×1e-5 m²]" in text and "FVE [mm]" in text and "per subject:" in text
    pooled_line = next(line for line in text.splitlines() if line.startswith("pooled"))
    assert f"{report['pooled']['lve'] / 1e-5:.4f}" in pooled_line
    assert f"{report['pooled']['fve'] * 1e3:.4f}" in pooled_line


def test_evaluate_predictions_templates_by_clip_or_subject():
    clips = make_clips(3)
    topo = topology()
    preds = {c: v[1] for c, v in clips.items()}
    gts = {c: v[2] for c, v in clips.items()}
    subjects = {c: v[0] for c, v in clips.items()}
    by_clip = evaluate_predictions(preds, gts, subjects, topo, {c: v[3] for c, v in clips.items()}, "mm")
    assert by_clip["display"]["lve"]["label"] == "LVE [×1e-4 mm²]"
    assert by_clip["pooled"] == reduce_results(results_of(clips)).to_dict()
    by_subject = evaluate_predictions(
        preds, gts, subjects, topo, {"a": clips["a_s01"][3], "b": clips["b_s01"][3]}, "mm"
    )
    assert by_subject["per_clip"]["a_s01"]["fdd"] == by_clip["per_clip"]["a_s01"]["fdd"]
    with pytest.raises(MetricError, match="no template"):
        evaluate_predictions(preds, gts, subjects, topo, {}, "mm")
    with pytest.raises(MetricError, match="without ground truth"):
        evaluate_predictions(preds, {}, subjects, topo, {}, "mm")
    wrong = dict(preds, a_s01=np.zeros((3, V + 1, 3)))
    with pytest.raises(MetricError, match=r"a_s01: 17 vertices per frame, but topology 'toy' .* has 16"):
        evaluate_predictions(wrong, gts, subjects, topo, {c: v[3] for c, v in clips.items()}, "mm")


def test_flame_index_sets_when_available():
    mesh, masks = SHARED / "flame" / "FLAME_sample.ply", SHARED / "flame" / "FLAME_masks.pkl"
    for path in (mesh, masks):
        if not path.is_file():
            pytest.skip(f"reference file {path} is absent (../shared/data is not part of the repository)")
    from memorytalker.topology import vocaset_topology

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        topo = vocaset_topology(mesh, masks)
    assert len(topo.lips) == 250 and len(topo.upper_face) == 827
    rng = np.random.default_rng(0)
    gt = topo.vertices[None] + rng.normal(scale=1e-3, size=(4, topo.num_vertices, 3))
    pred = gt.copy()
    pred[:, topo.lips[0]] += [0.003, 0.004, 0.0]  # 5 mm on one lip vertex in every frame
    report = evaluate_predictions({"s_1": pred}, {"s_1": gt}, {"s_1": "s"}, topo, {"s": topo.vertices}, "m")
    assert report["pooled"]["lve"] == pytest.approx(2.5e-5, rel=1e-9)
    assert report["pooled"]["lip_max"] == pytest.approx(5e-3, rel=1e-9)
    assert report["pooled"]["fve"] == pytest.approx(5e-3 / topo.num_vertices, rel=1e-9)
    assert report["regions"]["lips"] == 250

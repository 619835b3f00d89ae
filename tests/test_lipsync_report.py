"""The lip-sync measures in the evaluation report: per clip, per subject and pooled, beside the five
paper metrics, from the dataset's phone timings; clear notes where they cannot be measured."""

from __future__ import annotations

import numpy as np
import pytest
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.data import load_dataset
from memorytalker.evaluation.lipsync import lip_amplitude_ratio
from memorytalker.evaluation.report import format_report
from memorytalker.evaluation.scoring import evaluate_dir
from memorytalker.topology import inner_lip_gap


def _predictions(root, out, damp: float = 1.0):
    """The ground truth of the test split as predictions, its motion scaled by ``damp``."""
    index = load_dataset(root)
    out.mkdir()
    for rec in index.clips("test"):
        gt, tpl = index.load_vertices(rec), index.template(rec.subject)
        np.save(out / f"{rec.clip_id}.npy", tpl[None] + damp * (gt - tpl[None]))
    return index


def test_report_has_lip_sync_per_clip_subject_and_pooled(tmp_path):
    root = make_learnable_dataset(tmp_path / "d", inner_lips=True)
    index = _predictions(root, tmp_path / "p", damp=0.5)
    report = evaluate_dir(tmp_path / "p", root, split="test", progress=False)
    ls = report["lipsync"]
    assert (
        ls["definitions"] == "memorytalker-lipsync/1"
        and ls["clips"] == 3
        and ls["clips_without_timings"] == []
    )
    assert set(ls["per_subject"]) == {"spk04"} and ls["units"]["rest_gap"] == "m"
    # half the motion: half the lip-gap amplitude, clip by clip
    ratios = []
    for rec in index.clips("test"):
        gt = index.load_vertices(rec)
        pred = np.load(tmp_path / "p" / f"{rec.clip_id}.npy")
        ratios.append(
            lip_amplitude_ratio(inner_lip_gap(pred, index.topology), inner_lip_gap(gt, index.topology))
        )
        assert report["per_clip"][rec.clip_id]["lipsync"]["amplitude_ratio"] == pytest.approx(ratios[-1])
    assert ls["pooled"]["amplitude_ratio"] == pytest.approx(np.median(ratios)) == pytest.approx(0.5, abs=1e-4)
    text = format_report(report)
    assert "lip-sync memorytalker-lipsync/1" in text and "rest gap mm (GT)" in text


def test_clips_without_timings_and_topologies_without_inner_lips_are_said(tmp_path, capsys):
    root = make_learnable_dataset(tmp_path / "d", inner_lips=True)
    _predictions(root, tmp_path / "p")
    (root / "phonemes" / "spk04_s02.json").unlink()
    report = evaluate_dir(tmp_path / "p", root, split="test", progress=False)
    assert report["lipsync"]["clips_without_timings"] == ["spk04_s02"] and report["lipsync"]["clips"] == 2
    assert "1 clip(s) without phone timings not measured" in format_report(report)
    plain = make_learnable_dataset(tmp_path / "e")  # a grid without a mouth opening or named contours
    _predictions(plain, tmp_path / "q")
    capsys.readouterr()
    argv = ["evaluate-dir", str(tmp_path / "q"), str(plain), "--split", "test", "--no-progress"]
    assert cli_main([*argv, "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "lip-sync: not measured:" in out and "upper_lip_inner" in out

"""`memorytalker evaluate-dir` end to end on a tiny dataset in the docs/LAYOUT.md layout."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from memorytalker.cli import main
from memorytalker.evaluation.metrics import MetricError, clip_metrics
from memorytalker.evaluation.scoring import evaluate_dir
from memorytalker.topology import FaceTopology

V = 12
LIPS = [8, 9, 10]
UPPER = [0, 1, 2, 3]
FPS = 30
TEST_CLIPS = {"spk02_s01": 7, "spk02_s02": 9, "spk03_s01": 5}  # clip -> frames


def build_dataset(root: Path, units: str = "m") -> Path:
    """Four subjects; spk00/spk01 train, spk02/spk03 test; 60 fps vertices delivered at 30 fps."""
    rng = np.random.default_rng(0)
    for sub in ("vertices_npy", "wav"):
        (root / sub).mkdir(parents=True)
    ref = rng.normal(scale=0.05, size=(V, 3)).astype(np.float32)
    FaceTopology("tiny", ref, np.zeros((0, 3)), FPS, {"lips": LIPS, "upper_face": UPPER}).save(
        root / "topology.npz"
    )
    templates = {
        s: (ref + rng.normal(scale=1e-3, size=ref.shape)).astype(np.float32)
        for s in ("spk00", "spk01", "spk02", "spk03")
    }
    with open(root / "templates.pkl", "wb") as fh:
        pickle.dump(templates, fh, protocol=2)
    clips = {"spk00_s01": 6, "spk01_s01": 6, **TEST_CLIPS}
    for cid, frames in clips.items():
        subject = cid.rsplit("_", 1)[0]
        motion = rng.normal(scale=2e-3, size=(frames * 2, V, 3))  # stored at 60 fps
        verts = (templates[subject][None] + motion).astype(np.float32)
        np.save(root / "vertices_npy" / f"{cid}.npy", verts.reshape(frames * 2, V * 3))
        sf.write(root / "wav" / f"{cid}.wav", np.zeros(int(16000 * frames / FPS), np.float32), 16000)
    manifest = {
        "format": "memorytalker-dataset/1",
        "name": "tiny",
        "fps": FPS,
        "vertex_fps": 60,
        "units": units,
        "splits": {
            "train": {"subjects": ["spk00", "spk01"], "sentences": [1, 10]},
            "test": {"subjects": ["spk02", "spk03"], "sentences": [1, 10]},
        },
    }
    (root / "dataset.yaml").write_text(yaml.safe_dump(manifest))
    return root


def ground_truth(root: Path, cid: str) -> np.ndarray:
    return np.load(root / "vertices_npy" / f"{cid}.npy").reshape(-1, V, 3)[::2]


def write_predictions(root: Path, pred_dir: Path, move=(0.003, 0.004, 0.0)) -> dict[str, np.ndarray]:
    """Ground truth with lip vertex 9 moved by ``move`` (5 mm) in every frame."""
    pred_dir.mkdir(parents=True, exist_ok=True)
    preds = {}
    for cid in TEST_CLIPS:
        pred = ground_truth(root, cid).copy()
        pred[:, 9] += np.asarray(move, dtype=np.float32)
        preds[cid] = pred
        np.save(pred_dir / f"{cid}.npy", pred)
    return preds


@pytest.fixture
def dataset(tmp_path) -> Path:
    return build_dataset(tmp_path / "data")


def test_end_to_end(dataset, tmp_path, capsys):
    pred_dir = tmp_path / "pred"
    preds = write_predictions(dataset, pred_dir)
    # one prediction saved flat (T, V*3) and one frame longer than the ground truth (truncated)
    flat = preds["spk02_s02"].reshape(len(preds["spk02_s02"]), -1)
    np.save(pred_dir / "spk02_s02.npy", flat)
    longer = np.concatenate([preds["spk03_s01"], preds["spk03_s01"][-1:]])
    np.save(pred_dir / "spk03_s01.npy", longer)
    np.save(pred_dir / "spk00_s01.npy", ground_truth(dataset, "spk00_s01"))  # a train clip: ignored
    out = tmp_path / "r" / "report.json"
    rc = main(
        ["evaluate-dir", str(pred_dir), str(dataset), "--split", "test", "--out", str(out), "--no-progress"]
    )
    text = capsys.readouterr().out
    assert rc == 0
    report = json.loads(out.read_text())
    frames = sum(TEST_CLIPS.values())
    pooled = report["pooled"]
    assert pooled["clips"] == 3 and pooled["frames"] == frames
    # 5 mm on one lip vertex in every frame (float32 data: compare loosely)
    assert pooled["lve"] == pytest.approx(2.5e-5, rel=1e-5)
    assert pooled["lip_max"] == pytest.approx(5e-3, rel=1e-5)
    assert pooled["fve"] == pytest.approx(5e-3 / V, rel=1e-5)
    assert set(report["per_subject"]) == {"spk02", "spk03"}
    assert report["per_subject"]["spk02"]["frames"] == 16
    assert set(report["per_clip"]) == set(TEST_CLIPS)
    assert (
        report["per_clip"]["spk03_s01"]["pred_frames"] == 6 and report["per_clip"]["spk03_s01"]["frames"] == 5
    )
    assert report["data"]["clips_evaluated"] == 3  # spk03_s01, one frame off, is within tolerance
    assert report["predictions"]["ignored"] == ["spk00_s01"] and report["predictions"]["missing"] == []
    assert report["units"] == "m" and report["display"]["lve"]["label"] == "LVE [×1e-5 m²]"
    assert report["definitions"] == "memorytalker-metrics/1"
    assert report["regions"] == {"topology": "tiny", "num_vertices": V, "lips": 3, "upper_face": 4}
    # per-clip values equal the metric functions on the same arrays
    gt = ground_truth(dataset, "spk02_s01")
    tpl = pickle.load(open(dataset / "templates.pkl", "rb"))["spk02"]
    ref = clip_metrics(preds["spk02_s01"], gt, tpl, LIPS, UPPER)
    got = report["per_clip"]["spk02_s01"]
    for key in ("fve", "lve", "lip_max", "fdd", "ldtw"):
        assert got[key] == pytest.approx(getattr(ref, key), rel=1e-12)
    # the table: units named, display scale applied, one row per subject
    assert "LVE [×1e-5 m²]" in text and "Lip-max [mm]" in text
    pooled_line = next(line for line in text.splitlines() if line.startswith("pooled"))
    assert "2.5000" in pooled_line and "5.0000" in pooled_line
    assert "  spk02" in text and "  spk03" in text
    assert "ignored 1 prediction file(s)" in text


def test_missing_predictions(dataset, tmp_path, capsys):
    pred_dir = tmp_path / "pred"
    write_predictions(dataset, pred_dir)
    (pred_dir / "spk02_s02.npy").unlink()
    out = tmp_path / "report.json"
    args = ["evaluate-dir", str(pred_dir), str(dataset), "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "1 of 3 clips of split 'test' have no prediction" in err and "spk02_s02.npy" in err
    assert not out.exists()
    assert main([*args, "--allow-missing"]) == 0
    report = json.loads(out.read_text())
    assert report["predictions"]["missing"] == ["spk02_s02"]
    assert report["pooled"]["clips"] == 2
    assert "not evaluated (1 clip(s) without a prediction): spk02_s02" in capsys.readouterr().out


def test_wrong_vertex_count_and_bad_files(dataset, tmp_path, capsys):
    pred_dir = tmp_path / "pred"
    write_predictions(dataset, pred_dir)
    np.save(pred_dir / "spk03_s01.npy", np.zeros((5, V - 1, 3), np.float32))
    args = ["evaluate-dir", str(pred_dir), str(dataset), "--out", str(tmp_path / "r.json"), "--no-progress"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "spk03_s01.npy: 11 vertices per frame, but topology 'tiny' of the dataset has 12" in err
    np.save(pred_dir / "spk03_s01.npy", np.zeros((5, V * 3 + 1), np.float32))
    assert main(args) == 2
    assert "expected (T, V, 3) or (T, V*3)" in capsys.readouterr().err
    bad = np.zeros((5, V, 3), np.float32)
    bad[2, 0, 0] = np.nan
    np.save(pred_dir / "spk03_s01.npy", bad)
    assert main(args) == 2
    assert "NaN or Inf vertex coordinates (first in frame 2)" in capsys.readouterr().err
    with pytest.raises(MetricError, match="prediction folder not found"):
        evaluate_dir(tmp_path / "nope", dataset, progress=False)


def test_length_mismatch_is_an_error_naming_the_clip(dataset, tmp_path):
    pred_dir = tmp_path / "pred"
    preds = write_predictions(dataset, pred_dir)
    np.save(pred_dir / "spk02_s02.npy", np.repeat(preds["spk02_s02"], 2, axis=0))  # 60 fps by mistake
    with pytest.raises(MetricError, match=r"spk02_s02 \(18 predicted vs 9 frames\)"):
        evaluate_dir(pred_dir, dataset, split="test", progress=False)
    np.save(pred_dir / "spk02_s02.npy", preds["spk02_s02"][:3])  # cut short
    with pytest.raises(MetricError, match=r"1 prediction\(s\) .* differ .* spk02_s02 \(3 predicted"):
        evaluate_dir(pred_dir, dataset, split="test", progress=False)


def test_millimetre_dataset_uses_mm_scales(tmp_path):
    root = build_dataset(tmp_path / "mm", units="mm")
    pred_dir = tmp_path / "pred"
    write_predictions(root, pred_dir, move=(3.0, 4.0, 0.0))
    report = evaluate_dir(pred_dir, root, progress=False)
    assert report["units"] == "mm" and report["display"]["lve"]["label"] == "LVE [×1e-4 mm²]"
    assert report["pooled"]["lve"] == pytest.approx(25.0, rel=1e-5)
    assert report["display"]["fve"] == {"scale": 1.0, "unit": "mm", "label": "FVE [mm]"}

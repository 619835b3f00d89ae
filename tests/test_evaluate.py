"""``memorytalker evaluate``: metrics per subject and pooled, predictions, lip-opening plot and vertices."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.data import load_dataset

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("eval")
    data = make_learnable_dataset(base / "data")
    out = base / "runs"
    assert cli_main(["train", "--config", str(DEBUG), f"data.root={data}", f"output_dir={out}"]) == 0
    return data, out / "memorizing" / "best.pt"


def test_evaluate_command_writes_report_predictions_and_plot(trained, tmp_path, capsys):
    data, ckpt = trained
    report_path, preds = tmp_path / "r" / "report.json", tmp_path / "preds"
    code = cli_main(
        ["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "test",
         "--out", str(report_path), "--pred-dir", str(preds), "--no-progress"]
    )  # fmt: skip
    assert code == 0
    printed = capsys.readouterr().out
    assert "pooled" in printed and "spk04" in printed
    report = json.loads(report_path.read_text())
    index = load_dataset(data)
    test_clips = [r.clip_id for r in index.clips("test")]
    assert sorted(report["per_clip"]) == test_clips
    assert list(report["per_subject"]) == ["spk04"]
    for key in ("fve", "lve", "lip_max", "fdd", "ldtw"):
        assert np.isfinite(report["pooled"][key]) and np.isfinite(report["per_subject"]["spk04"][key])
    assert report["pooled"]["clips"] == 3
    assert report["data"]["split"] == "test" and report["checkpoint"]["stage"] == "memorizing"
    # predictions: one (T, V, 3) file per clip, as many frames as the ground truth
    for rec in index.clips("test"):
        pred = np.load(preds / f"{rec.clip_id}.npy")
        assert pred.shape == index.load_vertices(rec).shape and pred.dtype == np.float32
    # the pooled LVE equals the frame-weighted LVE recomputed from the saved predictions
    num = den = 0.0
    lips = index.topology.lips
    for rec in index.clips("test"):
        p, g = np.load(preds / f"{rec.clip_id}.npy"), index.load_vertices(rec)
        num += (((p - g) ** 2).sum(-1)[:, lips].max(-1)).sum()
        den += len(g)
    assert report["pooled"]["lve"] == pytest.approx(num / den, rel=1e-5)
    # lip-opening plot next to the report
    plot = report_path.with_suffix(".png")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lo = report["lip_opening"]
    assert (lo["upper_vertex"], lo["lower_vertex"]) == (5, 9) and lo["units"] == "mm"
    assert len(lo["clips"]) == 3


def test_evaluate_under_a_recording_condition(trained, tmp_path, capsys):
    """--noise-snr / --rt60 / --gain-db: the clips are heard under the condition (seeded per clip, so two runs
    agree), the report names it, and the scores differ from the clean ones."""
    data, ckpt = trained
    runs = {}
    for name, extra in {"clean": [], "noisy": ["--noise-snr", "5", "--rt60", "0.4"], "again": None}.items():
        extra = runs["noisy_args"] if extra is None else extra
        runs["noisy_args"] = extra
        out = tmp_path / f"{name}.json"
        args = [
            "evaluate",
            "-c",
            str(ckpt),
            "-d",
            str(data),
            "--out",
            str(out),
            "--plot-clips",
            "0",
            "--no-progress",
        ]
        assert cli_main(args + extra) == 0
        runs[name] = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "recording condition: room RT60 0.4 s, white noise 5 dB SNR" in printed
    assert "recording" not in runs["clean"]
    rec = runs["noisy"]["recording"]
    assert (
        rec["condition"] == "room RT60 0.4 s, white noise 5 dB SNR"
        and rec["snr_db"] == 5.0
        and rec["rt60"] == 0.4
    )
    assert runs["noisy"]["pooled"] == runs["again"]["pooled"]
    assert runs["noisy"]["pooled"]["lve"] != runs["clean"]["pooled"]["lve"]
    assert cli_main(["evaluate", "-c", str(ckpt), "-d", str(data), "--rt60", "-1", "--no-progress"]) != 0
    assert "RT60 must be positive" in capsys.readouterr().err
    assert cli_main(["evaluate", "-c", str(ckpt), "-d", str(data), "--noise", "pink", "--no-progress"]) != 0
    assert "--noise pink needs --noise-snr" in capsys.readouterr().err


def test_evaluate_errors(trained, tmp_path, capsys):
    data, ckpt = trained
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(data), "--split", "nope",
                     "--out", str(tmp_path / "x.json"), "--no-progress"]) == 2  # fmt: skip
    assert "no split 'nope'" in capsys.readouterr().err
    assert cli_main(["evaluate", "--checkpoint", str(tmp_path / "missing.pt"), "--data", str(data),
                     "--out", str(tmp_path / "x.json")]) == 2  # fmt: skip
    assert "checkpoint not found" in capsys.readouterr().err
    # a dataset of another topology is refused before any prediction
    other = make_learnable_dataset(tmp_path / "other", num_vertices=16)
    assert cli_main(["evaluate", "--checkpoint", str(ckpt), "--data", str(other),
                     "--out", str(tmp_path / "y.json"), "--no-progress"]) == 2  # fmt: skip
    assert "vertices" in capsys.readouterr().err

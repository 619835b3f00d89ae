"""Imitator's personalisation (``memorytalker adapt``): stage 1 moves only the new style code, stage 2 only
it and the displacement layer, adaptation lowers the loss on its clips, the adapted checkpoint loads and
animates in the adapted style, the report is ``evaluate``'s format, and the synthetic corpus' manifest has
the ``adapt`` split."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.data import load_dataset
from memorytalker.errors import ConfigError
from memorytalker.models.loaders import load_model, read_checkpoint
from memorytalker.training.adapt import (
    _batches,
    _run_stage,
    adapt_config,
    adapt_speaker,
    speaker_clips,
    with_adapted_speaker,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny corpus whose test speaker has an ``adapt`` split (sentences 1-2) and a ``test`` split (3), and
    a debug Imitator trained on it."""
    root = tmp_path_factory.mktemp("adapt")
    data = make_learnable_dataset(root / "data", sentences=3)
    manifest = yaml.safe_load((data / "dataset.yaml").read_text())
    manifest["splits"]["adapt"] = {"subjects": ["spk04"], "sentences": [1, 2]}
    manifest["splits"]["test"] = {"subjects": ["spk04"], "sentences": [3, 3]}
    (data / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
    config = CONFIGS / "debug_imitator.yaml"
    assert (
        cli_main(["train", "--config", str(config), f"data.root={data}", f"output_dir={root / 'run'}"]) == 0
    )
    return data, root / "run" / "imitator" / "best.pt"


def _setup(trained):
    data, ckpt = trained
    model, topology, _ = load_model(ckpt)
    with torch.no_grad():  # a trained-looking displacement layer (the debug run leaves it near zero)
        g = torch.Generator().manual_seed(0)
        model.head.weight.copy_(torch.randn(model.head.weight.shape, generator=g) * 0.3)
    index = load_dataset(data, topology=topology)
    speakers = model.speakers[: model.trained]
    records = speaker_clips(index, "adapt", speakers, 0)["spk04"]
    return model, _batches(index, "adapt", records, speakers, "cpu"), [r.clip_id for r in records]


@pytest.mark.parametrize("stage", [1, 2])
def test_each_stage_moves_only_its_parameters(trained, stage):
    model, clips, _ = _setup(trained)
    acfg = dataclasses.replace(adapt_config(model), stage1_epochs=2, stage2_epochs=2, lr=1e-2)
    new = with_adapted_speaker(model, "spk04", acfg.init_style)
    cond = new.condition_index("spk04")
    before = {k: v.clone() for k, v in new.state_dict().items()}
    feats = [new.clip_features(b).detach() for b in clips]
    assert _run_stage(new, clips, feats, cond, stage, acfg, seed=0) == 2 * len(clips)
    after = new.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved == ({"style.weight"} if stage == 1 else {"style.weight", "head.weight", "head.bias"})
    others = [i for i in range(new.style.weight.shape[1]) if i != cond]
    assert torch.equal(before["style.weight"][:, others], after["style.weight"][:, others])
    assert not torch.equal(before["style.weight"][:, cond], after["style.weight"][:, cond])


def test_adaptation_lowers_the_loss_on_its_clips_and_keeps_the_model(trained):
    model, clips, ids = _setup(trained)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    acfg = dataclasses.replace(adapt_config(model, ["lr=0.01"]), stage1_epochs=15, stage2_epochs=15)
    new, res = adapt_speaker(model, "spk04", clips, acfg, ids)
    assert res.loss_stage1 < res.loss_before and res.loss_stage2 < res.loss_stage1
    assert res.steps == 30 * len(clips) and res.clips == ids and res.seconds > 0
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # the generalised model
    assert new.speakers[new.default_condition] == "spk04" and new.training_condition("spk04", "") == 3
    # the start was the mean training code
    assert with_adapted_speaker(model, "x", "mean").style.weight[:, -1].allclose(model.style.weight.mean(1))
    with pytest.raises(ConfigError):
        with_adapted_speaker(model, "spk00", "mean")  # a training speaker
    with pytest.raises(ConfigError):
        adapt_config(model, ["stage1_epochs=-1"])


def test_adapt_command_writes_checkpoints_that_animate_and_reports(trained, tmp_path, capsys):
    from memorytalker.inference import Animator

    data, ckpt = trained
    out = tmp_path / "adapted"
    args = ["adapt", "-c", str(ckpt), "-d", str(data), "--out", str(out), "--device", "cpu"]
    assert cli_main([*args, "stage1_epochs=2", "stage2_epochs=2", "max_sequences=1"]) == 0
    assert "spk04: adapted on 1 sequence(s)" in capsys.readouterr().out
    path = out / "spk04.pt"
    model, _, cfg = load_model(path)
    assert cfg.imitator.adapted == ["spk04"] and model.speakers[model.default_condition] == "spk04"
    prov = read_checkpoint(path)["provenance"]["adaptation"]
    assert prov["clips"] == ["spk04_s01"] and prov["settings"]["stage1_epochs"] == 2
    wav = tmp_path / "a.wav"
    t = np.arange(16000) / 16000
    sf.write(wav, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)
    frames = Animator(path).animate(str(wav))
    assert frames.shape == (30, 12, 3) and np.isfinite(frames).all()
    report = json.loads((out / "report.json").read_text())
    general = json.loads((out / "generalised.json").read_text())
    assert report["conditions"]["protocol"] == "adapted" and report["adaptation"]["sequences"] == 1
    assert set(report["per_subject"]) == {"spk04"} and report["data"]["clips"] == 1
    assert general["conditions"]["protocol"] == "all" and general["data"]["clips"] == 1
    assert set(report["pooled"]) == set(general["pooled"])


def test_synthetic_manifest_has_the_adapt_splits(tmp_path):
    from memorytalker.synth.corpus import _write_manifest

    plans = [
        SimpleNamespace(speaker=f"spk{i:02d}", split=s) for i, s in enumerate(["train"] * 4 + ["val", "test"])
    ]
    _write_manifest(tmp_path, plans, 6, 10, 30.0)
    splits = yaml.safe_load((tmp_path / "dataset.yaml").read_text())["splits"]
    assert splits["adapt"] == {"subjects": ["spk05"], "sentences": [1, 3]}
    assert splits["val_adapt"] == {"subjects": ["spk04"], "sentences": [1, 3]}
    assert splits["test"] == {"subjects": ["spk05"], "sentences": [4, 6]}


def test_a_freshly_synthesised_corpus_has_the_adapt_split(tmp_path):
    from memorytalker.synth import tts

    for e in ("piper", "flite", "festival"):
        if not tts.engine_available(e):
            pytest.skip(f"TTS engine {e!r} is not installed ({tts.INSTALL_HINTS[e]})")
    from memorytalker.synth.corpus import generate_corpus

    generate_corpus(tmp_path / "c", num_speakers=3, num_sentences=2, seed=7, workers=1, progress=False)
    index = load_dataset(tmp_path / "c")
    adapt = index.clips("adapt")
    assert adapt and {r.sentence for r in adapt} == {1}
    assert {r.subject for r in adapt} == set(index.split("test").subjects)
    assert {r.sentence for r in index.clips("test")} == {2}

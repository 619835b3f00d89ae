"""Every YAML in configs/ parses into a valid TrainConfig, for every stage preset it is meant for."""

from __future__ import annotations

from pathlib import Path

import pytest

from memorytalker.config import read_yaml
from memorytalker.training.config import PRESETS, TrainConfig, load_train_config, stage_presets

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


def test_expected_configs_exist():
    names = {p.stem for p in CONFIGS}
    assert {"debug", "synthetic", "synthetic_nomem", "vocaset", "biwi"} <= names


def _meant_for(path: Path) -> list[str | None]:
    """The stage presets of a config's model kind (a preset names its kind; MemoryTalker's name none)."""
    kind = (read_yaml(path).get("model") or {}).get("kind", "memorytalker")
    out: list[str | None] = [None]
    for name in stage_presets():
        preset = PRESETS[name]().model.get("kind", "memorytalker")
        if preset == kind:
            out.append(name)
    return out


CASES = [(p, stage) for p in CONFIGS for stage in _meant_for(p)]


def test_every_kind_has_presets_and_configs():
    kinds = {(read_yaml(p).get("model") or {}).get("kind", "memorytalker") for p in CONFIGS}
    from memorytalker.models.config import MODEL_KINDS

    assert kinds == set(MODEL_KINDS)  # every registered kind has configs (and no config names another)
    assert all(len(_meant_for(p)) > 1 for p in CONFIGS)


@pytest.mark.parametrize(("path", "stage"), CASES, ids=[f"{p.stem}-{s}" for p, s in CASES])
def test_config_parses(path, stage):
    cfg = load_train_config(path, stage=stage)
    assert isinstance(cfg, TrainConfig)
    assert cfg.data.val_split != "test" and not cfg.data.val_split.startswith("test")
    if stage == "animating":
        assert cfg.current.trainable == ["style"] and cfg.current.triplets
        assert cfg.current.init_from == "{output_dir}/memorizing/best.pt"
    raw = read_yaml(path)
    # The YAML only overrides: every top-level key it has is a TrainConfig field.
    assert set(raw) <= set(TrainConfig.__dataclass_fields__)


def test_nomem_config_disables_memory():
    cfg = load_train_config(Path(CONFIGS[0]).parent / "synthetic_nomem.yaml")
    assert cfg.stage == "nomem" and not cfg.model.memory.enabled
    assert not cfg.model.style.enabled
    assert cfg.current.loss.mem == 0 and cfg.current.loss.align == 0
    full = load_train_config(Path(CONFIGS[0]).parent / "synthetic.yaml")
    assert full.model.memory.enabled and full.stage == "memorizing"
    assert not full.model.style.enabled
    assert load_train_config(CONFIGS[0].parent / "synthetic.yaml", stage="2").model.style.enabled
    assert cfg.output_root != full.output_root


@pytest.mark.parametrize("name", ["vocaset", "biwi"])
def test_paper_configs(name):
    cfg = load_train_config(Path(CONFIGS[0]).parent / f"{name}.yaml")
    assert cfg.model.backbone.kind == "huggingface"
    assert cfg.model.memory.width == 96 and cfg.model.memory.kappa == 16
    assert cfg.current.lr == pytest.approx(1e-4) and cfg.current.max_epochs == 100
    assert load_train_config(
        Path(CONFIGS[0]).parent / f"{name}.yaml", stage="animating"
    ).current.lr == pytest.approx(5e-5)


def test_synthetic_stage_schedule():
    base = CONFIGS[0].parent / "synthetic.yaml"
    s1, s2 = load_train_config(base), load_train_config(base, stage="animating")
    assert s1.current.lr == pytest.approx(3e-4) and s2.current.lr == pytest.approx(3e-4)
    assert s2.current.init_exclude == ["style"] and s2.model.style.enabled
    assert s1.current.max_epochs > s2.current.max_epochs >= 1

"""Training engine: stage 1 -> stage 2 -> resume through the CLI, exact resume, strict checkpoints,
frozen groups, best-on-validation, logs, configs and errors (tiny data, CPU, seconds)."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch
from test_model_common import tiny_topology
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.errors import CheckpointError, ConfigError
from memorytalker.models.builders import build_model
from memorytalker.models.loaders import (
    group_state_keys,
    load_init,
    load_model,
    read_checkpoint,
    save_checkpoint,
)
from memorytalker.training.config import load_train_config
from memorytalker.training.engine import train
from memorytalker.training.optim import lr_factor, make_optimizer, select_trainable
from memorytalker.training.sampler import ResumableDistributedSampler

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug.yaml"


def _cfg(data: Path, out: Path, *extra: str):
    return load_train_config(DEBUG, [f"data.root={data}", f"output_dir={out}", *extra])


@pytest.fixture(scope="module")
def data_root(tmp_path_factory) -> Path:
    return make_learnable_dataset(tmp_path_factory.mktemp("learnable") / "data")


@pytest.fixture(scope="module")
def two_stage(data_root, tmp_path_factory) -> Path:
    """Stage 1 then stage 2 through the CLI; returns the output dir."""
    out = tmp_path_factory.mktemp("runs") / "debug"
    common = ["--config", str(DEBUG), f"data.root={data_root}", f"output_dir={out}"]
    assert cli_main(["train", *common]) == 0
    assert cli_main(["train", *common, "--stage", "animating"]) == 0
    return out


def _states_equal(a: dict, b: dict) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


# ---------------------------------------------------------------------------------------------- CLI run
def test_stage1_stage2_resume_through_cli(two_stage, data_root, capsys):
    s1, s2 = two_stage / "memorizing", two_stage / "animating"
    for d in (s1, s2):
        assert (d / "last.pt").is_file() and (d / "best.pt").is_file() and (d / "config.yaml").is_file()
        assert (d / "logs" / "metrics.csv").is_file()
        assert any((d / "logs" / "tensorboard").iterdir())
    c1, c2 = read_checkpoint(s1 / "last.pt"), read_checkpoint(s2 / "last.pt")
    assert c1["config"]["stage"] == "memorizing" and c2["config"]["stage"] == "animating"
    assert c2["trainable_groups"] == ["style"]
    st2 = c2["config"]["stages"]["animating"]
    assert st2["init_from"] == "{output_dir}/memorizing/best.pt"
    assert st2["triplets"] is True and st2["lr"] == 5e-5
    steps_per_epoch = c1["step"] // 2
    assert c1["epoch"] == 2 and c1["step"] == 2 * steps_per_epoch > 0
    # The checkpoint knows everything needed to rebuild the model and the topology.
    model, topo, mcfg = load_model(s2 / "best.pt")
    assert topo.num_vertices == 12 and not model.training
    # Running the finished stage again without --resume refuses (names the way out) ...
    common = [
        "--config",
        str(DEBUG),
        "--stage",
        "animating",
        f"data.root={data_root}",
        f"output_dir={two_stage}",
    ]
    capsys.readouterr()
    assert cli_main(["train", *common]) == 2
    assert "--resume" in capsys.readouterr().err
    # ... and --resume with more epochs continues from the saved step.
    assert cli_main(["train", "--resume", *common, "stage.max_epochs=3"]) == 0
    c3 = read_checkpoint(s2 / "last.pt")
    assert c3["epoch"] == 3 and c3["step"] == c2["step"] + c2["step"] // 2


def test_motion_unit_is_measured_on_the_training_split(two_stage, data_root):
    from memorytalker.data import load_dataset

    index = load_dataset(data_root)
    clips = index.clips("train")
    assert len(clips) <= 64  # all of them are measured
    sq = [np.sum((index.load_vertices(c) - index.template(c.subject)[None]) ** 2, axis=-1) for c in clips]
    expected = float(np.sqrt(np.mean(np.concatenate([x.ravel() for x in sq]))))
    s1 = read_checkpoint(two_stage / "memorizing" / "best.pt")["model_state"]["motion_scale"]
    s2 = read_checkpoint(two_stage / "animating" / "best.pt")["model_state"]["motion_scale"]
    assert float(s1) == pytest.approx(expected, rel=1e-5)
    assert torch.equal(s1, s2)  # stage 2 keeps stage 1's unit


def test_stage1_trains_all_but_style_and_stage2_only_style(two_stage):
    s1_best = read_checkpoint(two_stage / "memorizing" / "best.pt")
    s2_first = load_train_config(DEBUG, ["stage=animating"])
    assert s2_first.current.trainable == ["style"]
    c1 = read_checkpoint(two_stage / "memorizing" / "last.pt")
    assert "style" not in c1["trainable_groups"] and len(c1["trainable_groups"]) >= 3
    # Stage 2 changed the style group and nothing else: non-style tensors equal the stage-1 best it started
    # from; style tensors (absent in stage 1) moved away from their fresh, seeded initialisation.
    model, topo, _ = load_model(two_stage / "animating" / "best.pt")
    style_keys = group_state_keys(model, model.parameter_groups())["style"]
    s1 = s1_best["model_state"]
    s2 = read_checkpoint(two_stage / "animating" / "last.pt")["model_state"]
    assert style_keys and not (style_keys & set(s1)), "stage 1 should have no style encoder"
    assert set(s2) - style_keys == set(s1)
    frozen_changed = [k for k in s1 if not torch.equal(s1[k], s2[k])]
    assert frozen_changed == [], f"frozen tensors changed in stage 2: {frozen_changed[:5]}"
    torch.manual_seed(s2_first.optim.seed)
    fresh = build_model(s2_first.model, topo).state_dict()
    moved = [k for k in style_keys if not torch.equal(fresh[k], s2[k])]
    assert moved, "stage 2 did not train the style encoder"


def test_best_is_selected_on_validation(two_stage, data_root):
    run = two_stage / "memorizing"
    best, last = read_checkpoint(run / "best.pt"), read_checkpoint(run / "last.pt")
    with open(run / "logs" / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["name"] == "val/lve"]
    vals = {int(r["step"]): float(r["value"]) for r in rows}
    assert len(vals) == 2  # one validation per epoch
    best_step = min(vals, key=vals.get)
    assert best["step"] == best_step and best["best_metric"] == pytest.approx(vals[best_step])
    assert last["best_step"] == best_step and best["monitor"] == "lve"
    assert best["optimizer"] is None and last["optimizer"] is not None
    # Validation ran on the val split: its frame count is that of the val clips, not test's.
    from memorytalker.data import load_dataset

    index = load_dataset(data_root)
    val_frames = sum(index.load_vertices(r).shape[0] for r in index.clips("val"))
    test_frames = sum(index.load_vertices(r).shape[0] for r in index.clips("test"))
    assert val_frames != test_frames
    assert best["val_metrics"]["val_frames"] == val_frames


# ---------------------------------------------------------------------------------------------- exact resume
def test_resume_after_kill_equals_uninterrupted(data_root, tmp_path):
    extra = [
        "stage.max_epochs=3",
        "optim.accumulate_grad_batches=2",
        "checkpoint.every_n_steps=1",
        "stage.lr=3e-3",
        "stage.triplets=true",
        "stage.frozen=[]",
        "optim.schedule=cosine",
        "optim.warmup_steps=2",
        "optim.min_lr_ratio=0.1",
    ]
    full = train(_cfg(data_root, tmp_path / "a", *extra), verbose=False)

    class Killed(Exception):
        pass

    def kill(state):
        if state.step == 3:  # mid-epoch (5 micro-batches of 2 clips per epoch, accumulation 2)
            raise Killed

    with pytest.raises(Killed):
        train(_cfg(data_root, tmp_path / "b", *extra), on_step=kill, verbose=False)
    interrupted = read_checkpoint(tmp_path / "b" / "memorizing" / "last.pt")
    assert interrupted["step"] == 3 and interrupted["batch_in_epoch"] > 0
    resumed = train(_cfg(data_root, tmp_path / "b", *extra, "resume=true"), verbose=False)
    a, b = read_checkpoint(full.last), read_checkpoint(resumed.last)
    assert a["step"] == b["step"] == full.state.step and a["epoch"] == b["epoch"] == 3
    assert _states_equal(a["model_state"], b["model_state"])
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    assert all(torch.equal(sa[i]["exp_avg_sq"], sb[i]["exp_avg_sq"]) for i in sa)
    assert a["val_metrics"] == b["val_metrics"] and a["best_step"] == b["best_step"]
    # The CSV log of the resumed run holds each step once.
    with open(tmp_path / "b" / "memorizing" / "logs" / "metrics.csv", newline="") as fh:
        rows = [(r["step"], r["name"]) for r in csv.DictReader(fh)]
    assert len(rows) == len(set(rows))


# ---------------------------------------------------------------------------------------------- checkpoints
def test_strict_checkpoint_round_trip(two_stage, tmp_path):
    model, topo, mcfg = load_model(two_stage / "memorizing" / "best.pt")
    path = save_checkpoint(tmp_path / "m.pt", model, topo)
    again, topo2, _ = load_model(path)
    assert np.array_equal(topo2.lips, topo.lips) and np.array_equal(topo2.vertices, topo.vertices)
    torch.manual_seed(0)
    audio = torch.randn(2, 16000) * 0.1
    lengths = torch.tensor([16000, 12000])
    tpl = torch.from_numpy(np.array(topo.vertices))[None].repeat(2, 1, 1)
    with torch.no_grad():
        p1 = model.predict(audio, lengths, tpl)
        p2 = again.predict(audio, lengths, tpl)
    assert p1.shape[:2] == (2, 30) and torch.equal(p1, p2)

    ckpt = torch.load(path, weights_only=True)
    extra = dict(ckpt, model_state={**ckpt["model_state"], "bogus.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(CheckpointError, match=r"unexpected keys: bogus\.weight"):
        load_model(tmp_path / "extra.pt")
    name = sorted(ckpt["model_state"])[0]
    missing = dict(ckpt, model_state={k: v for k, v in ckpt["model_state"].items() if k != name})
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(CheckpointError, match=rf"missing keys: {name}"):
        load_model(tmp_path / "missing.pt")
    key = next(k for k, v in ckpt["model_state"].items() if v.ndim >= 1)
    shaped = dict(ckpt, model_state={**ckpt["model_state"], key: torch.zeros(3, 1, 7)})
    torch.save(shaped, tmp_path / "shape.pt")
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_model(tmp_path / "shape.pt")
    torch.save({"state_dict": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a memorytalker checkpoint"):
        load_model(tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_checkpoints_are_written_atomically(two_stage):
    leftovers = [p for p in two_stage.rglob(".*tmp-*")]
    assert leftovers == []


def test_init_from_partial_groups_and_errors(two_stage, data_root, tmp_path):
    best = two_stage / "memorizing" / "best.pt"
    model, _, _ = load_model(best)
    fresh = type(model)(model.cfg if hasattr(model, "cfg") else load_model(best)[2], load_model(best)[1])
    report = load_init(fresh, best, ["style"])
    assert report.kept == ["style"] and "style" not in report.groups and report.tensors > 0
    keys = group_state_keys(fresh, fresh.parameter_groups())
    loaded = read_checkpoint(best)["model_state"]
    assert all(
        torch.equal(fresh.state_dict()[k], loaded[k]) for k in fresh.state_dict() if k not in keys["style"]
    )
    with pytest.raises(ConfigError, match="unknown group"):
        load_init(fresh, best, ["no_such_group"])
    with pytest.raises(CheckpointError, match="not found"):
        train(
            _cfg(data_root, tmp_path / "x", "stage=animating", f"stage.init_from={tmp_path}/none.pt"),
            verbose=False,
        )
    with pytest.raises(CheckpointError, match="nothing to resume"):
        train(_cfg(data_root, tmp_path / "y", "resume=true"), verbose=False)
    with pytest.raises(ConfigError, match="unknown parameter group"):
        train(_cfg(data_root, tmp_path / "z", "stage.trainable=[decoderr]"), verbose=False)


# ---------------------------------------------------------------------------------------------- pieces
def test_config_presets_and_overrides():
    cfg = load_train_config(DEBUG, ["stage=2", "stage.lr=1e-5"])
    st = cfg.current
    assert cfg.stage == "animating" and st.lr == 1e-5 and st.trainable == ["style"]
    assert st.loss.lip == pytest.approx(0.01) and st.loss.style == pytest.approx(0.01)
    assert str(cfg.init_path) == "runs/debug/memorizing/best.pt"
    assert cfg.model.style.enabled and not st.loss.teacher_forcing  # the stage's model requirement
    s1 = load_train_config(DEBUG, ["stage.loss.ctc=0.5"])
    assert (
        s1.stage == "memorizing" and s1.current.loss.ctc == 0.5 and s1.current.loss.mem == pytest.approx(0.01)
    )
    assert s1.current.frozen == ["style"] and s1.current.lr == 1e-4 and s1.current.loss.teacher_forcing
    assert not s1.model.style.enabled
    nomem = load_train_config(DEBUG, ["stage=nomem"])
    assert nomem.current.loss.mem == 0 and nomem.current.loss.align == 0 and not nomem.model.memory.enabled
    # per-stage settings of a config file apply whenever that stage is chosen, below explicit overrides
    per = "stages={animating: {lr: 0.001, max_epochs: 1}}"
    s2 = load_train_config(DEBUG, [per, "stage=animating"])
    assert s2.current.lr == 0.001 and s2.current.max_epochs == 1 and s2.current.trainable == ["style"]
    assert load_train_config(DEBUG, [per, "stage=animating", "stage.lr=0.5"]).current.lr == 0.5
    assert load_train_config(DEBUG, ["stage.lr=0.5", "stage=animating"]).current.lr == 0.5  # order-free
    s1 = load_train_config(DEBUG, [per])
    assert s1.current.lr == 1e-4 and s1.current.max_epochs == 2  # debug.yaml's
    # a new stage starts from the stage defaults (the paper's stage 1)
    custom = load_train_config(DEBUG, ["stages={finetune: {lr: 0.1}}", "stage=finetune"])
    assert (
        custom.current.lr == 0.1 and custom.current.trainable == ["*"] and custom.run_dir.name == "finetune"
    )
    # an explicit empty mapping clears; other mappings merge
    scaled = load_train_config(DEBUG, ["stage.lr_scale={memory: 3}"])
    assert load_train_config(
        DEBUG, ["stage.lr_scale={memory: 3}", "stage.lr_scale={head: 2}"]
    ).current.lr_scale == {
        "memory": 3,
        "head": 2,
    }
    assert scaled.current.lr_scale == {"memory": 3}
    cleared = load_train_config(DEBUG, ["stage.lr_scale={memory: 3}", "stage.lr_scale={}"])
    assert cleared.current.lr_scale == {}
    with pytest.raises(ConfigError, match="never on a test split"):
        load_train_config(DEBUG, ["data.val_split=test"])
    with pytest.raises(ConfigError, match="stage 'stage3' is not defined"):
        load_train_config(DEBUG, ["stage=stage3"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_train_config(DEBUG, ["optim.batchsize=3"])
    with pytest.raises(ConfigError, match="unknown config key"):
        load_train_config(DEBUG, ["optim.max_epochs=3"])  # epochs are a stage setting
    with pytest.raises(ConfigError, match="triplet"):
        load_train_config(DEBUG, ["stage=animating", "stage.triplets=false"])
    with pytest.raises(ConfigError, match="per-stage settings go under"):
        load_train_config(DEBUG, ["stage={lr: 3}"])


def test_resumable_sampler_skips_consumed_samples():
    data = list(range(11))
    full = ResumableDistributedSampler(data, num_replicas=1, rank=0, seed=3)
    full.set_epoch(2)
    order = list(full)
    assert sorted(order) == data
    part = ResumableDistributedSampler(data, num_replicas=1, rank=0, seed=3)
    part.set_epoch(2)
    part.set_start(4)
    assert len(part) == 7 and list(part) == order[4:]
    assert list(part) == order  # the skip applies to one iteration only
    shards = [list(ResumableDistributedSampler(data, num_replicas=2, rank=r, seed=3)) for r in (0, 1)]
    assert set(shards[0]) | set(shards[1]) == set(data)


def test_validation_metrics_match_metrics_module(two_stage, data_root):
    metrics = pytest.importorskip("memorytalker.evaluation.metrics")
    from memorytalker.data import load_dataset

    ckpt = read_checkpoint(two_stage / "memorizing" / "best.pt")
    model, topo, _ = load_model(two_stage / "memorizing" / "best.pt")
    index = load_dataset(data_root)
    sums, frames = {"lve": 0.0, "fve": 0.0, "lip_max": 0.0}, 0
    with torch.no_grad():
        for rec in index.clips("val"):
            gt, audio = index.load_vertices(rec), index.load_audio(rec)
            pred = model.predict(
                torch.from_numpy(audio)[None],
                torch.tensor([len(audio)]),
                torch.from_numpy(index.template(rec.subject))[None],
                num_frames=torch.tensor([gt.shape[0]]),
            )[0].numpy()
            t = gt.shape[0]  # validation pools over frames: weight each clip's mean by its length
            sums["lve"] += metrics.lve(pred, gt, topo.lips) * t
            sums["fve"] += metrics.fve(pred, gt) * t
            sums["lip_max"] += metrics.lip_max(pred, gt, topo.lips) * t
            frames += t
    for k, v in sums.items():
        assert ckpt["val_metrics"][k] == pytest.approx(v / frames, rel=1e-4), k


def test_training_reduces_the_loss(data_root, tmp_path):
    cfg = _cfg(data_root, tmp_path / "r", "stage.max_epochs=6", "stage.lr=3e-3")
    cfg = dataclasses.replace(cfg)
    result = train(cfg, verbose=False)
    with open(result.run_dir / "logs" / "metrics.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["name"] == "val/val_loss"]
    losses = [float(r["value"]) for r in rows]
    assert len(losses) == 6 and losses[-1] < losses[0]


@pytest.mark.slow
def test_ddp_on_two_cpu_processes(data_root, tmp_path):
    """The same CLI on two processes (DDP over gloo): data sharded, validation all-reduced."""
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "memorytalker", "train", "--config", str(DEBUG), f"data.root={data_root}",
           f"output_dir={out}", "engine.devices=2", "engine.strategy=ddp", "stage.max_epochs=1"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = read_checkpoint(out / "memorizing" / "last.pt")
    # 9 training clips over 2 processes -> 5 per process -> 3 batches of <= 2 clips each
    assert ckpt["step"] == 3 and ckpt["epoch"] == 1
    from memorytalker.data import load_dataset

    index = load_dataset(data_root)
    assert ckpt["val_metrics"]["val_frames"] == sum(
        index.load_vertices(r).shape[0] for r in index.clips("val")
    )


def test_precision_auto_is_bf16_on_cuda_and_32_on_cpu():
    from memorytalker.training.engine import resolve_precision

    assert (
        resolve_precision(load_train_config(DEBUG, ["engine.accelerator=cuda", "engine.precision=auto"]))
        == "bf16-mixed"
    )
    assert (
        resolve_precision(load_train_config(DEBUG, ["engine.accelerator=cpu", "engine.precision=auto"]))
        == "32-true"
    )
    assert resolve_precision(load_train_config(DEBUG, ["engine.precision=32"])) == "32-true"
    with pytest.raises(ConfigError, match="engine.precision"):
        load_train_config(DEBUG, ["engine.precision=fp8"])


def test_learning_rate_schedules():
    # warm-up 4 steps, then cosine from 1 to 0.1 over steps 4..14 (10 steps), then held at 0.1
    assert [lr_factor(s, 4, 14, "cosine", 0.1) for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert lr_factor(4, 4, 14, "cosine", 0.1) == pytest.approx(1.0)
    assert lr_factor(9, 4, 14, "cosine", 0.1) == pytest.approx(0.55)  # halfway: 0.1 + 0.9 * 0.5
    assert lr_factor(14, 4, 14, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(20, 4, 14, "cosine", 0.1) == pytest.approx(0.1)
    assert lr_factor(9, 4, 14, "constant", 0.1) == 1.0
    assert lr_factor(0, 0, 10, "cosine", 0.0) == 1.0
    with pytest.raises(ConfigError, match="optim.schedule"):
        load_train_config(None, ["optim.schedule=linear"])
    with pytest.raises(ConfigError, match="min_lr_ratio"):
        load_train_config(None, ["optim.min_lr_ratio=2"])


def test_per_group_learning_rates_and_their_errors():
    cfg = load_train_config(DEBUG, ["stage.lr=0.001", "stage.lr_scale={memory: 20, head: 2}"])
    model = build_model(cfg.model, tiny_topology())
    _, params = select_trainable(model, cfg)
    groups = model.parameter_groups()
    opt = make_optimizer(cfg, params, groups)
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    assert len(lr_of) == len(params)  # every trainable parameter once
    assert all(lr_of[id(p)] == pytest.approx(0.02) for p in groups["memory"])
    assert all(lr_of[id(p)] == pytest.approx(0.002) for p in groups["head"])
    assert all(lr_of[id(p)] == pytest.approx(0.001) for p in groups["decoder"])
    # the scheduler's factor applies to every group alike
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5)
    assert sorted(sched.get_last_lr()) == pytest.approx([0.0005, 0.001, 0.01])
    with pytest.raises(ConfigError, match="unknown group"):
        make_optimizer(load_train_config(DEBUG, ["stage.lr_scale={memroy: 2}"]), params, groups)
    s2 = load_train_config(DEBUG, ["stage=animating", "stage.lr_scale={memory: 2}"])
    m2 = build_model(s2.model, tiny_topology())
    _, p2 = select_trainable(m2, s2)
    with pytest.raises(ConfigError, match="does not train"):
        make_optimizer(s2, p2, m2.parameter_groups())
    with pytest.raises(ConfigError, match="lr_scale values"):
        load_train_config(DEBUG, ["stage.lr_scale={memory: 0}"])


def test_fused_adam_equals_the_loop_and_bf16_trains_on_cpu(data_root, tmp_path):
    """optim.fused (the default) gives the per-parameter loop's update up to float rounding; a CPU run
    under engine.precision=bf16-mixed trains and writes finite weights."""
    cfg = load_train_config(DEBUG, ["stage.lr=0.01"])
    params = {}
    for fused in (True, False):
        torch.manual_seed(0)
        c = dataclasses.replace(cfg, optim=dataclasses.replace(cfg.optim, fused=fused))
        model = build_model(c.model, tiny_topology())
        _, ps = select_trainable(model, c)
        opt = make_optimizer(c, ps, model.parameter_groups())
        assert bool(opt.defaults.get("fused")) == fused
        g = torch.Generator().manual_seed(1)
        for _ in range(3):
            for p in ps:
                p.grad = torch.randn(p.shape, generator=g)
            opt.step()
        params[fused] = [p.detach().clone() for p in ps]
    for a, b in zip(params[True], params[False]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
    result = train(
        _cfg(data_root, tmp_path / "bf16", "stage.max_epochs=1", "engine.precision=bf16-mixed"), verbose=False
    )
    ckpt = read_checkpoint(result.run_dir / "last.pt")
    assert ckpt["step"] > 0 and all(
        torch.isfinite(v).all() for v in ckpt["model_state"].values() if v.is_floating_point()
    )


def test_normalize_speakers_divides_each_training_speaker_by_its_amplitude(data_root, tmp_path):
    from memorytalker.data import load_dataset
    from memorytalker.data.dataset import speaker_motion_rms, speaker_motion_scales
    from memorytalker.training.engine import setup

    index = load_dataset(data_root)
    cfg = _cfg(data_root, tmp_path / "n", "stages.memorizing.normalize_speakers=true")
    run = setup(cfg, verbose=False)
    expected, ref = speaker_motion_scales(index, "train")
    assert run.train_ds.speaker_scale == pytest.approx(expected)
    assert len(set(np.round(list(expected.values()), 6))) > 1  # the speakers do differ
    val_rms = speaker_motion_rms(index, cfg.data.val_split)
    assert run.val_ds.speaker_scale == pytest.approx(
        {s: r / ref for s, r in val_rms.items()}
    )  # training median
    stage2 = setup(
        _cfg(data_root, tmp_path / "n2", "stages.memorizing.normalize_speakers=true", "stage=animating")
    )
    assert stage2.train_ds.speaker_scale is None and stage2.val_ds.speaker_scale is None  # a stage's setting

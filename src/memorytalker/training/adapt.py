"""Imitator's personalisation (``memorytalker adapt``): test-time optimisation of an unseen speaker's style
from a few of its sequences, then scoring of the adapted models through the one evaluation layer.

Per speaker (:func:`adapt_speaker`), from a generalised ``imitator`` checkpoint:

1. a new style code, started from ``adapt.init_style`` (the mean training code, or a training speaker's),
   becomes the model's condition for that speaker (``model.imitator.adapted``);
2. the viseme features of the adaptation clips are computed once (they do not depend on the style);
3. stage 1 optimises the style code alone, stage 2 the style code and the displacement layer (``head``),
   each ``adapt.stage*_epochs`` passes over the clips (batch 1, Adam, ``adapt.lr``), with the vertex MSE,
   velocity and lip-contact terms of :func:`memorytalker.models.losses.compute_losses`;
4. the result is a normal checkpoint (:func:`memorytalker.models.loaders.make_checkpoint`) whose default
   condition is the adapted style: ``load_model``, ``Animator``, ``evaluate`` and ``serve`` use it as any.

:func:`adapt_and_score` runs that for every speaker of an adaptation split and scores each speaker's clips of
another split with its own adapted model (one report in ``memorytalker evaluate``'s format), and the
generalised model on the same clips for comparison.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from memorytalker.errors import ConfigError, DatasetError
from memorytalker.models.config import MEAN_STYLE, ImitatorAdaptConfig

#: Parameter groups each personalisation stage optimises (the published ``Style_only_optim`` and
#: ``Style_and_disp_final_layer_optim_voca``); the style code is the adapted speaker's column only.
STAGE_GROUPS = {1: ("style",), 2: ("style", "head")}


@dataclass
class AdaptResult:
    """One speaker's personalisation: the clips used, the wall time and the mean loss on those clips before,
    after stage 1 and after stage 2 (the stage-2 loss weights, so the three are comparable)."""

    speaker: str
    clips: list[str]
    seconds: float
    steps: int
    loss_before: float
    loss_stage1: float
    loss_stage2: float
    checkpoint: str | None = None
    stage_seconds: dict[str, float] = field(default_factory=dict)


def adapt_config(model: Any, overrides: Sequence[str] = ()) -> ImitatorAdaptConfig:
    """The model's ``imitator.adapt`` settings with ``key=value`` overrides (``stage1_epochs=20``)."""
    from memorytalker.config import deep_merge, from_dict, parse_overrides, to_dict

    data = deep_merge(to_dict(model.cfg.imitator.adapt), parse_overrides(list(overrides)))
    cfg = from_dict(ImitatorAdaptConfig, data, "model.imitator.adapt")
    cfg.validate()
    return cfg


def with_adapted_speaker(model: Any, speaker: str, init_style: str) -> Any:
    """A copy of generalised Imitator ``model`` with one more style code, ``speaker``'s, started from
    ``init_style`` (:data:`MEAN_STYLE` or a training speaker); every other weight is the generalised one."""
    from memorytalker.models.builders import build_model

    if model.cfg.kind != "imitator":
        raise ConfigError(f"personalisation needs an imitator checkpoint, got model kind {model.cfg.kind!r}")
    if speaker in model.speakers:
        raise ConfigError(f"speaker {speaker!r} already has a style code in this model ({model.speakers})")
    start = model.condition_index(init_style)
    if init_style != MEAN_STYLE and start >= model.trained:
        raise ConfigError(f"adapt.init_style {init_style!r} must be {MEAN_STYLE!r} or a training speaker")
    cfg = copy.deepcopy(model.cfg)
    cfg.imitator.adapted = [*cfg.imitator.adapted, speaker]
    cfg.imitator.condition = None  # the adapted speaker is the default condition
    new = build_model(cfg, model.topology, load_pretrained=False).to(model.motion_scale.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        code = model.style_table()[start].detach()
        state["style.weight"] = torch.cat([state["style.weight"], code[:, None]], dim=1)
    new.load_state_dict(state, strict=True)
    return new.eval()


def _loss_weights(acfg: ImitatorAdaptConfig, contact: float) -> Any:
    from memorytalker.models.losses import LossWeights

    zero = dict(teacher_mse=0.0, teacher_velocity=0.0, mem=0.0, align=0.0, ctc=0.0)
    return LossWeights(mse=acfg.mse, velocity=acfg.velocity, contact=contact, **zero)


def _clip_losses(model: Any, clips: list, feats: list, condition: int, weights: Any) -> torch.Tensor:
    """Mean of the clips' total losses under the current style code and displacements."""
    from memorytalker.models.common import KindOutput
    from memorytalker.models.layers import lengths_to_mask
    from memorytalker.models.losses import compute_losses

    total = torch.zeros((), device=model.motion_scale.device)
    for batch, f in zip(clips, feats):
        style = model.style_codes(torch.tensor([condition], device=f.device))
        out = KindOutput(
            vertices=model.decode(f, style, batch.templates),
            frame_mask=lengths_to_mask(batch.frame_lengths, f.shape[1]),
        )
        total = total + compute_losses(out, batch, weights, model.topology, model.motion_scale)["total"]
    return total / len(clips)


def _run_stage(model: Any, clips: list, feats: list, condition: int, stage: int, acfg, seed: int) -> int:
    """One personalisation stage: Adam over the stage's groups, one clip per step, ``epochs`` passes in a
    seeded order; returns the number of steps."""
    epochs = acfg.stage1_epochs if stage == 1 else acfg.stage2_epochs
    weights = _loss_weights(acfg, acfg.contact1 if stage == 1 else acfg.contact2)
    groups = model.parameter_groups()
    params = [p for g in STAGE_GROUPS[stage] for p in groups[g]]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    # only the adapted speaker's column of the style codes may move: the others' gradients are zeroed, and
    # Adam moves a parameter with zero gradient (and zero moments) by exactly nothing
    keep = torch.zeros_like(model.style.weight)
    keep[:, condition] = 1.0
    hook = model.style.weight.register_hook(lambda g: g * keep)
    opt = torch.optim.Adam(params, lr=acfg.lr)
    gen = torch.Generator().manual_seed(seed * 1000 + stage)
    steps = 0
    try:
        for _ in range(epochs):
            for i in torch.randperm(len(clips), generator=gen).tolist():
                opt.zero_grad(set_to_none=True)
                _clip_losses(model, [clips[i]], [feats[i]], condition, weights).backward()
                opt.step()
                steps += 1
    finally:
        hook.remove()
        for p in model.parameters():
            p.requires_grad_(False)
    return steps


def adapt_speaker(
    model: Any,
    speaker: str,
    clips: list,
    acfg: ImitatorAdaptConfig,
    clip_ids: Sequence[str] = (),
    seed: int = 0,
) -> tuple[Any, AdaptResult]:
    """Personalise generalised Imitator ``model`` to ``speaker`` from its ``clips`` (batches of one clip,
    :class:`memorytalker.data.Batch`, on the model's device). Returns the adapted model (eval mode) and
    an :class:`AdaptResult`; ``model`` is not changed."""
    if not clips:
        raise DatasetError(f"speaker {speaker!r}: no adaptation clips")
    t0 = time.perf_counter()
    new = with_adapted_speaker(model, speaker, acfg.init_style)
    cond = new.condition_index(speaker)
    with torch.no_grad():
        feats = [new.clip_features(b) for b in clips]  # eval mode: the features of the frozen decoder
    w2 = _loss_weights(acfg, acfg.contact2)
    with torch.no_grad():
        before = float(_clip_losses(new, clips, feats, cond, w2))
    t1 = time.perf_counter()
    steps = _run_stage(new, clips, feats, cond, 1, acfg, seed)
    t2 = time.perf_counter()
    with torch.no_grad():
        after1 = float(_clip_losses(new, clips, feats, cond, w2))
    steps += _run_stage(new, clips, feats, cond, 2, acfg, seed)
    with torch.no_grad():
        after2 = float(_clip_losses(new, clips, feats, cond, w2))
    t3 = time.perf_counter()
    result = AdaptResult(
        speaker=speaker,
        clips=list(clip_ids),
        seconds=round(t3 - t0, 3),
        steps=steps,
        loss_before=before,
        loss_stage1=after1,
        loss_stage2=after2,
        stage_seconds={
            "features": round(t1 - t0, 3),
            "stage1": round(t2 - t1, 3),
            "stage2": round(t3 - t2, 3),
        },
    )
    return new.eval(), result


def speaker_clips(index: Any, split: str, speakers: Sequence[str], max_sequences: int) -> dict[str, list]:
    """``{speaker: [clip records]}`` of a split: each speaker's first ``max_sequences`` clips in sentence
    order (0 = all)."""
    out: dict[str, list] = {}
    for rec in sorted(index.clips(split), key=lambda r: (r.subject, r.sentence)):
        if rec.subject in speakers:
            raise DatasetError(f"split {split!r}: {rec.subject!r} is a training speaker, not an unseen one")
        out.setdefault(rec.subject, []).append(rec)
    if max_sequences:
        out = {s: recs[:max_sequences] for s, recs in out.items()}
    return out


def _batches(index: Any, split: str, records: list, subjects: Sequence[str], device: Any) -> list:
    from memorytalker.data.dataset import TalkingFaceDataset, collate_batch

    ds = TalkingFaceDataset(index, split, subjects=subjects)
    where = {r.clip_id: i for i, r in enumerate(ds.records)}
    out = []
    for rec in records:
        b = collate_batch([ds[where[rec.clip_id]]])
        out.append(dataclasses.replace(b, **{k: getattr(b, k).to(device) for k in _TENSORS}))
    return out


_TENSORS = (
    "audio",
    "audio_lengths",
    "vertices",
    "frame_lengths",
    "frame_mask",
    "templates",
    "frame_phonemes",
)


class _SubjectView:
    """A dataset index whose ``clips(split)`` holds one subject's clips (everything else delegated)."""

    def __init__(self, index: Any, subject: str) -> None:
        self._index, self._subject = index, subject

    def clips(self, split: str | None = None) -> list:
        return [r for r in self._index.clips(split) if r.subject == self._subject]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._index, name)


def _score(clips: list, index: Any, topology: Any) -> dict:
    """``memorytalker evaluate``'s metric block of clip predictions (:func:`score_clips`)."""
    from memorytalker.evaluation.scoring import score_clips

    return score_clips(clips, index, topology)


def _write_json(path: Path, report: dict) -> None:
    from memorytalker.evaluation.scoring import _json_default

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(report, indent=2, default=_json_default))
    tmp.replace(path)


def adapt_and_score(
    checkpoint: str | Path,
    data: str | Path,
    out: str | Path,
    split: str = "adapt",
    score_split: str | None = "test",
    overrides: Sequence[str] = (),
    device: str = "auto",
    layout: str | None = None,
    seed: int = 0,
    say: Callable[[str], None] = print,
) -> dict:
    """Personalise generalised Imitator ``checkpoint`` to every speaker of ``split`` and write
    ``out/<speaker>.pt`` per speaker; with ``score_split``, score each of its clips with its own speaker's
    adapted model (``out/report.json``, ``memorytalker evaluate``'s format plus an ``adaptation`` block) and
    with the generalised model (``out/generalised.json``, its published unseen-speaker protocol).

    Returns:
        ``{"speakers": [AdaptResult as dict], "report": path or None, "generalised": path or None}``.
    """
    from memorytalker.data import load_dataset
    from memorytalker.device import resolve_device
    from memorytalker.evaluation.scoring import predict_split
    from memorytalker.models.loaders import atomic_save, load_model, make_checkpoint, read_checkpoint

    device = resolve_device(device)
    model, topology, _ = load_model(checkpoint, device=device)
    acfg = adapt_config(model, overrides)
    index = load_dataset(data, layout=layout, topology=topology)
    trained = list(model.speakers[: model.trained])
    per_speaker = speaker_clips(index, split, trained, acfg.max_sequences)
    if not per_speaker:
        raise DatasetError(f"split {split!r} of {data} has no clips to adapt on")
    if score_split is not None:
        missing = sorted({r.subject for r in index.clips(score_split)} - set(per_speaker))
        if missing:
            raise DatasetError(
                f"speaker(s) {missing} of split {score_split!r} have no clips in adaptation split {split!r}"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt = read_checkpoint(checkpoint)
    results, preds = [], []
    for speaker, records in per_speaker.items():
        clips = _batches(index, split, records, trained, device)
        adapted, res = adapt_speaker(model, speaker, clips, acfg, [r.clip_id for r in records], seed)
        path = out / f"{speaker}.pt"
        res.checkpoint = str(path)
        provenance = {"adapted_from": str(checkpoint), "adaptation": dataclasses.asdict(res)}
        provenance["adaptation"]["settings"] = dataclasses.asdict(acfg)
        atomic_save(
            make_checkpoint(
                adapted,
                topology,
                dataset=ckpt.get("dataset"),
                train_state={"step": res.steps},
                trainable_groups=["style", "head"],
                provenance=provenance,
            ),
            path,
        )
        say(
            f"{speaker}: adapted on {len(records)} sequence(s) in {res.seconds:.1f} s ({res.steps} steps); "
            f"loss {res.loss_before:.4g} -> {res.loss_stage1:.4g} (stage 1) -> {res.loss_stage2:.4g} "
            f"(stage 2); wrote {path}"
        )
        results.append(res)
        if score_split is not None:
            view = _SubjectView(index, speaker)
            preds += predict_split(adapted, view, score_split, device=device, progress=False)
    summary: dict[str, Any] = {"speakers": [dataclasses.asdict(r) for r in results], "report": None}
    summary["generalised"] = None
    if score_split is not None:
        block = {
            "split": split,
            "settings": dataclasses.asdict(acfg),
            "speakers": summary["speakers"],
            "sequences": sum(len(r.clips) for r in results),
            "seconds": round(sum(r.seconds for r in results), 3),
        }
        data_block = {"root": str(data), "split": score_split, "fps": index.fps, "units": index.units}
        report = _score(preds, index, topology)
        report.update(
            checkpoint={"path": str(out), "adapted_from": str(checkpoint)},
            conditions={"protocol": "adapted", "speakers": sorted(per_speaker), "predictions": len(preds)},
            data={**data_block, "clips": len(preds)},
            adaptation=block,
        )
        _write_json(out / "report.json", report)
        gen = predict_split(model, index, score_split, device=device, progress=False)
        general = _score(gen, index, topology)
        general.update(
            checkpoint={"path": str(checkpoint), "step": ckpt.get("step")},
            conditions={
                "protocol": model.unseen_protocol,
                "speakers": list(model.speakers),
                "predictions": len(gen),
            },
            data={**data_block, "clips": len({c.clip_id.split("@", 1)[0] for c in gen})},
        )
        _write_json(out / "generalised.json", general)
        summary.update(report=str(out / "report.json"), generalised=str(out / "generalised.json"))
    _write_json(out / "adaptation.json", summary)
    return summary

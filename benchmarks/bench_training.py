"""Training throughput in seconds of audio per second (forward + backward + optimizer step).

Uses the model, stage and data of a training config (default ``configs/synthetic.yaml``, stage 1 and
stage 2; any model kind: ``--config configs/synthetic_faceformer.yaml --stages faceformer``, UniTalker on
its first corpus alone), real batches of its training split (padded, masked, triplets for stage 2), and times
``--steps`` optimizer steps after untimed ones (at least ``--warmup`` steps and ``--warmup-seconds``), for
each batch size, twice: a first pass over the timed batches (the first epoch: per-clip caches of a frozen
front end are cold), then the same batches again (every later epoch). Columns: ``1st pass`` audio seconds
per second; for the second pass audio seconds over timed seconds, the median of the steps' own ratios
(robust to a step slowed by another job) and steps per second; and ``others``: the share of the machine's
CPU time other processes used meanwhile (Linux ``/proc/stat``; on a shared machine, runs with a high share
are not comparable).

    .venv/bin/python benchmarks/bench_training.py [--config configs/synthetic.yaml] [--batch-sizes 1 8]
        [--stages memorizing animating] [--steps 8] [--warmup 2] [--warmup-seconds 3] [--threads N]
        [--device cuda] [--bf16] [--random-data SECONDS] [--random-vertices V] [--random-hf] [--profile N]
        [key=value ...]

``--random-data 4`` replaces the dataset by random clips of that many seconds (audio, motion around a random
template of ``--random-vertices`` vertices at the topology's fps, phoneme labels): throughput does not depend on
the content, so GPU machines without the corpus can be measured. ``--random-hf`` swaps a Hugging Face backbone
name for a randomly initialised model of the same architecture saved to a temporary folder (nothing
downloads). ``--device cuda`` trains on the GPU (timings synchronised); ``--bf16`` uses bf16 autocast, as
``engine.precision: auto`` does on CUDA. ``--profile N`` then profiles N more steps and prints the operators
by self CPU time (torch.profiler).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import torch
from bench_inference import device_label, flame_sized_topology, save_random_wav2vec2
from torch.utils.data import DataLoader

from memorytalker.data import TalkingFaceDataset, collate_batch, load_dataset
from memorytalker.data.dataset import ClipItem
from memorytalker.data.layout import corpus_name
from memorytalker.data.phonemes import CTC_VOCAB
from memorytalker.models.backbones.cache import ClipFeatureCache
from memorytalker.models.builders import build_model
from memorytalker.models.losses import compute_losses
from memorytalker.training.config import load_train_config
from memorytalker.training.engine import condition_speakers, output_heads
from memorytalker.training.optim import make_optimizer, select_trainable

ROOT = Path(__file__).resolve().parents[1]
SR = 16000


def random_items(topology, seconds: float, count: int, triplets: bool) -> list[ClipItem]:
    """``count`` random clips of ``seconds`` (5 % length jitter, so batches are padded and masked)."""
    g = torch.Generator().manual_seed(0)
    template = torch.from_numpy(topology.vertices.copy()).float()
    items = []
    for i in range(count):
        sec = seconds * (1.0 - 0.05 * (i % 2))
        n, t = int(sec * SR), round(sec * topology.fps)
        labels = torch.randint(1, len(CTC_VOCAB), (max(1, int(sec * 10)),), generator=g)
        extra = {}
        if triplets:
            extra = {
                "positive_audio": torch.randn(n, generator=g) * 0.1,
                "negative_audio": torch.randn(n, generator=g) * 0.1,
            }
        items.append(
            ClipItem(
                clip_id=f"random_{i}",
                subject=f"S{i % 4}",
                sentence=i,
                subject_id=i % 4,
                audio=torch.randn(n, generator=g) * 0.1,
                vertices=template + 1e-3 * torch.randn(t, *template.shape, generator=g),
                template=template,
                phoneme_ids=labels,
                frame_phonemes=torch.randint(0, len(CTC_VOCAB), (t,), generator=g),
                **extra,
            )
        )
    return items


def bench(cfg, batch_size: int, steps: int, warmup: int, args, tmp: str) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(cfg.optim.seed)
    if args.random_data:
        model_cfg = cfg.model
        if args.random_hf and model_cfg.backbone.kind == "huggingface":
            import dataclasses

            model_cfg = dataclasses.replace(
                model_cfg,
                backbone=dataclasses.replace(model_cfg.backbone, name_or_path=save_random_wav2vec2(tmp)),
            )
        fps = 25.0 if "biwi" in cfg.name else 30.0
        topology = flame_sized_topology(fps, args.random_vertices)
        count = max(16, batch_size * (steps + warmup))  # every timed clip new in the first pass
        ds = random_items(topology, args.random_data, count, cfg.current.triplets)
    else:
        index = load_dataset(cfg.data.root, layout=cfg.data.layout, topology=cfg.data.topology)
        topology = index.topology
        model_cfg = cfg.model
        ds = TalkingFaceDataset(
            index,
            cfg.data.train_split,
            cache=True,
            triplets=cfg.current.triplets,
            max_seconds=cfg.data.max_seconds,
        )
    if not args.random_data:  # speaker-conditioned kinds: their training speakers / identities
        condition_speakers(cfg, ds.subjects)
        output_heads(cfg, [index], [f"{corpus_name(cfg.data.root)}/{s}" for s in ds.subjects])
    model = build_model(model_cfg, topology).to(device)
    _, params = select_trainable(model, cfg)
    opt = make_optimizer(cfg, params, model.parameter_groups())
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, collate_fn=collate_batch, drop_last=True)
    batches = []
    while len(batches) < steps + warmup:
        for b in loader:
            batches.append(b.to(device))
            if len(batches) == steps + warmup:
                break
    model.train()
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.bf16)

    def step(batch) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        with autocast:
            out = model(batch, teacher_forcing=cfg.current.loss.teacher_forcing)
            loss = compute_losses(out, batch, cfg.current.loss, topology, model.motion_scale)["total"]
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - t0

    # Warm-up: at least --warmup steps and --warmup-seconds (a fresh process runs its first second or so of
    # CPU work several times slower; batch-1 steps of the compact model take ~0.1 s).
    warm = batches[:warmup] or batches[:1]
    t_start, done = time.perf_counter(), 0
    while done < warmup or time.perf_counter() - t_start < args.warmup_seconds:
        step(warm[done % len(warm)])
        done += 1
    for m in model.modules():  # the warm-up's clips are not timed; start the first pass cold
        if isinstance(getattr(m, "_cache", None), ClipFeatureCache):
            m._cache.clear()
    busy0, own0 = _cpu_busy(), _own_cpu()
    first = _timed_pass(step, batches[warmup:])
    later = _timed_pass(step, batches[warmup:])  # the same clips again: what every later epoch costs
    elapsed = first["time_s"] + later["time_s"]
    busy1, own1 = _cpu_busy(), _own_cpu()
    if args.profile:  # where a (warm) step's time goes, by operator
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for batch in batches[warmup : warmup + args.profile]:
                step(batch)
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=20))
    others = None
    if busy0 is not None and busy1 is not None:
        cpus = os.cpu_count() or 1
        others = max(0.0, (busy1 - busy0) - (own1 - own0)) / (cpus * elapsed)
    return {
        "audio_s": first["audio_s"],
        "first_per_s": first["audio_s"] / first["time_s"],
        "time_s": later["time_s"],
        "audio_per_s": later["audio_s"] / later["time_s"],
        "median_audio_per_s": later["median"],
        "steps_per_s": steps / later["time_s"],
        "others": others,
    }


def _timed_pass(step, batches) -> dict:
    audio, times, rates = 0.0, [], []
    for batch in batches:
        dt = step(batch)
        seconds = float(batch.audio_lengths.sum()) / SR
        audio += seconds
        times.append(dt)
        rates.append(seconds / dt)
    return {"audio_s": audio, "time_s": sum(times), "median": statistics.median(rates)}


def _cpu_busy() -> float | None:
    """Seconds of CPU time the whole machine has spent busy (Linux ``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default=str(ROOT / "configs" / "synthetic.yaml"))
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--stages", nargs="+", default=["memorizing", "animating"])
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--warmup-seconds", type=float, default=3.0, help="untimed steps last at least this long")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    ap.add_argument("--bf16", action="store_true", help="bf16 autocast")
    ap.add_argument("--random-data", type=float, default=None, metavar="SECONDS", help="random clips")
    ap.add_argument("--random-vertices", type=int, default=5023, help="vertices of the random topology")
    ap.add_argument("--random-hf", action="store_true", help="random Hugging Face backbone (no download)")
    ap.add_argument(
        "--profile", type=int, default=0, metavar="N", help="then profile N steps (torch.profiler)"
    )
    ap.add_argument("overrides", nargs="*")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device_label(device)}, bf16={args.bf16}"
    )
    if args.random_data:
        print(f"random clips of {args.random_data:g} s, V={args.random_vertices}")
    print(f"config {args.config} {' '.join(args.overrides)}")
    print(
        f"{'stage':<12} {'batch':>5} {'steps':>5} {'audio s':>8} {'1st pass':>8} {'time s':>7} "
        f"{'audio s / s':>11} {'median':>7} {'steps / s':>9} {'others':>6}"
    )
    for stage in args.stages:
        cfg = load_train_config(args.config, [*args.overrides, "stage.init_from=null"], stage=stage)
        for bs in args.batch_sizes:
            with tempfile.TemporaryDirectory() as tmp:
                r = bench(cfg, bs, args.steps, args.warmup, args, tmp)
            others = "n/a" if r["others"] is None else f"{100 * r['others']:.0f}%"
            print(
                f"{stage:<12} {bs:>5} {args.steps:>5} {r['audio_s']:>8.1f} {r['first_per_s']:>8.2f} "
                f"{r['time_s']:>7.2f} "
                f"{r['audio_per_s']:>11.2f} {r['median_audio_per_s']:>7.2f} {r['steps_per_s']:>9.2f} "
                f"{others:>6}",
                flush=True,
            )


if __name__ == "__main__":
    main()

"""Generating the synthetic corpus in the processed layout (docs/LAYOUT.md, docs/DATA.md).

:func:`generate_corpus` draws ``N`` speakers (voice + face shape + speaking style), has each read ``M``
sentences, and writes ``wav/``, ``vertices_npy/``, ``phonemes/``, ``templates.pkl``, ``topology.npz``,
``speakers.json``, ``synth.json`` and ``dataset.yaml`` (splits mirroring VOCASET: training speakers with
all their sentences, unseen validation and test speakers with the second half of theirs).

Faces (``face=``): ``"ict"`` (default) drives the project's face (ICT-FaceKit, :mod:`.face_motion`):
every speaker gets its own identity, and each clip also stores its ground-truth ARKit weights ``(T, 52)``
in ``arkit/``. ``"procedural"`` drives the project's procedural head (:mod:`.head`, a small topology for
tests); a user template (``template=`` + ``regions=``) is driven by the field rig of :mod:`.articulation`.

Every clip is computed from ``(seed, speaker, sentence)`` alone, in float64 without BLAS reductions, so
the vertex arrays are byte-identical for a seed whatever the number of worker processes.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.data.phonemes import SILENCE
from memorytalker.errors import DatasetError, TopologyError
from memorytalker.synth.articulation import (
    BILABIALS,
    Rig,
    animate,
    articulator_tracks,
    build_rig,
    coefficients,
)
from memorytalker.synth.face_motion import FaceRig, arkit_weights, draw_identity, face_rig
from memorytalker.synth.face_motion import pose as pose_face
from memorytalker.synth.head import HeadShape, make_head
from memorytalker.synth.prosody import blink_curve, brow_curve, frame_features
from memorytalker.synth.sentences import POOL_SIZE, sentence_pool
from memorytalker.synth.style import SpeakerStyle, audible_style, make_style
from memorytalker.synth.tts import check_engines, synthesize_utterance
from memorytalker.synth.voices import VoiceSpec, make_roster
from memorytalker.topology import FaceTopology
from memorytalker.topology.lips import LOWER_LIP_INNER, UPPER_LIP_INNER, inner_lip_gap

FPS = 30.0
FORMAT_VERSION = 2
#: Faces a corpus can be generated on (a user ``template`` is the third way).
FACES = ("ict", "procedural")
#: Each clip's recording level varies by up to this many dB either way, independently of the speaker, so
#: the recording gain says nothing about how a speaker moves (the style lives in rate, effort and timbre).
CLIP_GAIN_DB = 6.0
#: Peak sample value a clip is kept under after its level change.
PEAK_LIMIT = 0.99


@dataclass
class SpeakerPlan:
    """Everything needed to produce one speaker's clips."""

    speaker: str
    index: int
    voice: VoiceSpec
    style: SpeakerStyle
    template: np.ndarray  # (V, 3) float32
    rig: Rig | None  # field rig (procedural head, user template); None on the project's face
    shape: dict
    split: str
    topology: FaceTopology  # the corpus' reference topology (same vertex order as ``template``)
    face_rig: FaceRig | None = None  # the project's face: identity, ARKit basis, lip-gap model


@dataclass
class ClipResult:
    clip: str
    speaker: str
    sentence: int
    pool_index: int
    duration: float
    frames: int
    mean_f0: float
    rms_dbfs: float
    max_opening: float
    bilabial_max_opening: float


# ---------------------------------------------------------------------------------------------- templates
def load_template(
    mesh: str | Path, regions: str | Path
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """A user template: ``(vertices (V, 3), faces (F, 3), regions)``.

    ``regions`` is a dict file (``.pkl`` like FLAME_masks.pkl, ``.npz``, or ``.json`` ``{name: [indices]}``)
    with ``lips`` and either ``upper_face`` or ``forehead`` + ``eye_region`` (united into ``upper_face``,
    as for VOCASET).
    """
    from memorytalker.topology import load_mesh, read_region_file

    verts, faces = load_mesh(mesh)
    path = Path(regions)
    if not path.is_file():
        raise TopologyError(f"region file not found: {path}")
    if path.suffix.lower() == ".json":
        try:
            data = {k: np.asarray(v, dtype=np.int64) for k, v in json.loads(path.read_text()).items()}
        except Exception as exc:
            raise TopologyError(f"cannot read region file {path}: {exc}") from exc
    elif path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as z:
            data = {k: np.asarray(z[k]) for k in z.files}
    else:
        data = read_region_file(path)
    if not isinstance(data, dict):
        raise TopologyError(f"{path}: expected a dict of named regions (lips, upper_face, ...)")
    regs = {str(k): np.asarray(v).astype(np.int64).ravel() for k, v in data.items()}
    if "lips" not in regs:
        raise TopologyError(f"{path}: no 'lips' region (it has {', '.join(sorted(regs))})")
    if "upper_face" not in regs:
        if "forehead" in regs and "eye_region" in regs:
            regs["upper_face"] = np.union1d(regs["forehead"], regs["eye_region"])
        else:
            raise TopologyError(
                f"{path}: no 'upper_face' region and no 'forehead' + 'eye_region' to build it from "
                f"(it has {', '.join(sorted(regs))})"
            )
    n = verts.shape[0]
    for k, r in regs.items():
        if r.size and (r.min() < 0 or r.max() >= n):
            raise TopologyError(f"{path}: region {k!r} has indices outside [0, {n}) of {mesh}")
    return verts, faces, regs


def vary_template(vertices: np.ndarray, rig: Rig, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """A per-speaker face shape for a user template: smooth, global deformations scaled by the mouth width.

    Anisotropic head scale (+-4 %), a wider or narrower jaw (+-8 %), a longer or shorter nose (+-25 % of
    its protrusion) and fuller or thinner lips.
    """
    v = np.asarray(vertices, dtype=np.float64)
    w = rig.mouth_width
    c = rig.mouth_center
    centre = v.mean(axis=0)
    params = {
        "scale": (1 + 0.04 * rng.standard_normal(3)).round(4).tolist(),
        "jaw_width": round(float(1 + 0.08 * rng.standard_normal()), 4),
        "nose": round(float(0.25 * rng.standard_normal()), 4),
        "lips": round(float(0.2 * rng.standard_normal()), 4),
    }
    out = centre + (v - centre) * np.array(params["scale"])
    t = np.clip((c[1] - v[:, 1]) / (1.5 * w), 0.0, 1.0)
    out[:, 0] = out[:, 0] + (v[:, 0] - c[0]) * (params["jaw_width"] - 1) * t
    face = (v[:, 1] > c[1] + 0.4 * w) & (v[:, 1] < c[1] + 1.4 * w)
    tip = v[np.argmax(np.where(face, v[:, 2], -np.inf))]
    d_nose = np.linalg.norm(v - tip, axis=1)
    out[:, 2] += params["nose"] * 0.3 * w * np.exp(-((d_nose / (0.35 * w)) ** 2))
    d_lips = np.linalg.norm((v - c) / np.array([0.6, 0.35, 0.6]), axis=1)
    out[:, 2] += params["lips"] * 0.06 * w * np.exp(-((d_lips / (0.5 * w)) ** 2))
    return out.astype(np.float32), params


# ---------------------------------------------------------------------------------------------- planning
def speaker_ids(n: int) -> list[str]:
    width = max(2, len(str(n - 1)))
    return [f"spk{i:0{width}d}" for i in range(n)]


def split_speakers(n: int) -> dict[str, list[int]]:
    """VOCASET-like: about 2/3 training, 1/6 validation, 1/6 test speakers (at least one each)."""
    if n < 3:
        raise DatasetError(f"need at least 3 speakers (train / val / test), got {n}")
    k = max(1, int(round(n / 6)))
    return {
        "train": list(range(n - 2 * k)),
        "val": list(range(n - 2 * k, n - k)),
        "test": list(range(n - k, n)),
    }


def sentence_assignment(num_speakers: int, num_sentences: int, seed: int) -> np.ndarray:
    """``(N, M)`` pool indices: consecutive speakers share half their sentences (same-text comparisons)."""
    pool = max(POOL_SIZE, num_sentences)
    order = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5E27])).permutation(pool)
    step = max(1, num_sentences // 2)
    idx = (np.arange(num_speakers)[:, None] * step + np.arange(num_sentences)[None, :]) % pool
    return order[idx]


def plan_speakers(
    num_speakers: int,
    seed: int,
    template: tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]] | None = None,
    topology_name: str = "template",
    fps: float = FPS,
    face: str = "ict",
) -> list[SpeakerPlan]:
    """Voices, styles, face shapes and rigs of all speakers; every plan shares the reference topology
    (regions of the template plus its inner-lip contours ``upper_lip_inner`` / ``lower_lip_inner``, the
    upper and lower edge of the rig's mouth opening; the project's face names its own)."""
    voices = make_roster(num_speakers, seed)
    splits = split_speakers(num_speakers)
    split_of = {i: s for s, ids in splits.items() for i in ids}
    ids = speaker_ids(num_speakers)
    if template is None and face not in FACES:
        raise TopologyError(f"unknown face {face!r}: choose one of {', '.join(FACES)}")
    if template is None and face == "ict":
        return _plan_face_speakers(voices, ids, split_of, seed, fps)
    if template is None:
        ref_v, faces, regions = make_head()
        topo_name = "memorytalker-head"
    else:
        ref_v, faces, regions = template
        topo_name = topology_name
    ref_rig = build_rig(ref_v, faces, regions)
    topology = FaceTopology(
        name=topo_name,
        vertices=np.asarray(ref_v, dtype=np.float32),
        faces=faces,
        fps=fps,
        regions={**regions, UPPER_LIP_INNER: ref_rig.upper_edge, LOWER_LIP_INNER: ref_rig.lower_edge},
    )
    plans = []
    for i, voice in enumerate(voices):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFACE, i]))
        style = make_style(voice, rng)
        if template is None:
            shape = HeadShape.random(rng)
            tpl = make_head(shape)[0]
            shape_d = {k: round(float(v), 4) for k, v in shape.__dict__.items()}
        else:
            tpl, shape_d = vary_template(ref_v, ref_rig, rng)
        rig = build_rig(tpl, faces, regions, asymmetry=style.asymmetry)
        plans.append(SpeakerPlan(ids[i], i, voice, style, tpl, rig, shape_d, split_of[i], topology))
    return plans


def _plan_face_speakers(voices, ids, split_of, seed: int, fps: float) -> list[SpeakerPlan]:
    """Speakers on the project's face: one identity each (:func:`~.face_motion.draw_identity`)."""
    import dataclasses

    from memorytalker.face import FaceModel

    model = FaceModel.load()
    topology = dataclasses.replace(model.topology, fps=fps)
    plans = []
    for i, voice in enumerate(voices):
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xFACE, i]))
        style = make_style(voice, rng)
        identity = draw_identity(rng)
        rig = face_rig(model, identity, asymmetry=style.asymmetry)
        shape = {"face": model.name, "identity": [round(float(c), 4) for c in identity]}
        plans.append(
            SpeakerPlan(ids[i], i, voice, style, rig.template, None, shape, split_of[i], topology, rig)
        )
    return plans


# ---------------------------------------------------------------------------------------------- one clip
def make_clip(
    plan: SpeakerPlan, sentence: int, pool_index: int, text: str, seed: int, fps: float = FPS
) -> tuple[np.ndarray, np.ndarray, dict, ClipResult, np.ndarray | None]:
    """Synthesize one clip: ``(audio (S,) float32, vertices (T, V, 3) float32, alignment json, stats,
    ARKit weights (T, 52) float32 on the project's face, else None)``."""
    clip_seed = np.random.SeedSequence([int(seed), plan.index, int(sentence)])
    rng = np.random.default_rng(clip_seed)
    utt = synthesize_utterance(text, plan.voice, seed=int(clip_seed.generate_state(1)[0]))
    audio = clip_level(utt.audio, rng.uniform(-CLIP_GAIN_DB, CLIP_GAIN_DB))
    n_frames = int(round(audio.shape[0] / SAMPLE_RATE * fps))
    st = plan.style
    tracks = articulator_tracks(utt.phonemes, n_frames, fps, st.tau_anticipation, st.tau_carryover)
    f0, energy = frame_features(audio, n_frames, fps)
    brow = brow_curve(f0, energy, st.brow_gain, fps)
    pauses = [(p["start"], p["end"]) for p in utt.phonemes if p["phone"] == SILENCE]
    blink = blink_curve(n_frames, fps, st.blink_rate, rng, pauses)
    style = (st.amplitude, st.lip_amplitude, st.rounding, st.spreading)
    weights = None
    if plan.face_rig is not None:
        weights = arkit_weights(plan.face_rig, tracks, brow, blink, *style)
        verts = pose_face(plan.face_rig, weights)
        weights = weights.astype(np.float32)
    elif plan.rig is not None:
        verts = animate(plan.rig, coefficients(tracks, brow, blink, *style))
    else:
        raise TopologyError(f"speaker {plan.speaker} has neither a face rig nor a field rig")
    opening = inner_lip_gap(verts, plan.topology)
    neutral = inner_lip_gap(plan.template[None], plan.topology)[0]
    bil = [int(round((p["start"] + p["end"]) / 2 * fps)) for p in utt.phonemes if p["phone"] in BILABIALS]
    bil = [min(max(b, 0), n_frames - 1) for b in bil]
    voiced = f0[f0 > 0]
    align = {
        "text": utt.text,
        "phonemes": utt.phonemes,
        "words": utt.words,
        "speaker": plan.speaker,
        "sentence_index": int(pool_index),
    }
    stats = ClipResult(
        clip=f"{plan.speaker}_s{sentence:03d}",
        speaker=plan.speaker,
        sentence=int(sentence),
        pool_index=int(pool_index),
        duration=float(audio.shape[0] / SAMPLE_RATE),
        frames=n_frames,
        mean_f0=float(np.exp(np.mean(np.log(voiced)))) if voiced.size else 0.0,
        rms_dbfs=float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-12)),
        max_opening=float(opening.max() - neutral),
        bilabial_max_opening=float(max((opening[b] - neutral for b in bil), default=0.0)),
    )
    return audio, verts, align, stats, weights


def clip_level(audio: np.ndarray, gain_db: float) -> np.ndarray:
    """``audio`` changed by ``gain_db`` (float32), scaled down further if its peak would pass
    :data:`PEAK_LIMIT` (no clipping)."""
    out = audio.astype(np.float64) * 10.0 ** (gain_db / 20.0)
    peak = float(np.abs(out).max()) if out.size else 0.0
    if peak > PEAK_LIMIT:
        out *= PEAK_LIMIT / peak
    return out.astype(np.float32)


# ---------------------------------------------------------------------------------------------- workers
_WORKER: dict = {}


def _init_worker(plans, texts, seed, out, fps) -> None:
    _WORKER.update(plans=plans, texts=texts, seed=seed, out=Path(out), fps=fps)


def _run_clip(job: tuple[int, int, int]) -> ClipResult:
    import soundfile as sf

    spk, sentence, pool_index = job
    w = _WORKER
    plan = w["plans"][spk]
    audio, verts, align, stats, weights = make_clip(
        plan, sentence, pool_index, w["texts"][pool_index], w["seed"], w["fps"]
    )
    out: Path = w["out"]
    np.save(out / "vertices_npy" / f"{stats.clip}.npy", verts.reshape(verts.shape[0], -1))
    if weights is not None:
        np.save(out / "arkit" / f"{stats.clip}.npy", weights)
    sf.write(out / "wav" / f"{stats.clip}.wav", audio, SAMPLE_RATE, subtype="PCM_16")
    (out / "phonemes" / f"{stats.clip}.json").write_text(json.dumps(align, ensure_ascii=False))
    return stats


def generate_corpus(
    out: str | Path,
    num_speakers: int,
    num_sentences: int,
    seed: int = 0,
    workers: int = 1,
    template: str | Path | None = None,
    regions: str | Path | None = None,
    fps: float = FPS,
    overwrite: bool = False,
    progress: bool = True,
    on_clip: Callable[[ClipResult], None] | None = None,
    face: str = "ict",
) -> dict:
    """Write the corpus to ``out``; returns a summary dict (clips, seconds of audio, timings).

    Args:
        out: output folder (must be empty or absent unless ``overwrite``).
        num_speakers: ``N >= 3``; ``num_sentences``: ``M >= 1`` per speaker.
        seed: everything (voices, faces, styles, sentences, blinks, Piper's noise) follows from it.
        workers: processes (1 = in this process).
        template, regions: a user template mesh + region dict file (e.g. FLAME_sample.ply +
            FLAME_masks.pkl) instead of the project's face.
        face: ``"ict"`` (the project's face, with ARKit ground truth) or ``"procedural"`` (the small
            procedural head); ignored with a ``template``.
    """
    import time

    from memorytalker.data.layout import write_templates

    t0 = time.perf_counter()
    if num_sentences < 1:
        raise DatasetError(f"need at least one sentence per speaker, got {num_sentences}")
    if workers < 1:
        raise DatasetError(f"workers must be >= 1, got {workers}")
    if (template is None) != (regions is None):
        raise TopologyError("--template and --regions go together (a mesh and its region file)")
    out = Path(out)
    _prepare_output(out, overwrite)
    tpl = load_template(template, regions) if template is not None else None
    name = Path(template).stem if template is not None else "template"
    plans = plan_speakers(num_speakers, seed, tpl, topology_name=name, fps=fps, face=face)
    check_engines([p.voice.engine for p in plans])
    subs = ("wav", "vertices_npy", "phonemes") + (("arkit",) if plans[0].face_rig is not None else ())
    for sub in subs:
        (out / sub).mkdir(parents=True, exist_ok=True)
    texts = sentence_pool(max(POOL_SIZE, num_sentences))
    assign = sentence_assignment(num_speakers, num_sentences, seed)
    # interleave speakers so slow engines are spread over the workers
    jobs = [(k, j + 1, int(assign[k, j])) for j in range(num_sentences) for k in range(num_speakers)]
    t_plan = time.perf_counter() - t0
    results = _run_jobs(jobs, (plans, texts, seed, out, fps), workers, progress, on_clip)
    results.sort(key=lambda r: r.clip)
    # ---- dataset-level files
    topo = plans[0].topology
    topo.save(out / "topology.npz")
    write_templates(out / "templates.pkl", {p.speaker: p.template for p in plans})
    _write_speakers(out, plans, results)
    _write_manifest(out, plans, num_sentences, topo.num_vertices, fps)
    summary = {
        "clips": len(results),
        "speakers": num_speakers,
        "sentences": num_sentences,
        "audio_seconds": round(sum(r.duration for r in results), 2),
        "frames": int(sum(r.frames for r in results)),
        "num_vertices": topo.num_vertices,
        "seconds_total": round(time.perf_counter() - t0, 2),
        "seconds_planning": round(t_plan, 2),
        "workers": workers,
        "seed": seed,
    }
    (out / "synth.json").write_text(
        json.dumps(
            {
                "format": FORMAT_VERSION,
                "generator": "memorytalker synth",
                "seed": seed,
                "speakers": num_speakers,
                "sentences": num_sentences,
                "fps": fps,
                "face": None if template else face,
                "arkit": plans[0].face_rig is not None,
                "template": str(template) if template else None,
                "regions": str(regions) if regions else None,
                "topology": topo.name,
            },
            indent=1,
        )
    )
    return summary


def _prepare_output(out: Path, overwrite: bool) -> None:
    """Refuse a non-empty folder unless ``overwrite`` and it holds a corpus; then clear its clip folders."""
    if out.exists() and any(out.iterdir()):
        if not overwrite:
            raise DatasetError(f"output folder {out} is not empty (use --overwrite to replace a corpus)")
        if not (out / "dataset.yaml").is_file():
            raise DatasetError(
                f"refusing to overwrite {out}: it does not look like a corpus (no dataset.yaml)"
            )
        for sub in ("wav", "vertices_npy", "phonemes", "arkit"):
            shutil.rmtree(out / sub, ignore_errors=True)


def _run_jobs(
    jobs: list[tuple[int, int, int]],
    init: tuple,
    workers: int,
    progress: bool,
    on_clip: Callable[[ClipResult], None] | None,
) -> list[ClipResult]:
    """Synthesise every ``(speaker, sentence number, pool index)`` job, in this process or in ``workers``
    spawned processes (one BLAS thread each); ``init`` = :func:`_init_worker`'s arguments."""
    from tqdm import tqdm

    results: list[ClipResult] = []
    bar = tqdm(total=len(jobs), desc="synth", unit="clip", disable=not progress)
    if workers == 1:
        _init_worker(*init)
        for job in jobs:
            r = _run_clip(job)
            results.append(r)
            bar.update()
            if on_clip:
                on_clip(r)
    else:
        import multiprocessing as mp

        saved = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        os.environ.update({k: "1" for k in saved})
        try:
            ctx = mp.get_context("spawn")
            with ctx.Pool(workers, initializer=_init_worker, initargs=init) as pool:
                for r in pool.imap_unordered(_run_clip, jobs, chunksize=1):
                    results.append(r)
                    bar.update()
                    if on_clip:
                        on_clip(r)
        finally:
            for k, v in saved.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
    bar.close()
    return results


def _write_speakers(out: Path, plans: list[SpeakerPlan], results: list[ClipResult]) -> None:
    by_spk: dict[str, list[ClipResult]] = {}
    for r in results:
        by_spk.setdefault(r.speaker, []).append(r)
    data = {}
    for p in plans:
        rs = by_spk.get(p.speaker, [])
        f0s = [r.mean_f0 for r in rs if r.mean_f0 > 0]
        data[p.speaker] = {
            "index": p.index,
            "split": p.split,
            "voice": {**p.voice.to_dict(), "name": f"{p.voice.engine}:{p.voice.voice}", "sex": p.voice.sex},
            "style": p.style.to_dict(),
            "audible_style": {k: round(v, 4) for k, v in audible_style(p.voice).items()},
            "face_shape": p.shape,
            "measured": {
                "mean_f0_hz": round(float(np.exp(np.mean(np.log(f0s)))), 2) if f0s else None,
                "rms_dbfs": round(float(np.mean([r.rms_dbfs for r in rs])), 2) if rs else None,
                "mean_max_lip_opening_mm": round(1000 * float(np.mean([r.max_opening for r in rs])), 2)
                if rs
                else None,
                "seconds": round(sum(r.duration for r in rs), 2),
            },
            "clips": {r.clip: {"sentence_index": r.pool_index, "seconds": round(r.duration, 3)} for r in rs},
        }
    (out / "speakers.json").write_text(json.dumps(data, indent=1))


def _write_manifest(
    out: Path, plans: list[SpeakerPlan], num_sentences: int, num_vertices: int, fps: float
) -> None:
    import yaml

    lo = num_sentences // 2 + 1 if num_sentences >= 2 else 1
    subjects: Mapping[str, list[str]] = {
        s: [p.speaker for p in plans if p.split == s] for s in ("train", "val", "test")
    }
    manifest = {
        "format": "memorytalker-dataset/1",
        "name": "synthetic",
        "fps": int(fps) if float(fps).is_integer() else fps,
        "vertex_fps": int(fps) if float(fps).is_integer() else fps,
        "units": "m",
        "num_vertices": int(num_vertices),
        "topology": "topology.npz",
        "splits": {
            "train": {"subjects": subjects["train"], "sentences": [1, num_sentences]},
            "val": {"subjects": subjects["val"], "sentences": [lo, num_sentences]},
            "test": {"subjects": subjects["test"], "sentences": [lo, num_sentences]},
        },
    }
    if lo > 1:  # the unseen speakers' first sentences: personalisation (memorytalker adapt), never scored
        for name, split in (("adapt", "test"), ("val_adapt", "val")):
            if subjects[split]:
                manifest["splits"][name] = {"subjects": subjects[split], "sentences": [1, lo - 1]}
    (out / "dataset.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False, default_flow_style=None))

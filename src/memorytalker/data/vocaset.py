"""Convert the VOCASET distribution into the processed layout (``memorytalker prepare vocaset``).

The distribution (as downloaded after the licence request):

* ``data_verts.npy``: ``(N_total, 5023, 3)`` float32, all frames of all sequences at 60 fps, metres
  (about 7 GB: memory-mapped here, only the rows of one sequence are read at a time);
* ``raw_audio_fixed.pkl``: ``{subject: {sentence: {"audio": int16/float array, "sample_rate": int}}}``;
* ``templates.pkl``: ``{subject: (5023, 3)}`` neutral meshes;
* ``subj_seq_to_idx.pkl``: ``{subject: {sentence: {frame_i: row index into data_verts}}}``.

The pickles are Python-2 pickles, read with ``encoding="latin1"``.

The field's conversion (FaceFormer ``vocaset/process_voca_data.py``) writes, per ``<subject>_<sentence>``,
the rows of all frames in frame order and the audio at the pickle's rate; its loaders then keep every second
frame (60 -> 30 fps) and resample to 16 kHz. This module produces the same clips and frames but writes the
30-fps arrays (``rows[::2]``, ``(T, 15069)`` float32) and 16 kHz mono PCM-16 wavs directly, plus
``templates.pkl``, ``dataset.yaml`` (standard splits) and, given the FLAME files, ``topology.npz``.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import yaml

from memorytalker.data.audio import SAMPLE_RATE, load_audio, pcm_to_float, write_wav
from memorytalker.data.layout import (
    MANIFEST_NAME,
    TEMPLATES_NAME,
    TOPOLOGY_NAME,
    VERTICES_DIR,
    WAV_DIR,
    load_layout,
    parse_clip_id,
    write_templates,
)
from memorytalker.errors import AudioError, DatasetError

RAW_FILES = {
    "verts": "data_verts.npy",
    "audio": "raw_audio_fixed.pkl",
    "templates": "templates.pkl",
    "index": "subj_seq_to_idx.pkl",
}
#: Frames kept: every ``STRIDE``-th 60-fps frame (the field's ``[::2]``).
STRIDE = 2

# Skip reasons (keys of PrepareSummary.skipped), in report order.
NO_AUDIO = "sequence without audio"
NO_SEQUENCE = "audio without sequence"
MISSING_FRAMES = "missing frames (non-contiguous frame numbers)"
BAD_ROWS = "row index outside data_verts.npy"
NO_FRAMES = "sequence with no frames"
BAD_VERTS = "NaN/Inf vertices"
BAD_AUDIO = "unusable audio"
BAD_NAME = "sentence name without a number"


@dataclass
class PrepareSummary:
    """What ``prepare_vocaset`` wrote and what it skipped (``skipped[reason] = [clip ids]``)."""

    out: Path
    written: list[str] = field(default_factory=list)
    frames: int = 0
    skipped: dict[str, list[str]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    topology_written: bool = False

    def skip(self, reason: str, clip_id: str, detail: str = "") -> None:
        self.skipped.setdefault(reason, []).append(clip_id + (f" ({detail})" if detail else ""))

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def format(self, max_list: int = 10) -> str:
        """Human-readable report."""
        lines = [
            f"wrote {len(self.written)} clips ({self.frames} frames at 30 fps) to {self.out}",
        ]
        if self.num_skipped:
            lines.append(f"skipped {self.num_skipped}:")
            for reason, clips in self.skipped.items():
                shown = ", ".join(clips[:max_list]) + (" ..." if len(clips) > max_list else "")
                lines.append(f"  {reason}: {len(clips)}: {shown}")
        else:
            lines.append("skipped nothing")
        lines.extend(f"note: {n}" for n in self.notes)
        if not self.topology_written:
            lines.append(
                f"no {TOPOLOGY_NAME} written (give --mesh FLAME_sample.ply --regions FLAME_masks.pkl "
                "to add the face topology)"
            )
        return "\n".join(lines)


def _load_pickle(path: Path):
    from memorytalker.safe_pickle import load_pickle

    return load_pickle(path)


def _audio_to_float(audio: np.ndarray, where: str) -> tuple[np.ndarray, str | None]:
    """int16/int32/uint8/float PCM -> float32 in [-1, 1]; a note when a float array was int16-scaled."""
    a = np.asarray(audio)
    if a.dtype.kind in "iu":
        return pcm_to_float(a), None
    if a.dtype.kind == "f":
        a = a.astype(np.float32)
        finite = np.isfinite(a)
        if not finite.all():
            raise AudioError(f"{where}: audio contains NaN or Inf samples")
        peak = float(np.max(np.abs(a))) if a.size else 0.0
        if peak > 1.0:
            if peak <= 32768.0:
                return a / 32768.0, "float audio on the int16 scale was divided by 32768"
            raise AudioError(f"{where}: float audio peaks at {peak:g}, neither [-1, 1] nor int16-scaled")
        return a, None
    raise AudioError(f"{where}: unsupported audio dtype {a.dtype}")


def _frame_rows(frames: object, n_rows: int) -> tuple[np.ndarray | None, str | None, str]:
    """Rows of one sequence in frame order, or ``(None, reason, detail)``."""
    if not isinstance(frames, Mapping) or not frames:
        return None, NO_FRAMES, ""
    try:
        items = sorted((int(k), int(v)) for k, v in frames.items())
    except (TypeError, ValueError):
        return None, NO_FRAMES, "frame numbers / rows are not integers"
    keys = np.array([k for k, _ in items])
    rows = np.array([v for _, v in items])
    expected = np.arange(keys[0], keys[0] + len(keys))
    if not np.array_equal(keys, expected):
        missing = sorted(set(range(int(keys[0]), int(keys[-1]) + 1)) - set(keys.tolist()))
        return None, MISSING_FRAMES, f"{len(missing)} missing, e.g. frame {missing[:3]}"
    bad = rows[(rows < 0) | (rows >= n_rows)]
    if bad.size:
        return None, BAD_ROWS, f"rows {bad[:3].tolist()} not in [0, {n_rows})"
    return rows, None, ""


def _read_rows(path: Path, rows: np.ndarray) -> np.ndarray:
    """``data_verts[rows]`` as float32 through a fresh memory map that is closed again right away.

    Fancy indexing reads only these rows (sorted, so reads are sequential); dropping the map after each
    sequence keeps the process's resident memory at one sequence, whatever the file size.
    """
    mm = np.load(path, mmap_mode="r", allow_pickle=False)
    if mm.ndim == 2:
        mm = mm.reshape(mm.shape[0], -1, 3)
    uniq, inverse = np.unique(rows, return_inverse=True)
    out = np.array(mm[uniq], dtype=np.float32)[inverse]
    del mm
    return out


def prepare_vocaset(
    raw: str | Path,
    out: str | Path,
    mesh: str | Path | None = None,
    regions: str | Path | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> PrepareSummary:
    """Convert the VOCASET distribution in ``raw`` into the processed layout in ``out``.

    Args:
        raw: folder with ``data_verts.npy``, ``raw_audio_fixed.pkl``, ``templates.pkl``, ``subj_seq_to_idx.pkl``.
        out: output folder (created; must be empty unless ``overwrite``).
        mesh, regions: ``FLAME_sample.ply`` and ``FLAME_masks.pkl`` -> ``topology.npz`` (both or neither).
        overwrite: replace the outputs of an earlier run in ``out``.
        progress: show a tqdm progress bar.

    Returns:
        A :class:`PrepareSummary` (clips written, frames, what was skipped and why).
    """
    from tqdm import tqdm

    raw, out = Path(raw), Path(out)
    _check_raw(raw, mesh, regions)
    topology = None
    if mesh is not None:
        from memorytalker.topology import vocaset_topology

        topology = vocaset_topology(mesh, regions)
    verts_path, n_rows, num_v = _open_vertices(raw)
    if topology is not None and topology.num_vertices != num_v:
        raise DatasetError(
            f"{verts_path} has {num_v} vertices per frame but {mesh} has {topology.num_vertices}"
        )
    audio_pkl, index_pkl, templates = _read_pickles(raw, num_v)
    _prepare_out(out, overwrite)

    summary = PrepareSummary(out=out)
    pairs: list[tuple[str, str]] = []
    for subj in sorted(set(index_pkl) | set(audio_pkl), key=str):
        seqs = set(index_pkl.get(subj, {})) | set(audio_pkl.get(subj, {}))
        pairs.extend((subj, seq) for seq in sorted(seqs, key=str))
    float_scaled = 0
    for subj, seq in tqdm(pairs, desc="prepare vocaset", unit="clip", disable=not progress):
        float_scaled += _convert_clip(subj, seq, audio_pkl, index_pkl, verts_path, n_rows, out, summary)

    if float_scaled:
        summary.notes.append(f"{float_scaled} clip(s): float audio on the int16 scale was divided by 32768")
    subjects = sorted({c.rsplit("_", 1)[0] for c in summary.written})
    no_tpl = [s for s in subjects if s not in templates]
    if no_tpl:
        summary.notes.append(f"subject(s) without a template in templates.pkl: {no_tpl}")
    if not summary.written:
        raise DatasetError(f"{raw}: no clip could be converted\n{summary.format()}")
    _write_dataset_files(raw, out, templates, topology, num_v, summary)
    return summary


def _check_raw(raw: Path, mesh: str | Path | None, regions: str | Path | None) -> None:
    if not raw.is_dir():
        raise DatasetError(f"VOCASET folder not found: {raw}")
    missing = [name for name in RAW_FILES.values() if not (raw / name).is_file()]
    if missing:
        raise DatasetError(
            f"{raw} is not the VOCASET distribution: missing {', '.join(missing)} "
            f"(expected {', '.join(RAW_FILES.values())})"
        )
    if (mesh is None) != (regions is None):
        raise DatasetError("give both --mesh (FLAME_sample.ply) and --regions (FLAME_masks.pkl), or neither")


def _open_vertices(raw: Path) -> tuple[Path, int, int]:
    """``(path, rows, V)`` of ``data_verts.npy`` (memory-mapped only to read its shape)."""
    verts_path = raw / RAW_FILES["verts"]
    try:
        verts = np.load(verts_path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        raise DatasetError(f"cannot memory-map {verts_path}: {exc}") from exc
    if verts.ndim == 2 and verts.shape[1] % 3 == 0:
        verts = verts.reshape(verts.shape[0], -1, 3)
    if verts.ndim != 3 or verts.shape[2] != 3 or verts.dtype.kind != "f":
        raise DatasetError(
            f"{verts_path}: expected a float (N_total, V, 3) array, got {verts.dtype} {verts.shape}"
        )
    return verts_path, int(verts.shape[0]), int(verts.shape[1])  # each sequence re-opens the map (_read_rows)


def _read_pickles(raw: Path, num_v: int) -> tuple[Mapping, Mapping, dict[str, np.ndarray]]:
    """The audio, sequence-index and template pickles (read safely), checked for shape."""
    audio_pkl = _load_pickle(raw / RAW_FILES["audio"])
    index_pkl = _load_pickle(raw / RAW_FILES["index"])
    templates_pkl = _load_pickle(raw / RAW_FILES["templates"])
    for name, obj in (("audio", audio_pkl), ("index", index_pkl), ("templates", templates_pkl)):
        if not isinstance(obj, Mapping) or not obj:
            raise DatasetError(f"{raw / RAW_FILES[name]}: expected a non-empty dict keyed by subject")
    for name, obj in (("audio", audio_pkl), ("index", index_pkl)):
        for subj, seqs in obj.items():
            if not isinstance(seqs, Mapping):
                raise DatasetError(f"{raw / RAW_FILES[name]}: entry {subj!r} is not a dict of sentences")
    templates: dict[str, np.ndarray] = {}
    for subj, tpl in templates_pkl.items():
        a = np.asarray(tpl, dtype=np.float32)
        if a.size != num_v * 3:
            raise DatasetError(
                f"{raw / RAW_FILES['templates']}: template of {subj!r} has shape {a.shape}, expected ({num_v}, 3)"
            )
        templates[str(subj)] = a.reshape(num_v, 3)
    return audio_pkl, index_pkl, templates


def _prepare_out(out: Path, overwrite: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    ours = [out / VERTICES_DIR, out / WAV_DIR, out / MANIFEST_NAME, out / TEMPLATES_NAME, out / TOPOLOGY_NAME]
    if any(p.exists() for p in ours):
        if not overwrite:
            raise DatasetError(f"{out} already holds a prepared dataset; use --overwrite to replace it")
        for p in ours:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    (out / VERTICES_DIR).mkdir()
    (out / WAV_DIR).mkdir()


def _convert_clip(
    subj: str,
    seq: str,
    audio_pkl: Mapping,
    index_pkl: Mapping,
    verts_path: Path,
    n_rows: int,
    out: Path,
    summary: PrepareSummary,
) -> int:
    """Write one clip (or record why it is skipped); 1 when its float audio was on the int16 scale."""
    clip_id = f"{subj}_{seq}"
    try:
        parse_clip_id(clip_id)
    except DatasetError:
        summary.skip(BAD_NAME, clip_id)
        return 0
    if seq not in audio_pkl.get(subj, {}):
        summary.skip(NO_AUDIO, clip_id)
        return 0
    if seq not in index_pkl.get(subj, {}):
        summary.skip(NO_SEQUENCE, clip_id)
        return 0
    rows, reason, detail = _frame_rows(index_pkl[subj][seq], n_rows)
    if rows is None:
        summary.skip(reason, clip_id, detail)
        return 0
    frames = _read_rows(verts_path, rows[::STRIDE])
    if not np.all(np.isfinite(frames)):
        summary.skip(BAD_VERTS, clip_id)
        return 0
    entry = audio_pkl[subj][seq]
    try:
        if not isinstance(entry, Mapping) or "audio" not in entry or "sample_rate" not in entry:
            raise AudioError("entry is not {'audio': array, 'sample_rate': int}")
        samples, note = _audio_to_float(entry["audio"], clip_id)
        audio16k = load_audio(samples, sample_rate=int(entry["sample_rate"]))
    except AudioError as exc:
        summary.skip(BAD_AUDIO, clip_id, str(exc))
        return 0
    np.save(out / VERTICES_DIR / f"{clip_id}.npy", frames.reshape(len(frames), -1))
    write_wav(out / WAV_DIR / f"{clip_id}.wav", audio16k, SAMPLE_RATE)
    summary.written.append(clip_id)
    summary.frames += len(frames)
    return int(note is not None)


def _write_dataset_files(raw: Path, out: Path, templates: dict, topology, num_v: int, summary) -> None:
    """templates.pkl, topology.npz (when given) and dataset.yaml."""
    write_templates(out / TEMPLATES_NAME, templates)
    manifest = replace(load_layout("vocaset"), vertex_fps=30.0, topology=None, num_vertices=num_v)
    if topology is not None:
        topology.save(out / TOPOLOGY_NAME)
        manifest = replace(manifest, topology=TOPOLOGY_NAME)
        summary.topology_written = True
    header = (
        "# Written by `memorytalker prepare vocaset` from the VOCASET distribution "
        f"({raw}).\n# Vertices: 30 fps (every 2nd 60-fps frame), metres; audio: 16 kHz mono. "
        "Splits: FaceFormer's standard VOCASET splits.\n"
    )
    (out / MANIFEST_NAME).write_text(header + yaml.safe_dump(manifest.to_dict(), sort_keys=False))

"""Find every problem in a processed dataset folder (``memorytalker data check``).

:func:`check_dataset` never stops at the first problem: it returns one :class:`Finding` per problem
(an empty list means the dataset is clean). Finding kinds:

========================  ==============================================================================
``manifest``              dataset.yaml / layout missing or invalid (nothing else can be checked)
``missing_audio``         a vertex file without an audio file
``missing_vertices``      an audio file without a vertex file
``bad_clip_id``           a file name that is not ``<subject>_<sentence>``
``unreadable``            a vertex, audio, templates, topology or phoneme file that cannot be read
``vertex_count``          a vertex array (or template) with the wrong number of vertices or shape
``nonfinite``             NaN/Inf in vertices, audio or templates
``duration_mismatch``     audio duration x fps differs from the frame count by more than one frame
                          (:data:`memorytalker.data.audio.FRAME_TOLERANCE`)
``unknown_subject``       a split names a subject that has no clip
``unknown_clip``          a split lists a clip that does not exist
``empty_split``           a split that selects no clip
``no_template``           a subject with clips but no template in templates.pkl
========================  ==============================================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from memorytalker.errors import MemoryTalkerError


@dataclass(frozen=True)
class Finding:
    """One problem: ``kind`` (see module doc), a message naming the file/value, and the path / clip."""

    kind: str
    message: str
    path: str | None = None
    clip_id: str | None = None

    def __str__(self) -> str:
        return f"[{self.kind}] {self.message}"


def _audio_info(path: Path) -> tuple[int, int, bool]:
    """``(samples, rate, all finite)`` after decoding; raises AudioError on unreadable / empty audio."""
    from memorytalker.data.audio import read_audio_file
    from memorytalker.errors import AudioError

    data, rate = read_audio_file(path)
    if data.shape[0] == 0:
        raise AudioError(f"{path}: audio has no samples")
    return int(data.shape[0]), int(rate), bool(np.all(np.isfinite(data)))


class _Findings(list):
    def add(self, kind: str, message: str, path=None, clip_id=None) -> None:
        self.append(Finding(kind, message, str(path) if path is not None else None, clip_id))


def check_dataset(
    root: str | Path,
    layout: str | Path | None = None,
    topology=None,
    progress: bool = False,
) -> list[Finding]:
    """Check a dataset folder and return every problem found (empty list = clean).

    Args:
        root: the dataset folder.
        layout: as in :func:`memorytalker.data.load_dataset` (None = ROOT/dataset.yaml).
        topology: optional FaceTopology / topology.npz overriding the dataset's own.
        progress: show a tqdm progress bar over clips.
    """
    from tqdm import tqdm

    from memorytalker.data.layout import load_dataset

    findings = _Findings()
    try:
        index = load_dataset(root, layout=layout, topology=topology)
    except MemoryTalkerError as exc:
        return [Finding("manifest", str(exc), str(root))]
    expected_v = _expected_vertices(index, findings)
    templates, expected_v = _check_templates(index, expected_v, findings)
    paired = _pair_clips(index, findings)
    for cid in tqdm(paired, desc="data check", unit="clip", disable=not progress):
        _check_clip(index, cid, expected_v, findings)
    _check_splits_and_templates(index, paired, templates, findings)
    return list(findings)


def _expected_vertices(index, findings: _Findings) -> int | None:
    """Vertex count every array must have: the topology's, else the manifest's (else None)."""
    try:
        if index.has_topology:
            return index.topology.num_vertices
    except MemoryTalkerError as exc:
        findings.add("unreadable", f"topology: {exc}", index.root)
    return index.manifest.num_vertices


def _check_templates(index, expected_v: int | None, findings: _Findings) -> tuple[dict, int | None]:
    """Read templates.pkl (safely); with no other source of the vertex count, its most common one."""
    from memorytalker.data.layout import TEMPLATES_NAME, read_templates

    templates: dict[str, np.ndarray] = {}
    tpl_path = index.root / TEMPLATES_NAME
    if not tpl_path.is_file():
        findings.add("unreadable", f"templates file not found: {tpl_path}", tpl_path)
        return templates, expected_v
    try:
        templates = read_templates(tpl_path)
    except MemoryTalkerError as exc:
        findings.add("unreadable", str(exc), tpl_path)
    if expected_v is None and templates:
        counts = [t.shape[0] for t in templates.values()]
        expected_v = max(set(counts), key=counts.count)
    for subj, tpl in templates.items():
        if expected_v is not None and tpl.shape[0] != expected_v:
            findings.add(
                "vertex_count",
                f"{tpl_path}: template of {subj!r} has {tpl.shape[0]} vertices, expected {expected_v}",
                tpl_path,
            )
        if not np.all(np.isfinite(tpl)):
            findings.add("nonfinite", f"{tpl_path}: template of {subj!r} contains NaN/Inf", tpl_path)
    return templates, expected_v


def _pair_clips(index, findings: _Findings) -> list[str]:
    """Clip ids with both a vertex and an audio file and a valid name."""
    from memorytalker.data.layout import parse_clip_id

    verts, wavs = index.vertex_files, index.audio_files
    for cid in sorted(set(verts) - set(wavs)):
        findings.add("missing_audio", f"{verts[cid]} has no audio file wav/{cid}.wav", verts[cid], cid)
    for cid in sorted(set(wavs) - set(verts)):
        findings.add(
            "missing_vertices", f"{wavs[cid]} has no vertex file vertices_npy/{cid}.npy", wavs[cid], cid
        )
    paired: list[str] = []
    for cid in sorted(set(verts) & set(wavs)):
        try:
            parse_clip_id(cid)
            paired.append(cid)
        except MemoryTalkerError as exc:
            findings.add("bad_clip_id", str(exc), verts[cid], cid)
    return paired


def _vertex_frames(index, rec, expected_v: int | None, findings: _Findings) -> int | None:
    """Check one vertex file; its frame count at the dataset fps (None when it cannot be used)."""
    cid, path = rec.clip_id, rec.vertices_path
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except Exception as exc:
        findings.add("unreadable", f"cannot read vertices {path}: {exc}", path, cid)
        return None
    if not (
        arr.dtype.kind == "f"
        and ((arr.ndim == 2 and arr.shape[1] % 3 == 0) or (arr.ndim == 3 and arr.shape[2] == 3))
    ):
        findings.add(
            "vertex_count",
            f"{path}: {arr.dtype} array of shape {arr.shape} is neither (T, V*3) nor (T, V, 3) float",
            path,
            cid,
        )
        return None
    v = arr.shape[1] // 3 if arr.ndim == 2 else arr.shape[1]
    if expected_v is not None and v != expected_v:
        findings.add("vertex_count", f"{path}: {v} vertices per frame, expected {expected_v}", path, cid)
    bad = int(np.count_nonzero(~np.isfinite(np.asarray(arr))))
    if bad:
        findings.add("nonfinite", f"{path}: {bad} NaN/Inf values", path, cid)
    if arr.shape[0] == 0:
        findings.add("vertex_count", f"{path}: no frames", path, cid)
        return None
    return len(range(0, arr.shape[0], index.stride))


def _check_clip(index, cid: str, expected_v: int | None, findings: _Findings) -> None:
    """Vertices, audio, their lengths (:func:`~memorytalker.data.audio.frame_mismatch`) and phonemes."""
    from memorytalker.data.audio import frame_mismatch
    from memorytalker.data.layout import read_arkit, read_phonemes

    rec = index._clip(cid)
    n_frames = _vertex_frames(index, rec, expected_v, findings)
    samples = None
    try:
        samples, rate, finite = _audio_info(rec.wav_path)
        if not finite:
            findings.add("nonfinite", f"{rec.wav_path}: audio contains NaN/Inf samples", rec.wav_path, cid)
    except MemoryTalkerError as exc:
        findings.add("unreadable", str(exc), rec.wav_path, cid)
    if samples is not None and n_frames is not None:
        problem = frame_mismatch(samples / rate, n_frames, index.fps)
        if problem is not None:
            findings.add("duration_mismatch", f"{cid}: {problem}", rec.wav_path, cid)
    if rec.phonemes_path is not None:
        try:
            read_phonemes(rec.phonemes_path)
        except MemoryTalkerError as exc:
            findings.add("unreadable", str(exc), rec.phonemes_path, cid)
    arkit = index.arkit_path(rec)
    if arkit is not None:
        try:
            frames = read_arkit(arkit).shape[0]
        except MemoryTalkerError as exc:
            findings.add("unreadable", str(exc), arkit, cid)
        else:
            stored = _stored_frames(rec)
            if stored is not None and frames != stored:
                findings.add(
                    "duration_mismatch",
                    f"{cid}: {frames} frames of ARKit weights for {stored} frames of vertices",
                    arkit,
                    cid,
                )


def _stored_frames(rec) -> int | None:
    """Frames stored in a clip's vertex file (header only), None when unreadable (reported elsewhere)."""
    try:
        return int(np.load(rec.vertices_path, mmap_mode="r", allow_pickle=False).shape[0])
    except Exception:
        return None


def _check_splits_and_templates(index, paired: list[str], templates: dict, findings: _Findings) -> None:
    """Splits name existing clips/subjects and select something; every subject with clips has a template."""
    from memorytalker.data.layout import TEMPLATES_NAME, parse_clip_id

    subjects_with_clips: dict[str, list[str]] = {}
    for cid in paired:
        subjects_with_clips.setdefault(parse_clip_id(cid)[0], []).append(cid)
    for name, spec in index.manifest.splits.items():
        if spec.clips is not None:
            for c in spec.clips:
                if c not in paired:
                    findings.add(
                        "unknown_clip", f"split {name!r} lists clip {c!r}, which has no vertices+audio pair"
                    )
        else:
            for s in spec.subjects or ():
                if s not in subjects_with_clips:
                    findings.add("unknown_subject", f"split {name!r} names subject {s!r}, which has no clip")
        if not [c for c in paired if spec.selects(c, *parse_clip_id(c))]:
            findings.add("empty_split", f"split {name!r} selects no clip")
    if templates or not (index.root / TEMPLATES_NAME).is_file():
        for subj in sorted(subjects_with_clips):
            if subj not in templates:
                findings.add("no_template", f"subject {subj!r} has clips but no template in {TEMPLATES_NAME}")


def format_findings(findings: list[Finding], max_per_kind: int | None = None) -> str:
    """Group findings by kind for printing."""
    if not findings:
        return "no problems found"
    by_kind: dict[str, list[Finding]] = {}
    for f in findings:
        by_kind.setdefault(f.kind, []).append(f)
    lines = [f"{len(findings)} problem(s) found:"]
    for kind, items in by_kind.items():
        lines.append(f"{kind}: {len(items)}")
        shown = items if max_per_kind is None else items[:max_per_kind]
        lines.extend(f"  {f.message}" for f in shown)
        if len(shown) < len(items):
            lines.append(f"  ... and {len(items) - len(shown)} more")
    return "\n".join(lines)

"""PyTorch dataset and collate for training / evaluation on a :class:`~memorytalker.data.layout.DatasetIndex`.

``TalkingFaceDataset(index, split)`` yields :class:`ClipItem` s; ``collate_batch(items)`` pads them into a
:class:`Batch` (the exact structure the model and training code consume; field names are stable).
Use ``DataLoader(ds, batch_size=B, collate_fn=collate_batch)``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.data.augment import AugmentConfig, Augmenter
from memorytalker.data.layout import ClipRecord, DatasetIndex
from memorytalker.data.phonemes import SILENCE, normalize_phone, phones_to_ids
from memorytalker.errors import DatasetError

#: ``frame_phonemes`` value for frames no alignment covers.
UNKNOWN_PHONEME = -1
#: ``frame_phonemes`` value for silence (the CTC blank index, 0).
SILENCE_ID = 0
#: Seed-sequence tag of the augmentation draws (independent of the crop and triplet draws of one item).
_AUGMENT_STREAM = 7


@dataclass
class ClipItem:
    """One dataset item (unbatched).

    Attributes:
        clip_id, subject, sentence: the clip's identity.
        subject_id: index into the dataset's ``subjects`` vocabulary (sorted training subjects), -1 if unknown.
        audio: ``(S,)`` float32, 16 kHz mono.
        vertices: ``(T, V, 3)`` float32 at the dataset fps.
        template: ``(V, 3)`` float32 neutral mesh of the subject.
        phoneme_ids: ``(L,)`` long CTC targets (no blanks, no silences); empty when no alignment.
        frame_phonemes: ``(T,)`` long phoneme id per mesh frame (0 = silence, -1 = unknown).
        positive_audio / negative_audio: ``(S',)`` float32 (only with ``triplets=True``).
        head: the topology name of the clip's corpus when several corpora are trained together
            (:class:`~memorytalker.data.corpora.CorpusDataset`); None for one corpus.
    """

    clip_id: str
    subject: str
    sentence: int
    subject_id: int
    audio: torch.Tensor
    vertices: torch.Tensor
    template: torch.Tensor
    phoneme_ids: torch.Tensor
    frame_phonemes: torch.Tensor
    positive_audio: torch.Tensor | None = None
    negative_audio: torch.Tensor | None = None
    positive_clip_id: str | None = None
    negative_clip_id: str | None = None
    head: str | None = None


@dataclass
class Batch:
    """A padded batch (``collate_batch``). Padding is zeros; masks/lengths say what is real.

    Attributes:
        audio: ``(B, S)`` float32 16 kHz mono, zero-padded.
        audio_lengths: ``(B,)`` long, valid samples per row.
        vertices: ``(B, T, V, 3)`` float32, zero-padded after ``frame_lengths``.
        frame_lengths: ``(B,)`` long, valid mesh frames per row.
        frame_mask: ``(B, T)`` bool, True = valid frame.
        templates: ``(B, V, 3)`` float32 subject neutral meshes.
        subjects: ``list[str]`` of length B.
        subject_ids: ``(B,)`` long index into the dataset's sorted training-subject list (-1 = unknown).
        sentences: ``(B,)`` long sentence numbers.
        clip_ids: ``list[str]`` of length B.
        phoneme_targets: ``(B, L)`` long CTC targets (ids of ``memorytalker.data.phonemes.CTC_VOCAB``),
            zero-padded; ``phoneme_lengths`` ``(B,)`` long (0 where the clip has no alignment).
        frame_phonemes: ``(B, T)`` long phoneme id per mesh frame (0 = silence, -1 = unknown / padding).
        positive_audio / positive_lengths, negative_audio / negative_lengths: ``(B, S+)`` / ``(B,)`` and
            ``(B, S-)`` / ``(B,)`` triplet audio (another clip of the same subject / a clip of another
            subject); None unless the dataset was built with ``triplets=True``.
        head: the topology name of the batch's corpus (several corpora trained together: every clip of a
            batch comes from one corpus); None for one corpus (the model's own topology).
    """

    audio: torch.Tensor
    audio_lengths: torch.Tensor
    vertices: torch.Tensor
    frame_lengths: torch.Tensor
    frame_mask: torch.Tensor
    templates: torch.Tensor
    subjects: list[str]
    subject_ids: torch.Tensor
    sentences: torch.Tensor
    clip_ids: list[str]
    phoneme_targets: torch.Tensor
    phoneme_lengths: torch.Tensor
    frame_phonemes: torch.Tensor
    positive_audio: torch.Tensor | None = None
    positive_lengths: torch.Tensor | None = None
    negative_audio: torch.Tensor | None = None
    negative_lengths: torch.Tensor | None = None
    head: str | None = None

    def __len__(self) -> int:
        return int(self.audio.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """A copy with every tensor moved to ``device`` (lists of strings are shared)."""
        changes = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value.to(device, non_blocking=non_blocking)
        return dataclasses.replace(self, **changes)

    def pin_memory(self) -> Batch:
        """Pinned-memory copy (used by ``DataLoader(pin_memory=True)``)."""
        changes = {
            f.name: getattr(self, f.name).pin_memory()
            for f in dataclasses.fields(self)
            if isinstance(getattr(self, f.name), torch.Tensor)
        }
        return dataclasses.replace(self, **changes)


def _pad_1d(seqs: Sequence[torch.Tensor], value: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    lengths = torch.tensor([int(s.shape[0]) for s in seqs], dtype=torch.long)
    longest = int(lengths.max()) if len(seqs) else 0
    out = torch.full((len(seqs), longest), value, dtype=seqs[0].dtype)
    for i, s in enumerate(seqs):
        out[i, : s.shape[0]] = s
    return out, lengths


def collate_batch(items: Sequence[ClipItem]) -> Batch:
    """Pad a list of :class:`ClipItem` into a :class:`Batch` (see its docstring for every field)."""
    if not items:
        raise DatasetError("collate_batch: empty list of items")
    heads = {it.head for it in items}
    if len(heads) != 1:
        raise DatasetError(
            f"collate_batch: items of different corpora in one batch {sorted(map(str, heads))}"
        )
    num_v = {tuple(it.vertices.shape[1:]) for it in items}
    if len(num_v) != 1:
        raise DatasetError(f"collate_batch: items have different vertex shapes {sorted(num_v)}")
    audio, audio_lengths = _pad_1d([it.audio for it in items])
    frame_lengths = torch.tensor([int(it.vertices.shape[0]) for it in items], dtype=torch.long)
    t_max = int(frame_lengths.max())
    v_shape = items[0].vertices.shape[1:]
    vertices = torch.zeros((len(items), t_max, *v_shape), dtype=torch.float32)
    for i, it in enumerate(items):
        vertices[i, : it.vertices.shape[0]] = it.vertices
    frame_mask = torch.arange(t_max)[None, :] < frame_lengths[:, None]
    phon = [it.phoneme_ids for it in items]
    if max(int(p.shape[0]) for p in phon) == 0:
        phoneme_targets = torch.zeros((len(items), 0), dtype=torch.long)
        phoneme_lengths = torch.zeros(len(items), dtype=torch.long)
    else:
        phoneme_targets, phoneme_lengths = _pad_1d(phon, 0)
    frame_phonemes = torch.full((len(items), t_max), UNKNOWN_PHONEME, dtype=torch.long)
    for i, it in enumerate(items):
        frame_phonemes[i, : it.frame_phonemes.shape[0]] = it.frame_phonemes
    batch = Batch(
        audio=audio,
        audio_lengths=audio_lengths,
        vertices=vertices,
        frame_lengths=frame_lengths,
        frame_mask=frame_mask,
        templates=torch.stack([it.template for it in items]).float(),
        subjects=[it.subject for it in items],
        subject_ids=torch.tensor([it.subject_id for it in items], dtype=torch.long),
        sentences=torch.tensor([it.sentence for it in items], dtype=torch.long),
        clip_ids=[it.clip_id for it in items],
        phoneme_targets=phoneme_targets,
        phoneme_lengths=phoneme_lengths,
        frame_phonemes=frame_phonemes,
        head=items[0].head,
    )
    has_pos = [it.positive_audio is not None for it in items]
    if any(has_pos):
        if not all(has_pos) or any(it.negative_audio is None for it in items):
            raise DatasetError("collate_batch: some items carry triplet audio and some do not")
        batch.positive_audio, batch.positive_lengths = _pad_1d([it.positive_audio for it in items])
        batch.negative_audio, batch.negative_lengths = _pad_1d([it.negative_audio for it in items])
    return batch


def frame_phoneme_ids(alignment: dict | None, num_frames: int, fps: float) -> torch.Tensor:
    """``(T,)`` long phoneme id per mesh frame from an alignment (frame centre ``(t + 0.5) / fps``).

    Silence -> 0, frames no phone covers -> -1, else the CTC vocabulary id of the phone.
    """
    out = torch.full((num_frames,), UNKNOWN_PHONEME, dtype=torch.long)
    if not alignment:
        return out
    centres = (np.arange(num_frames) + 0.5) / float(fps)
    for p in alignment["phonemes"]:
        try:
            phone = normalize_phone(str(p["phone"]))
        except ValueError as exc:
            raise DatasetError(f"phoneme alignment: {exc}") from None
        pid = SILENCE_ID if phone == SILENCE else phones_to_ids([phone])[0]
        sel = (centres >= float(p["start"])) & (centres < float(p["end"]))
        out[torch.from_numpy(sel)] = pid
    return out


def speaker_motion_rms(index: DatasetIndex, split: str) -> dict[str, float]:
    """Each subject's articulation amplitude in a split: the RMS displacement of the lip vertices
    (``topology.lips``) from the subject's template over all its clips and frames, in the data's unit."""
    lips = index.topology.lips
    sums: dict[str, list[float]] = {}
    for rec in index.clips(split):
        d = index.load_vertices(rec)[:, lips] - index.templates[rec.subject][lips]  # (T, L, 3)
        acc = sums.setdefault(rec.subject, [0.0, 0.0])
        acc[0] += float(np.square(d, dtype=np.float64).sum())
        acc[1] += d.size
    if not sums:
        raise DatasetError(f"dataset {index.root}: split {split!r} has no clips")
    return {s: float(np.sqrt(total / n)) for s, (total, n) in sorted(sums.items())}


def speaker_motion_scales(
    index: DatasetIndex, split: str, reference: float | None = None
) -> tuple[dict[str, float], float]:
    """``({subject: rms / reference}, reference)``: the divisors that move every subject of ``split`` at
    one amplitude (:func:`speaker_motion_rms`); ``reference`` defaults to the median subject's RMS (pass
    the training split's to normalise another split to the same amplitude). A subject that never moves its
    lips cannot be normalised: a :class:`DatasetError` names it."""
    rms = speaker_motion_rms(index, split)
    still = sorted(s for s, r in rms.items() if not r > 0)
    if still:
        raise DatasetError(f"split {split!r}: subject(s) {still} never move the lips (RMS 0): no amplitude")
    ref = float(np.median(list(rms.values()))) if reference is None else float(reference)
    if not ref > 0:
        raise DatasetError(f"speaker_motion_scales: reference amplitude must be positive, got {ref}")
    return {s: r / ref for s, r in rms.items()}, ref


class TalkingFaceDataset(torch.utils.data.Dataset):
    """Clips of one split as :class:`ClipItem` s (collate with :func:`collate_batch`).

    Args:
        index: the dataset (:func:`memorytalker.data.load_dataset`).
        split: split name (``"train"``, ``"val"``, ``"test"``, ...).
        cache: keep decoded audio and vertices in memory after the first read.
        triplets: also return a positive audio (another clip of the same subject in this split) and a
            negative audio (a clip of another subject), drawn deterministically from ``(seed, epoch, i)``.
        max_seconds: crop longer clips to a window of this length (start drawn from ``(seed, epoch, i)``;
            audio, vertices and frame phonemes are cropped together). None keeps whole clips.
        seed: base seed for triplet sampling, cropping and augmentation; call :meth:`set_epoch` each epoch.
        subjects: subject-id vocabulary; defaults to the dataset's sorted training subjects.
        augment: put every audio of an item (and its triplet audio) through this chain of recording
            conditions (:mod:`memorytalker.data.augment`), drawn from ``(seed, epoch, index)``; None or
            ``enabled: false`` = the audio as stored. Vertices and phone timings are never changed.
        speaker_scale: ``{subject: s}``: each clip's motion about its template is divided by its subject's
            ``s`` (:func:`speaker_motion_scales`: every speaker moved at one reference amplitude); None = the
            vertices as stored. Every subject of the split needs a positive, finite ``s``.
    """

    def __init__(
        self,
        index: DatasetIndex,
        split: str,
        cache: bool = False,
        triplets: bool = False,
        max_seconds: float | None = None,
        seed: int = 0,
        subjects: Sequence[str] | None = None,
        augment: AugmentConfig | None = None,
        speaker_scale: Mapping[str, float] | None = None,
    ) -> None:
        self.index = index
        self.augmenter = Augmenter(augment) if augment is not None and augment.enabled else None
        self.split = split
        self.records: list[ClipRecord] = index.clips(split)
        self.cache = cache
        self.triplets = triplets
        if max_seconds is not None and not max_seconds > 0:
            raise DatasetError(f"max_seconds must be positive, got {max_seconds}")
        self.max_seconds = max_seconds
        self.seed = int(seed)
        self.epoch = 0
        self.subjects = list(subjects) if subjects is not None else index.train_subjects
        self._subject_ids = {s: i for i, s in enumerate(self.subjects)}
        self._cache: dict[tuple[str, str], object] = {}
        self.fps = index.fps
        index.check_lengths(self.records, f"split {split!r}")
        templates = index.templates
        missing = sorted({r.subject for r in self.records} - set(templates))
        if missing:
            raise DatasetError(
                f"dataset {index.root}: subject(s) {missing} have no template in templates.pkl"
            )
        self._by_subject: dict[str, list[int]] = {}
        for i, r in enumerate(self.records):
            self._by_subject.setdefault(r.subject, []).append(i)
        self.speaker_scale = None if speaker_scale is None else dict(speaker_scale)
        if self.speaker_scale is not None:
            bad = sorted(
                s
                for s in self._by_subject
                if not (
                    isinstance(self.speaker_scale.get(s), (int, float)) and 0 < self.speaker_scale[s] < np.inf
                )
            )
            if bad:
                raise DatasetError(
                    f"split {split!r}: speaker_scale has no positive finite scale for subject(s) {bad}"
                )
        if triplets:
            lonely = sorted(s for s, idx in self._by_subject.items() if len(idx) < 2)
            if lonely:
                raise DatasetError(
                    f"triplets need >= 2 clips per subject in split {split!r}; subject(s) {lonely} have one"
                )
            if len(self._by_subject) < 2:
                raise DatasetError(f"triplets need >= 2 subjects in split {split!r}")

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Change the triplet / crop draws (deterministic per ``(seed, epoch, index)``)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------------ cached reads
    def _get(self, kind: str, rec: ClipRecord):
        key = (kind, rec.clip_id)
        if key in self._cache:
            return self._cache[key]
        if kind == "audio":
            value = torch.from_numpy(self.index.load_audio(rec))
        elif kind == "vertices":
            value = torch.from_numpy(self.index.load_vertices(rec))
        else:
            value = self.index.load_phonemes(rec)
        if self.cache:
            self._cache[key] = value
        return value

    def _rng(self, i: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch, i])

    # ------------------------------------------------------------------ items
    def __getitem__(self, i: int) -> ClipItem:
        if not 0 <= i < len(self.records):
            raise IndexError(i)
        rec = self.records[i]
        rng = self._rng(i)
        audio = self._get("audio", rec)
        vertices = self._get("vertices", rec)
        alignment = self._get("phonemes", rec)
        frames = frame_phoneme_ids(alignment, int(vertices.shape[0]), self.fps)
        phones = [p["phone"] for p in alignment["phonemes"]] if alignment else []
        if self.max_seconds is not None:
            audio, vertices, frames, phones = self._crop(audio, vertices, frames, alignment, rng)
        aug_rng = np.random.default_rng([self.seed, self.epoch, i, _AUGMENT_STREAM])
        audio = self._augment(audio, aug_rng)
        try:
            phoneme_ids = torch.tensor(phones_to_ids(phones), dtype=torch.long)
        except ValueError as exc:
            raise DatasetError(f"{rec.phonemes_path}: {exc}") from None
        template = torch.from_numpy(self.index.templates[rec.subject].copy())
        if self.speaker_scale is not None:
            vertices = template + (vertices - template) / float(self.speaker_scale[rec.subject])
        item = ClipItem(
            clip_id=rec.clip_id,
            subject=rec.subject,
            sentence=rec.sentence,
            subject_id=self._subject_ids.get(rec.subject, -1),
            audio=audio,
            vertices=vertices,
            template=template,
            phoneme_ids=phoneme_ids,
            frame_phonemes=frames,
        )
        if self.triplets:
            same = [j for j in self._by_subject[rec.subject] if j != i]
            others = [j for s, idx in self._by_subject.items() if s != rec.subject for j in idx]
            pos = self.records[same[int(rng.integers(len(same)))]]
            neg = self.records[others[int(rng.integers(len(others)))]]
            item.positive_audio, item.positive_clip_id = (
                self._augment(self._get("audio", pos), aug_rng),
                pos.clip_id,
            )
            item.negative_audio, item.negative_clip_id = (
                self._augment(self._get("audio", neg), aug_rng),
                neg.clip_id,
            )
        return item

    def _augment(self, audio: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        if self.augmenter is None:
            return audio
        out, steps = self.augmenter(audio.numpy(), rng)
        return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32)) if steps else audio

    def _crop(self, audio, vertices, frames, alignment, rng):
        max_frames = max(1, int(round(self.max_seconds * self.fps)))
        t = int(vertices.shape[0])
        phones = [p["phone"] for p in alignment["phonemes"]] if alignment else []
        if t <= max_frames:
            return audio, vertices, frames, phones
        start = int(rng.integers(0, t - max_frames + 1))
        end = start + max_frames
        spf = SAMPLE_RATE / self.fps
        a0, a1 = int(round(start * spf)), int(round(end * spf))
        t0, t1 = start / self.fps, end / self.fps
        # CTC targets of the window: phones whose midpoint falls inside it.
        if alignment:
            phones = [
                p["phone"]
                for p in alignment["phonemes"]
                if t0 <= (float(p["start"]) + float(p["end"])) / 2 < t1
            ]
        return audio[a0:a1], vertices[start:end], frames[start:end], phones

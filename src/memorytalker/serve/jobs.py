"""Upload checking and the generation jobs behind ``memorytalker serve``.

* :class:`ServeSettings` - the server's limits and folders (one dataclass; the CLI only fills it in).
* :func:`check_upload` - turns uploaded bytes into ``(S,)`` 16 kHz mono speech or raises
  :class:`UploadError` carrying the HTTP status and a message meant for the page. The duration is probed
  from the container (libsndfile header or PyAV packet timestamps) *before* decoding, so a tiny, very long
  file cannot make the server decode hours of audio.
* :class:`JobManager` - runs :func:`memorytalker.pipeline.animate_to_files` (animate -> ``.npy`` -> ``.glb``
  -> ``.mp4``, the same pipeline as ``memorytalker animate``) in a thread pool
  with ``workers`` threads and at most ``max_queued`` waiting jobs, each in its own folder named by a random
  hex id. Finished jobs beyond ``keep_jobs`` are deleted, oldest first.
"""

from __future__ import annotations

import io
import logging
import re
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from memorytalker.data.audio import MIN_SPEECH_SECONDS
from memorytalker.errors import AudioError, ConfigError, MemoryTalkerError
from memorytalker.pipeline import AnimatorLike, OutputOptions, animate_to_files

log = logging.getLogger("memorytalker.serve")

#: Files a finished job can hold: public name -> media type. Nothing else is ever served from a job folder.
JOB_FILES: dict[str, str] = {
    "audio.wav": "audio/wav",
    "face.npy": "application/octet-stream",
    "face.csv": "text/csv",
    "face.glb": "model/gltf-binary",
    "face.mp4": "video/mp4",
    "avatar.glb": "model/gltf-binary",
}
#: Stem of a job's result files (``face.npy``, ``face.glb``, ``face.mp4``).
JOB_STEM = "face"
#: Short keys the status JSON uses for the files above.
FILE_KEYS: dict[str, str] = {
    "audio.wav": "wav",
    "face.npy": "npy",
    "face.csv": "csv",
    "face.glb": "glb",
    "face.mp4": "mp4",
    "avatar.glb": "avatar",
}

#: Pipeline steps in order (the page shows "step i of n: <label>").
STAGES: tuple[tuple[str, str], ...] = (
    ("queued", "waiting for a free worker"),
    ("animating", "predicting the face motion"),
    ("exporting", "writing the animated 3D face (.glb)"),
    ("rendering", "rendering the video (.mp4)"),
)

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")


class UploadError(MemoryTalkerError):
    """An upload the server refuses; ``status`` is the HTTP status code (4xx, or 503 when busy)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = int(status)


@dataclass
class ServeSettings:
    """Settings of ``memorytalker serve``.

    Attributes:
        host, port: where uvicorn listens (``127.0.0.1`` keeps the page local to this machine).
        checkpoint: model checkpoint (``None``: the package's embedded default).
        max_seconds: longest accepted recording (seconds of audio).
        min_seconds: shortest accepted recording (seconds; at least
            :data:`memorytalker.data.audio.MIN_SPEECH_SECONDS`, the rule of ``memorytalker animate``).
        max_bytes: largest accepted upload (bytes of the audio file).
        upload_seconds: longest time an upload may take to arrive (slower ones get HTTP 408).
        workers: generation jobs that run at the same time (each uses the CPU fully; 1 suits 2 cores).
        max_queued: jobs that may wait for a worker; further uploads get HTTP 503 "busy".
        keep_jobs: finished jobs kept on disk (oldest deleted first).
        device: torch device of the model (``auto``: CUDA when available).
        output_dir: folder for the job folders; ``None``: a temporary folder removed when the server stops.
    """

    host: str = "127.0.0.1"
    port: int = 8000
    checkpoint: str | None = None
    max_seconds: float = 60.0
    min_seconds: float = MIN_SPEECH_SECONDS
    max_bytes: int = 20_000_000
    upload_seconds: float = 60.0
    workers: int = 1
    max_queued: int = 4
    keep_jobs: int = 32
    output_dir: str | None = None
    device: str = "auto"

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first setting out of range."""
        if not (0 < self.port < 65536):
            raise ConfigError(f"port must be in 1..65535, got {self.port}")
        if not (self.max_seconds > 0):
            raise ConfigError(f"max_seconds must be positive, got {self.max_seconds}")
        if not (MIN_SPEECH_SECONDS <= self.min_seconds < self.max_seconds):
            raise ConfigError(
                f"min_seconds must be in [{MIN_SPEECH_SECONDS:g}, max_seconds={self.max_seconds}), got "
                f"{self.min_seconds}"
            )
        if not (self.upload_seconds > 0):
            raise ConfigError(f"upload_seconds must be positive, got {self.upload_seconds}")
        if self.max_bytes < 1:
            raise ConfigError(f"max_bytes must be at least 1, got {self.max_bytes}")
        if self.workers < 1:
            raise ConfigError(f"workers must be at least 1, got {self.workers}")
        if self.max_queued < 0:
            raise ConfigError(f"max_queued must be >= 0, got {self.max_queued}")
        if self.keep_jobs < 1:
            raise ConfigError(f"keep_jobs must be at least 1, got {self.keep_jobs}")


# ------------------------------------------------------------------------------------------ uploads
def format_bytes(n: float) -> str:
    """``20000000`` -> ``"20 MB"`` (decimal units, as browsers show file sizes)."""
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.3g} {unit}"
        n /= 1000
    return f"{n} GB"  # pragma: no cover


def probe_seconds(data: bytes, stop_after: float | None = None) -> float | None:
    """Duration of encoded audio in seconds without decoding it, or ``None`` when it cannot be told.

    libsndfile formats report their frame count; other containers (WebM/Opus, MP3, M4A...) are demuxed
    with PyAV and the audio packets' end times summed, stopping once ``stop_after`` is exceeded.
    """
    import soundfile as sf

    try:
        info = sf.info(io.BytesIO(data))
        if info.samplerate > 0 and info.frames > 0:
            return info.frames / info.samplerate
    except Exception:  # not a libsndfile format: ask FFmpeg
        pass
    try:
        import av

        with av.open(io.BytesIO(data)) as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                return None
            stream = streams[0]
            end = 0.0
            start = None
            for packet in container.demux(stream):
                if packet.pts is None or packet.time_base is None:
                    continue
                t0 = float(packet.pts * packet.time_base)
                t1 = t0 + float((packet.duration or 0) * packet.time_base)
                start = t0 if start is None else min(start, t0)
                end = max(end, t1)
                if stop_after is not None and end - start > stop_after:
                    break
            return None if start is None else max(0.0, end - start)
    except Exception:
        return None


def check_upload(data: bytes, filename: str, settings: ServeSettings, sample_rate: int) -> np.ndarray:
    """Validate an uploaded audio file and decode it to ``(S,)`` float32 mono at ``sample_rate``.

    Raises:
        UploadError: 400 empty file, 413 larger than ``max_bytes``, 415 not readable audio, 422 too short,
            too long (> ``max_seconds``) or silent.
    """
    from memorytalker.data.audio import load_audio, read_audio_file

    shown = filename or "the upload"
    if len(data) == 0:
        raise UploadError(f"{shown} is empty (0 bytes); choose a recording with speech in it", 400)
    if len(data) > settings.max_bytes:
        raise UploadError(
            f"{shown} is {format_bytes(len(data))} ({len(data):,} bytes), larger than this server's limit of "
            f"{format_bytes(settings.max_bytes)} ({settings.max_bytes:,} bytes)",
            413,
        )
    limit = settings.max_seconds
    probed = probe_seconds(data, stop_after=limit)
    if probed is not None and probed > limit + 0.05:
        raise UploadError(
            f"{shown} is longer than this server's limit of {limit:g} s ({probed:.1f} s or more); "
            "upload or record a shorter clip",
            422,
        )
    try:
        raw, rate = read_audio_file(data)
    except AudioError as exc:
        log.info("refused %r: %s", filename, exc)
        raise UploadError(
            f"{shown} is not an audio file this server can read; upload speech as WAV, FLAC, OGG, MP3, "
            "M4A or WebM/Opus",
            415,
        ) from None
    seconds = raw.shape[0] / rate if rate > 0 else 0.0
    if seconds > limit:
        raise UploadError(
            f"{shown} is {seconds:.1f} s long, longer than this server's limit of {limit:g} s; "
            "upload or record a shorter clip",
            422,
        )
    try:
        return load_audio(
            raw,
            sample_rate=rate,
            target_rate=sample_rate,
            min_duration=settings.min_seconds,
            reject_silence=True,
        )
    except AudioError as exc:
        message = str(exc).replace("audio array: ", "")
        raise UploadError(f"{shown}: {message}", 422) from None


# ------------------------------------------------------------------------------------------ jobs
@dataclass
class Job:
    """One upload's generation job (all fields read under :attr:`JobManager.lock`)."""

    id: str
    folder: Path
    filename: str
    seconds: float
    status: str = "queued"  # queued | running | done | failed
    stage: str = "queued"
    error: str | None = None
    created: float = field(default_factory=time.time)
    started: float | None = None
    finished: float | None = None
    files: list[str] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)

    def to_json(self, url_prefix: str) -> dict[str, Any]:
        """The status the page polls: ``status``, ``stage``, ``step``/``steps``, ``error``, file URLs."""
        names = [s for s, _ in STAGES]
        step = names.index(self.stage) + 1 if self.stage in names else len(names)
        now = self.finished or time.time()
        return {
            "id": self.id,
            "status": self.status,
            "stage": self.stage,
            "stage_label": dict(STAGES).get(self.stage, self.stage),
            "step": step,
            "steps": len(names),
            "error": self.error,
            "filename": self.filename,
            "seconds": round(self.seconds, 3),
            "elapsed": round(now - self.created, 2),
            "files": {FILE_KEYS[f]: f"{url_prefix}/{self.id}/files/{f}" for f in self.files},
            **self.result,
        }


@dataclass
class Reservation:
    """One place in the job queue held by an upload in progress (:meth:`JobManager.reserve`)."""

    used: bool = False


class JobManager:
    """Runs generation jobs in a thread pool; owns the job folders under ``root``."""

    def __init__(self, settings: ServeSettings, animator: AnimatorLike, sample_rate: int) -> None:
        self.settings = settings
        self.animator = animator
        self.sample_rate = int(sample_rate)
        if settings.output_dir is None:
            self.root = Path(tempfile.mkdtemp(prefix="memorytalker-serve-"))
            self._owns_root = True
        else:
            self.root = Path(settings.output_dir).resolve()
            self.root.mkdir(parents=True, exist_ok=True)
            self._owns_root = False
        self.lock = threading.Lock()
        self.jobs: dict[str, Job] = {}
        self.reserved = 0  # places held by uploads being read or decoded
        self.executor = ThreadPoolExecutor(
            max_workers=settings.workers, thread_name_prefix="memorytalker-job"
        )

    # ---------------------------------------------------------------- queries
    def get(self, job_id: str) -> Job | None:
        """The job with this id, or ``None`` (ids that are not 32 lowercase hex digits never match)."""
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            return None
        with self.lock:
            return self.jobs.get(job_id)

    def file_path(self, job_id: str, name: str) -> Path | None:
        """Path of a finished file of a job, or ``None``: only names in :data:`JOB_FILES` are served."""
        if name not in JOB_FILES:
            return None
        job = self.get(job_id)
        if job is None:
            return None
        with self.lock:
            ready = name in job.files
        path = job.folder / name
        return path if ready and path.is_file() else None

    def pending(self) -> int:
        """Jobs queued or running."""
        with self.lock:
            return sum(j.status in ("queued", "running") for j in self.jobs.values())

    # ---------------------------------------------------------------- submission
    @contextmanager
    def reserve(self) -> Iterator[Reservation]:
        """Hold one place of the ``workers + max_queued`` capacity while an upload is read and decoded;
        :meth:`submit` turns it into a job, leaving the block without one gives the place back.

        Raises:
            UploadError: 503 when every place is taken by pending jobs and uploads in progress.
        """
        capacity = self.settings.workers + self.settings.max_queued
        with self.lock:
            busy = self.reserved + sum(j.status in ("queued", "running") for j in self.jobs.values())
            if busy >= capacity:
                raise UploadError(
                    f"the server is busy ({busy} animations in progress or waiting); try again in a minute",
                    503,
                )
            self.reserved += 1
        place = Reservation()
        try:
            yield place
        finally:
            if not place.used:
                with self.lock:
                    self.reserved -= 1

    def submit(self, audio: np.ndarray, filename: str, place: Reservation | None = None) -> Job:
        """Start a job for ``(S,)`` float32 speech at :attr:`sample_rate`, in a reserved ``place`` (None:
        reserve one now).

        Raises:
            UploadError: 503 when there is no place (without a reservation).
        """
        if place is None:
            with self.reserve() as own:
                return self.submit(audio, filename, own)
        from memorytalker.data.audio import write_wav

        if place.used:
            raise RuntimeError("a reservation serves one job")
        with self.lock:
            job_id = uuid.uuid4().hex
            folder = self.root / job_id
            folder.mkdir()
            job = Job(id=job_id, folder=folder, filename=filename, seconds=audio.shape[0] / self.sample_rate)
            self.jobs[job_id] = job
            place.used = True
            self.reserved -= 1
        write_wav(folder / "audio.wav", audio, self.sample_rate)
        with self.lock:
            job.files.append("audio.wav")
        self.executor.submit(self._run, job, audio)
        log.info("job %s: %r, %.2f s of audio queued", job_id, filename, job.seconds)
        return job

    def retarget(self, job_id: str, avatar: bytes) -> dict[str, Any]:
        """Play a finished job's ARKit track (``face.csv``) on an uploaded avatar ``.glb``; writes the job's
        ``avatar.glb`` (replacing an earlier one) and returns what was mapped.

        Raises:
            UploadError: unknown job (404), a job without an ARKit track (409), an avatar that cannot be
                retargeted (400, the message says why: not a .glb, no ARKit-named targets, ...).
        """
        from memorytalker.face.livelink import read_live_link_csv
        from memorytalker.render.retarget import RetargetError, retarget_glb

        job = self.get(job_id)
        if job is None:
            raise UploadError(f"no job {job_id!r} (unknown, or deleted to make room)", 404)
        track = self.file_path(job_id, "face.csv")
        if track is None:
            raise UploadError(
                "this job has no ARKit weights to play (not finished, or not on the project's face)", 409
            )
        take = read_live_link_csv(track, fps=float(self.animator.fps))
        src = job.folder / ".avatar-upload.glb"
        try:
            src.write_bytes(avatar)
            with self.lock:
                if "avatar.glb" in job.files:
                    job.files.remove("avatar.glb")
            report = retarget_glb(take.weights, take.fps, src, job.folder / "avatar.glb", track="face.csv")
        except RetargetError as exc:
            raise UploadError(str(exc).replace(str(src), "the avatar"), 400) from None
        finally:
            src.unlink(missing_ok=True)
        self._add_file(job, "avatar.glb")
        return {
            "mapped": sum(len(m) for m in report.mapped.values()),
            "unmapped_targets": sorted({n for names in report.unmapped_targets.values() for n in names}),
            "missing_arkit": report.missing_arkit,
            "frames": report.frames,
            "fps": report.fps,
        }

    def _set(self, job: Job, **changes: Any) -> None:
        with self.lock:
            for k, v in changes.items():
                setattr(job, k, v)

    def _add_file(self, job: Job, name: str) -> None:
        with self.lock:
            job.files.append(name)

    def _run(self, job: Job, audio: np.ndarray) -> None:
        self._set(job, status="running", started=time.time())
        try:
            files = animate_to_files(
                self.animator,
                audio,
                job.folder,
                JOB_STEM,
                sample_rate=self.sample_rate,
                options=OutputOptions(progress=False),  # the page shows the progress
                glb_audio=job.folder / "audio.wav",
                on_step=lambda stage: self._set(job, stage=stage),
                on_file=lambda path: self._add_file(job, path.name),
            )
            result = {"frames": files.frames, "vertices": files.vertices, "fps": files.fps}
        except Exception as exc:
            # the pipeline removed what it had written: list only the files that remain (the upload)
            self._set(job, files=[f for f in job.files if (job.folder / f).is_file()])
            self._fail(job, exc)
        else:
            self._set(job, status="done", stage="done", result=result, finished=time.time())
            log.info("job %s done in %.1f s", job.id, job.finished - job.created)
        self._prune()

    def _fail(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, MemoryTalkerError):
            log.warning("job %s failed: %s", job.id, exc)
            self._set(job, status="failed", error=str(exc), finished=time.time())
        else:  # a bug: keep serving, tell the page, log the traceback
            log.error("job %s crashed:\n%s", job.id, "".join(traceback.format_exception(exc)))
            self._set(
                job,
                status="failed",
                error=f"internal error while {job.stage}: {type(exc).__name__}: {exc}",
                finished=time.time(),
            )

    def _prune(self) -> None:
        """Delete the oldest finished jobs beyond ``keep_jobs``."""
        with self.lock:
            finished = sorted(
                (j for j in self.jobs.values() if j.status in ("done", "failed")), key=lambda j: j.created
            )
            drop = finished[: max(0, len(finished) - self.settings.keep_jobs)]
            for j in drop:
                del self.jobs[j.id]
        for j in drop:
            shutil.rmtree(j.folder, ignore_errors=True)

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no job is pending (tests); ``False`` on timeout."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.pending() == 0:
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        """Stop accepting work, drop queued jobs, and remove the folder when it is a temporary one."""
        self.executor.shutdown(wait=True, cancel_futures=True)
        if self._owns_root:
            shutil.rmtree(self.root, ignore_errors=True)

"""``memorytalker serve``: upload checks, the job API, result files, limits, and no path traversal.

The generation tests run the real pipeline: :class:`memorytalker.inference.Animator` on a tiny, randomly
initialised checkpoint (see :func:`build_tiny_animator`), then ``memorytalker.render.export_glb`` and
``render_video``.
"""

from __future__ import annotations

import io
import threading
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.errors import ConfigError, MemoryTalkerError
from memorytalker.serve.jobs import ServeSettings, UploadError, check_upload, probe_seconds

fastapi = pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
from fastapi.testclient import TestClient  # noqa: E402

from memorytalker.serve import create_app  # noqa: E402


# ------------------------------------------------------------------------------------------ helpers
def speech_like(seconds: float, rate: int = SAMPLE_RATE, seed: int = 0) -> np.ndarray:
    """A vowel-like signal: a 120-220 Hz glottal pulse train through two formants, syllable envelope."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    f0 = 150 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    voice = sum(np.sin(k * phase) / k for k in range(1, 12))
    formants = np.sin(2 * np.pi * 700 * t) * 0.3 + np.sin(2 * np.pi * 1200 * t) * 0.2
    envelope = 0.5 * (1 - np.cos(2 * np.pi * 3.0 * t))  # three "syllables" per second
    signal = (0.6 * voice / 3 + formants * voice / 6) * envelope + 0.003 * rng.normal(size=n)
    return (0.5 * signal / np.max(np.abs(signal))).astype(np.float32)


def wav_bytes(audio: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, audio, rate, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def webm_opus_bytes(audio: np.ndarray, rate: int = 48000) -> bytes:
    """Encode ``audio`` (at ``rate``) as WebM/Opus, what a browser's MediaRecorder uploads."""
    import av

    buf = io.BytesIO()
    with av.open(buf, "w", format="webm") as container:
        stream = container.add_stream("libopus", rate=rate)
        stream.layout = "mono"
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
        step = 960
        for start in range(0, pcm.size, step):
            frame = av.AudioFrame.from_ndarray(pcm[None, start : start + step], format="s16", layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            frame.time_base = Fraction(1, rate)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def tiny_topology():
    """A 6 x 6 vertex grid "face" (50 triangles) with lips at the bottom and the upper face at the top."""
    from memorytalker.topology import FaceTopology

    n = 6
    xs, ys = np.meshgrid(np.linspace(-0.05, 0.05, n), np.linspace(0.05, -0.05, n))
    zs = 0.01 * np.cos(xs * 30) * np.cos(ys * 30)
    vertices = np.stack([xs.ravel(), ys.ravel(), zs.ravel()], axis=1)
    faces = []
    for r in range(n - 1):
        for c in range(n - 1):
            a = r * n + c
            faces += [[a, a + n, a + 1], [a + 1, a + n, a + n + 1]]
    lips = [n * (n - 2) + 2, n * (n - 2) + 3, n * (n - 1) + 2, n * (n - 1) + 3]
    return FaceTopology(
        "grid6", vertices, np.array(faces), 30.0, {"lips": lips, "upper_face": list(range(n))}
    )


def build_tiny_animator(folder: Path):
    """A real ``memorytalker.inference.Animator`` on a tiny, randomly initialised checkpoint.

    The model is ``MemoryTalker(ModelConfig(), tiny_topology())`` (the default config uses the compact
    audio backbone, nothing pretrained is read) with a random vertex head (a trained model's face moves; a
    fresh zero-initialised head would not), saved with the project's one checkpoint writer.
    """
    import torch

    from memorytalker import inference
    from memorytalker.models.builders import build_model
    from memorytalker.models.config import ModelConfig
    from memorytalker.models.loaders import save_checkpoint

    torch.manual_seed(0)
    topology = tiny_topology()
    cfg = ModelConfig()
    model = build_model(cfg, topology, load_pretrained=False)
    with torch.no_grad():  # the head is zero-initialised: give it weights so the face moves with the audio
        torch.nn.init.normal_(model.decoder.head.weight, std=1e-2)
    path = save_checkpoint(folder / "tiny.pt", model, topology)
    return inference.Animator(checkpoint=path)


@pytest.fixture(scope="module")
def animator(tmp_path_factory):
    return build_tiny_animator(tmp_path_factory.mktemp("serve_model"))


@pytest.fixture
def settings(tmp_path) -> ServeSettings:
    return ServeSettings(max_seconds=3.0, max_bytes=400_000, output_dir=str(tmp_path / "jobs"))


def wait_job(client, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = client.get(f"/api/jobs/{job_id}").json()
        if status["status"] in ("done", "failed"):
            return status
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {status}")


def post_audio(client, data: bytes, name: str = "speech.wav", field: str = "audio"):
    return client.post("/api/jobs", files={field: (name, data, "application/octet-stream")})


# ------------------------------------------------------------------------------------------ settings
@pytest.mark.parametrize(
    "changes, word",
    [
        ({"max_seconds": 0}, "max_seconds"),
        ({"max_bytes": 0}, "max_bytes"),
        ({"workers": 0}, "workers"),
        ({"port": 70000}, "port"),
        ({"min_seconds": 5.0, "max_seconds": 2.0}, "min_seconds"),
        ({"keep_jobs": 0}, "keep_jobs"),
    ],
)
def test_settings_refuse_bad_values(changes, word):
    with pytest.raises(ConfigError, match=word):
        ServeSettings(**changes).validate()


def test_cli_refuses_bad_settings_before_loading_a_model(capsys):
    from memorytalker.cli import main

    assert main(["serve", "--max-seconds", "-1"]) == 2
    assert "max_seconds must be positive" in capsys.readouterr().err


def test_cli_help_lists_the_options():
    from memorytalker.cli import build_parser

    help_text = build_parser()._subparsers._group_actions[0].choices["serve"].format_help()
    for option in ("--host", "--port", "--checkpoint", "--max-seconds", "--max-bytes"):
        assert option in help_text


# ------------------------------------------------------------------------------------------ upload checks
def test_check_upload_decodes_wav_and_resamples():
    audio = speech_like(1.0, rate=44100)
    out = check_upload(wav_bytes(audio, 44100), "a.wav", ServeSettings(), SAMPLE_RATE)
    assert out.dtype == np.float32 and out.ndim == 1
    assert out.shape[0] == SAMPLE_RATE  # 1 s at 16 kHz, exact rational resampling
    assert np.max(np.abs(out)) > 0.3


def test_check_upload_decodes_browser_webm_opus():
    audio = speech_like(1.5, rate=48000)
    data = webm_opus_bytes(audio)
    assert probe_seconds(data) == pytest.approx(1.5, abs=0.05)
    out = check_upload(data, "recording.webm", ServeSettings(), SAMPLE_RATE)
    assert out.shape[0] == pytest.approx(1.5 * SAMPLE_RATE, abs=0.03 * SAMPLE_RATE)


@pytest.mark.parametrize(
    "data, status, words",
    [
        (b"", 400, "empty"),
        (b"hello, this is a text file and not speech" * 10, 415, "not an audio file"),
        (b"\x00" * 500_001, 413, "larger than this server's limit of 500 kB"),
    ],
)
def test_check_upload_refuses_bad_bytes(data, status, words):
    with pytest.raises(UploadError, match=words) as info:
        check_upload(data, "x.bin", ServeSettings(max_bytes=500_000), SAMPLE_RATE)
    assert info.value.status == status
    assert "x.bin" in str(info.value)


@pytest.mark.parametrize("container", ["wav", "webm"])
def test_check_upload_refuses_too_long_audio(container):
    rate = SAMPLE_RATE if container == "wav" else 48000
    audio = speech_like(4.0, rate=rate)
    data = wav_bytes(audio, rate) if container == "wav" else webm_opus_bytes(audio, rate)
    with pytest.raises(UploadError, match="longer than this server's limit of 2.5 s") as info:
        check_upload(data, f"long.{container}", ServeSettings(max_seconds=2.5), SAMPLE_RATE)
    assert info.value.status == 422


def test_probe_stops_early_on_long_files():
    data = webm_opus_bytes(speech_like(6.0, rate=48000))
    assert probe_seconds(data) == pytest.approx(6.0, abs=0.05)
    assert 1.0 < probe_seconds(data, stop_after=1.0) < 1.5


def test_check_upload_refuses_silence_and_too_short():
    with pytest.raises(UploadError, match="silent") as info:
        check_upload(wav_bytes(np.zeros(SAMPLE_RATE, np.float32)), "quiet.wav", ServeSettings(), SAMPLE_RATE)
    assert info.value.status == 422
    with pytest.raises(
        UploadError, match=r"0.100 s long, shorter than the minimum of 0.25 s of speech"
    ) as info:
        check_upload(wav_bytes(speech_like(0.1)), "short.wav", ServeSettings(), SAMPLE_RATE)
    assert info.value.status == 422


# ------------------------------------------------------------------------------------------ the API
def test_generates_npy_glb_and_mp4(animator, settings):
    import av
    import pygltflib

    audio = speech_like(1.2)
    with TestClient(create_app(settings, animator=animator)) as client:
        info = client.get("/api/info").json()
        assert info["max_seconds"] == 3.0 and info["max_bytes"] == 400_000
        assert info["vertices"] == animator.topology.num_vertices

        r = post_audio(client, wav_bytes(audio), "hello.wav")
        assert r.status_code == 202, r.text
        job = r.json()
        assert len(job["id"]) == 32 and job["status_url"] == f"/api/jobs/{job['id']}"
        status = wait_job(client, job["id"])
        assert status["status"] == "done", status
        assert status["filename"] == "hello.wav" and status["seconds"] == pytest.approx(1.2, abs=1e-3)
        assert set(status["files"]) == {"wav", "npy", "glb", "mp4"}

        npy = client.get(status["files"]["npy"])
        assert npy.status_code == 200
        vertices = np.load(io.BytesIO(npy.content))
        expected_frames = int(round(1.2 * animator.fps))
        assert vertices.shape == (expected_frames, animator.topology.num_vertices, 3)
        assert status["frames"] == expected_frames
        assert np.all(np.isfinite(vertices))

        glb = client.get(status["files"]["glb"])
        assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
        gltf = pygltflib.GLTF2.load_from_bytes(glb.content)
        assert len(gltf.animations) >= 1 and gltf.meshes[0].primitives[0].targets

        mp4 = client.get(status["files"]["mp4"])
        assert mp4.status_code == 200 and mp4.headers["content-type"] == "video/mp4"
        with av.open(io.BytesIO(mp4.content)) as container:
            kinds = sorted(s.type for s in container.streams)
            assert kinds == ["audio", "video"]
            assert container.streams.video[0].codec_context.name == "h264"
        # range requests (video seeking in browsers)
        part = client.get(status["files"]["mp4"], headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and len(part.content) == 100

        wav = client.get(status["files"]["wav"])
        assert wav.status_code == 200 and wav.content[:4] == b"RIFF"
        job_dir = Path(settings.output_dir) / job["id"]
        assert sorted(p.name for p in job_dir.iterdir()) == ["audio.wav", "face.glb", "face.mp4", "face.npy"]


def test_bad_uploads_get_clear_errors_and_the_server_keeps_serving(animator, settings):
    long_audio = wav_bytes(speech_like(3.5))
    with TestClient(create_app(settings, animator=animator)) as client:
        cases = [
            (post_audio(client, b"", "empty.wav"), 400, "empty.wav is empty"),
            (
                post_audio(client, b"<html>not audio</html>" * 50, "page.html"),
                415,
                "page.html is not an audio",
            ),
            (post_audio(client, long_audio, "long.wav"), 422, "longer than this server's limit of 3 s"),
            (
                post_audio(client, b"\x01" * 400_001, "big.wav"),
                413,
                "big.wav is 400 kB (400,001 bytes), larger than",
            ),
            (
                post_audio(client, b"\x01" * 600_000, "huge.wav"),
                413,
                "larger than this server's limit of 400 kB",
            ),
            (
                post_audio(client, wav_bytes(speech_like(1.0)), "a.wav", field="file"),
                400,
                "file field 'audio'",
            ),
            (
                client.post("/api/jobs", content=b"raw", headers={"content-type": "audio/wav"}),
                400,
                "multipart",
            ),
            (
                client.post(
                    "/api/jobs", content=b"--x\r\nbroken", headers={"content-type": "multipart/form-data"}
                ),
                400,
                "",
            ),
            (post_audio(client, wav_bytes(np.zeros(8000, np.float32)), "silent.wav"), 422, "silent"),
            (  # chunked body without Content-Length: counted while it streams in
                client.post(
                    "/api/jobs",
                    content=(b"\x01" * 100_000 for _ in range(6)),
                    headers={"content-type": "multipart/form-data; boundary=x"},
                ),
                413,
                "larger than this server's limit of 400 kB",
            ),
        ]
        for response, status, words in cases:
            assert response.status_code == status, (status, response.text)
            assert response.headers["content-type"] == "application/json"
            assert words in response.json()["error"]
        assert not any(Path(settings.output_dir).iterdir())  # nothing was queued
        ok = post_audio(client, wav_bytes(speech_like(0.6)), "fine.wav")
        assert ok.status_code == 202
        assert wait_job(client, ok.json()["id"])["status"] == "done"


def test_no_path_traversal(animator, settings, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    with TestClient(create_app(settings, animator=animator)) as client:
        job = post_audio(client, wav_bytes(speech_like(0.5))).json()
        wait_job(client, job["id"])
        jid = job["id"]
        for url in (
            f"/api/jobs/{jid}/files/..%2F..%2Fsecret.txt",
            f"/api/jobs/{jid}/files/%2e%2e%2fsecret.txt",
            f"/api/jobs/{jid}/files/audio.wav%2F..%2F..%2Fsecret.txt",
            f"/api/jobs/..%2F{jid}/files/audio.wav",
            f"/api/jobs/{jid.upper()}/files/audio.wav",
            f"/api/jobs/{jid}/files/face.npy.bak",
            "/api/jobs/..%2F..%2Fsecret.txt",
            "/static/..%2F..%2Fjobs.py",
            "/static/%2e%2e/jobs.py",
        ):
            r = client.get(url)
            assert r.status_code == 404, url
            assert b"TOP-SECRET" not in r.content and b"import" not in r.content
            assert "error" in r.json()
        assert client.get(f"/api/jobs/{jid}/files/audio.wav").status_code == 200
        page = client.get("/")
        assert page.status_code == 200 and "importmap" in page.text
        three = client.get("/static/vendor/three/build/three.module.min.js")
        assert three.status_code == 200 and "three.core.min.js" in three.text


class _Gate:
    """Wraps an animator; ``animate`` waits until the gate opens (to hold jobs in the queue)."""

    def __init__(self, inner, fail_with: Exception | None = None) -> None:
        self.inner = inner
        self.open = threading.Event()
        self.fail_with = fail_with

    @property
    def topology(self):
        return self.inner.topology

    @property
    def fps(self):
        return self.inner.fps

    def animate(self, audio, sample_rate=None, template=None):
        assert self.open.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        return self.inner.animate(audio, sample_rate=sample_rate, template=template)


def test_concurrency_limit_and_busy_answer(animator, settings):
    gate = _Gate(animator)
    settings.workers, settings.max_queued = 1, 1
    data = wav_bytes(speech_like(0.5))
    with TestClient(create_app(settings, animator=gate)) as client:
        first = post_audio(client, data).json()
        second = post_audio(client, data).json()
        deadline = time.time() + 10
        while client.get(f"/api/jobs/{first['id']}").json()["status"] != "running" and time.time() < deadline:
            time.sleep(0.02)
        assert client.get(f"/api/jobs/{first['id']}").json()["stage"] == "animating"
        assert client.get(f"/api/jobs/{second['id']}").json()["status"] == "queued"
        busy = post_audio(client, data)
        assert busy.status_code == 503 and "busy" in busy.json()["error"]
        gate.open.set()
        assert wait_job(client, first["id"])["status"] == "done"
        assert wait_job(client, second["id"])["status"] == "done"
        assert post_audio(client, data).status_code == 202


def test_failed_generation_is_reported(animator, settings):
    gate = _Gate(animator, fail_with=MemoryTalkerError("template has 3 vertices, the model expects 12"))
    gate.open.set()
    with TestClient(create_app(settings, animator=gate)) as client:
        job = post_audio(client, wav_bytes(speech_like(0.5))).json()
        status = wait_job(client, job["id"])
        assert status["status"] == "failed"
        assert "template has 3 vertices" in status["error"]
        gate.fail_with = RuntimeError("boom")
        job = post_audio(client, wav_bytes(speech_like(0.5))).json()
        status = wait_job(client, job["id"])
        assert status["status"] == "failed" and "internal error while animating" in status["error"]
        gate.fail_with = None
        assert (
            wait_job(client, post_audio(client, wav_bytes(speech_like(0.5))).json()["id"])["status"] == "done"
        )


def test_old_jobs_are_pruned_and_temp_folder_removed(animator):
    settings = ServeSettings(max_seconds=3.0, keep_jobs=2)
    app = create_app(settings, animator=animator)
    root = app.state.jobs.root
    assert root.is_dir() and root.name.startswith("memorytalker-serve-")
    with TestClient(app) as client:
        ids = []
        for i in range(3):
            job = post_audio(client, wav_bytes(speech_like(0.4, seed=i))).json()
            wait_job(client, job["id"])
            ids.append(job["id"])
        app.state.jobs.wait_idle()
        assert client.get(f"/api/jobs/{ids[0]}").status_code == 404
        assert not (root / ids[0]).exists()
        assert all(client.get(f"/api/jobs/{i}").json()["status"] == "done" for i in ids[1:])
    assert not root.exists()  # the temporary folder goes with the server


# ------------------------------------------------------------------------------------------ your avatar
def test_retarget_plays_the_job_on_an_uploaded_avatar(settings, tmp_path):
    """On the project's face (the embedded model) a job has ARKit weights; an uploaded avatar .glb gets them
    as its 'speech' animation; bad avatars and jobs without weights get clear errors."""
    import pygltflib
    from test_retarget import AVATAR_TARGETS, _avatar

    from memorytalker import inference

    face_animator = inference.Animator()
    good, plain = tmp_path / "avatar.glb", tmp_path / "plain.glb"
    _avatar(good)
    _avatar(plain, names=["smile", "frown"])
    with TestClient(create_app(settings, animator=face_animator)) as client:
        job = post_audio(client, wav_bytes(speech_like(1.2)), "hello.wav").json()
        status = wait_job(client, job["id"])
        assert status["status"] == "done", status
        assert {"csv", "glb", "npy", "mp4", "wav"} <= set(status["files"])
        csv_text = client.get(status["files"]["csv"]).text
        assert csv_text.startswith("Timecode,BlendShapeCount,EyeBlinkLeft")
        url = f"/api/jobs/{job['id']}/retarget"
        r = client.post(url, files={"avatar": ("me.glb", good.read_bytes(), "model/gltf-binary")})
        assert r.status_code == 200, r.text
        body = r.json()
        assert (
            body["mapped"] == 5
            and body["unmapped_targets"] == ["wink"]
            and "tongueOut" in body["missing_arkit"]
        )
        assert body["frames"] == status["frames"]
        glb = client.get(body["url"])
        assert glb.status_code == 200 and glb.headers["content-type"] == "model/gltf-binary"
        gl = pygltflib.GLTF2.load_from_bytes(glb.content)
        assert [a.name for a in gl.animations] == ["idle", "speech"]
        assert gl.meshes[0].extras["targetNames"] == AVATAR_TARGETS
        assert "avatar" in client.get(f"/api/jobs/{job['id']}").json()["files"]

        r = client.post(url, files={"avatar": ("plain.glb", plain.read_bytes(), "model/gltf-binary")})
        assert r.status_code == 400 and "no ARKit-named morph targets" in r.json()["error"]
        assert "smile, frown" in r.json()["error"] and str(tmp_path) not in r.json()["error"]
        r = client.post(url, files={"avatar": ("x.glb", b"not a glb at all, just text", "model/gltf-binary")})
        assert r.status_code == 400 and "glb" in r.json()["error"]
        r = client.post(f"/api/jobs/{'0' * 32}/retarget", files={"avatar": ("me.glb", good.read_bytes())})
        assert r.status_code == 404
        assert client.get("/api/info").status_code == 200  # still serving


def test_retarget_refuses_a_job_without_arkit_weights(animator, settings, tmp_path):
    from test_retarget import _avatar

    good = tmp_path / "avatar.glb"
    _avatar(good)
    with TestClient(create_app(settings, animator=animator)) as client:  # tiny topology: no ARKit weights
        job = post_audio(client, wav_bytes(speech_like(1.2)), "hello.wav").json()
        assert wait_job(client, job["id"])["status"] == "done"
        r = client.post(f"/api/jobs/{job['id']}/retarget", files={"avatar": ("me.glb", good.read_bytes())})
        assert r.status_code == 409 and "no ARKit weights" in r.json()["error"]

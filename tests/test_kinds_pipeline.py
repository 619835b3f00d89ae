"""Every model kind goes through the same product paths as MemoryTalker: a debug training run through the CLI,
then ``memorytalker animate`` (.npy, .mp4 with the speech, .glb), ``memorytalker export`` and the web server's
job API, all with the trained checkpoint."""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
KINDS = ["memorytalker", "faceformer", "selftalk", "unitalker", "imitator", "codetalker", "scantalk"]
STAGES = {
    "memorytalker": "memorizing",
    "faceformer": "faceformer",
    "selftalk": "selftalk",
    "unitalker": "unitalker",
    "imitator": "imitator",
    "codetalker": "codetalker",
    "scantalk": "scantalk",
}
#: Kinds that animate only after an earlier stage: the stages trained first (each with ``--stage``).
EARLIER_STAGES = {"codetalker": ["codetalker_vq"]}


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_learnable_dataset(tmp_path_factory.mktemp("kinds") / "data")


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("kinds_audio") / "speech.wav"
    t = np.arange(int(1.2 * 16000)) / 16000
    audio = 0.3 * np.sin(2 * np.pi * 180 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 4 * t) ** 2)
    sf.write(path, audio.astype(np.float32), 16000)
    return path


def trained(kind: str, data: Path, folder: Path) -> Path:
    config = CONFIGS / ("debug.yaml" if kind == "memorytalker" else f"debug_{kind}.yaml")
    stages = [*EARLIER_STAGES[kind], STAGES[kind]] if kind in EARLIER_STAGES else [None]
    for stage in stages:  # None: the config's own stage
        named = [] if stage is None else ["--stage", stage]
        args = ["train", "--config", str(config), *named, f"data.root={data}", f"output_dir={folder}"]
        assert cli_main(args) == 0
    return folder / STAGES[kind] / "best.pt"


@pytest.mark.parametrize("kind", KINDS)
def test_animate_export_and_serve(kind, data, wav, tmp_path):
    import av
    from fastapi.testclient import TestClient

    from memorytalker.inference import Animator
    from memorytalker.serve import create_app
    from memorytalker.serve.jobs import ServeSettings

    best = trained(kind, data, tmp_path / "run")
    out = tmp_path / "out"
    assert cli_main(["animate", str(wav), "--checkpoint", str(best), "--out", str(out), "--size", "128"]) == 0
    vertices = np.load(out / "speech.npy")
    assert vertices.shape == (36, 12, 3) and np.isfinite(vertices).all()
    with av.open(str(out / "speech.mp4")) as container:
        assert sorted(s.type for s in container.streams) == ["audio", "video"]
        assert container.streams.video[0].frames == 36
    assert (out / "speech.glb").stat().st_size > 0
    obj = tmp_path / "export"
    assert (
        cli_main(
            ["export", str(out / "speech.npy"), "--data", str(data), "--format", "obj", "--out", str(obj)]
        )
        == 0
    )
    assert len(list(obj.glob("*.obj"))) == 36

    settings = ServeSettings(max_seconds=3.0, output_dir=str(tmp_path / "jobs"))
    with TestClient(create_app(settings, animator=Animator(best))) as client:
        buf = io.BytesIO()
        sf.write(buf, sf.read(wav)[0], 16000, format="WAV")
        r = client.post("/api/jobs", files={"audio": ("speech.wav", buf.getvalue(), "audio/wav")})
        assert r.status_code == 202, r.text
        deadline = time.time() + 60
        while (status := client.get(r.json()["status_url"]).json())["status"] not in ("done", "failed"):
            assert time.time() < deadline
            time.sleep(0.05)
        assert status["status"] == "done", status
        served = np.load(io.BytesIO(client.get(status["files"]["npy"]).content))
    assert np.allclose(served, vertices, atol=1e-5)

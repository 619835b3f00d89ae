"""Hostile and broken inputs, as a new user would try them: every case asserts the exit code (or HTTP
status) and the message, and that nothing was run or left behind.

Audio, meshes, checkpoints, datasets (including pickles that would run code), configs and the web server.
A command's user error exits 2 with one line ``memorytalker <command>: error: ...``; ``data check`` exits 1
when it finds problems.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from test_model_common import randomize_head, speechlike, tiny_config, tiny_topology
from training_data import make_learnable_dataset

from memorytalker.cli import main as cli_main
from memorytalker.data.audio import SAMPLE_RATE
from memorytalker.models.loaders import save_checkpoint
from memorytalker.models.memorytalker import MemoryTalker
from memorytalker.topology import save_mesh

DEBUG = Path(__file__).resolve().parents[1] / "configs" / "debug.yaml"


def run(capsys, *argv: str) -> tuple[int, str]:
    """``memorytalker ARGV`` -> (exit code, what it printed: stdout then stderr)."""
    capsys.readouterr()
    code = cli_main([str(a) for a in argv])
    printed = capsys.readouterr()
    return code, printed.out + printed.err


def _bytes_file(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _audio_file(path: Path, samples: np.ndarray, subtype: str = "PCM_16") -> Path:
    sf.write(path, samples, SAMPLE_RATE, subtype=subtype)
    return path


class _Payload:
    """Unpickling this runs ``touch <marker>`` under a plain ``pickle.load``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def poisoned_pickle(path: Path, marker: Path) -> Path:
    with open(path, "wb") as fh:
        pickle.dump({"spk00": _Payload(marker)}, fh, protocol=2)
    return path


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    model = MemoryTalker(tiny_config(), tiny_topology())
    randomize_head(model)
    return save_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", model, tiny_topology())


@pytest.fixture(scope="module")
def nan_ckpt(tmp_path_factory) -> Path:
    model = MemoryTalker(tiny_config(), tiny_topology())
    with torch.no_grad():
        model.decoder.head.weight.fill_(float("nan"))
    return save_checkpoint(tmp_path_factory.mktemp("nan") / "nan.pt", model, tiny_topology())


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    sf.write(path, speechlike(1.0), SAMPLE_RATE)
    return path


@pytest.fixture
def data(tmp_path) -> Path:
    return make_learnable_dataset(tmp_path / "data")


def animate(capsys, ckpt, out, *extra) -> tuple[int, str]:
    return run(
        capsys, "animate", *extra, "-c", ckpt, "--out", out, "--no-video", "--no-glb", "--device", "cpu"
    )


# ------------------------------------------------------------------------------------------ audio
@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda d: d / "missing.wav", "audio file not found"),
        (lambda d: d, "is a folder, not an audio file"),
        (lambda d: _bytes_file(d / "empty.wav", b""), "empty (0 bytes)"),
        (lambda d: _bytes_file(d / "noise.wav", os.urandom(4000)), "not a readable audio"),
        (lambda d: _audio_file(d / "quiet.wav", np.zeros(SAMPLE_RATE)), "silent"),
        (
            lambda d: _audio_file(d / "blip.wav", speechlike(0.05)),
            "shorter than the minimum of 0.25 s of speech",
        ),
        (
            lambda d: _audio_file(d / "nan.wav", np.full(SAMPLE_RATE, np.nan, np.float32), "FLOAT"),
            "NaN or Inf",
        ),
    ],
    ids=["missing", "folder", "empty", "random-bytes", "silent", "0.05s", "nan"],
)
def test_bad_audio(capsys, ckpt, tmp_path, make, words):
    src = make(tmp_path)
    code, err = animate(capsys, ckpt, tmp_path / "out", src)
    assert code == 2 and words in err
    assert not any((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True


def test_same_recording_twice_and_outputs_that_would_overwrite_an_input(capsys, ckpt, wav, tmp_path):
    code, err = animate(capsys, ckpt, tmp_path / "out", wav, wav)
    assert code == 2 and "is given twice" in err
    inside = tmp_path / "out" / "speech.npy"  # an "audio" input named like the .npy output
    inside.parent.mkdir()
    shutil.copy(wav, inside.with_suffix(".wav"))
    code, err = animate(capsys, ckpt, tmp_path / "out", inside.with_suffix(".wav"))
    assert code == 2 and "would overwrite the input recording" in err
    assert sf.info(str(inside.with_suffix(".wav"))).frames > 0  # untouched


def test_output_names_are_unique_and_name_their_inputs(capsys, ckpt, wav, tmp_path):
    (tmp_path / "x").mkdir(), (tmp_path / "y").mkdir()
    a, b, c = tmp_path / "x" / "a.wav", tmp_path / "y" / "a.wav", tmp_path / "a-2.wav"
    sf.write(a, speechlike(0.6, seed=1), SAMPLE_RATE)
    sf.write(b, speechlike(0.9, seed=2), SAMPLE_RATE)
    sf.write(c, speechlike(1.2, seed=3), SAMPLE_RATE)
    code, _ = animate(capsys, ckpt, tmp_path / "out", a, b, c)
    assert code == 0
    out = {p.name: np.load(p).shape[0] for p in (tmp_path / "out").glob("*.npy")}
    assert out == {"x__a.npy": 18, "y__a.npy": 27, "a-2.npy": 36}  # each input's own length


def test_out_that_is_a_file_and_unknown_devices(capsys, ckpt, wav, tmp_path):
    (tmp_path / "f").write_text("x")
    code, err = animate(capsys, ckpt, tmp_path / "f", wav)
    assert code == 2 and "is an existing file" in err
    code, err = run(capsys, "animate", wav, "-c", ckpt, "--out", tmp_path / "o", "--device", "xyz")
    assert code == 2 and "'xyz' is not a device" in err
    if not torch.cuda.is_available():
        code, err = run(capsys, "animate", wav, "-c", ckpt, "--out", tmp_path / "o", "--device", "cuda")
        assert code == 2 and "no usable CUDA GPU" in err
    code, err = run(capsys, "evaluate", "-c", ckpt, "-d", tmp_path, "--device", "gpu7")
    assert code == 2 and "is not a device" in err


# ------------------------------------------------------------------------------------------ meshes
def test_bad_templates(capsys, ckpt, wav, tmp_path):
    (tmp_path / "noise.obj").write_bytes(os.urandom(3000) + b"\x00")
    code, err = animate(capsys, ckpt, tmp_path / "o", wav, "-t", tmp_path / "noise.obj")
    assert code == 2 and "is not an OBJ mesh: it is binary data" in err
    (tmp_path / "words.obj").write_text("hello world\nthis is not a mesh\n")
    code, err = animate(capsys, ckpt, tmp_path / "o", wav, "-t", tmp_path / "words.obj")
    assert code == 2 and "has no vertex lines" in err
    (tmp_path / "bad.ply").write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nend_header\n1 2\n")
    code, err = animate(capsys, ckpt, tmp_path / "o", wav, "-t", tmp_path / "bad.ply")
    assert code == 2 and "not a valid PLY file" in err
    save_mesh(tmp_path / "small.ply", np.zeros((5, 3)) + np.arange(5)[:, None], np.array([[0, 1, 2]]))
    code, err = animate(capsys, ckpt, tmp_path / "o", wav, "-t", tmp_path / "small.ply")
    assert code == 2 and "has 5 vertices, but the model's topology 'tiny' has 12" in err
    np.save(tmp_path / "nan.npy", np.full((12, 3), np.nan, np.float32))
    code, err = animate(capsys, ckpt, tmp_path / "o", wav, "-t", tmp_path / "nan.npy")
    assert code == 2 and "NaN/Inf" in err


def test_a_face_less_obj_is_a_template_but_not_a_mesh_to_draw(capsys, ckpt, wav, tmp_path):
    verts = tiny_topology().vertices
    (tmp_path / "points.obj").write_text("".join(f"v {x} {y} {z}\n" for x, y, z in verts))
    code, _ = animate(capsys, ckpt, tmp_path / "o", wav, "-t", tmp_path / "points.obj")
    assert code == 0  # a neutral face needs vertices only
    np.save(tmp_path / "seq.npy", np.repeat(verts[None], 3, 0))
    code, err = run(
        capsys, "render", tmp_path / "seq.npy", "--mesh", tmp_path / "points.obj", "--out", tmp_path / "v.mp4"
    )
    assert code == 2 and "triangles" in err and not (tmp_path / "v.mp4").exists()


# ------------------------------------------------------------------------------------------ checkpoints
def test_bad_checkpoints(capsys, wav, tmp_path):
    code, err = animate(capsys, tmp_path / "none.pt", tmp_path / "o", wav)
    assert code == 2 and "checkpoint not found" in err
    (tmp_path / "noise.pt").write_bytes(os.urandom(2000))
    code, err = animate(capsys, tmp_path / "noise.pt", tmp_path / "o", wav)
    assert code == 2 and "cannot read checkpoint" in err
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    code, err = animate(capsys, tmp_path / "other.pt", tmp_path / "o", wav)
    assert code == 2 and "is not a memorytalker checkpoint" in err
    marker = tmp_path / "ran"
    with open(tmp_path / "evil.pt", "wb") as fh:
        pickle.dump({"format": _Payload(marker)}, fh, protocol=2)
    code, err = animate(capsys, tmp_path / "evil.pt", tmp_path / "o", wav)
    assert code == 2 and "cannot read checkpoint" in err and not marker.exists()


def test_checkpoint_missing_a_tensor(capsys, ckpt, wav, tmp_path):
    state = torch.load(ckpt, weights_only=True)
    del state["model_state"]["decoder.head.weight"]
    torch.save(state, tmp_path / "cut.pt")
    code, err = animate(capsys, tmp_path / "cut.pt", tmp_path / "o", wav)
    assert code == 2 and "missing keys: decoder.head.weight" in err


@pytest.mark.parametrize("export", [False, True], ids=["vertices-only", "with-export"])
def test_nan_weights_write_nothing(capsys, nan_ckpt, wav, tmp_path, export):
    out = tmp_path / "out"
    argv = ["animate", wav, "-c", nan_ckpt, "--out", out, "--device", "cpu"]
    code, err = run(capsys, *(argv if export else [*argv, "--no-video", "--no-glb"]))
    assert code == 2 and "NaN/Inf vertex positions" in err and "Nothing was written" in err
    assert not out.exists() or not any(out.iterdir())


# ------------------------------------------------------------------------------------------ datasets
def test_poisoned_templates_run_no_code(capsys, ckpt, data, tmp_path):
    marker = tmp_path / "ran"
    poisoned_pickle(data / "templates.pkl", marker)
    code, printed = run(capsys, "data", "check", data)
    assert code == 1 and "refused to load templates" in printed and not marker.exists()
    code, err = run(capsys, "train", "--config", DEBUG, f"data.root={data}", f"output_dir={tmp_path / 'r'}")
    assert code == 2 and "refused to load templates" in err and "posix.system" in err
    code, err = run(capsys, "evaluate", "-c", ckpt, "-d", data, "--out", tmp_path / "r.json", "--no-progress")
    assert code == 2 and "refused to load" in err and not marker.exists()


def test_poisoned_region_pickle_for_synth_and_prepare(capsys, tmp_path, fake_vocaset_raw):
    marker = tmp_path / "ran"
    regions = poisoned_pickle(tmp_path / "masks.pkl", marker)
    mesh = tmp_path / "m.ply"
    save_mesh(mesh, tiny_topology().vertices, tiny_topology().faces)
    code, err = run(capsys, "synth", "--out", tmp_path / "s", "--template", mesh, "--regions", regions)
    assert code == 2 and "refused to load" in err and not marker.exists()
    raw = tmp_path / "raw"
    shutil.copytree(fake_vocaset_raw.raw, raw)
    poisoned_pickle(raw / "templates.pkl", marker)
    code, err = run(capsys, "prepare", "vocaset", "--raw", raw, "--out", tmp_path / "p", "--no-progress")
    assert code == 2 and "refused to load" in err and not marker.exists()


def test_dataset_with_one_nan_vertex(capsys, data, tmp_path):
    clip = sorted((data / "vertices_npy").glob("spk00_*.npy"))[0]
    v = np.load(clip)
    v[2, 5] = np.nan
    np.save(clip, v)
    code, err = run(capsys, "train", "--config", DEBUG, f"data.root={data}", f"output_dir={tmp_path / 'r'}")
    assert code == 2 and f"{clip.name}: NaN/Inf vertex positions in 1 of" in err and "frame 2" in err


def test_training_refuses_a_clip_whose_vertices_do_not_fit_its_audio(capsys, data, tmp_path):
    clip = sorted((data / "vertices_npy").glob("spk01_*.npy"))[0]
    v = np.load(clip)
    np.save(clip, v[: len(v) // 3])
    code, err = run(capsys, "train", "--config", DEBUG, f"data.root={data}", f"output_dir={tmp_path / 'r'}")
    assert code == 2 and "differ in length" in err and clip.stem in err and "tolerance 1 frame" in err
    code, printed = run(capsys, "data", "check", data)
    assert code == 1 and f"{clip.stem}: audio is" in printed and "tolerance 1 frame" in printed  # one rule


def test_evaluate_dir_refuses_short_predictions(capsys, data, tmp_path):
    pred = tmp_path / "pred"
    pred.mkdir()
    for f in (data / "vertices_npy").glob("spk04_*.npy"):
        np.save(pred / f.name, np.load(f).reshape(-1, 12, 3)[:5])
    code, err = run(
        capsys, "evaluate-dir", pred, data, "--split", "test", "--no-progress", "-o", tmp_path / "r.json"
    )
    assert code == 2 and "differ from the ground truth by more than 1 frame" in err and "spk04_s01" in err


def test_missing_dataset(capsys, ckpt, tmp_path):
    code, err = run(capsys, "evaluate", "-c", ckpt, "-d", tmp_path / "nope", "--no-progress")
    assert code == 2 and "nope" in err


# ------------------------------------------------------------------------------------------ configs
@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        (["optim.batchsize=2"], "unknown config key(s) ['batchsize'] in optim"),
        (["stage=stage9"], "stage 'stage9' is not defined"),
        (["data.val_split=test"], "never on a test split"),
        (["stage.lr=-1"], "lr must be positive"),
        (["optim.grad_clip=[1"], "cannot parse value"),
        (["model.kind=nosuchkind"], "model.kind must be one of ['memorytalker', "),
        (["nonsense"], "must look like key.sub=value"),
    ],
)
def test_bad_config_overrides(capsys, overrides, words):
    code, err = run(capsys, "train", "--config", DEBUG, "--print-config", *overrides)
    assert code == 2 and words in err


def test_bad_config_files(capsys, tmp_path):
    code, err = run(capsys, "train", "--config", tmp_path / "none.yaml")
    assert code == 2 and "config file not found" in err
    (tmp_path / "bad.yaml").write_text("optim: [unclosed\n")
    code, err = run(capsys, "train", "--config", tmp_path / "bad.yaml")
    assert code == 2 and "invalid YAML" in err
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    code, err = run(capsys, "train", "--config", tmp_path / "list.yaml")
    assert code == 2 and "top level must be a mapping" in err


# ------------------------------------------------------------------------------------------ the server
fastapi = pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")


@pytest.fixture(scope="module")
def client(ckpt, tmp_path_factory):
    from fastapi.testclient import TestClient

    from memorytalker.inference import Animator
    from memorytalker.serve import ServeSettings, create_app

    settings = ServeSettings(
        max_bytes=400_000, workers=1, max_queued=0, output_dir=str(tmp_path_factory.mktemp("jobs"))
    )
    app = create_app(settings, animator=Animator(ckpt, device="cpu"))
    with TestClient(app) as c:
        yield c


def upload(client, data: bytes, name: str = "a.wav"):
    return client.post("/api/jobs", files={"audio": (name, data, "audio/wav")})


def _wav_bytes(x: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, x, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buf.getvalue()


def test_server_refuses_with_the_same_rules_as_animate(client):
    r = upload(client, _wav_bytes(speechlike(0.05)))
    assert r.status_code == 422 and "shorter than the minimum of 0.25 s of speech" in r.json()["error"]
    r = upload(client, os.urandom(3000), "x.wav")
    assert r.status_code == 415 and "not an audio file" in r.json()["error"]
    r = upload(client, b"\0" * 500_000)
    assert r.status_code == 413 and "larger than this server's limit" in r.json()["error"]
    r = client.post("/api/jobs", data={"audio": "text"})
    assert r.status_code == 400


def test_server_answers_busy_before_reading_an_upload(client):
    jobs = client.app.state.jobs
    with jobs.reserve():  # the only place (1 worker, no queue) is taken
        r = upload(client, _wav_bytes(speechlike(1.0)))
        assert r.status_code == 503 and "busy" in r.json()["error"]
        assert jobs.reserved == 1
    assert jobs.reserved == 0  # given back


def test_a_slow_upload_times_out():
    from memorytalker.errors import MemoryTalkerError
    from memorytalker.serve import ServeSettings
    from memorytalker.serve.app import limited_receive

    class Slow:
        headers: dict = {}

        async def receive(self):
            await asyncio.sleep(5)
            return {"type": "http.request", "body": b"x", "more_body": True}

    receive = limited_receive(Slow(), ServeSettings(upload_seconds=0.2))
    with pytest.raises(MemoryTalkerError, match="did not arrive within 0.2 s") as info:
        asyncio.run(receive())
    assert info.value.status == 408

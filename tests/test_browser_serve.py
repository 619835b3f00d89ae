"""End to end in headless Chromium: the page uploads and records speech, shows the animated face, plays the
video, and shows a clear message for a bad file while the server keeps serving.

Needs Debian's ``/usr/bin/chromium`` and the Python ``playwright`` package (``playwright install`` is never
run). WebGL runs on SwiftShader (software), so no GPU and no display are needed.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--use-angle=swiftshader",  # WebGL without a GPU
    "--enable-unsafe-swiftshader",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",  # a microphone that plays a beep
    "--use-fake-ui-for-media-stream",  # grant microphone access without a prompt
]
JOB_TIMEOUT_MS = 90_000

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The real app (tiny random checkpoint) served by uvicorn on a free port in a thread."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (install Debian's chromium to run the browser test)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    pytest.importorskip("uvicorn", reason="the serve extra (uvicorn) is not installed")
    from test_serve import build_tiny_animator

    from memorytalker.serve import ServeSettings, create_app
    from memorytalker.serve.app import serve_in_thread

    tmp = tmp_path_factory.mktemp("browser")
    settings = ServeSettings(max_seconds=4.0, output_dir=str(tmp / "jobs"))
    app = create_app(settings, animator=build_tiny_animator(tmp / "model"))
    with serve_in_thread(app) as base_url:
        yield base_url


@pytest.fixture(scope="module")
def browser(server):
    """One headless Chromium for the module (playwright's sync API allows one instance per thread)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def open_page(browser, base_url: str):
    pg = browser.new_context(viewport={"width": 1200, "height": 900}).new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.goto(base_url + "/")
    pg.wait_for_function("document.getElementById('limits').textContent.includes('Speech up to')")
    pg.js_errors = errors
    return pg


@pytest.fixture(scope="module")
def page(server, browser):
    pg = open_page(browser, server)
    yield pg
    pg.context.close()


def canvas_pixels(pg) -> np.ndarray:
    from PIL import Image

    png = pg.locator("#face-canvas").screenshot()
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.float32)


def influences_at(pg, seconds: float) -> list[float]:
    """The viewer's morph weights once the audio clock is set to ``seconds`` (the animation follows it)."""
    pg.evaluate(f"document.getElementById('audio').currentTime = {seconds}")
    pg.wait_for_function(f"Math.abs(window.memorytalker.viewer.animationTime - {seconds}) < 0.02")
    return pg.evaluate("window.memorytalker.viewer.influences()")


def wait_finished(pg) -> str:
    pg.wait_for_function(
        "['done', 'error'].includes(document.body.dataset.state)", timeout=JOB_TIMEOUT_MS, polling=200
    )
    return pg.evaluate("document.body.dataset.state")


def test_upload_shows_the_animated_face_and_plays_the_video(page, tmp_path):
    from test_serve import speech_like

    from memorytalker.data.audio import write_wav

    wav = tmp_path / "hello.wav"
    write_wav(wav, speech_like(2.0))
    page.set_input_files("#file-input", str(wav))
    page.click("#upload-button")
    assert wait_finished(page) == "done", page.evaluate("window.memorytalker.lastError")
    assert page.evaluate("window.memorytalker.job.status") == "done"

    # the face: loaded with its morph-target animation, drawn (not a blank canvas), driven by the audio clock
    page.wait_for_function("window.memorytalker.viewer && window.memorytalker.viewer.model !== null")
    assert page.evaluate("window.memorytalker.viewer.clip !== null")
    assert page.evaluate("window.memorytalker.viewer.morphTargets") > 0
    assert page.evaluate("window.memorytalker.viewer.clip.duration") == pytest.approx(2.0, abs=0.1)
    pixels = canvas_pixels(page)
    background = np.array([0xDF, 0xE3, 0xEA], dtype=np.float32)
    covered = np.mean(np.abs(pixels - background).max(axis=-1) > 24)
    assert pixels.std() > 5 and 0.05 < covered < 0.98, (pixels.std(), covered)

    page.evaluate("document.getElementById('audio').pause()")
    first, second = influences_at(page, 0.3), influences_at(page, 1.5)
    assert len(first) == len(second) > 0 and np.abs(np.subtract(first, second)).max() > 0

    page.evaluate("document.getElementById('audio').currentTime = 0; document.getElementById('audio').play()")
    page.wait_for_function("window.memorytalker.viewer.animationTime > 0.4", timeout=10_000)
    page.evaluate("document.getElementById('audio').pause()")

    # the video: H.264 that the browser decodes and plays, plus the download links
    assert page.get_attribute("#download-mp4", "download") == "hello.mp4"
    assert page.get_attribute("#download-glb", "href").endswith("/files/face.glb")
    page.evaluate("const v = document.getElementById('video'); v.muted = true; v.play()")
    page.wait_for_function("document.getElementById('video').readyState >= 2", timeout=10_000)
    page.wait_for_function("document.getElementById('video').currentTime > 0.3", timeout=10_000)
    assert page.evaluate("document.getElementById('video').duration") == pytest.approx(2.0, abs=0.15)
    assert page.js_errors == []


def test_bad_file_shows_a_message_and_recording_still_works(page, tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("this is a shopping list, not speech\n" * 20)
    page.set_input_files("#file-input", str(bad))
    page.click("#upload-button")
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert "notes.txt is not an audio file" in page.inner_text("#error")
    assert page.evaluate("document.body.dataset.state") == "error"

    # the server keeps serving: record 1.5 s from the (fake) microphone, the page uploads WebM/Opus
    page.click("#record-button")
    page.wait_for_function("document.body.dataset.state === 'recording'")
    page.wait_for_timeout(1500)
    page.click("#record-button")
    assert wait_finished(page) == "done", page.evaluate("window.memorytalker.lastError")
    assert page.is_hidden("#error")
    assert page.evaluate("window.memorytalker.job.filename") == "recording.webm"
    assert page.evaluate("window.memorytalker.job.seconds") == pytest.approx(1.5, abs=0.5)
    page.wait_for_function("window.memorytalker.viewer.model !== null")
    assert page.evaluate("window.memorytalker.viewer.clip !== null")
    assert page.js_errors == []


@pytest.fixture(scope="module")
def face_page(browser, tmp_path_factory):
    """The page served with the embedded default model (the project's face: ARKit weights, retarget)."""
    from memorytalker.inference import Animator
    from memorytalker.serve import ServeSettings, create_app
    from memorytalker.serve.app import serve_in_thread

    tmp = tmp_path_factory.mktemp("browser_face")
    app = create_app(ServeSettings(max_seconds=4.0, output_dir=str(tmp / "jobs")), animator=Animator())
    with serve_in_thread(app) as base_url:
        pg = open_page(browser, base_url)
        yield pg
        pg.context.close()


def test_face_offers_the_csv_and_plays_on_an_uploaded_avatar(face_page, tmp_path):
    from test_retarget import _avatar
    from test_serve import speech_like

    from memorytalker.data.audio import write_wav

    page = face_page
    wav = tmp_path / "hello.wav"
    write_wav(wav, speech_like(1.5))
    page.set_input_files("#file-input", str(wav))
    page.click("#upload-button")
    assert wait_finished(page) == "done", page.evaluate("window.memorytalker.lastError")
    # the project's face: the head with teeth and eyes (several primitives), its 52 ARKit targets
    page.wait_for_function("window.memorytalker.viewer && window.memorytalker.viewer.model !== null")
    assert page.evaluate("window.memorytalker.viewer.clip.name") == "speech"
    assert page.get_attribute("#download-csv", "href").endswith("/files/face.csv")
    assert page.get_attribute("#download-csv", "download") == "hello.csv"
    assert page.is_visible("#avatar-panel")

    avatar = tmp_path / "me.glb"
    _avatar(avatar)
    page.set_input_files("#avatar-input", str(avatar))
    page.wait_for_function(
        "document.getElementById('avatar-status').textContent.includes('Your avatar talks')", timeout=30_000
    )
    assert "5 targets driven" in page.inner_text("#avatar-status")
    assert "wink" in page.inner_text("#avatar-status")
    assert page.evaluate("window.memorytalker.viewer.clip.name") == "speech"  # not the avatar's 'idle'
    assert page.get_attribute("#download-avatar", "href").endswith("/files/avatar.glb")
    page.evaluate("document.getElementById('audio').pause()")
    first, second = influences_at(page, 0.2), influences_at(page, 1.0)
    assert len(first) == len(second) == 6 and np.abs(np.subtract(first, second)).max() > 0

    plain = tmp_path / "plain.glb"
    _avatar(plain, names=["smile", "frown"])
    page.set_input_files("#avatar-input", str(plain))
    page.wait_for_selector("#error:not([hidden])", timeout=10_000)
    assert "no ARKit-named morph targets" in page.inner_text("#error")
    assert page.js_errors == []

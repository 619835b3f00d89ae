"""The FastAPI application behind ``memorytalker serve``: the page, the upload API, the results.

Routes (every error is JSON ``{"error": "..."}`` with a 4xx/5xx status; the server keeps serving):

* ``GET /`` - the page (``static/index.html``); ``/static/...`` its script, style and vendored three.js.
* ``GET /api/info`` - limits the page shows: ``max_seconds``, ``max_bytes``, ``fps``, vertex count.
* ``POST /api/jobs`` - multipart form with one file field ``audio``. A place in the queue is reserved
  *before* the body is read (503 "busy" at once when every place is taken, so refused uploads cost no
  memory); the body is streamed into the form parser up to ``max_bytes`` (+ form overhead, 413 beyond)
  within ``upload_seconds`` (408 when it arrives slower); the audio is checked and decoded in a worker
  thread (:func:`~memorytalker.serve.jobs.check_upload`), then the job is queued: 202
  ``{"id": ..., "status_url": ...}``.
* ``GET /api/jobs/{id}`` - the job's status (``queued``/``running``/``done``/``failed``, stage, file URLs).
* ``POST /api/jobs/{id}/retarget`` - multipart form with one file field ``avatar`` (a ``.glb`` with
  ARKit-named morph targets): the job's ARKit track added to it (``avatar.glb``) and what was mapped.
* ``GET /api/jobs/{id}/files/{name}`` - ``audio.wav``, ``face.npy``, ``face.csv``, ``face.glb``,
  ``face.mp4`` or ``avatar.glb``; ids are 32 hex digits and names come from a fixed list, so no request
  can reach another path.
"""

import asyncio
import logging
import time
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from memorytalker.pipeline import AnimatorLike
from memorytalker.serve.jobs import (
    JOB_FILES,
    JobManager,
    ServeSettings,
    UploadError,
    check_upload,
    format_bytes,
)

log = logging.getLogger("memorytalker.serve")

STATIC_DIR = Path(__file__).resolve().parent / "static"
#: Room for the multipart boundaries and part headers around the audio file.
FORM_OVERHEAD_BYTES = 64 * 1024
#: Name of the form field that carries the audio file.
UPLOAD_FIELD = "audio"
API_JOBS = "/api/jobs"


def load_animator(checkpoint: str | None, device: str = "auto") -> AnimatorLike:
    """``memorytalker.inference.Animator(checkpoint, device)`` (``None``: the embedded default model)."""
    from memorytalker.inference import Animator

    return Animator(checkpoint=checkpoint, device=device)


@contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", timeout: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of ``host`` from a background thread (tests, benchmarks).

    Yields the base URL (``http://host:port``) once the server accepts connections; stops the server and
    joins the thread on exit.

    Raises:
        RuntimeError: the server did not start within ``timeout`` seconds (or its thread died).
    """
    import socket
    import threading
    import time

    import uvicorn

    with socket.socket() as sock:
        sock.bind((host, 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    try:
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the server on {host}:{port} did not start within {timeout:g} s")
            time.sleep(0.05)
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)


def create_app(settings: ServeSettings | None = None, animator: AnimatorLike | None = None) -> Any:
    """Build the FastAPI app.

    Args:
        settings: limits and folders (defaults: :class:`ServeSettings`); validated here.
        animator: the model to run (``animate(audio, sample_rate) -> (T, V, 3)``, ``topology``, ``fps``);
            ``None`` loads ``memorytalker.inference.Animator(settings.checkpoint, settings.device)``.

    Returns:
        A ``fastapi.FastAPI``; its ``state.jobs`` is the :class:`JobManager` (closed on shutdown, which also
        removes a temporary output folder).
    """
    from fastapi import FastAPI
    from fastapi.staticfiles import StaticFiles

    from memorytalker.data.audio import SAMPLE_RATE

    settings = settings or ServeSettings()
    settings.validate()
    if animator is None:
        animator = load_animator(settings.checkpoint, settings.device)
    jobs = JobManager(settings, animator, SAMPLE_RATE)

    @asynccontextmanager
    async def lifespan(app):
        try:
            yield
        finally:
            jobs.close()

    app = FastAPI(title="MemoryTalker", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.jobs = jobs
    app.state.settings = settings
    _add_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _add_page_routes(app, settings, animator)
    _add_job_routes(app, settings, jobs)
    return app


def _error(status: int, message: str) -> Any:
    from fastapi.responses import JSONResponse

    return JSONResponse({"error": message}, status_code=status)


def _add_error_handlers(app: Any) -> None:
    """Every error is JSON ``{"error": ...}`` with its status."""
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Any:
        message = exc.detail if isinstance(exc.detail, str) else "request refused"
        if exc.status_code == 404 and message == "Not Found":
            message = f"not found: {request.url.path}"
        return _error(exc.status_code, message)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Any:
        return _error(400, f"bad request: {exc.errors()[0].get('msg', 'invalid input')}")

    @app.exception_handler(UploadError)
    async def _upload_error(request: Request, exc: UploadError) -> Any:
        return _error(exc.status, str(exc))


def _add_page_routes(app: Any, settings: ServeSettings, animator: AnimatorLike) -> None:
    """``GET /`` (the page) and ``GET /api/info`` (the limits it shows)."""
    from fastapi.responses import FileResponse

    @app.get("/", include_in_schema=False)
    async def index() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html", media_type="text/html", headers={"Cache-Control": "no-store"}
        )

    @app.get("/api/info")
    async def info() -> dict:
        topology = animator.topology
        return {
            "max_seconds": settings.max_seconds,
            "min_seconds": settings.min_seconds,
            "max_bytes": settings.max_bytes,
            "max_bytes_text": format_bytes(settings.max_bytes),
            "fps": float(animator.fps),
            "vertices": int(topology.num_vertices),
            "topology": str(getattr(topology, "name", "")),
            "upload_field": UPLOAD_FIELD,
        }


def limited_receive(request: Any, settings: ServeSettings) -> Any:
    """The request's ASGI ``receive``, refusing a body over ``max_bytes`` (+ form overhead; 413) and one
    that has not fully arrived ``upload_seconds`` after the request started (408)."""
    limit = settings.max_bytes + FORM_OVERHEAD_BYTES
    too_large = UploadError(
        f"the upload is larger than this server's limit of {format_bytes(settings.max_bytes)}", 413
    )
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise too_large
        except ValueError:
            raise UploadError("bad Content-Length header", 400) from None
    deadline = time.monotonic() + settings.upload_seconds
    received = 0

    async def receive() -> dict:
        nonlocal received
        left = deadline - time.monotonic()
        try:
            if left <= 0:
                raise TimeoutError
            message = await asyncio.wait_for(request.receive(), timeout=left)
        except TimeoutError:
            raise UploadError(
                f"the upload did not arrive within {settings.upload_seconds:g} s; check the connection and "
                "try again",
                408,
            ) from None
        received += len(message.get("body", b""))
        if received > limit:
            raise too_large
        return message

    return receive


def _add_job_routes(app: Any, settings: ServeSettings, jobs: JobManager) -> None:
    """``POST /api/jobs``, ``GET /api/jobs/{id}``, ``GET /api/jobs/{id}/files/{name}``."""
    from fastapi import Request
    from fastapi.responses import FileResponse, JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.formparsers import MultiPartException
    from starlette.requests import Request as StarletteRequest

    from memorytalker.data.audio import SAMPLE_RATE

    def require_form(request: Request, what: str, field: str) -> None:
        if not request.headers.get("content-type", "").startswith("multipart/form-data"):
            raise UploadError(f"send the {what} as a multipart form with a file field {field!r}", 400)

    async def read_upload(request: Request, field: str, missing: str, max_fields: int) -> tuple[bytes, str]:
        """The file in form field ``field`` (streamed within the size and time limits) and its base name."""
        streamed = StarletteRequest(request.scope, limited_receive(request, settings))
        try:
            form = await streamed.form(max_files=1, max_fields=max_fields)
        except MultiPartException as exc:
            raise UploadError(f"the upload is not a valid form: {exc.message}", 400) from None
        try:
            upload = form.get(field)
            if upload is None or isinstance(upload, str):
                raise UploadError(missing, 400)
            filename = Path(upload.filename or "recording").name[:120] or "recording"
            return await upload.read(), filename
        finally:
            await form.close()

    @app.post(API_JOBS, status_code=202)
    async def create_job(request: Request) -> JSONResponse:
        require_form(request, "audio", UPLOAD_FIELD)
        with jobs.reserve() as place:  # 503 before anything is read when the queue is full
            data, filename = await read_upload(
                request,
                UPLOAD_FIELD,
                f"no file in the upload: the form needs a file field {UPLOAD_FIELD!r}",
                8,
            )
            audio = await run_in_threadpool(check_upload, data, filename, settings, SAMPLE_RATE)
            del data
            job = jobs.submit(audio, filename, place)
        with jobs.lock:
            status = job.to_json(API_JOBS)
        return JSONResponse({"status_url": f"{API_JOBS}/{job.id}", **status}, status_code=202)

    @app.post(API_JOBS + "/{job_id}/retarget")
    async def retarget(job_id: str, request: Request) -> dict:
        """The job's ARKit track played on an uploaded avatar (.glb, form field ``avatar``)."""
        require_form(request, "avatar", "avatar")
        data, _ = await read_upload(
            request, "avatar", "no avatar in the upload: the form needs a file field 'avatar' (.glb)", 4
        )
        report = await run_in_threadpool(jobs.retarget, job_id, data)
        return {"url": f"{API_JOBS}/{job_id}/files/avatar.glb", **report}

    @app.get(API_JOBS + "/{job_id}")
    async def job_status(job_id: str) -> dict:
        job = jobs.get(job_id)
        if job is None:
            raise StarletteHTTPException(404, f"no job {job_id!r} (unknown, or deleted to make room)")
        with jobs.lock:
            return job.to_json(API_JOBS)

    @app.get(API_JOBS + "/{job_id}/files/{name}")
    async def job_file(job_id: str, name: str) -> FileResponse:
        path = jobs.file_path(job_id, name)
        if path is None:
            raise StarletteHTTPException(404, f"no file {name!r} for job {job_id!r}")
        return FileResponse(path, media_type=JOB_FILES[name])

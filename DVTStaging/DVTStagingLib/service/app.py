"""The HTTP routes of the staging service (FastAPI); the contract is in docs/service.md and `protocol`.

Every answer is JSON and every error `{"error": "<one line>"}`: a bad input gets the CLI's message (400),
a missing or wrong token 401 (checked before any of the body is read), an upload over the limit 413
(`Gate`), a full queue 503.  Uploads are saved under names the server chooses; nothing from them is logged.
"""

from __future__ import annotations

import asyncio
import json

from fastapi import FastAPI, File, Form, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from .. import __version__
from ..core.errors import UserError
from . import protocol as p
from . import tasks, uploads
from .auth import token_matches
from .jobs import Busy, Job, JobStore, one_line
from .models_cache import ModelCache

# Sent in 1 MB pieces, not starlette's 64 KB: a study's outputs (tens of MB) arrive in half the time.
OUTPUT_CHUNK = 1 << 20


class Service:
    """What the routes stand on: the warm models, the jobs, the limits."""

    def __init__(self, models: ModelCache, jobs: JobStore, token: str | None, max_upload_bytes: int):
        self.models = models
        self.jobs = jobs
        self.token = token
        self.max_upload_bytes = max_upload_bytes


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)


class Gate:
    """ASGI middleware in front of every route: without the right bearer token a request (but GET /v1/health)
    gets 401 before any of its body is read; a body over the upload limit gets 413, at once when its
    Content-Length says so, else as soon as it has sent more than the limit."""

    def __init__(self, app, token: str | None, max_bytes: int):
        self.app = app
        self.token = token
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        if self.token is not None and scope["path"] != p.HEALTH:
            given = headers.get(b"authorization", b"").decode("latin-1")
            if not token_matches(self.token, given):
                what = "wrong token" if given else "missing token"
                return await error(401, f"{what}: this server needs 'Authorization: Bearer <token>'",
                                   {"WWW-Authenticate": "Bearer"})(scope, receive, send)
        try:
            declared = int(headers.get(b"content-length", b"-1"))
        except ValueError:
            declared = -1
        if declared > self.max_bytes:
            return await error(413, too_large(self.max_bytes), {"Connection": "close"})(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise HTTPException(413)
            return message

        await self.app(scope, counted, send)


def too_large(max_bytes: int) -> str:
    return f"the upload is larger than this server's limit of {uploads.megabytes(max_bytes)}"


def create_app(service: Service) -> FastAPI:
    app = FastAPI(title="DVTStaging staging service", version=__version__, docs_url=None, redoc_url=None,
                  openapi_url=f"{p.API}/openapi.json",
                  form_limits={"max_files": 3, "max_fields": 12, "max_part_size": 64 * 1024})
    app.add_middleware(Gate, token=service.token, max_bytes=service.max_upload_bytes)

    @app.exception_handler(HTTPException)
    async def _http_error(request, exc: HTTPException):
        if exc.status_code == 413:
            return error(413, too_large(service.max_upload_bytes))
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(x) for x in first.get("loc", ())[1:]) or "request"
        return error(400, f"{where}: {first.get('msg', 'invalid request')}")

    @app.exception_handler(UserError)
    async def _user_error(request, exc: UserError):
        return error(400, str(exc))

    @app.exception_handler(Busy)
    async def _busy(request, exc: Busy):
        return error(503, str(exc), {"Retry-After": "5"})

    def _job(job_id: str) -> Job:
        job = service.jobs.get(job_id)
        if job is None:
            raise HTTPException(404, f"no job {job_id} on this server (answered, cancelled or expired)")
        return job

    @app.get(p.HEALTH)
    async def health():
        counts = service.jobs.counts()
        answer = {"status": "ok", "service": "dvt-staging", "version": __version__, **counts,
                  "max_upload_bytes": service.max_upload_bytes, "token_required": service.token is not None}
        if service.models.executor is not None:
            answer["batching"] = service.models.executor.stats()
        return answer

    @app.get(p.MODELS)
    async def models():
        return await run_in_threadpool(service.models.describe)

    async def _submit(kind: str, image, series, series_file, prepare) -> JSONResponse:
        if (image is None) == (series is None):
            raise UserError(f"send the study as '{p.IMAGE}' (a volume file) or '{p.SERIES}' (a zip of a DICOM "
                            "series folder), one of them")
        job = service.jobs.create(kind)
        try:
            limit = service.max_upload_bytes
            if image is not None:
                path = await run_in_threadpool(uploads.save_image, image.file, image.filename, job.input_dir, limit)
                folder = None
            else:
                path, folder = await run_in_threadpool(uploads.save_series, series.file, job.input_dir, limit,
                                                       series_file)
            await prepare(job, path, folder)
        except BaseException as exc:
            service.jobs.discard(job)
            if isinstance(exc, UserError):
                raise UserError(job.scrub(exc)) from None
            raise
        position = service.jobs.enqueue(job)
        return JSONResponse(job.summary(position), status_code=202)

    @app.post(p.STAGE, status_code=202)
    async def stage(image: UploadFile | None = File(None), series: UploadFile | None = File(None),
                    series_file: str | None = Form(None), rois: UploadFile | None = File(None),
                    auto_roi: bool = Form(False), model: str | None = Form(None), device: str | None = Form(None),
                    detector: str | None = Form(None)):
        async def prepare(job, path, folder):
            roi_path = None
            if rois is not None:
                roi_path = await run_in_threadpool(uploads.save_rois, rois.file, job.input_dir, 16 << 20)
            tasks.describe_paths(job, path, folder, roi_path)
            await run_in_threadpool(tasks.prepare_stage, job, service.models, path, roi_path, auto_roi, model, device,
                                    detector)

        return await _submit("stage", image, series, series_file, prepare)

    @app.post(p.DETECT, status_code=202)
    async def detect(image: UploadFile | None = File(None), series: UploadFile | None = File(None),
                     series_file: str | None = Form(None), segmentation: bool = Form(False),
                     device: str | None = Form(None), detector: str | None = Form(None)):
        async def prepare(job, path, folder):
            tasks.describe_paths(job, path, folder, None)
            await run_in_threadpool(tasks.prepare_detect, job, service.models, path, device, segmentation, detector)

        return await _submit("detect", image, series, series_file, prepare)

    @app.get(p.API + "/jobs/{job_id}")
    async def job_status(job_id: str):
        job = _job(job_id)
        return job.summary(service.jobs.position(job))

    @app.get(p.API + "/jobs/{job_id}/events")
    async def job_events(job_id: str):
        job = _job(job_id)
        return StreamingResponse(_follow(service.jobs, job), media_type="application/x-ndjson")

    @app.get(p.API + "/jobs/{job_id}/outputs")
    async def job_outputs(job_id: str):
        job = _job(job_id)
        if job.state == p.FAILED:
            return error(*job.error)
        if job.state != p.DONE or job.archive is None:
            return error(409, f"job {job_id} is {job.state}: its outputs are not ready")
        response = FileResponse(job.archive, media_type="application/zip", filename="outputs.zip",
                                background=BackgroundTask(service.jobs.forget, job))
        response.chunk_size = OUTPUT_CHUNK
        return response

    @app.delete(p.API + "/jobs/{job_id}")
    async def job_cancel(job_id: str):
        job = _job(job_id)
        state = service.jobs.cancel(job)
        return {"job": job.id, "state": state, "cancelled": True}

    return app


async def _follow(jobs: JobStore, job: Job):
    """The job's events as JSON lines, live, with a heartbeat; a client that goes away before the end
    cancels the job (nobody is left to fetch its outputs)."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    job.subscribe(loop, wake)
    sent, finished = 0, False
    try:
        while True:
            wake.clear()
            events = job.events_since(sent)
            for event in events:
                yield (json.dumps(event) + "\n").encode("utf-8")
            sent += len(events)
            if events and events[-1]["event"] in p.FINAL:
                finished = True
                return
            try:
                await asyncio.wait_for(wake.wait(), timeout=p.HEARTBEAT_S)
            except asyncio.TimeoutError:
                yield (json.dumps({"event": p.ALIVE}) + "\n").encode("utf-8")
    finally:
        job.unsubscribe(wake)
        if not finished and not job.final:
            jobs.cancel(job)

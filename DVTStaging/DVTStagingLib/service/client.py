"""`dvt-staging stage|detect ... --server URL`: the same command, its model run on a staging server.

The study is uploaded (a volume file as it is; a DICOM series folder as a zip of its files), the server's
events are shown as the CLI's own progress and status lines (so the Slicer panel parses them as always),
and the outputs land in --out under the same rules as local staging.  Ctrl-C or SIGTERM cancels the job on
the server.  Exit status: 2 for bad input or a refused token (one line, the server's message), 3 when the
server cannot be reached or the connection is lost, 1 for an error on the server's side, 130 cancelled.
No torch here: the client starts in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from ..core.errors import Cancelled, InputFileError, ServerError, ServiceUnreachable, UserError
from ..core.files import is_dicom_file, nested_dicom_message, prepare_output, write_json_atomic, write_text_atomic
from ..core.interrupts import sigterm_cancels
from ..core.progress import status
from ..staging.outputs import RESULT_FILE, ROIS_FILE
from . import protocol as p
from .auth import is_loopback, read_token

DETACHED_HEADERS = (".mhd", ".nhdr", ".hdr")
CHUNK = 1 << 20


class Remote:
    """One staging server: requests with the token, errors turned into the CLI's exceptions."""

    def __init__(self, url: str, token_file=None, values: dict | None = None):
        import httpx

        parts = urlsplit(url or "")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise UserError(f"--server {url} is not an http:// or https:// address")
        self.url = url.rstrip("/")
        self.token_file = token_file
        token = read_token(token_file) if token_file else None
        self.values = values or {}
        self.httpx = httpx
        timeout = httpx.Timeout(connect=5.0, read=max(60.0, 4 * p.HEARTBEAT_S), write=120.0, pool=5.0)
        local = is_loopback(parts.hostname)
        # Plain http on loopback uses neither TLS nor a proxy: no CA bundle to load (about 30 ms of each start).
        tls = not (local and parts.scheme == "http")
        self.http = httpx.Client(base_url=self.url, headers=p.bearer(token), timeout=timeout, trust_env=not local,
                                 verify=tls)
        self.limit: int | None = None

    def close(self) -> None:
        self.http.close()

    # -- errors --------------------------------------------------------------------------------------------
    @contextmanager
    def _talking(self):
        httpx = self.httpx
        try:
            yield
        except httpx.ConnectError as exc:
            raise ServiceUnreachable(f"cannot reach the staging server at {self.url} ({_reason(exc)})") from None
        except httpx.TimeoutException as exc:
            raise ServiceUnreachable(f"the staging server at {self.url} did not answer in time ({_reason(exc)})") \
                from None
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"the connection to the staging server at {self.url} was lost "
                                     f"({_reason(exc)})") from None

    def _check(self, response) -> dict:
        """The JSON of a successful answer; the CLI's exception for an error answer."""
        try:
            data = response.json()
        except ValueError:
            data = {}
        message = p.fill(str(data.get("error") or response.reason_phrase or response.status_code), self.values)
        if response.status_code == 401:
            if self.token_file:
                raise UserError(f"the staging server at {self.url} refused the token in {self.token_file}")
            raise UserError(f"the staging server at {self.url} needs a token: pass --token-file FILE")
        if response.status_code == 503:
            raise ServiceUnreachable(f"the staging server at {self.url} is busy: {message}")
        if response.status_code >= 500:
            raise ServerError(f"the staging server at {self.url} failed: {message}")
        if response.status_code >= 400:
            raise UserError(message)
        return data

    # -- requests ------------------------------------------------------------------------------------------
    def wait_until_up(self, wait_s: float = 0.0) -> dict:
        """GET /v1/health, retried for `wait_s` seconds while nothing listens yet (a worker starting)."""
        deadline = time.monotonic() + max(0.0, wait_s)
        while True:
            try:
                with self._talking():
                    health = self._check(self.http.get(p.HEALTH))
                break
            except ServiceUnreachable:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.1)
        self.limit = health.get("max_upload_bytes")
        return health

    def submit(self, route: str, fields: dict, files: dict) -> dict:
        with self._talking():
            return self._check(self.http.post(route, data=fields, files=files))

    def follow(self, job_id: str, on_answer=None) -> dict:
        """Show the job's events as progress and status lines; the final event's data when it is done.
        `on_answer(result, files)`: called with result.json's first content and the files written with it
        (the answer event), placeholders filled."""
        with self._talking(), self.http.stream("GET", p.job_path(job_id, "events")) as response:
            if response.status_code != 200:
                response.read()
                self._check(response)
            for line in response.iter_lines():
                if not line.strip():
                    continue
                event = json.loads(line)
                kind = event.get("event")
                if kind == p.PROGRESS:
                    status(f"progress: {event['task']} {event['done']}/{event['total']}")
                elif kind == p.STATUS:
                    status(p.fill(event.get("message", ""), self.values))
                elif kind == p.QUEUED and event.get("position", 1) > 1:
                    status(f"server: queued behind {event['position'] - 1} job(s)")
                elif kind == p.ANSWER and on_answer is not None:
                    on_answer(self.filled(event.get("result") or {}), event.get("files") or {})
                elif kind == p.DONE:
                    return event
                elif kind == p.FAILED:
                    message = p.fill(event.get("error", ""), self.values)
                    if int(event.get("status", 500)) >= 500:
                        raise ServerError(f"the staging server at {self.url} failed: {message}")
                    raise UserError(message)
                elif kind == p.CANCELLED:
                    raise Cancelled()
        raise ServiceUnreachable(f"the connection to the staging server at {self.url} was lost "
                                 "(the event stream ended before the job did)")

    def fetch(self, job_id: str, out: Path, allowed: set[str]) -> list[str]:
        """The job's outputs into `out` (plain names from `allowed` only), placeholders replaced."""
        with tempfile.SpooledTemporaryFile(max_size=64 << 20) as spool:
            with self._talking(), self.http.stream("GET", p.job_path(job_id, "outputs")) as response:
                if response.status_code != 200:
                    response.read()
                    self._check(response)
                for block in response.iter_bytes(CHUNK):
                    spool.write(block)
            spool.seek(0)
            try:
                archive = zipfile.ZipFile(spool)
            except zipfile.BadZipFile:
                raise ServerError(f"the staging server at {self.url} sent a broken outputs archive") from None
            with archive:
                names = archive.namelist()
                strange = [n for n in names if n not in allowed or Path(n).name != n or n.startswith(".")]
                if strange:
                    raise ServerError(f"the staging server at {self.url} sent an unexpected file '{strange[0]}'")
                for name in names:
                    data = archive.read(name)
                    if name.endswith(".json"):
                        data = p.fill(data.decode("utf-8"), self._escaped()).encode("utf-8")
                    tmp = out / f".{name}.tmp"
                    tmp.write_bytes(data)
                    os.replace(tmp, out / name)
        return names

    def _escaped(self) -> dict[str, str]:
        """The client's paths for the placeholders, as they appear inside JSON strings."""
        return {k: json.dumps(v)[1:-1] for k, v in self.values.items()}

    def filled(self, data: dict) -> dict:
        """JSON data from the server with its placeholders replaced by the client's paths."""
        return json.loads(p.fill(json.dumps(data), self._escaped()))

    def cancel(self, job_id: str) -> None:
        """Best effort, quickly: the job on the server is cancelled (the client is going away)."""
        try:
            self.http.delete(p.job_path(job_id), timeout=2.0)
        except self.httpx.HTTPError:
            pass


def _reason(exc) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def _study_upload(input_path: Path, stack) -> tuple[dict, dict, int]:
    """(form fields, files, bytes): a volume file as it is, a DICOM series (its folder) as a zip."""
    if not input_path.exists():
        raise UserError(f"no such file or folder: {input_path}")
    if input_path.is_file() and input_path.suffix.lower() in DETACHED_HEADERS:
        raise UserError(f"{input_path} is a header with a separate data file; with --server give a single-file "
                        "volume (.nrrd, .nii.gz, .mha) or a DICOM folder")
    series_file = None
    if input_path.is_file() and is_dicom_file(input_path):
        folder, series_file = input_path.parent, input_path.name
    elif input_path.is_dir():
        folder = input_path
        if not any(f.is_file() and is_dicom_file(f) for f in folder.iterdir()):   # only this folder's files travel
            nested = nested_dicom_message(folder)
            if nested:
                raise InputFileError(nested)
    else:
        size = input_path.stat().st_size
        from .uploads import volume_suffix

        handle = stack.enter_context(open(input_path, "rb"))
        return {}, {p.IMAGE: (f"image{volume_suffix(input_path.name)}", handle, "application/octet-stream")}, size
    spool = stack.enter_context(tempfile.TemporaryFile())
    with zipfile.ZipFile(spool, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted(folder.iterdir()):
            if path.is_file() and not path.is_symlink():
                zf.write(path, arcname=path.name)
    size = spool.tell()
    spool.seek(0)
    fields = {p.SERIES_FILE: series_file} if series_file else {}
    return fields, {p.SERIES: ("series.zip", spool, "application/zip")}, size


def _write_answer(out: Path, result: dict, files: dict) -> None:
    """The answer as local staging writes it, while the server makes the overlays: its ROIs, then result.json
    (each atomically)."""
    for name, text in files.items():
        if name == ROIS_FILE and isinstance(text, str):
            write_text_atomic(out / name, text)
    write_json_atomic(out / RESULT_FILE, result)


def _catalogue_id(option: str, value: str) -> None:
    if value.endswith(".json") or os.sep in value or "/" in value:
        raise UserError(f"with --server, {option} is a catalogue id the server knows (see GET /v1/models), "
                        "not a model card file")


def run_remote(kind: str, args, outputs) -> int:
    """The `stage` (kind "stage") or `detect` command on the server `args.server`."""
    from contextlib import ExitStack

    input_path = Path(args.input)
    values = {p.INPUT: str(input_path), p.INPUT_DIR: str(input_path.parent), p.OUT: str(args.out)}
    fields = {p.DEVICE: args.device}
    if args.detector:
        _catalogue_id("--detector", args.detector)
        fields[p.DETECTOR] = args.detector
    if kind == "stage":
        if args.roi is not None and args.auto_roi:
            raise UserError("give either --roi or --auto-roi, not both")
        if args.roi is None and not args.auto_roi:
            raise UserError("no thrombus ROI: give --roi FILE.mrk.json or --auto-roi")
        fields[p.AUTO_ROI] = "true" if args.auto_roi else "false"
        if args.model:
            _catalogue_id("--model", args.model)
            fields[p.MODEL] = args.model
        if args.roi is not None:
            values[p.ROI] = str(args.roi)
            if not Path(args.roi).is_file():
                raise UserError(f"no such ROI file: {args.roi}")
    else:
        fields[p.SEGMENTATION] = "true" if args.segmentation else "false"
    out = prepare_output(Path(args.out), args.overwrite, names=outputs)
    with ExitStack() as stack, sigterm_cancels():
        remote = Remote(args.server, args.token_file, values)
        stack.callback(remote.close)
        remote.wait_until_up(args.wait_for_server)
        more, files, size = _study_upload(input_path, stack)
        fields.update(more)
        if remote.limit and size > remote.limit:
            raise UserError(f"{input_path} is {size / (1 << 20):.0f} MB, more than the upload limit of the "
                            f"staging server at {remote.url} ({remote.limit // (1 << 20)} MB)")
        if kind == "stage" and args.roi is not None:
            files[p.ROIS] = ("rois.mrk.json", stack.enter_context(open(args.roi, "rb")), "application/json")
        job_id = None
        try:
            job_id = remote.submit(p.STAGE if kind == "stage" else p.DETECT, fields, files)["job"]
            done = remote.follow(job_id, on_answer=lambda result, files: _write_answer(out, result, files))
            listed = (done.get("result") or {}).get("outputs") or {}
            allowed = set(outputs) | {n for n in listed.values() if isinstance(n, str)}
            remote.fetch(job_id, out, allowed)
        except KeyboardInterrupt:
            if job_id is not None:
                remote.cancel(job_id)
            raise Cancelled() from None
    return 0

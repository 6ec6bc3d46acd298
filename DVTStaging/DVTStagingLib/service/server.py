"""`dvt-staging serve`: the checks (bind rule, token, model) before anything heavy, then the work folder,
the warm models, the job threads, and uvicorn on a socket bound here (so `--port 0` can report its port).

Everything the server writes lives in its work folder (jobs, upload spools: Python's temporary folder is
pointed there), which it removes when it stops.  With `--parent-pid` it stops when that process has gone
(the Slicer panel's worker stops with Slicer).
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..core.errors import UserError
from ..core.files import write_text_atomic
from ..core.progress import status
from .auth import check_bind, read_token

log = logging.getLogger("dvt_staging.service")


def process_alive(pid: int) -> bool:
    """Whether process `pid` still runs (never signals it)."""
    if sys.platform == "win32":
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x00100000, False, pid)   # SYNCHRONIZE
        if not handle:
            return False
        try:
            return kernel32.WaitForSingleObject(handle, 0) == 0x00000102   # WAIT_TIMEOUT: still running
        finally:
            kernel32.CloseHandle(handle)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _listening_socket(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        if sys.platform != "win32":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        raise UserError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.setblocking(False)
    return sock


def _watch_parent(pid: int, server, every: float = 1.0) -> None:
    def watch():
        while not server.should_exit:
            if not process_alive(pid):
                log.warning("parent process %d has gone: stopping", pid)
                server.should_exit = True
                return
            time.sleep(every)

    threading.Thread(target=watch, name="dvt-staging-parent-watch", daemon=True).start()


def serve(host: str = "127.0.0.1", port: int = 8787, token_file=None, device: str = "auto", model=None,
          port_file=None, parent_pid: int | None = None, max_upload_mb: int = 1024, jobs: int | None = None,
          max_jobs: int = 16, keep_s: float = 600.0, work_dir=None, log_level: str = "info", detector=None) -> int:
    token = read_token(token_file) if token_file else None
    check_bind(host, token)
    if not 1 <= max_upload_mb <= 1 << 20:
        raise UserError("--max-upload-mb must be between 1 and 1048576")
    if jobs is not None and not 1 <= jobs <= 64:
        raise UserError("--jobs must be between 1 and 64")
    if parent_pid is not None and not process_alive(parent_pid):
        raise UserError(f"--parent-pid {parent_pid}: no such process")
    from ..models.catalog import resolve, verify_weights

    verify_weights(resolve(model, "staging"))       # a wrong model is refused before torch loads
    if detector is not None:
        verify_weights(resolve(detector, "detector"))
    sock = _listening_socket(host, port)
    logging.basicConfig(level=getattr(logging, log_level.upper(), logging.INFO), stream=sys.stderr,
                        format="serve: %(message)s")
    own_work = work_dir is None
    work = Path(tempfile.mkdtemp(prefix="dvt-serve-") if own_work else work_dir)
    work.mkdir(parents=True, exist_ok=True)
    (work / "tmp").mkdir(exist_ok=True)
    tempfile.tempdir = str(work / "tmp")            # upload spools and any temporary file stay in the work folder
    try:
        return _run(sock, host, token, device, model, port_file, parent_pid, max_upload_mb, jobs, max_jobs,
                    keep_s, work, log_level, detector)
    finally:
        sock.close()
        if own_work:
            shutil.rmtree(work, ignore_errors=True)
        else:
            shutil.rmtree(work / "tmp", ignore_errors=True)
            shutil.rmtree(work / "jobs", ignore_errors=True)


def _run(sock, host, token, device, model, port_file, parent_pid, max_upload_mb, jobs, max_jobs, keep_s, work,
         log_level, detector=None) -> int:
    import uvicorn

    from ..models.devices import resolve_device
    from . import tasks
    from .app import Service, create_app
    from .batching import ModelExecutor
    from .jobs import JobStore
    from .models_cache import ModelCache

    torch_device = resolve_device(device)
    workers = jobs or (4 if torch_device.type == "cuda" else 1)
    executor = ModelExecutor() if workers > 1 else None   # one thread runs the networks, batching across jobs
    started = time.perf_counter()
    models = ModelCache(model, device, executor, detector=detector)
    store = JobStore(work / "jobs", lambda job: tasks.run(job, models), workers=workers, max_jobs=max_jobs,
                     keep_s=keep_s, setup=lambda: tasks.warm_up(models))
    try:
        store.wait_ready()          # the models load in the job thread (see tasks.warm_up)
    except BaseException:
        _stop(store, executor)
        raise
    service = Service(models, store, token, max_upload_mb << 20)
    config = uvicorn.Config(create_app(service), log_level="warning" if log_level != "debug" else "debug",
                            access_log=log_level == "debug", timeout_graceful_shutdown=5, lifespan="off")
    server = uvicorn.Server(config)
    bound_port = sock.getsockname()[1]
    shown_host = f"[{host}]" if ":" in host else host
    url = f"http://{shown_host}:{bound_port}"
    if parent_pid is not None:
        _watch_parent(parent_pid, server)
    if port_file:
        write_text_atomic(Path(port_file), f"{bound_port}\n")
    detector_text = f", detector {models.default_detector.id}" if models.has_detector() else ""
    status(f"serve: {url} ready in {time.perf_counter() - started:.1f} s: model {models.default.id}{detector_text} "
           f"on {torch_device}, {workers} job thread(s){', batching across jobs' if executor else ''}, "
           f"{'token required' if token else 'no token (loopback only)'}")
    # uvicorn handles SIGINT/SIGTERM while it serves, then raises the signal again for the handler it found:
    # this one, which lets the clean-up below run instead of dying on the spot.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: setattr(server, "should_exit", True))
    try:
        server.run(sockets=[sock])
    finally:
        _stop(store, executor)
    status("serve: stopped")
    return 0


def _stop(store, executor) -> None:
    store.stop()
    if executor is not None:
        executor.stop()

"""The panel's warm local worker: one background `dvt-staging serve` on loopback per Slicer session.

The first Stage (or Auto-detect) click starts it; the job itself is `dvt-staging stage --server ...`,
which waits for the worker while it loads, so the GUI never waits.  Later clicks find the models loaded:
no imports, no model load.  The worker listens on 127.0.0.1 only, with a random token in a file only this
user can read, and stops with Slicer (`--parent-pid`, and `stop()` on application quit).  A worker that
has died is started again on the next click.  Qt-free; the health check uses the standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
import urllib.request
from pathlib import Path

from ..service.auth import write_new_token
from ..service.protocol import HEALTH, bearer
from .background import BackgroundProcess
from .jobs import ServerTarget, cli_environment, cli_prefix, slicer_python

STARTUP_S = 120.0     # how long a client waits for a worker that is still loading its models


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalWorker:
    """Starts, checks and stops the worker process; `ensure()` gives the address a job talks to."""

    def __init__(self, parent_pid: int | None = None):
        self.parent_pid = parent_pid or os.getpid()
        self.process: BackgroundProcess | None = None
        self.folder: Path | None = None        # private folder: the token file, the worker's job folders
        self.port: int | None = None
        self.starts = 0
        self.started_at = 0.0

    @property
    def url(self) -> str | None:
        return f"http://127.0.0.1:{self.port}" if self.port else None

    @property
    def token_file(self) -> Path | None:
        return self.folder / "token" if self.folder else None

    def running(self) -> bool:
        return self.process is not None and self.process.running

    def error(self) -> str | None:
        """Why the worker stopped (its last words), or None while it runs or was stopped on purpose."""
        if self.process is None or self.process.running or self.process.cancelled:
            return None
        self.process.poll()
        return f"the local staging worker stopped: {self.process.error_message()}"

    def healthy(self, timeout: float = 1.0) -> bool:
        """The worker answers GET /v1/health (False while it is still loading its models)."""
        if not self.running():
            return False
        request = urllib.request.Request(self.url + HEALTH, headers=bearer(self._token()))
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:
                return json.load(answer).get("status") == "ok"
        except (OSError, ValueError):
            return False

    def _token(self) -> str | None:
        try:
            return self.token_file.read_text(encoding="utf-8").strip()
        except (OSError, AttributeError):
            return None

    def start(self, prefix: list[str] | None = None) -> ServerTarget:
        self.stop()
        self.folder = Path(tempfile.mkdtemp(prefix="dvt-staging-worker-"))   # mode 0700
        write_new_token(self.folder / "token")                               # mode 0600
        self.port = free_loopback_port()
        argv = list(prefix or cli_prefix(slicer_python())) + [
            "serve", "--host", "127.0.0.1", "--port", str(self.port), "--token-file", str(self.token_file),
            "--parent-pid", str(self.parent_pid), "--work-dir", str(self.folder / "work"), "--log-level", "warning"]
        self.process = BackgroundProcess(argv, env=cli_environment(), keep_lines=50).start()
        self.starts += 1
        self.started_at = time.monotonic()
        return self.target()

    def target(self) -> ServerTarget:
        return ServerTarget(self.url, str(self.token_file), wait_s=STARTUP_S)

    def ensure(self, prefix: list[str] | None = None) -> ServerTarget:
        """The running worker's address; a worker that has gone (or never ran), or that has stopped answering
        after its start-up time, is started first."""
        if self.process is not None:
            self.process.poll()     # drain its output so that a long-lived worker never blocks on a pipe
        starting = time.monotonic() - self.started_at < STARTUP_S
        if not self.running() or not (starting or self.healthy()):
            return self.start(prefix)
        return self.target()

    def stop(self) -> None:
        if self.process is not None:
            self.process.cancel(grace=2.0, timeout=5.0)   # SIGTERM first: the worker removes its work folder
            self.process = None
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
        self.port = None


_shared: dict = {}


def shared_worker() -> LocalWorker:
    """The one worker of this Slicer session, stopped when the application quits."""
    import slicer

    worker = _shared.get(id(slicer.app))
    if worker is None:
        for old in _shared.values():      # another application object (tests make one per session)
            old.stop()
        _shared.clear()
        worker = _shared[id(slicer.app)] = LocalWorker()
        slicer.app.connect("aboutToQuit()", worker.stop)
    return worker

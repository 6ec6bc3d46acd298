"""The service's jobs: one folder each under the server's work folder, a queue, worker threads, events, cancel.

A job is created when a request arrives (state `receiving`), queued once its upload has passed the checks,
run by a worker thread (its progress and status lines become its events, see `core.progress.redirected`),
and ends `done`, `failed` or `cancelled`.  A failed or cancelled job's folder is removed at once; a done job's
folder is removed when its outputs have been sent, when it is cancelled, or `keep_s` after it ended.
Nothing here knows HTTP: `app` streams `Job.events` and serves `Job.archive`.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Callable

from ..core.errors import Cancelled, UserError
from ..core.progress import parse_progress_line, redirected
from .protocol import CANCELLED, DONE, FAILED, FINAL, PROGRESS, QUEUED, STARTED, STATUS, scrub

log = logging.getLogger("dvt_staging.service")
RECEIVING, WAITING, RUNNING = "receiving", "queued", "running"


class Busy(Exception):
    """Too many jobs are queued or running; the request is refused (HTTP 503)."""


def one_line(text) -> str:
    return " ".join(str(text).split())


class Job:
    def __init__(self, kind: str, folder: Path, job_id: str):
        self.id = job_id
        self.kind = kind                      # "stage" or "detect"
        self.folder = folder
        self.params: dict = {}                # what the task needs, set when the upload has passed its checks
        self.paths: dict[str, str] = {}       # server path -> placeholder, for every message that leaves
        self.state = RECEIVING
        self.events: list[dict] = []
        self.cancel_flag = threading.Event()
        self.outputs: list[str] = []          # file names in the archive
        self.result: dict | None = None
        self.archive: Path | None = None
        self.error: tuple[int, str] | None = None
        self.created = time.monotonic()
        self.started: float | None = None
        self.ended: float | None = None
        self._lock = threading.Lock()
        self._subscribers: list = []          # (event loop, asyncio.Event) of the streams that follow the job

    @property
    def input_dir(self) -> Path:
        return self.folder / "input"

    @property
    def out_dir(self) -> Path:
        return self.folder / "out"

    @property
    def final(self) -> bool:
        return self.state in FINAL

    def cancelled(self) -> bool:
        """The `cancel` callable the staging code polls between batches."""
        return self.cancel_flag.is_set()

    def scrub(self, text) -> str:
        return scrub(str(text), self.paths)

    # -- events ------------------------------------------------------------------------------------------
    def emit(self, event: dict) -> None:
        with self._lock:
            self.events.append(event)
            subscribers = list(self._subscribers)
        for loop, wake in subscribers:
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:    # that stream's loop has closed
                pass

    def line(self, text: str) -> None:
        """A progress or status line of the running task (`core.progress` sink) as an event."""
        parsed = parse_progress_line(text)
        if parsed:
            task, done, total = parsed
            self.emit({"event": PROGRESS, "task": task, "done": done, "total": total})
        else:
            self.emit({"event": STATUS, "message": self.scrub(text)})

    def events_since(self, index: int) -> list[dict]:
        with self._lock:
            return self.events[index:]

    def subscribe(self, loop, wake) -> None:
        with self._lock:
            self._subscribers.append((loop, wake))

    def unsubscribe(self, wake) -> None:
        with self._lock:
            self._subscribers = [(lp, w) for lp, w in self._subscribers if w is not wake]

    def summary(self, position: int | None = None) -> dict:
        data = {"job": self.id, "kind": self.kind, "state": self.state}
        if position is not None:
            data["position"] = position
        if self.error:
            data["status"], data["error"] = self.error
        if self.state == DONE:
            data["outputs"] = list(self.outputs)
        return data


class JobStore:
    """Jobs by id, the queue and the worker threads; `run(job)` does a job's work (see `tasks`).

    `setup` (the warm models) runs in the first worker thread before it takes a job; `wait_ready` waits
    for it.  On a CPU that thread then runs every job, so all of torch's work stays in one thread.
    """

    def __init__(self, root, run: Callable[[Job], None], workers: int = 1, max_jobs: int = 16,
                 keep_s: float = 600.0, setup: Callable[[], None] | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.run = run
        self.max_jobs = max_jobs
        self.keep_s = keep_s
        self._jobs: dict[str, Job] = {}
        self._queue: deque[Job] = deque()
        self._cond = threading.Condition()
        self._stopping = False
        self._ready = threading.Event()
        self._setup_error: BaseException | None = None
        if setup is None:
            self._ready.set()
        self._threads = [threading.Thread(target=self._work, args=(setup if n == 0 else None,),
                                          name=f"dvt-staging-job-{n}", daemon=True)
                         for n in range(max(1, workers))]
        for thread in self._threads:
            thread.start()
        self._janitor = threading.Thread(target=self._sweep, name="dvt-staging-janitor", daemon=True)
        self._janitor.start()

    # -- life cycle of one job ---------------------------------------------------------------------------
    def create(self, kind: str) -> Job:
        with self._cond:
            active = sum(1 for j in self._jobs.values() if not j.final)
            if self._stopping or active >= self.max_jobs:
                raise Busy(f"the server is busy ({active} jobs queued or running); try again later")
            job_id = secrets.token_hex(12)
            folder = self.root / job_id
            folder.mkdir(mode=0o700)
            (folder / "input").mkdir(mode=0o700)
            (folder / "out").mkdir(mode=0o700)
            job = Job(kind, folder, job_id)
            self._jobs[job_id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        with self._cond:
            return self._jobs.get(job_id)

    def enqueue(self, job: Job) -> int:
        with self._cond:
            job.state = WAITING
            self._queue.append(job)
            position = len(self._queue)
            self._cond.notify_all()     # the janitor waits on this condition too
        job.emit({"event": QUEUED, "position": position})
        log.info("job %s: %s queued (position %d)", job.id[:8], job.kind, position)
        return position

    def position(self, job: Job) -> int | None:
        with self._cond:
            return self._queue.index(job) + 1 if job in self._queue else None

    def discard(self, job: Job) -> None:
        """A job whose request failed before it was queued: folder and record go."""
        with self._cond:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def forget(self, job: Job) -> None:
        """A job that has been answered (or expired): folder and record go."""
        with self._cond:
            self._jobs.pop(job.id, None)
        shutil.rmtree(job.folder, ignore_errors=True)

    def cancel(self, job: Job) -> str:
        """Queued: removed now; running: stopped at its next batch; ended: its outputs are dropped."""
        with self._cond:
            if job.state == WAITING and job in self._queue:
                self._queue.remove(job)
                queued = True
            else:
                queued = False
            job.cancel_flag.set()
        if queued:
            self._finish(job, CANCELLED)
        elif job.final:
            self.forget(job)
        return job.state

    def _finish(self, job: Job, state: str, error: tuple[int, str] | None = None) -> None:
        job.ended = time.monotonic()
        job.error = error
        job.state = state
        took = f"{job.ended - job.started:.2f} s" if job.started else "before it started"
        if state != DONE:
            shutil.rmtree(job.folder, ignore_errors=True)
        if state == DONE:
            job.emit({"event": DONE, "outputs": list(job.outputs), "result": job.result})
            log.info("job %s: done in %s", job.id[:8], took)
        elif state == FAILED:
            job.emit({"event": FAILED, "status": error[0], "error": error[1]})
            log.info("job %s: failed (%d) %s", job.id[:8], error[0], took)
        else:
            job.emit({"event": CANCELLED})
            log.info("job %s: cancelled %s", job.id[:8], took)

    def _execute(self, job: Job) -> None:
        job.started = time.monotonic()
        job.emit({"event": STARTED})
        try:
            if job.cancelled():
                raise Cancelled()
            with redirected(job.line):
                self.run(job)
        except Cancelled:
            self._finish(job, CANCELLED)
        except UserError as exc:
            self._finish(job, FAILED, (400, one_line(job.scrub(exc))))
        except MemoryError:
            self._finish(job, FAILED, (500, "out of memory"))
        except Exception as exc:   # a bug: the client hears of it in one line, the log says where
            log.error("job %s: internal error %s", job.id[:8], type(exc).__name__,
                      exc_info=log.isEnabledFor(logging.DEBUG))
            self._finish(job, FAILED, (500, f"internal error: {type(exc).__name__}: {one_line(job.scrub(exc))}"))
        else:
            self._finish(job, CANCELLED if job.cancelled() else DONE)

    # -- threads -------------------------------------------------------------------------------------------
    def wait_ready(self) -> None:
        """Wait until `setup` has run; its exception, if it raised one, is raised here."""
        self._ready.wait()
        if self._setup_error is not None:
            raise self._setup_error

    def _setup(self, setup: Callable[[], None]) -> None:
        try:
            setup()
        except BaseException as exc:     # handed to the thread that waits in wait_ready
            self._setup_error = exc
        finally:
            self._ready.set()

    def _work(self, setup: Callable[[], None] | None = None) -> None:
        if setup is not None:
            self._setup(setup)
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                job = self._queue.popleft()
                job.state = RUNNING
            self._execute(job)

    def _sweep(self, every: float = 2.0) -> None:
        while True:
            with self._cond:
                if self._cond.wait_for(lambda: self._stopping, timeout=every):
                    return
                now = time.monotonic()
                stale = [j for j in self._jobs.values() if j.final and j.ended and now - j.ended > self.keep_s]
            for job in stale:
                self.forget(job)

    def counts(self) -> dict:
        with self._cond:
            states = [j.state for j in self._jobs.values()]
        return {"queued": states.count(WAITING), "running": states.count(RUNNING)}

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel every job, stop the threads, remove every job folder."""
        with self._cond:
            self._stopping = True
            jobs = list(self._jobs.values())
            self._queue.clear()
            self._cond.notify_all()
        for job in jobs:
            job.cancel_flag.set()
        deadline = time.monotonic() + timeout
        for thread in [*self._threads, self._janitor]:
            thread.join(timeout=max(0.0, deadline - time.monotonic()))
        for job in jobs:
            shutil.rmtree(job.folder, ignore_errors=True)

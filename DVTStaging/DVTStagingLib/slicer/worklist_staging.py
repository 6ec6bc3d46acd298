"""Background staging of a worklist's studies, so that "uncertain first" can order the studies nobody staged yet.

One study at a time, from its file or DICOM folder (never loaded into the scene), with the ROIs saved for it
or, without any, auto-detected ROIs: the same `dvt-staging stage` job as the panel's Stage button, on the same
warm local worker or staging server (`jobs.JobRunner`, set up like the Logic's runner).  A finished run's
result and ROIs join the study's case folder (`Worklist.save_result`); the panel then orders the worklist again.
Qt-free and MRML-free: the panel polls `poll()` from a timer, a script may call `run_all()`.
"""

from __future__ import annotations

import shutil
from typing import Callable

from ..io.roi import read_rois
from ..research.worklist import StudyEntry, Worklist
from .jobs import JobRunner


def needs_result(worklist: Worklist, entry: StudyEntry) -> bool:
    """A study the ordering knows nothing about: not labeled, no result saved, readable without the scene."""
    return entry.path is not None and worklist.status(entry) == "new" and worklist.last_result(entry) is None


class WorklistStager:
    """Stages the worklist's studies that `needs_result`, one job at a time; `busy()` true (the panel's own
    run) holds the next job back, so the user's Stage is never queued behind a background study.  A study
    `is_open(entry)` in the scene is left to the panel (what the scene holds is saved on Next)."""

    def __init__(self, base: JobRunner, busy: Callable[[], bool] = lambda: False,
                 is_open: Callable[[StudyEntry], bool] = lambda entry: False):
        self.base = base                  # the Logic's runner: its worker, server, command and job folder settings
        self.busy = busy
        self.is_open = is_open
        self.runner: JobRunner | None = None
        self.worklist: Worklist | None = None
        self.queue: list[StudyEntry] = []
        self.running: StudyEntry | None = None
        self.tried: set[str] = set()      # study ids staged (or failed) this session: not queued again
        self.failures: dict[str, str] = {}
        self.options: dict = {}

    @property
    def active(self) -> bool:
        return self.running is not None or bool(self.queue)

    def start(self, worklist: Worklist, model: str | None = None, detector: str | None = None,
              device: str = "auto") -> int:
        """Queue the worklist's studies without a result (another worklist's queue is dropped); how many."""
        if worklist is not self.worklist:
            self.stop()
            self.worklist, self.tried = worklist, set()
        self.options = {"model": model or None, "detector": detector or None, "device": device}
        queued = {e.id for e in self.queue} | ({self.running.id} if self.running else set())
        self.queue += [e for e in worklist.entries
                       if e.id not in self.tried and e.id not in queued and needs_result(worklist, e)]
        return len(self.queue)

    def poll(self) -> list[StudyEntry]:
        """Collect a finished run, start the next one; the studies whose run ended in this call (their result
        saved in the case folder, or their error in `failures`)."""
        ended = []
        if self.runner is not None and self.running is not None:
            job = self.runner.poll()
            if job is not None:
                entry, self.running = self.running, None
                self._keep(entry, job)
                ended.append(entry)
                shutil.rmtree(job.folder, ignore_errors=True)
        if self.running is None and self.queue and not self.busy():
            self._start_next()
        return ended

    def _keep(self, entry: StudyEntry, job) -> None:
        error = job.error()
        if error:
            self.failures[entry.id] = error
        elif self.is_open(entry):
            self.tried.discard(entry.id)    # opened meanwhile: what is in the scene is saved on Next instead
        elif (job.out_folder / "result.json").is_file():    # none: auto-detection found no thrombus
            self.worklist.save_result(entry, job.out_folder)

    def _start_next(self) -> None:
        if self.runner is None:
            self.runner = JobRunner(worker=self.base.worker, server=self.base.server)
        self.runner.command_prefix = self.base.command_prefix
        self.runner.job_parent_folder = self.base.job_parent_folder
        while self.queue:
            entry = self.queue.pop(0)
            if self.is_open(entry) or not needs_result(self.worklist, entry):
                continue                    # open in the scene, or staged and saved from it meanwhile
            self.tried.add(entry.id)
            saved = self.worklist.saved_rois(entry)
            try:
                rois = read_rois(saved) if saved is not None else None
                self.runner.start("stage", entry.path, rois or None, "", [], self.options["model"],
                                  self.options["device"], detector=self.options["detector"])
            except Exception as exc:      # a bad ROI file, a server not set up: this study is skipped
                self.failures[entry.id] = str(exc)
                continue
            self.running = entry
            return

    def run_all(self, timeout: float | None = None) -> list[StudyEntry]:
        """The synchronous path (scripts): stage everything queued; the studies whose run ended."""
        import time

        ended, deadline = [], None if timeout is None else time.monotonic() + timeout
        while self.active:
            ended += self.poll()
            if deadline is not None and time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"background staging did not finish within {timeout:g} s; it was stopped")
            time.sleep(0.05)
        return ended

    def stop(self) -> None:
        """Cancel the running job and drop the queue (the shared worker keeps running)."""
        self.queue = []
        if self.runner is not None and self.running is not None:
            job = self.runner.cancel()
            if job is not None:
                shutil.rmtree(job.folder, ignore_errors=True)
        self.running = None

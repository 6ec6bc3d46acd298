"""Background staging and detection jobs of the Slicer module: job folder, CLI command, life cycle.

The module never imports the model: a job writes the study and its ROIs into
a job folder, runs `dvt-staging stage|detect` in its own process (Cancel kills
the process tree, the GUI never waits on it) and hands the output folder back.
With a staging server (`server`, the panel's "Compute on: server") or the warm
local worker (`worker`, slicer.worker) that process is the `--server` client,
so the model runs where it is already loaded; progress and Cancel are the same.
A staging job answers in two steps: result.json appears (written atomically) as soon as the stage is known,
while the process goes on with the overlays and the report (`JobRunner.answered`).
MRML-free: the Logic turns node IDs into nodes and outputs into nodes.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..io.roi import BoxROI
from ..io.volume import Volume
from ..models.devices import DEVICES
from ..staging.outputs import RESULT_FILE
from ..staging.pipeline import write_stage_inputs
from .background import BackgroundProcess

OUTPUT_FOLDER = "out"
CANCELLED = "Cancelled."
CANCELLED_BY_CLOSE = "Cancelled: the study was closed."


def new_job_folder(parent: str | os.PathLike | None = None) -> Path:
    return Path(tempfile.mkdtemp(prefix="dvt-staging-", dir=parent))


def cli_prefix(python: str | None = None) -> list[str]:
    """`python -m DVTStagingLib` (the package's __main__ runs the CLI); in Slicer python is PythonSlicer."""
    return [python or sys.executable, "-m", "DVTStagingLib"]


def slicer_python() -> str:
    """Slicer's own Python for child processes (PythonSlicer is on PATH inside Slicer); elsewhere this one."""
    return shutil.which("PythonSlicer") or sys.executable


def _check_device(device: str) -> None:
    if device not in DEVICES:
        raise ValueError(f"device must be one of {', '.join(DEVICES)}")


@dataclass(frozen=True)
class ServerTarget:
    """Where the model runs when it is not in the job's own process: a staging server's address."""

    url: str
    token_file: str | None = None
    wait_s: float = 0.0          # how long the client waits for a server that is still starting

    def args(self) -> list[str]:
        argv = ["--server", self.url]
        if self.token_file:
            argv += ["--token-file", str(self.token_file)]
        if self.wait_s:
            argv += ["--wait-for-server", f"{self.wait_s:g}"]
        return argv


def stage_command(image, out, roi=None, auto_roi: bool = False, model: str | None = None, device: str = "auto",
                  prefix: list[str] | None = None, server: ServerTarget | None = None,
                  detector: str | None = None) -> list[str]:
    """`dvt-staging stage ...`; `prefix` is how to start the CLI (default `cli_prefix()`)."""
    if roi is None and not auto_roi:
        raise ValueError("stage needs ROIs: give roi or auto_roi=True")
    if roi is not None and auto_roi:
        raise ValueError("give roi or auto_roi=True, not both")
    _check_device(device)
    argv = list(prefix or cli_prefix()) + ["stage", str(image)]
    argv += ["--auto-roi"] if roi is None else ["--roi", str(roi)]
    argv += ["--out", str(out), "--device", device]   # a fresh folder: no --overwrite needed
    if model:
        argv += ["--model", str(model)]
    if detector:
        argv += ["--detector", str(detector)]
    return argv + (server.args() if server else [])


def detect_command(image, out, device: str = "auto", prefix: list[str] | None = None,
                   server: ServerTarget | None = None, detector: str | None = None,
                   segmentation: bool = False) -> list[str]:
    _check_device(device)
    argv = list(prefix or cli_prefix()) + ["detect", str(image), "--out", str(out), "--device", device]
    if detector:
        argv += ["--detector", str(detector)]
    if segmentation:
        argv += ["--segmentation"]
    return argv + (server.args() if server else [])


def cli_environment(base: dict | None = None) -> dict:
    """Environment for the child: it must find DVTStagingLib even where it is not installed (Slicer)."""
    env = dict(os.environ if base is None else base)
    module_dir = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([module_dir] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    env.setdefault("PYTHONUNBUFFERED", "1")   # progress lines arrive as they are written
    return env


@dataclass
class Job:
    """One background run: what it was started for (node IDs, not nodes: the scene may close meanwhile)."""

    kind: str                         # "stage" or "detect"
    process: BackgroundProcess
    folder: Path                      # inputs and outputs; removed by `JobRunner.cleanup`
    volume_node_id: str
    roi_node_ids: list[str] = field(default_factory=list)   # in the order the CLI stages them (empty: auto ROIs)
    on_progress: Callable | None = None
    on_finished: Callable | None = None
    on_answer: Callable | None = None  # stage: called (by the Logic) once the answer is there, before the end
    answered: bool = False            # the answer has been handed over (`JobRunner.answered`)
    answer_nodes: object = None       # what the Logic made of the answer, completed when the job ends
    closed_scene: bool = False
    worker: object = None             # the local worker the job talks to (slicer.worker.LocalWorker), if any
    failure: str | None = None        # why the runner stopped the job (its worker died)

    @property
    def out_folder(self) -> Path:
        return self.folder / OUTPUT_FOLDER

    def error(self) -> str | None:
        """None for a run that ended well, else what to tell the user."""
        if self.closed_scene:
            return CANCELLED_BY_CLOSE
        if self.failure:
            return self.failure
        if self.process.cancelled:
            return CANCELLED
        if self.process.returncode != 0:
            return self.process.error_message()
        return None


class JobRunner:
    """At most one job at a time; polled from the GUI thread (a Qt timer), or waited for (scripts, tests)."""

    def __init__(self, worker=None, server: Callable[[], ServerTarget | None] | None = None):
        self.job: Job | None = None
        self.command_prefix: list[str] | None = None   # how to start the CLI; None: Slicer's Python -m DVTStagingLib
        self.job_parent_folder: str | None = None      # where job folders go; None: the system temp folder
        self.worker = worker       # the warm local worker (slicer.worker.LocalWorker); None: a fresh process per job
        self.server = server       # the configured staging server (a callable, read at each start; None: none)
        self._folders: list[Path] = []

    @property
    def running(self) -> bool:
        return self.job is not None

    def _prefix(self) -> list[str]:
        return self.command_prefix or cli_prefix(slicer_python())

    def start(self, kind: str, volume: Volume | Path, rois: list[BoxROI] | None, volume_node_id: str,
              roi_node_ids: list[str], model: str | None = None, device: str = "auto",
              on_progress=None, on_finished=None, on_answer=None, detector: str | None = None) -> Job:
        """Write the inputs, start `dvt-staging stage` (ROIs given, or None: detect them) or `detect` (which
        also writes the thrombus segmentation); `detector` names the detector (None: the default one).
        `on_answer` (stage): called by the Logic once the answer is there, before the job ends."""
        if self.job is not None:
            raise RuntimeError("A run is in progress; cancel it first.")
        server = self.server() if self.server is not None else None   # raises ValueError for an incomplete setup
        worker = self.worker if server is None else None
        if worker is not None:
            server = worker.ensure(self._prefix())
        folder = new_job_folder(self.job_parent_folder)
        self._folders.append(folder)
        image, roi_path = write_stage_inputs(folder, volume, rois if kind == "stage" else None)
        out = folder / OUTPUT_FOLDER
        if kind == "stage":
            argv = stage_command(image, out, roi=roi_path, auto_roi=roi_path is None, model=model, device=device,
                                 prefix=self._prefix(), server=server, detector=detector)
        else:
            argv = detect_command(image, out, device=device, prefix=self._prefix(), server=server, detector=detector,
                                  segmentation=True)
        process = BackgroundProcess(argv, env=cli_environment()).start()
        self.job = Job(kind, process, folder, volume_node_id, list(roi_node_ids), on_progress, on_finished,
                       on_answer, worker=worker)
        return self.job

    def poll(self) -> Job | None:
        """Forward progress; the job once it has ended (then no job runs any more), else None."""
        job = self.job
        if job is None:
            return None
        job.process.poll(on_progress=job.on_progress)
        if job.worker is not None and not job.process.finished and job.worker.error():
            job.failure = job.worker.error()   # the client would wait for a worker that is gone: stop it now
            job.process.cancel()
        if not job.process.finished:
            return None
        self.job = None
        job.process.poll(on_progress=job.on_progress)
        return job

    def answered(self) -> Job | None:
        """The running staging job, once, when its answer (result.json) has appeared; else None.  The file is
        written atomically, so it is whole when it is there; the job goes on with the overlays."""
        job = self.job
        if job is None or job.kind != "stage" or job.answered or not (job.out_folder / RESULT_FILE).is_file():
            return None
        job.answered = True
        return job

    def cancel(self, closed_scene: bool = False) -> Job | None:
        """Stop the running job's whole process tree (within a second); the stopped job, or None."""
        job = self.job
        if job is None:
            return None
        job.closed_scene = job.closed_scene or closed_scene
        job.process.cancel()
        self.job = None
        job.process.poll(on_progress=job.on_progress)
        return job

    def wait(self, timeout: float | None = None) -> Job:
        """The synchronous path: run the current job to its end (on timeout it is cancelled, and raises)."""
        job = self.job
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            ended = self.poll()
            if ended is not None:
                return ended
            if deadline is not None and time.monotonic() > deadline:
                self.cancel()
                raise TimeoutError(f"{job.kind} did not finish within {timeout:g} s; it was stopped")
            time.sleep(0.05)

    def cleanup(self) -> None:
        """Cancel what runs, stop the local worker, remove the job folders (inputs, outputs) of this runner."""
        self.cancel()
        if self.worker is not None:
            self.worker.stop()
        for folder in self._folders:
            shutil.rmtree(folder, ignore_errors=True)
        self._folders = []

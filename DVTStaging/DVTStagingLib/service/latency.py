"""How long a warm staging server takes to answer and to deliver every output, as its two kinds of client see it.

- The panel's request, made by an in-process client: the study and ROIs as the panel's job writes them (an
  uncompressed input.nrrd, staging.pipeline.write_stage_inputs), timed from the request to the answer event
  (result.json written) and to every output written.
- `dvt-staging stage --server` in a new process (client start included): to its stage line (printed once
  the answer is written) and to its exit.
"""

from __future__ import annotations

import subprocess
import time
from contextlib import ExitStack
from pathlib import Path

from ..core.errors import UserError
from ..core.progress import redirected
from ..staging.outputs import STAGE_OUTPUTS
from . import protocol as p


def client_process(argv: list[str], env: dict, timeout: float = 900) -> tuple[float, float]:
    """(seconds to the stage line, seconds to the end) of a `stage --server` client process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    answer, lines = None, []
    for line in proc.stderr:       # the stage line follows the answer's result.json
        if answer is None and line.startswith("stage: ") and not line.startswith("stage: wrote"):
            answer = time.perf_counter() - started
        lines.append(line)
    code = proc.wait(timeout=timeout)
    total = time.perf_counter() - started
    if code != 0:
        raise UserError(f"benchmark: stage --server failed: {lines[-1:] or code}")
    return (answer if answer is not None else total), total


def panel_inputs(study: dict, folder: Path) -> tuple[Path, Path]:
    """The study and its ROIs as the panel's job writes them (slicer.jobs uses the same writer)."""
    from ..staging.pipeline import load_stage_inputs, write_stage_inputs

    volume, rois = load_stage_inputs(Path(study["image"]), Path(study["roi"]), False)
    return write_stage_inputs(folder, volume, rois)


def panel_requests(url: str, image: Path, roi_path: Path, folder: Path, repeats: int,
                   device: str) -> list[tuple[float, float]]:
    """(request -> answer written, request -> every output written) of each of `repeats` requests made the
    way the panel's job makes them (`panel_inputs`), by a client in this process."""
    from .client import Remote, _study_upload, _write_answer

    runs = []
    for n in range(repeats):
        out = folder / f"panel{n}"
        out.mkdir(parents=True)
        remote = Remote(url, values={p.INPUT: str(image), p.ROI: str(roi_path), p.OUT: str(out)})
        answered = []

        def on_answer(result, files, out=out, answered=answered):
            _write_answer(out, result, files)
            answered.append(time.perf_counter())

        try:
            with ExitStack() as stack, redirected(lambda line: None):
                started = time.perf_counter()
                fields, files, _ = _study_upload(image, stack)
                files[p.ROIS] = ("rois.mrk.json", stack.enter_context(open(roi_path, "rb")), "application/json")
                job = remote.submit(p.STAGE, {**fields, p.AUTO_ROI: "false", p.DEVICE: device}, files)["job"]
                done = remote.follow(job, on_answer=on_answer)
                listed = set((done.get("result") or {}).get("outputs", {}).values())
                remote.fetch(job, out, set(STAGE_OUTPUTS) | listed)
                ended = time.perf_counter()
        finally:
            remote.close()
        if not answered:
            raise UserError("benchmark: the server sent no answer event")
        runs.append((answered[0] - started, ended - started))
    return runs

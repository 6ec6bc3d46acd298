"""What a job does: the checks of a request (before it is queued: a bad input is answered at once, with the
CLI's message) and the work itself (the CLI's own `stage_study` / `detect_study`, with the server's warm
models), then the answer: the output files, their JSON with server paths replaced by placeholders, zipped.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from ..core.files import write_text_atomic
from ..core.json_files import read_json
from ..core.progress import redirected
from ..detection.commands import DETECT_OUTPUTS
from ..io.volume import check_image_content, read_volume
from ..staging.outputs import RESULT_FILE, ROIS_FILE, STAGE_OUTPUTS
from ..staging.pipeline import load_stage_inputs
from .jobs import Job
from .models_cache import ModelCache
from .protocol import ANSWER, INPUT, INPUT_DIR, OUT, ROI, scrub

ARCHIVE = "outputs.zip"


def describe_paths(job: Job, image: Path, series_dir: Path | None, roi: Path | None) -> None:
    """Which placeholder stands for which server path in everything the job sends."""
    job.paths = {str(image): INPUT, str(job.out_dir): OUT, str(job.folder): "<job>"}
    if series_dir is not None and series_dir != image:
        job.paths[str(series_dir)] = INPUT_DIR
    if roi is not None:
        job.paths[str(roi)] = ROI


def prepare_stage(job: Job, models: ModelCache, image: Path, roi: Path | None, auto_roi: bool,
                  model: str | None, device: str | None, detector: str | None = None) -> None:
    """The `stage` command's checks, in its order (inputs, then the models); UserError for a bad request."""
    with redirected(job.line):    # a warning (an ROI partly outside the volume) goes to the job's events
        volume, rois = load_stage_inputs(image, roi, auto_roi)
    job.params = {"input": image, "volume": volume, "rois": rois, "entry": models.entry(model),
                  "detector": models.detector_entry(detector), "device": models.device(device)}


def prepare_detect(job: Job, models: ModelCache, image: Path, device: str | None, segmentation: bool,
                   detector: str | None = None) -> None:
    volume = read_volume(image)
    check_image_content(volume, str(image))
    entry = models.detector_entry(detector)
    if entry is None:
        from ..models.catalog import resolve, verify_weights

        verify_weights(resolve(None, "detector"))    # raises the CLI's message
    job.params = {"input": image, "detector": entry, "device": models.device(device), "segmentation": segmentation}


def warm_up(models: ModelCache) -> None:
    """The job thread's set-up (`JobStore` setup): the default models load in the thread that runs the jobs,
    and the report's plotting library is loaded once, not by the first request.

    Why the job thread: torch's OpenMP runtime (libgomp) keeps a team of threads for each thread that ran
    torch work.  With a second, idle team (the models loaded in the main thread) its threads outnumber the
    cores, and libgomp then cuts their spin-wait to almost nothing: they sleep between the many small
    operations of a staging run and wake late, about 10 % slower on a 2-core CPU.
    """
    from ..staging.report import warm_up as warm_report

    models.warm()
    warm_report()


def run(job: Job, models: ModelCache) -> None:
    """A worker thread's work for one job (its lines already go to the job's events)."""
    p = job.params
    if job.kind == "stage":
        from ..staging.pipeline import stage_study

        stager = models.stager(p["entry"], p["device"])
        detector = models.detector(p["detector"], p["device"]) if p["detector"] else None   # ROIs, content check

        def on_answer(result: dict) -> None:     # streamed before the overlays are made, with the ROIs it names
            rois = job.out_dir / ROIS_FILE
            files = {ROIS_FILE: rois.read_text(encoding="utf-8")} if rois.is_file() else {}
            job.emit({"event": ANSWER, "result": scrubbed(job, result), "files": files})

        job.result = stage_study(p["input"], job.out_dir, device=p["device"], cancel=job.cancelled,
                                 rois=p["rois"], volume=p["volume"], stager=stager, detector=detector,
                                 on_answer=on_answer)
        listed = list((job.result or {}).get("outputs", {}).values())
        names = [*STAGE_OUTPUTS, *[n for n in listed if n not in STAGE_OUTPUTS]]
    else:
        from ..detection.commands import detect_study

        detect_study(p["input"], job.out_dir, device=p["device"], segmentation=p["segmentation"],
                     detector=models.detector(p["detector"], p["device"]))
        names = list(DETECT_OUTPUTS)
    job.params = {}     # the volume is no longer needed
    answer(job, names)


def scrubbed(job: Job, data: dict) -> dict:
    """JSON data with every server path replaced by its placeholder (as in the JSON files sent)."""
    return json.loads(scrub(json.dumps(data), _escaped(job)))


def _escaped(job: Job) -> dict[str, str]:
    """The job's path placeholders as they appear inside JSON strings."""
    return {json.dumps(p)[1:-1]: json.dumps(h)[1:-1] for p, h in job.paths.items()}


def answer(job: Job, names: list[str]) -> None:
    """Zip the outputs named `names` that the job wrote (plain names only), server paths scrubbed."""
    present = [n for n in dict.fromkeys(names) if Path(n).name == n and (job.out_dir / n).is_file()]
    for name in present:
        if name.endswith(".json"):
            path = job.out_dir / name
            text = path.read_text(encoding="utf-8")
            write_text_atomic(path, scrub(text, _escaped(job)))
    if RESULT_FILE in present:
        job.result = read_json(job.out_dir / RESULT_FILE)
    archive = job.folder / ARCHIVE
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in present:
            zf.write(job.out_dir / name, arcname=name)
    job.outputs, job.archive = present, archive


"""The staging service's wire contract, shared by the server and the client (no torch, no web framework).

Requests are multipart forms; answers are JSON, an error always ``{"error": "<one line>"}``.  A job's
progress is a stream of JSON lines (NDJSON), one event per line, ending with a final event.  Paths on the
server never leave it: messages name the uploaded files by the placeholders below, which the client
replaces by its own paths, so it prints exactly what local staging prints.
"""

from __future__ import annotations

API = "/v1"
HEALTH = f"{API}/health"
MODELS = f"{API}/models"
STAGE = f"{API}/stage"
DETECT = f"{API}/detect"


def job_path(job_id: str, what: str = "") -> str:
    """`/v1/jobs/<id>` (status, DELETE = cancel), `.../events` (NDJSON stream), `.../outputs` (zip)."""
    return f"{API}/jobs/{job_id}" + (f"/{what}" if what else "")


# Form fields of POST /v1/stage and /v1/detect.
IMAGE = "image"              # one volume file (NRRD, NIfTI, MHA, one DICOM file of a series, ...)
SERIES = "series"            # or a zip of the files of one folder (a DICOM series)
SERIES_FILE = "series_file"  # with SERIES: the DICOM file that names the series (optional)
ROIS = "rois"                # stage: the ROIs (.mrk.json)
AUTO_ROI = "auto_roi"        # stage: "true" to detect the ROIs
MODEL = "model"              # catalogue id (default: the server's model)
DETECTOR = "detector"        # stage, detect: the detector's catalogue id (default: the server's detector)
DEVICE = "device"            # auto (the server's device), cpu or cuda
SEGMENTATION = "segmentation"  # detect: "true" to also write thrombus.seg.nrrd

# Events (the "event" member of each line of .../events).  ANSWER (stage jobs): result.json as written once the
# stage is known (`result`, with its `pending` outputs) and the small files written with it (`files`: name ->
# text, rois.mrk.json), before the overlays and the report are made.
QUEUED, STARTED, PROGRESS, STATUS, ALIVE, ANSWER = "queued", "started", "progress", "status", "alive", "answer"
DONE, FAILED, CANCELLED = "done", "failed", "cancelled"
FINAL = (DONE, FAILED, CANCELLED)
HEARTBEAT_S = 10.0           # an "alive" event at least this often while a job waits or runs

# What a message may say instead of a server path.
INPUT, INPUT_DIR, ROI, OUT = "<input>", "<input-dir>", "<roi>", "<out>"


def scrub(text: str, paths: dict[str, str]) -> str:
    """Server side: each server path in `text` replaced by its placeholder (`paths`: path -> placeholder),
    longest path first so that a folder never eats the start of a file inside it."""
    for path in sorted(paths, key=len, reverse=True):
        if path:
            text = text.replace(path, paths[path])
    return text


def fill(text: str, values: dict[str, str]) -> str:
    """Client side: each placeholder in `text` replaced by the client's own path (`values`: placeholder -> path)."""
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}
